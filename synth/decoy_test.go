package synth_test

import (
	"context"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/synth"
)

// mustDecoys returns n decoys drawn from a generator seeded with seed.
func mustDecoys(tb testing.TB, seed uint64, n int, opts synth.DecoyOptions) [][]byte {
	tb.Helper()
	var out [][]byte
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'd', 'e', 'c', 'o', 'y'}))
	if err := synth.Decoys(r, n, opts, func(b []byte) bool {
		out = append(out, b)
		return true
	}); err != nil {
		tb.Fatalf("Decoys = %v", err)
	}
	if len(out) != n {
		tb.Fatalf("Decoys yielded %d bundles, want %d", len(out), n)
	}
	return out
}

// paths returns the element paths of v, arrays flattened:
// "name.given", "meta.security.code".
func paths(prefix string, v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			paths(p, x, out)
		}
	case []any:
		for _, x := range v {
			paths(prefix, x, out)
		}
	}
}

// shapes returns, by resource type, the union of element paths of the
// patient bundles in rs, and the set of each Patient's paths.
func shapes(rs [][]map[string]any) (byType map[string]map[string]bool, patients map[string]bool) {
	byType, patients = map[string]map[string]bool{}, map[string]bool{}
	for _, res := range rs {
		for _, r := range res {
			typ := r["resourceType"].(string)
			if byType[typ] == nil {
				byType[typ] = map[string]bool{}
			}
			one := map[string]bool{}
			paths("", r, one)
			maps.Copy(byType[typ], one)
			if typ == "Patient" {
				patients[strings.Join(slices.Sorted(maps.Keys(one)), ",")] = true
			}
		}
	}
	return byType, patients
}

func withoutMeta(set map[string]bool) map[string]bool {
	out := map[string]bool{}
	for p := range set {
		if p != "meta" && !strings.HasPrefix(p, "meta.") {
			out[p] = true
		}
	}
	return out
}

// TestDecoys_LikePatients checks that decoys are made of the same
// resource types and elements as the hospital's patients: with the label,
// the very same; without it, the same but meta.
func TestDecoys_LikePatients(t *testing.T) {
	_, hrs := MustDecode(t, MustGenerate(t, synth.Options{Seed: 21, Patients: 25}))
	hospital, hospitalPatients := shapes(hrs[1:])

	for _, label := range []bool{true, false} {
		_, drs := MustDecode(t, mustDecoys(t, 1, 20, synth.DecoyOptions{Seed: 21, Label: label}))
		decoys, decoyPatients := shapes(drs)
		if got, want := slices.Sorted(maps.Keys(decoys)), slices.Sorted(maps.Keys(hospital)); !slices.Equal(got, want) {
			t.Errorf("label %v: decoys' resource types %v, patients' %v", label, got, want)
		}
		for typ, set := range decoys {
			want := hospital[typ]
			if !label {
				want = withoutMeta(want)
			}
			if got := slices.Sorted(maps.Keys(set)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
				t.Errorf("label %v: %s elements differ:\ndecoys   %v\npatients %v", label, typ, got, slices.Sorted(maps.Keys(want)))
			}
		}
		for shape := range decoyPatients {
			if label && !hospitalPatients[shape] {
				t.Errorf("a decoy Patient has elements %s, no patient's", shape)
			}
		}
		for i, res := range drs {
			if res[0]["resourceType"] != "Patient" {
				t.Errorf("decoy %d: first entry is a %v, want the Patient", i, res[0]["resourceType"])
			}
		}
	}
}

// TestDecoys_NoMarker checks that nothing readable tells a decoy: no
// meta (or the hospital's own label), no ids, the hospital's identifier
// system and numbering, random fullUrls, references only inside the
// bundle or to the hospital's shared resources.
func TestDecoys_NoMarker(t *testing.T) {
	hb, hrs := MustDecode(t, MustGenerate(t, synth.Options{Seed: 21, Patients: 3}))
	targets := map[string]bool{}
	for _, e := range hb[0].Entry {
		targets[e.Request.URL+"?"+e.Request.IfNoneExist] = true
	}
	hospitalMeta, _ := json.Marshal(hrs[1][0]["meta"])

	const first = 250
	for _, label := range []bool{false, true} {
		raw := mustDecoys(t, 2, 8, synth.DecoyOptions{Seed: 21, First: first, Label: label})
		bs, rs := MustDecode(t, raw)
		for i, b := range bs {
			if b.ResourceType != "Bundle" || b.Type != "transaction" {
				t.Fatalf("decoy %d is a %s %s", i, b.Type, b.ResourceType)
			}
			local := map[string]bool{}
			for _, e := range b.Entry {
				local[e.FullURL] = true
				if !uuidURN.MatchString(e.FullURL) || e.Request.Method != "POST" || e.Request.IfNoneExist != "" {
					t.Errorf("decoy %d: entry %s %s %s", i, e.FullURL, e.Request.Method, e.Request.IfNoneExist)
				}
			}
			for j, r := range rs[i] {
				for _, k := range []string{"id", "tag", "extension", "modifierExtension", "text", "implicitRules"} {
					if _, ok := r[k]; ok {
						t.Errorf("decoy %d entry %d has %q", i, j, k)
					}
				}
				if m, ok := r["meta"]; ok != label {
					t.Errorf("decoy %d entry %d: meta %v, want it only with the label", i, j, m)
				} else if ok {
					if got, _ := json.Marshal(m); string(got) != string(hospitalMeta) {
						t.Errorf("decoy %d entry %d: meta %s, the hospital's %s", i, j, got, hospitalMeta)
					}
				}
				for _, ref := range references(r) {
					if !local[ref] && !targets[ref] {
						t.Errorf("decoy %d entry %d: reference %q is neither local nor the hospital's", i, j, ref)
					}
				}
			}
			p := rs[i][0]
			ids := asSlice(p["identifier"])
			if len(ids) != 1 {
				t.Fatalf("decoy %d has %d identifiers", i, len(ids))
			}
			id := ids[0].(map[string]any)
			mrn, err := strconv.Atoi(id["value"].(string))
			if id["system"] != synth.MRNSystem || err != nil || (mrn-10_000_000)/1000 != first+i+1 {
				t.Errorf("decoy %d identifier %v|%v, want the hospital's MRN of patient %d", i, id["system"], id["value"], first+i)
			}
		}
	}

	// Two runs share nothing.
	a, b := mustDecoys(t, 3, 5, synth.DecoyOptions{Seed: 21}), mustDecoys(t, 4, 5, synth.DecoyOptions{Seed: 21})
	seen := map[string]bool{}
	for _, raw := range [][][]byte{a, b} {
		bs, _ := MustDecode(t, raw)
		for _, bd := range bs {
			for _, e := range bd.Entry {
				if seen[e.FullURL] {
					t.Errorf("fullUrl %s in both runs", e.FullURL)
				}
				seen[e.FullURL] = true
			}
		}
	}
	// The same generator state makes the same decoys.
	if c := mustDecoys(t, 3, 5, synth.DecoyOptions{Seed: 21}); !slices.EqualFunc(a, c, func(x, y []byte) bool { return string(x) == string(y) }) {
		t.Error("the same generator made different decoys")
	}
}

// TestDecoys_History checks that decoys have years of history.
func TestDecoys_History(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	_, rs := MustDecode(t, mustDecoys(t, 5, 20, synth.DecoyOptions{Seed: 21, Now: now}))
	count := map[string]int{}
	for i, res := range rs {
		var first, last time.Time
		encounters := 0
		for _, r := range res {
			count[r["resourceType"].(string)]++
			if r["resourceType"] != "Encounter" {
				continue
			}
			encounters++
			start, err := time.Parse(time.RFC3339, r["period"].(map[string]any)["start"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if start.After(now) {
				t.Errorf("decoy %d: encounter at %v, after Now", i, start)
			}
			if first.IsZero() || start.Before(first) {
				first = start
			}
			if start.After(last) {
				last = start
			}
		}
		if encounters < 5 {
			t.Errorf("decoy %d has %d encounters, want at least 5", i, encounters)
		}
		birth, _ := time.Parse(time.DateOnly, res[0]["birthDate"].(string))
		if span := last.Sub(first); now.Sub(birth) > 3*365*24*time.Hour && span < 365*24*time.Hour {
			t.Errorf("decoy %d born %v: history spans only %v", i, birth, span)
		}
	}
	for _, typ := range []string{"Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "Immunization", "Procedure"} {
		if count[typ] == 0 {
			t.Errorf("no %s among 20 decoys (%v)", typ, count)
		}
	}
}

func TestDecoys_ValidFHIR(t *testing.T) {
	for i, b := range mustDecoys(t, 6, 10, synth.DecoyOptions{}) {
		if typ, _, err := fhir.Parse(b); err != nil || typ != "Bundle" {
			t.Errorf("decoy %d: fhir.Parse = %q, %v", i, typ, err)
		}
	}
}

func TestDecoys_Errors(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct {
		n    int
		opts synth.DecoyOptions
	}{{-1, synth.DecoyOptions{}}, {1, synth.DecoyOptions{First: -1}}} {
		err := synth.Decoys(r, c.n, c.opts, func([]byte) bool { t.Fatal("yield called"); return false })
		if phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("Decoys(%d, %+v) = %v, want EINVALID", c.n, c.opts, err)
		}
	}
	n := 0
	if err := synth.Decoys(r, 5, synth.DecoyOptions{}, func([]byte) bool { n++; return n < 2 }); err != nil || n != 2 {
		t.Errorf("Decoys stopped after %d bundles, err %v; want 2", n, err)
	}
}

func TestPatientID(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"Patient/abc/_history/1"}},{"response":{"location":"Encounter/e/_history/1"}}]}`, "abc"},
		{`{"resourceType":"Bundle","entry":[{"response":{"location":"Encounter/e/_history/1"}},{"response":{"location":"https://x.test/fhir/Patient/p-9/_history/1"}}]}`, "p-9"},
	} {
		if got, err := synth.PatientID([]byte(c.body)); err != nil || got != c.want {
			t.Errorf("PatientID(%s) = %q, %v; want %q", c.body, got, err, c.want)
		}
	}
	for _, body := range []string{
		`{"resourceType":"Bundle","entry":[{"response":{"location":"Encounter/e/_history/1"}}]}`,
		`{"resourceType":"Bundle","entry":[{"response":{"location":"Patient/"}}]}`,
		`{"resourceType":"Patient"}`,
		`not json`,
	} {
		if got, err := synth.PatientID([]byte(body)); phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("PatientID(%s) = %q, %v; want EINVALID", body, got, err)
		}
	}
}

// TestDecoys_Vault loads decoys into a vault the way `phivault honeytoken
// create` does, after the hospital's shared bundle, and finds each decoy
// by the id PatientID reads from the response, and by its MRN.
func TestDecoys_Vault(t *testing.T) {
	ctx := context.Background()
	v, _ := vaulttest.Vault(t)
	// The shared bundle only: the clinicians and departments.
	if err := synth.Hospital(synth.Options{Seed: 31, Patients: 1}, func(b []byte) bool {
		if _, err := v.Bundle(ctx, b, ""); err != nil {
			t.Fatal(err)
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	r := rand.New(rand.NewPCG(8, 9))
	err := synth.Decoys(r, 2, synth.DecoyOptions{Seed: 31, First: 1, Label: true}, func(b []byte) bool {
		res, err := v.Bundle(ctx, b, "")
		if err != nil {
			t.Fatal(err)
		}
		id, err := synth.PatientID(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		p, err := v.Read(ctx, "Patient", id)
		if err != nil {
			t.Fatalf("read decoy %s: %v", id, err)
		}
		var body struct {
			Identifier []struct{ System, Value string }
		}
		if err := json.Unmarshal(p.Body, &body); err != nil || len(body.Identifier) != 1 {
			t.Fatalf("decoy %s: %s, %v", id, p.Body, err)
		}
		found, err := v.Search(ctx, &phivault.Query{Type: "Patient", Params: []phivault.QueryParam{
			{Name: "identifier", Values: []string{synth.MRNSystem + "|" + body.Identifier[0].Value}}}})
		if err != nil || len(found.Matches) != 1 || found.Matches[0].ID != id {
			t.Errorf("search by the MRN of decoy %s: %+v, %v", id, found, err)
		}
		enc, err := v.Search(ctx, &phivault.Query{Type: "Encounter", Params: []phivault.QueryParam{{Name: "patient", Values: []string{"Patient/" + id}}}})
		if err != nil || len(enc.Matches) == 0 {
			t.Errorf("decoy %s has no encounters in the vault: %v", id, err)
		}
	}
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("ids = %v", ids)
	}

	// Decoys of a hospital that is not loaded fail, and create nothing.
	err = synth.Decoys(r, 1, synth.DecoyOptions{Seed: 32, First: 3}, func(b []byte) bool {
		if _, err := v.Bundle(ctx, b, ""); phivault.ErrorCode(err) != phivault.EPRECONDITION {
			t.Errorf("decoys of another hospital: %v, want EPRECONDITION", err)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	all, err := v.Search(ctx, &phivault.Query{Type: "Patient", Summary: "count"})
	if err != nil || all.Total != 2 {
		t.Errorf("patients in the vault: %+v, %v; want the 2 decoys", all, err)
	}
}
