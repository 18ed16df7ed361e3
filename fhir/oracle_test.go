package fhir_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/internal/testenv"
)

// The oracle is google/fhir/go, a validating R4 parser driven by the FHIR
// protos. It is a test-only dependency: Parse must agree with it on every
// Synthea resource and on bad inputs, except for the differences listed
// here, each checked to still be one.

// knownCaseDifferences lists hand-made cases (testdata/validate/cases.json)
// on which the oracle's verdict differs from ours, and why.
var knownCaseDifferences = map[string]string{
	"code-empty":              "the oracle accepts empty strings",
	"string-empty":            "the oracle accepts empty strings",
	"reference-empty":         "the oracle accepts empty strings",
	"empty-array":             "the oracle accepts empty arrays",
	"empty-object":            "the oracle accepts empty objects",
	"reference-colons":        "the oracle does not check Reference.reference",
	"reference-no-id":         "the oracle does not check Reference.reference",
	"reference-unknown-type":  "the oracle does not check Reference.reference",
	"reference-space":         "the oracle does not check Reference.reference",
	"reference-bad-uuid":      "the oracle does not check Reference.reference",
	"reference-bad-oid":       "the oracle does not check Reference.reference",
	"narrative-not-div":       "the oracle does not check Narrative.div",
	"extension-url-space":     "the oracle accepts whitespace in uri values (R4's uri regex is \\S*)",
	"meta-source-space":       "the oracle accepts whitespace in uri values (R4's uri regex is \\S*)",
	"identifier-system-space": "the oracle accepts whitespace in uri values (R4's uri regex is \\S*)",
	"valid-base64-whitespace": "the oracle rejects line breaks in base64Binary, which R4 allows",
	"valid-leap-second":       "the oracle rejects second 60, which the R4 dateTime regex allows",
	"valid-aligned-nulls":     "the oracle rejects the nulls that align a primitive array with its _array (allowed by the R4 JSON rules)",
}

// knownStricter maps the diagnostics of issues that Parse reports and the
// oracle does not check to the reason. A mutant Parse rejects and the
// oracle accepts is a known difference when all its issues are listed.
var knownStricter = map[string]string{
	"The value must not be empty.":        "the oracle accepts empty strings",
	"Objects must not be empty.":          "the oracle accepts empty objects",
	"Arrays must not be empty.":           "the oracle accepts empty arrays",
	"The value is not a valid reference.": "the oracle does not check Reference.reference",
	"The value is not a valid code.":      "the oracle accepts codes with surrounding whitespace",
	"The value is not a valid uri.":       "the oracle accepts whitespace in uri values",
}

func newOracle(tb testing.TB) *jsonformat.Unmarshaller {
	tb.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func oracleAccepts(u *jsonformat.Unmarshaller, data []byte) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, fmt.Errorf("oracle panic: %v", r)
		}
	}()
	_, err = u.Unmarshal(data)
	return err == nil, err
}

func TestOracle_Synthea(t *testing.T) {
	res := mustSynthea(t)
	u := newOracle(t)
	for i := 0; i < len(res); i += testenv.SampleStep() {
		r := res[i]
		if ok, err := oracleAccepts(u, r.JSON); !ok {
			t.Errorf("%s entry %d: oracle rejects a Synthea resource: %v", r.Bundle, r.Index, err)
		}
	}
}

func TestOracle_Cases(t *testing.T) {
	u := newOracle(t)
	for _, tt := range mustCases(t) {
		t.Run(tt.Name, func(t *testing.T) {
			_, _, err := fhir.Parse(tt.Resource)
			ours := err == nil
			theirs, oerr := oracleAccepts(u, tt.Resource)
			_, known := knownCaseDifferences[tt.Name]
			switch {
			case ours != theirs && !known:
				t.Errorf("Parse() accepts = %v (%v), oracle accepts = %v (%v)", ours, err, theirs, oerr)
			case ours == theirs && known:
				t.Errorf("listed as a known difference, but both accept = %v; remove it from knownCaseDifferences", ours)
			}
		})
	}
}

// slot is one place in a decoded resource that a mutation can change.
type slot struct {
	parent any // map[string]any or []any
	key    string
	index  int
	path   string
}

func (s slot) get() any {
	if m, ok := s.parent.(map[string]any); ok {
		return m[s.key]
	}
	return s.parent.([]any)[s.index]
}

func (s slot) set(v any) {
	if m, ok := s.parent.(map[string]any); ok {
		m[s.key] = v
		return
	}
	s.parent.([]any)[s.index] = v
}

func slots(v any, path string, out []slot) []slot {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := path + "." + k
			out = append(out, slot{parent: v, key: k, path: p})
			out = slots(v[k], p, out)
		}
	case []any:
		for i, e := range v {
			p := fmt.Sprintf("%s[%d]", path, i)
			out = append(out, slot{parent: v, index: i, path: p})
			out = slots(e, p, out)
		}
	}
	return out
}

// mutations change one slot; each reports false when it does not apply.
var mutations = map[string]func(s slot) bool{
	"unknown-key": func(s slot) bool {
		m, ok := s.get().(map[string]any)
		if ok {
			m["phivaultBogus"] = "x"
		}
		return ok
	},
	"delete": func(s slot) bool {
		m, ok := s.parent.(map[string]any)
		if ok && s.key != "resourceType" {
			delete(m, s.key)
			return true
		}
		return false
	},
	"string-to-number": func(s slot) bool {
		_, ok := s.get().(string)
		if ok {
			s.set(json.Number("42"))
		}
		return ok
	},
	"number-to-string": func(s slot) bool {
		n, ok := s.get().(json.Number)
		if ok {
			s.set(string(n))
		}
		return ok
	},
	"bool-to-string": func(s slot) bool {
		b, ok := s.get().(bool)
		if ok {
			s.set(fmt.Sprint(b))
		}
		return ok
	},
	"wrap-in-array": func(s slot) bool {
		_, isArr := s.get().([]any)
		_, inMap := s.parent.(map[string]any)
		if !isArr && inMap && s.key != "resourceType" {
			s.set([]any{s.get()})
			return true
		}
		return false
	},
	"unwrap-array": func(s slot) bool {
		a, ok := s.get().([]any)
		if ok {
			s.set(a[0])
		}
		return ok
	},
	"empty-string": func(s slot) bool {
		_, ok := s.get().(string)
		if ok && s.key != "resourceType" {
			s.set("")
		}
		return ok && s.key != "resourceType"
	},
	"leading-space": func(s slot) bool {
		v, ok := s.get().(string)
		if ok && s.key != "resourceType" {
			s.set(" " + v)
		}
		return ok && s.key != "resourceType"
	},
	"colons": func(s slot) bool {
		_, ok := s.get().(string)
		if ok && s.key != "resourceType" {
			s.set("::::")
		}
		return ok && s.key != "resourceType"
	},
	"null": func(s slot) bool {
		if s.key == "resourceType" {
			return false
		}
		s.set(nil)
		return true
	},
}

func TestOracle_Mutations(t *testing.T) {
	res := mustSynthea(t)
	u := newOracle(t)
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: the same mutants every run
	n := 3000 / testenv.SampleStep()
	names := slices.Sorted(maps.Keys(mutations))
	type tally struct{ same, known, unknown int }
	tallies := map[string]*tally{}
	for range n {
		r := res[rng.IntN(len(res))]
		obj, err := fhir.Decode(r.JSON)
		if err != nil {
			t.Fatal(err)
		}
		all := slots(obj, obj["resourceType"].(string), nil)
		name := names[rng.IntN(len(names))]
		s := all[rng.IntN(len(all))]
		if !mutations[name](s) {
			continue
		}
		data, err := fhir.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = fhir.Parse(data)
		ours := err == nil
		theirs, oerr := oracleAccepts(u, data)
		tl := tallies[name]
		if tl == nil {
			tl = &tally{}
			tallies[name] = tl
		}
		switch why := knownMutationDifference(s.path, issuesOf(err), theirs); {
		case ours == theirs:
			tl.same++
		case why != "":
			tl.known++
		default:
			tl.unknown++
			t.Errorf("%s at %s: Parse accepts = %v (%v), oracle accepts = %v (%v)", name, s.path, ours, issuesOf(err), theirs, oerr)
		}
	}
	for _, name := range names {
		if tl := tallies[name]; tl != nil {
			t.Logf("%-17s agree %4d, known differences %3d, unexplained %d", name, tl.same, tl.known, tl.unknown)
		}
	}
}

// knownMutationDifference explains a verdict that differs from the
// oracle's, or returns "".
func knownMutationDifference(path string, ours []phivault.Issue, theirs bool) string {
	if !theirs || len(ours) == 0 {
		return ""
	}
	var why string
	for _, is := range ours {
		why = knownStricter[is.Diagnostics]
		if is.Diagnostics == "The value is not a valid id." && strings.Contains(path, ".contained[") {
			why = "the oracle does not check the ids of contained resources"
		}
		if why == "" {
			return ""
		}
	}
	return why
}
