package vault_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/phivault/phivault"
)

// BenchmarkService_RotatePatientKey rotates the data key of one patient
// with 300 resources (the Patient and 299 Observations) of 3 versions each:
// 900 versions re-encrypted, in batches of envelope.DefaultRotateBatch, in
// an encrypted SQLite vault with the file keyring. Each iteration is a full
// rotation (new key version, reseal everything, delete the old key).
func BenchmarkService_RotatePatientKey(b *testing.B) {
	ctx := context.Background()
	s, _ := MustOpenService(b)
	const obs = 299
	pid := "bench-patient"
	patient := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":true}`, pid)
	observation := func(i, v int) string {
		return fmt.Sprintf(`{"resourceType":"Observation","id":"bench-obs-%d","status":"final",`+
			`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}],"text":"Heart rate"},`+
			`"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2024-01-01T10:00:00Z",`+
			`"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`, i, pid, 60+v)
	}
	for v := 1; v <= 3; v++ {
		entries := []string{fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"Patient/%s"}}`, patient, pid)}
		for i := range obs {
			entries = append(entries, fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"Observation/bench-obs-%d"}}`, observation(i, v), i))
		}
		bundle := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
		if !json.Valid([]byte(bundle)) {
			b.Fatal("invalid bundle")
		}
		if _, err := s.Bundle(ctx, []byte(bundle), "https://example.test/fhir"); err != nil {
			b.Fatal(err)
		}
	}
	h, err := s.History(ctx, phivault.HistoryQuery{Type: "Observation", ID: "bench-obs-0"})
	if err != nil || h.Total != 3 {
		b.Fatalf("History(bench-obs-0) = %v, %v; want 3 versions", h, err)
	}
	versions := 0
	for b.Loop() {
		versions = 0
		if err := s.RotatePatientKey(ctx, pid, func(done, _ int) { versions = done }); err != nil {
			b.Fatal(err)
		}
	}
	if versions != 900 {
		b.Fatalf("rotated %d versions, want 900", versions)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/rotation")
	b.ReportMetric(float64(versions)*float64(b.N)/b.Elapsed().Seconds(), "versions/s")
}
