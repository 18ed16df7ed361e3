package fhir_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// FuzzParse checks that Parse never panics, returns only *phivault.Error,
// and that an accepted resource survives Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, c := range mustCases(f) {
		f.Add([]byte(c.Resource))
	}
	for _, s := range []string{
		`{"resourceType":"Patient","id":"a","name":[{"given":["A",null],"_given":[null,{"id":"x"}]}]}`,
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}}]}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50e2}}`,
		`{"resourceType":"Patient"} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, obj, err := fhir.Parse(data)
		if err != nil {
			if _, ok := err.(*phivault.Error); !ok {
				t.Fatalf("Parse() error %T, want *phivault.Error", err)
			}
			return
		}
		out, err := fhir.Marshal(obj)
		if err != nil {
			t.Fatalf("Marshal(accepted) error: %v", err)
		}
		typ2, obj2, err := fhir.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(accepted)) error: %v %+v", err, issuesOf(err))
		}
		if typ2 != typ {
			t.Errorf("re-parsed type = %q, want %q", typ2, typ)
		}
		if diff := cmp.Diff(obj, obj2); diff != "" {
			t.Errorf("Marshal round trip changed the resource (-first +second):\n%s", diff)
		}
	})
}
