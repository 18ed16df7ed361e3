package access_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
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
		rs.BuiltInPolicies = true
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

// BenchmarkPatientSearch measures a patient's search that matches their
// own 20 Observations against one that matches 2,000 Observations of other
// patients only, in the same run. With the patient's bound pushed into the
// store, the second costs no more than the first (review finding 14); it
// reports both and their ratio (others ÷ own).
func BenchmarkPatientSearch(b *testing.B) {
	ctx := context.Background()
	v, _ := vaulttest.Vault(b)
	authz, err := policy.New(policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	rs := access.NewRecordService(v, authz)
	rs.BuiltInPolicies = true
	obs := func(p, code string) string {
		return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"` + code +
			`"}]},"subject":{"reference":"Patient/` + p + `"}}`
	}
	var bundle []string
	for i := range 100 {
		p := "p" + strconv.Itoa(i)
		bundle = append(bundle, `{"request":{"method":"PUT","url":"Patient/`+p+`"},"resource":{"resourceType":"Patient","id":"`+p+`"}}`)
		for range 20 {
			code := "other"
			if i == 0 {
				code = "own"
			}
			bundle = append(bundle, `{"request":{"method":"POST","url":"Observation"},"resource":`+obs(p, code)+`}`)
		}
		if len(bundle) > 200 || i == 99 {
			body := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(bundle, ",") + `]}`
			if _, err := v.Bundle(ctx, []byte(body), ""); err != nil {
				b.Fatal(err)
			}
			bundle = bundle[:0]
		}
	}
	pat := &phivault.Principal{ID: "u-p0", Kind: phivault.PrincipalPatient, PatientID: "p0", SMART: true, Scopes: []string{"patient/Observation.rs"}}
	pctx := phivault.WithPrincipal(ctx, pat)
	search := func(code string) time.Duration {
		t0 := time.Now()
		res, err := rs.Search(pctx, &phivault.Query{Type: "Observation",
			Params: []phivault.QueryParam{{Name: "code", Values: []string{"http://loinc.org|" + code}}}})
		if err != nil || (code == "own") != (res.Total == 20) {
			b.Fatalf("search %s = %+v, %v", code, res, err)
		}
		return time.Since(t0)
	}
	var own, others time.Duration
	for b.Loop() {
		own += search("own")
		others += search("other")
	}
	n := float64(b.N)
	b.ReportMetric(float64(own.Microseconds())/n, "own-µs/search")
	b.ReportMetric(float64(others.Microseconds())/n, "others-µs/search")
	b.ReportMetric(float64(others)/float64(own), "ratio")
}

// BenchmarkSearch runs the two equality searches of the performance
// figures (Patient?identifier=… and Observation?patient=…&code=…) through
// access and vault as a physician on each patient's care team (SMART
// user/*.rs, default policies), and reports µs per search.
func BenchmarkSearch(b *testing.B) {
	h := mustHospital(b, 10)
	type call struct {
		ctx context.Context
		q   *phivault.Query
	}
	var ident, obs []call
	for _, p := range h.patients {
		doc := staff("u-doc-"+p, h.doctor[p], "physician")
		doc.SMART, doc.Scopes = true, []string{"openid", "fhirUser", "user/*.rs"}
		ctx, _ := as(doc)
		pat, err := h.v.Read(context.Background(), "Patient", p)
		if err != nil {
			b.Fatal(err)
		}
		var body struct {
			Identifier []struct{ System, Value string }
		}
		json.Unmarshal(pat.Body, &body)
		ident = append(ident, call{ctx, &phivault.Query{Type: "Patient", Params: []phivault.QueryParam{
			{Name: "identifier", Values: []string{body.Identifier[0].System + "|" + body.Identifier[0].Value}}}}})
		var o struct {
			Code struct {
				Coding []struct{ System, Code string }
			}
		}
		json.Unmarshal(h.obs[p][0].Body, &o)
		obs = append(obs, call{ctx, &phivault.Query{Type: "Observation", Params: []phivault.QueryParam{
			{Name: "patient", Values: []string{p}},
			{Name: "code", Values: []string{o.Code.Coding[0].System + "|" + o.Code.Coding[0].Code}}}}})
	}
	for _, bc := range []struct {
		name  string
		calls []call
	}{{"identifier", ident}, {"observation-patient-code", obs}} {
		// bounded: the physician's search bounded to their care teams at
		// the store (serve's setting); every: every match read and
		// decided, the baseline of the same run.
		for _, mode := range []string{"every", "bounded"} {
			b.Run(bc.name+"/"+mode, func(b *testing.B) {
				h.rs.BuiltInPolicies = mode == "bounded"
				defer func() { h.rs.BuiltInPolicies = true }()
				for i := 0; b.Loop(); i++ {
					c := bc.calls[i%len(bc.calls)]
					if res, err := h.rs.Search(c.ctx, c.q); err != nil || res.Total == 0 {
						b.Fatalf("search = %+v, %v", res, err)
					}
				}
			})
		}
	}
}

// BenchmarkReadByIDRestricted reads Observations by id as the
// physician on each patient's care team, as BenchmarkReadByID does, with
// no restriction stored ("none") and with the other half of the patients
// restricted (restrict-compartment, "others"), or reading
// the restricted half through a break-the-glass grant ("grant"). The
// "cold" variants reload every patient's access context on every read
// (ContextTTL 0), which the restriction adds one indexed lookup to; the
// others read it from the cache, as a running server mostly does (with
// the test's fixed clock, ContextTTL 0 reloads every time).
func BenchmarkReadByIDRestricted(b *testing.B) {
	for _, cold := range []bool{false, true} {
		for _, mode := range []string{"none", "others", "grant"} {
			name := mode
			if cold {
				name += "-cold"
			}
			b.Run(name, func(b *testing.B) { benchRestricted(b, mode, cold) })
		}
	}
}

func benchRestricted(b *testing.B, mode string, cold bool) {
	h := mustHospital(b, 10)
	ctx := context.Background()
	type target struct {
		ctx context.Context
		id  string
	}
	var targets []target
	for i, p := range h.patients {
		if mode != "none" && i%2 == 0 {
			if err := h.rs.Restrict(ctx, p, "act-bench"); err != nil {
				b.Fatal(err)
			}
		}
		if (i%2 == 0) != (mode == "grant") {
			continue // "none" and "others" read the odd half, "grant" the restricted even half
		}
		doc := staff("u-doc-"+p, h.doctor[p], "physician")
		doc.SMART, doc.Scopes = true, []string{"openid", "fhirUser", "user/*.rs"}
		dctx, _ := as(doc)
		if mode == "grant" {
			if _, err := h.rs.BreakGlass(dctx, access.BreakGlassRequest{PatientID: p, Purpose: "ETREAT", Reason: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
		for _, o := range h.obs[p] {
			targets = append(targets, target{dctx, o.ID})
		}
	}
	if cold {
		h.rs.ContextTTL = 0
	}
	for _, t := range targets {
		if _, err := h.rs.Read(t.ctx, "Observation", t.id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t := targets[i%len(targets)]
		if _, err := h.rs.Read(t.ctx, "Observation", t.id); err != nil {
			b.Fatal(err)
		}
	}
}
