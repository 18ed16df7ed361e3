package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault"
)

// rotatePatient gives one patient a new data key and re-encrypts the
// patient's records under it, through the running server or offline.
func (c *keysCommand) rotatePatient(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keys rotate-patient", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	var of offlineFlags
	of.register(fs)
	patient := fs.String("patient", "", "id of the Patient whose data key to rotate (required)")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, "Usage: phivault keys rotate-patient --patient ID [-data DIR | -url URL]\n\n"+
			"Creates a new data key for the patient, re-encrypts every version of the patient's\n"+
			"records under it (reads and writes go on), then destroys the old key. Use it after a\n"+
			"suspected exposure of that key. If interrupted, run it again to continue.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *patient == "" || strings.ContainsAny(*patient, "/?#") {
		return errorWithHint("no valid --patient id", "phivault keys rotate-patient --patient ID")
	}
	if of.data == "" {
		body, err := adminCall(ctx, &cf, http.MethodPost, "/patients/"+url.PathEscape(*patient)+"/$rotate-key")
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, outcomeMessage(body))
		return nil
	}
	logger := slog.New(slog.NewJSONHandler(c.stderr, nil))
	o, err := of.open(ctx, logger)
	if err != nil {
		return err
	}
	defer o.Close()
	versions := 0
	err = o.records.RotatePatientKey(ctx, *patient, func(done, total int) {
		versions = done
		fmt.Fprintf(c.stdout, "  %d of %d versions re-encrypted\n", done, total)
	})
	switch phivault.ErrorCode(err) {
	case "":
	case phivault.ENOTFOUND:
		return fmt.Errorf("no Patient %s in %s", *patient, o.data)
	case phivault.EGONE:
		return fmt.Errorf("Patient/%s was crypto-shredded; there is no key to rotate", *patient)
	default:
		return fmt.Errorf("rotate patient key (run again to continue): %w", err)
	}
	fmt.Fprintf(c.stdout, "Patient/%s has a new data key: %d versions re-encrypted, the old key destroyed.\n", *patient, versions)
	return nil
}
