package synth_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/synth"
)

// txBundle is the part of a transaction Bundle the tests look at.
type txBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			IfNoneExist string `json:"ifNoneExist"`
		} `json:"request"`
	} `json:"entry"`
}

// MustGenerate returns every bundle of the hospital.
func MustGenerate(tb testing.TB, opts synth.Options) [][]byte {
	tb.Helper()
	var out [][]byte
	if err := synth.Hospital(opts, func(b []byte) bool {
		out = append(out, b)
		return true
	}); err != nil {
		tb.Fatalf("Hospital(%+v) = %v", opts, err)
	}
	return out
}

// MustDecode decodes every bundle, and each entry's resource into a map.
func MustDecode(tb testing.TB, bundles [][]byte) ([]txBundle, [][]map[string]any) {
	tb.Helper()
	var bs []txBundle
	var rs [][]map[string]any
	for i, raw := range bundles {
		var b txBundle
		if err := json.Unmarshal(raw, &b); err != nil {
			tb.Fatalf("bundle %d: %v", i, err)
		}
		var res []map[string]any
		for j, e := range b.Entry {
			var m map[string]any
			if err := json.Unmarshal(e.Resource, &m); err != nil {
				tb.Fatalf("bundle %d entry %d: %v", i, j, err)
			}
			res = append(res, m)
		}
		bs = append(bs, b)
		rs = append(rs, res)
	}
	return bs, rs
}

func TestHospital_Deterministic(t *testing.T) {
	a := MustGenerate(t, synth.Options{Seed: 42, Patients: 12})
	b := MustGenerate(t, synth.Options{Seed: 42, Patients: 12})
	if len(a) != len(b) {
		t.Fatalf("bundle counts %d and %d differ for the same seed", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("bundle %d differs between two runs with the same seed", i)
		}
	}

	c := MustGenerate(t, synth.Options{Seed: 43, Patients: 12})
	for i := range c {
		if bytes.Equal(a[i], c[i]) {
			t.Errorf("bundle %d is identical for seeds 42 and 43", i)
		}
	}

	// A smaller hospital is a prefix of a larger one.
	small := MustGenerate(t, synth.Options{Seed: 42, Patients: 4})
	for i := range small {
		if !bytes.Equal(small[i], a[i]) {
			t.Errorf("bundle %d of a 4-patient hospital differs from the 12-patient one", i)
		}
	}
}

func TestHospital_Count(t *testing.T) {
	if got := len(MustGenerate(t, synth.Options{Seed: 1, Patients: 7})); got != 8 {
		t.Errorf("Patients: 7 gave %d bundles, want 8", got)
	}
	if testing.Short() {
		t.Skip("default hospital size skipped in -short mode")
	}
	n := 0
	if err := synth.Hospital(synth.Options{}, func([]byte) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if want := synth.DefaultPatients + 1; n != want {
		t.Errorf("zero Options gave %d bundles, want %d", n, want)
	}
}

func TestHospital_StopEarly(t *testing.T) {
	n := 0
	err := synth.Hospital(synth.Options{Seed: 1, Patients: 10}, func([]byte) bool {
		n++
		return n < 3
	})
	if err != nil || n != 3 {
		t.Errorf("Hospital with yield stopping at 3 = %v after %d calls, want nil after 3", err, n)
	}
}

func TestHospital_ErrInvalid(t *testing.T) {
	err := synth.Hospital(synth.Options{Patients: -1}, func([]byte) bool { return true })
	if got := phivault.ErrorCode(err); got != phivault.EINVALID {
		t.Errorf("Hospital(Patients: -1) code = %q, want %q", got, phivault.EINVALID)
	}
}

func TestBundles(t *testing.T) {
	opts := synth.Options{Seed: 7, Patients: 3}
	want := MustGenerate(t, opts)
	var got [][]byte
	for b, err := range synth.Bundles(opts) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	if len(got) != len(want) {
		t.Fatalf("Bundles yielded %d bundles, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("Bundles bundle %d differs from Hospital's", i)
		}
	}
	for _, err := range synth.Bundles(synth.Options{Patients: -1}) {
		if phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("Bundles(Patients: -1) yielded %v, want EINVALID", err)
		}
	}
	for range synth.Bundles(opts) {
		break // must not panic
	}
}

func TestHospital_Mix(t *testing.T) {
	const patients = 20
	bs, rs := MustDecode(t, MustGenerate(t, synth.Options{Seed: 3, Patients: patients}))

	shared := map[string]int{}
	for _, r := range rs[0] {
		shared[r["resourceType"].(string)]++
	}
	if shared["Practitioner"] < 20 || shared["Organization"] < 3 || shared["Location"] < 1 || len(shared) != 3 {
		t.Errorf("shared bundle holds %v, want ≥ 20 Practitioners, ≥ 3 Organizations, Locations, nothing else", shared)
	}

	total := map[string]int{}
	resources := 0
	for i, res := range rs[1:] {
		types := map[string]int{}
		perEncounter := map[string]int{}
		for _, r := range res {
			types[r["resourceType"].(string)]++
			if r["resourceType"] == "Observation" {
				perEncounter[r["encounter"].(map[string]any)["reference"].(string)]++
			}
		}
		if types["Patient"] != 1 {
			t.Errorf("patient bundle %d has %d Patients, want 1", i, types["Patient"])
		}
		if n := types["Encounter"]; n < 5 || n > 40 {
			t.Errorf("patient bundle %d has %d Encounters, want 5 to 40", i, n)
		}
		if len(perEncounter) != types["Encounter"] {
			t.Errorf("patient bundle %d: %d of %d Encounters have Observations", i, len(perEncounter), types["Encounter"])
		}
		for _, n := range perEncounter {
			if n < 3 || n > 10 {
				t.Errorf("patient bundle %d has an Encounter with %d Observations, want 3 to 10", i, n)
			}
		}
		for typ, n := range types {
			total[typ] += n
		}
		resources += len(bs[i+1].Entry)
	}
	for _, typ := range []string{"Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "AllergyIntolerance", "Immunization", "Procedure"} {
		if total[typ] == 0 {
			t.Errorf("no %s in %d patients", typ, patients)
		}
	}
	if avg := resources / patients; avg < 150 || avg > 400 {
		t.Errorf("%d resources per patient on average, want 150 to 400", avg)
	}
	t.Logf("%d patients, %d resources: %v", patients, resources, total)
}

var uuidURN = regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// references returns every Reference.reference in v.
func references(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "reference" {
				out = append(out, s)
			} else {
				out = append(out, references(x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, references(x)...)
		}
	}
	return out
}

func TestHospital_References(t *testing.T) {
	bs, rs := MustDecode(t, MustGenerate(t, synth.Options{Seed: 5, Patients: 10}))

	// Every shared resource has ifNoneExist on its own identifier; those
	// are the targets conditional references may use.
	targets := map[string]bool{}
	for j, e := range bs[0].Entry {
		res := rs[0][j]
		ids := res["identifier"].([]any)
		id := ids[0].(map[string]any)
		want := "identifier=" + id["system"].(string) + "|" + id["value"].(string)
		if e.Request.IfNoneExist != want {
			t.Errorf("shared entry %d ifNoneExist = %q, want %q", j, e.Request.IfNoneExist, want)
		}
		targets[e.Request.URL+"?"+e.Request.IfNoneExist] = true
	}

	seen := map[string]bool{}
	conditional := 0
	for i, b := range bs {
		if b.ResourceType != "Bundle" || b.Type != "transaction" {
			t.Errorf("bundle %d is a %s of type %q, want a transaction Bundle", i, b.ResourceType, b.Type)
		}
		local := map[string]bool{}
		for j, e := range b.Entry {
			if !uuidURN.MatchString(e.FullURL) {
				t.Errorf("bundle %d entry %d fullUrl %q is not a urn:uuid with a v4 UUID", i, j, e.FullURL)
			}
			if seen[e.FullURL] {
				t.Errorf("bundle %d entry %d fullUrl %q is not unique", i, j, e.FullURL)
			}
			seen[e.FullURL] = true
			local[e.FullURL] = true
			if typ := rs[i][j]["resourceType"]; e.Request.Method != "POST" || e.Request.URL != typ {
				t.Errorf("bundle %d entry %d request = %s %s, want POST %s", i, j, e.Request.Method, e.Request.URL, typ)
			}
			if _, ok := rs[i][j]["id"]; ok {
				t.Errorf("bundle %d entry %d has an id; POST entries should not", i, j)
			}
		}
		for j := range b.Entry {
			for _, ref := range references(rs[i][j]) {
				switch {
				case strings.HasPrefix(ref, "urn:uuid:"):
					if !local[ref] {
						t.Errorf("bundle %d entry %d: reference %s does not resolve within the bundle", i, j, ref)
					}
				case i > 0 && targets[ref]:
					conditional++
				default:
					t.Errorf("bundle %d entry %d: reference %q is neither local nor a shared identifier", i, j, ref)
				}
			}
		}
	}
	if conditional == 0 {
		t.Error("no conditional references to shared resources")
	}
}

// luhnNPI reports whether npi has a valid NPI check digit.
func luhnNPI(npi string) bool {
	s := "80840" + npi
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func TestLuhnNPI(t *testing.T) {
	// 1234567893 is CMS's worked example.
	if !luhnNPI("1234567893") || luhnNPI("1234567890") {
		t.Fatal("luhnNPI does not match the CMS example")
	}
}

var (
	npiValue  = regexp.MustCompile(`^9[0-9]{9}$`)
	phoneForm = regexp.MustCompile(`^[0-9]{3}-555-01[0-9]{2}$`)
)

// TestHospital_Synthetic checks the markers that keep generated data from
// looking like anyone's: NPIs never issued, fictional phone numbers,
// example.com mail, and the HTEST security label.
func TestHospital_Synthetic(t *testing.T) {
	_, rs := MustDecode(t, MustGenerate(t, synth.Options{Seed: 9, Patients: 5}))
	for i, res := range rs {
		for j, r := range res {
			sec, _ := r["meta"].(map[string]any)["security"].([]any)
			if len(sec) == 0 || sec[0].(map[string]any)["code"] != "HTEST" {
				t.Errorf("bundle %d entry %d lacks the HTEST security label", i, j)
			}
			for _, id := range asSlice(r["identifier"]) {
				id := id.(map[string]any)
				if id["system"] == synth.NPISystem && (!npiValue.MatchString(id["value"].(string)) || !luhnNPI(id["value"].(string))) {
					t.Errorf("bundle %d entry %d NPI %v is not a valid 9-prefixed NPI", i, j, id["value"])
				}
				if r["resourceType"] == "Patient" && id["system"] != synth.MRNSystem {
					t.Errorf("Patient identifier system = %v, want %s", id["system"], synth.MRNSystem)
				}
			}
			for _, cp := range asSlice(r["telecom"]) {
				cp := cp.(map[string]any)
				v := cp["value"].(string)
				if (cp["system"] == "phone" && !phoneForm.MatchString(v)) || (cp["system"] == "email" && !strings.HasSuffix(v, "@example.com")) {
					t.Errorf("bundle %d entry %d telecom %q is not fictional", i, j, v)
				}
			}
		}
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// dates returns every string in v that parses as an RFC 3339 date-time.
func dates(v any) []time.Time {
	var out []time.Time
	switch v := v.(type) {
	case string:
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			out = append(out, t)
		}
	case map[string]any:
		for _, x := range v {
			out = append(out, dates(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, dates(x)...)
		}
	}
	return out
}

func TestHospital_Dates(t *testing.T) {
	now := time.Date(2020, 6, 1, 0, 0, 0, 0, time.UTC)
	_, rs := MustDecode(t, MustGenerate(t, synth.Options{Seed: 11, Patients: 8, Now: now}))
	for i, res := range rs[1:] {
		birth, err := time.Parse("2006-01-02", res[0]["birthDate"].(string))
		if err != nil {
			t.Fatalf("patient %d birthDate: %v", i, err)
		}
		if !birth.Before(now) {
			t.Errorf("patient %d born %v, after Now %v", i, birth, now)
		}
		n := 0
		for _, r := range res {
			for _, d := range dates(r) {
				n++
				if d.After(now) || d.Before(birth) {
					t.Errorf("patient %d: %s date %v outside [%v, %v]", i, r["resourceType"], d, birth, now)
				}
			}
		}
		if n == 0 {
			t.Errorf("patient %d has no date-times", i)
		}
	}
}

// TestHospital_ValidFHIR runs every generated resource through the R4
// validator of package fhir.
func TestHospital_ValidFHIR(t *testing.T) {
	raw := MustGenerate(t, synth.Options{Seed: 13, Patients: 10})
	for i, b := range raw {
		if typ, _, err := fhir.Parse(b); err != nil || typ != "Bundle" {
			t.Errorf("bundle %d: fhir.Parse = %q, %v; want a valid Bundle", i, typ, err)
		}
	}
	bs, _ := MustDecode(t, raw)
	checked := map[string]int{}
	for i, b := range bs {
		for j, e := range b.Entry {
			typ, _, err := fhir.Parse(e.Resource)
			if err != nil {
				var issues []phivault.Issue
				if pe, ok := err.(*phivault.Error); ok {
					issues = pe.Issues
				}
				t.Errorf("bundle %d entry %d: fhir.Parse = %v %+v", i, j, err, issues)
				continue
			}
			checked[typ]++
		}
	}
	t.Logf("valid: %v", checked)
}
