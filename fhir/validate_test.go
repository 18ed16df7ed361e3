package fhir_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/internal/testenv"
)

// syntheaResource is one entry resource of a Synthea bundle, as raw JSON.
type syntheaResource struct {
	Bundle string // e.g. p001.json, for failure messages
	Index  int
	JSON   []byte
}

var syntheaOnce = sync.OnceValues(readSynthea)

// mustSynthea returns every entry resource of the Synthea patients-100
// bundles, or skips the test when the data is absent.
func mustSynthea(tb testing.TB) []syntheaResource {
	tb.Helper()
	res, err := syntheaOnce()
	if errors.Is(err, fs.ErrNotExist) {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

func readSynthea() ([]syntheaResource, error) {
	files, err := testenv.ReadSynthea("patients-100.tar.gz")
	if err != nil {
		return nil, err
	}
	var out []syntheaResource
	for _, f := range files {
		var b struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(f.Data, &b); err != nil {
			return nil, err
		}
		for i, e := range b.Entry {
			out = append(out, syntheaResource{Bundle: f.Name, Index: i, JSON: e.Resource})
		}
	}
	return out, nil
}

func TestParse_Synthea(t *testing.T) {
	res := mustSynthea(t)
	if len(res) < 1000 {
		t.Fatalf("read %d Synthea resources, want the whole corpus", len(res))
	}
	types := map[string]int{}
	for i := 0; i < len(res); i += testenv.SampleStep() {
		r := res[i]
		typ, obj, err := fhir.Parse(r.JSON)
		if err != nil {
			t.Errorf("%s entry %d: Parse: %v %+v", r.Bundle, r.Index, err, issuesOf(err))
			continue
		}
		types[typ]++
		out, err := fhir.Marshal(obj)
		if err != nil {
			t.Errorf("%s entry %d: Marshal: %v", r.Bundle, r.Index, err)
			continue
		}
		back, err := fhir.Decode(out)
		if err != nil {
			t.Errorf("%s entry %d: Decode(Marshal()): %v", r.Bundle, r.Index, err)
			continue
		}
		if diff := cmp.Diff(obj, back); diff != "" {
			t.Errorf("%s entry %d: round trip changed the resource (-parsed +reparsed):\n%s", r.Bundle, r.Index, diff)
		}
	}
	t.Logf("%d resources of %d types", len(res), len(types))
}

func issuesOf(err error) []phivault.Issue {
	var e *phivault.Error
	if errors.As(err, &e) {
		return e.Issues
	}
	return nil
}

func BenchmarkParse_Synthea(b *testing.B) {
	res := mustSynthea(b)
	var size int64
	for _, r := range res {
		size += int64(len(r.JSON))
	}
	b.SetBytes(size / int64(len(res)))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, _, err := fhir.Parse(res[i%len(res)].JSON); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "res/s")
}

func BenchmarkDecode_Synthea(b *testing.B) {
	res := mustSynthea(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := fhir.Decode(res[i%len(res)].JSON); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "res/s")
}

func BenchmarkValidate_Synthea(b *testing.B) {
	res := mustSynthea(b)
	objs := make([]fhir.Object, len(res))
	types := make([]string, len(res))
	for i, r := range res {
		obj, err := fhir.Decode(r.JSON)
		if err != nil {
			b.Fatal(err)
		}
		objs[i], types[i] = obj, obj["resourceType"].(string)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if issues := fhir.Validate(types[i%len(objs)], objs[i%len(objs)]); issues != nil {
			b.Fatal(issues)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "res/s")
}

// validateCase is one hand-made case in testdata/validate/cases.json: a
// resource and the expressions of the issues Validate must report (none
// for a valid resource).
type validateCase struct {
	Name     string          `json:"name"`
	Want     []string        `json:"want"`
	Resource json.RawMessage `json:"resource"`
}

func mustCases(tb testing.TB) []validateCase {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "validate", "cases.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var cases []validateCase
	if err := json.Unmarshal(data, &cases); err != nil {
		tb.Fatal(err)
	}
	return cases
}

func TestValidate_Cases(t *testing.T) {
	cases := mustCases(t)
	if len(cases) < 40 {
		t.Fatalf("%d cases, want at least 40", len(cases))
	}
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			obj, err := fhir.Decode(tt.Resource)
			if err != nil {
				t.Fatal(err)
			}
			typ, _ := obj["resourceType"].(string)
			var got []string
			for _, is := range fhir.Validate(typ, obj) {
				got = append(got, is.Expression...)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tt.Want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Validate() expressions (-want +got):\n%s", diff)
			}
			_, _, err = fhir.Parse(tt.Resource)
			if wantCode := phivault.EUNPROCESSABLE; len(tt.Want) > 0 && phivault.ErrorCode(err) != wantCode {
				t.Errorf("Parse() error = %v, want code %s", err, wantCode)
			} else if len(tt.Want) == 0 && err != nil {
				t.Errorf("Parse() error = %v, want nil", err)
			}
		})
	}
}

func TestValidate_Depth(t *testing.T) {
	ext := `{"url":"http://example.org/x","valueString":"y"}`
	for range 100 {
		ext = `{"url":"http://example.org/x","extension":[` + ext + `]}`
	}
	_, _, err := fhir.Parse([]byte(`{"resourceType":"Patient","extension":[` + ext + `]}`))
	issues := issuesOf(err)
	if len(issues) != 1 || issues[0].Code != "too-costly" {
		t.Fatalf("Parse(deep) = %v %+v, want one too-costly issue", err, issues)
	}
	if want := "Patient.extension[0]" + strings.Repeat(".extension[0]", fhir.MaxDepth-1); issues[0].Expression[0] != want {
		t.Errorf("Parse(deep) expression = %q, want %q", issues[0].Expression[0], want)
	}
}

func TestValidate_ManyIssues(t *testing.T) {
	given := strings.Repeat(`5,`, 500) + `5`
	_, _, err := fhir.Parse([]byte(`{"resourceType":"Patient","name":[{"given":[` + given + `]}]}`))
	if n := len(issuesOf(err)); n == 0 || n > 101 {
		t.Errorf("Parse() reported %d issues, want between 1 and 101", n)
	}
}

func TestResourceTypes(t *testing.T) {
	types := fhir.ResourceTypes()
	if len(types) != 146 && len(types) != 147 {
		t.Errorf("len(ResourceTypes()) = %d, want the 146 R4 resource types (+ Bundle)", len(types))
	}
	if !slices.IsSorted(types) {
		t.Error("ResourceTypes() is not sorted")
	}
	for _, name := range []string{"Patient", "Observation", "Bundle", "Parameters", "Binary"} {
		if !fhir.IsResourceType(name) {
			t.Errorf("IsResourceType(%q) = false, want true", name)
		}
	}
	for _, name := range []string{"", "Resource", "DomainResource", "HumanName", "patient", "Patient.contact"} {
		if fhir.IsResourceType(name) {
			t.Errorf("IsResourceType(%q) = true, want false", name)
		}
	}
	types[0] = "Mutated"
	if fhir.ResourceTypes()[0] == "Mutated" {
		t.Error("ResourceTypes() shares its slice with callers")
	}
}
