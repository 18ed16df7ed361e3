package synth_test

import (
	"bytes"
	"testing"

	"github.com/phivault/phivault/synth"
)

// BenchmarkHospital generates a 20-patient hospital per iteration and
// reports bundles/s and resources/s.
func BenchmarkHospital(b *testing.B) {
	opts := synth.Options{Seed: 1, Patients: 20}
	var bundles, resources, size int
	for b.Loop() {
		if err := synth.Hospital(opts, func(bundle []byte) bool {
			bundles++
			resources += bytes.Count(bundle, []byte(`"fullUrl"`))
			size += len(bundle)
			return true
		}); err != nil {
			b.Fatal(err)
		}
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(bundles)/s, "bundles/s")
	b.ReportMetric(float64(resources)/s, "resources/s")
	b.ReportMetric(float64(size)/s/1e6, "MB/s")
}
