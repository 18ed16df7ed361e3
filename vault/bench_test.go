package vault_test

import (
	"context"
	"testing"

	"github.com/phivault/phivault/internal/testenv"
)

// BenchmarkImportSynthea imports the 100 Synthea patients as transaction
// Bundles, one at a time, into a fresh encrypted SQLite vault per iteration.
func BenchmarkImportSynthea(b *testing.B) {
	ctx := context.Background()
	var bundles [][]byte
	var resources int
	testenv.SyntheaBundles(b, "patients-100.tar.gz", func(_ string, data []byte) {
		bundles = append(bundles, data)
	})
	for b.Loop() {
		b.StopTimer()
		s, _ := MustOpenService(b)
		b.StartTimer()
		resources = 0
		for _, data := range bundles {
			if _, err := s.Bundle(ctx, data, "https://example.test/fhir"); err != nil {
				b.Fatal(err)
			}
		}
	}
	_ = resources
}
