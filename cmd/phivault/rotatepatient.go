package main

import (
	"context"
	"fmt"

	"github.com/phivault/phivault"
)

// rotatePatient gives one patient a new data key and re-encrypts the
// patient's records under it, through the running server or offline.
func (c *keysCommand) rotatePatient(ctx context.Context, args []string) error {
	return c.patientOp(ctx, args, "rotate-patient", "/$rotate-key",
		"Creates a new data key for the patient, re-encrypts every version of the patient's\n"+
			"records under it (reads and writes go on), then destroys the old key. Use it after a\n"+
			"suspected exposure of that key. If interrupted, run it again to continue.",
		func(ctx context.Context, o *offline, patient string) error {
			versions := 0
			err := o.records.RotatePatientKey(ctx, patient, func(done, total int) {
				versions = done
				fmt.Fprintf(c.stdout, "  %d of %d versions re-encrypted\n", done, total)
			})
			switch phivault.ErrorCode(err) {
			case "":
			case phivault.ENOTFOUND:
				return fmt.Errorf("no Patient %s in %s", patient, o.data)
			case phivault.EGONE:
				return fmt.Errorf("patient %s was crypto-shredded; there is no key to rotate", patient)
			default:
				return fmt.Errorf("rotate patient key (run again to continue): %w", err)
			}
			fmt.Fprintf(c.stdout, "Patient/%s has a new data key: %d versions re-encrypted, the old key destroyed.\n", patient, versions)
			return nil
		})
}
