package access_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/internal/testenv"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/policy"
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

// BenchmarkImport imports the first 20 Synthea patients-100 transaction
// Bundles as the bootstrap system client through access and vault (every
// write decided by the access layer), into a fresh store per iteration,
// one Bundle at a time. It reports resources/s.
func BenchmarkImport(b *testing.B) {
	var bundles [][]byte
	testenv.SyntheaBundles(b, "patients-100.tar.gz", func(_ string, data []byte) {
		if len(bundles) < 20 {
			bundles = append(bundles, data)
		}
	})
	authz, err := policy.New(policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("admin"))
	var resources int
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		v, _ := vaulttest.Vault(b)
		rs := access.NewRecordService(v, authz)
		b.StartTimer()
		t0 := time.Now()
		for _, data := range bundles {
			res, err := rs.Bundle(ctx, data, "https://example.test/fhir")
			if err != nil {
				b.Fatal(err)
			}
			resources += bytes.Count(res.Body, []byte(`"status":"201`))
		}
		took += time.Since(t0)
	}
	b.ReportMetric(float64(resources)/took.Seconds(), "resources/s")
}
