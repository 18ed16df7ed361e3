package access_test

import (
	"context"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

// BenchmarkReadByID reads Observations by id through access+vault and
// through the vault alone, interleaved in the same run, as a physician on
// the patients' care team with a SMART token (user/*.rs) and the default
// policies. It reports both latencies and their ratio (vault ns / access
// ns: the share of the vault's throughput kept; the target is >= 0.8).
func BenchmarkReadByID(b *testing.B) {
	h := mustHospital(b, 10)
	type target struct {
		ctx context.Context
		id  string
	}
	var targets []target
	for _, p := range h.patients {
		doc := staff("u-doc-"+p, h.doctor[p], "physician")
		doc.SMART, doc.Scopes = true, []string{"openid", "fhirUser", "user/*.rs"}
		ctx, _ := as(doc)
		for _, o := range h.obs[p] {
			targets = append(targets, target{ctx, o.ID})
		}
	}
	// Warm both paths (keys, patient contexts).
	for _, t := range targets {
		if _, err := h.rs.Read(t.ctx, "Observation", t.id); err != nil {
			b.Fatal(err)
		}
	}
	plain := context.Background()
	var inVault, inAccess time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t := targets[i%len(targets)]
		t0 := time.Now()
		if _, err := h.v.Read(plain, "Observation", t.id); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		res, err := h.rs.Read(t.ctx, "Observation", t.id)
		if err != nil || res == nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		inVault += t1.Sub(t0)
		inAccess += t2.Sub(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(inVault.Nanoseconds())/n, "vault-ns/read")
	b.ReportMetric(float64(inAccess.Nanoseconds())/n, "access-ns/read")
	b.ReportMetric(float64(inVault)/float64(inAccess), "ratio")
}

var _ = phivault.ErrNotFound
