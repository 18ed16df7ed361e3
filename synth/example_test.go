package synth_test

import (
	"fmt"

	"github.com/phivault/phivault/synth"
)

// A hospital of three patients is four transaction Bundles: the shared
// resources, then one per patient.
func ExampleHospital() {
	n := 0
	err := synth.Hospital(synth.Options{Seed: 1, Patients: 3}, func(bundle []byte) bool {
		n++ // POST bundle to the server's base URL here
		return true
	})
	fmt.Println("bundles:", n, "error:", err)
	// Output: bundles: 4 error: <nil>
}
