package fhir_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// has reports whether vals holds param=value.
func has(vals []phivault.IndexValue, param, value string) bool {
	return slices.Contains(vals, phivault.IndexValue{Param: param, Value: value})
}

func TestIndexValues_Normalization(t *testing.T) {
	patient := mustDecode(t, `{
		"resourceType": "Patient", "id": "p1",
		"identifier": [{"system": "http://hospital/mrn", "value": "MRN-42"}, {"value": "free"}],
		"name": [{"family": "Müller  Lüdenscheidt", "given": ["José", "Ana María"], "prefix": ["Dr."], "text": "Dr. José Müller"}],
		"telecom": [{"system": "phone", "value": "+1 (555) 010-2030"}, {"system": "email", "value": "Jose@Example.ORG"}],
		"gender": "male",
		"birthDate": "1980-01-02",
		"address": [{"postalCode": "sw1a 1aa"}]
	}`)
	vals := fhir.IndexValues("Patient", patient)
	want := []phivault.IndexValue{
		{Param: "Patient.family", Value: "muller ludenscheidt"},
		{Param: "Patient.family", Value: "muller"},
		{Param: "Patient.family", Value: "ludenscheidt"},
		{Param: "Patient.given", Value: "jose"},
		{Param: "Patient.given", Value: "ana maria"},
		{Param: "Patient.given", Value: "maria"},
		{Param: "Patient.name", Value: "jose"},
		{Param: "Patient.name", Value: "dr."},
		{Param: "Patient.name", Value: "muller"},
		{Param: "Patient.name", Value: "dr. jose muller"},
		{Param: "Patient.identifier", Value: "http://hospital/mrn|MRN-42"},
		{Param: "Patient.identifier", Value: "http://hospital/mrn|"},
		{Param: "Patient.identifier", Value: "MRN-42"},
		{Param: "Patient.identifier", Value: "|free"},
		{Param: "Patient.identifier", Value: "free"},
		{Param: "Patient.phone", Value: "+15550102030"},
		{Param: "Patient.email", Value: "jose@example.org"},
		{Param: "Patient.gender", Value: "male"},
		{Param: "Patient.gender", Value: "|male"},
		{Param: "Patient.birthdate", Value: "1980-01-02"},
		{Param: "Patient.birthdate", Value: "1980-01"},
		{Param: "Patient.birthdate", Value: "1980"},
		{Param: "Patient.address-postalcode", Value: "SW1A1AA"},
	}
	for _, w := range want {
		if !has(vals, w.Param, w.Value) {
			t.Errorf("missing %v", w)
		}
	}
	if has(vals, "Patient.identifier", "mrn-42") {
		t.Error("identifiers must keep their case")
	}
	if !slices.IsSortedFunc(vals, func(a, b phivault.IndexValue) int {
		return strings.Compare(a.Param+"\x00"+a.Value, b.Param+"\x00"+b.Value)
	}) || len(slices.Compact(slices.Clone(vals))) != len(vals) {
		t.Error("values are not sorted and unique")
	}
}

func TestIndexValues_Dates(t *testing.T) {
	tests := []struct {
		name, json string
		want       []string // Encounter.date values
	}{
		{"same day", `{"period": {"start": "2020-03-04T10:00:00Z", "end": "2020-03-04T11:00:00Z"}}`, []string{"2020", "2020-03", "2020-03-04"}},
		{"two days", `{"period": {"start": "2020-03-04T23:00:00Z", "end": "2020-03-05T01:00:00Z"}}`, []string{"2020", "2020-03"}},
		{"two years", `{"period": {"start": "2020-12-31T23:00:00Z", "end": "2021-01-01T01:00:00Z"}}`, nil},
		{"open", `{"period": {"start": "2020-03-04T10:00:00Z"}}`, nil},
		{"own offset", `{"period": {"start": "2020-03-04T22:00:00-05:00", "end": "2020-03-04T23:00:00-05:00"}}`, []string{"2020", "2020-03", "2020-03-04"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := mustDecode(t, tt.json)
			var got []string
			for _, v := range fhir.IndexValues("Encounter", obj) {
				if v.Param == "Encounter.date" {
					got = append(got, v.Value)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("date values = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIndexValues_References(t *testing.T) {
	obs := mustDecode(t, `{
		"resourceType": "Observation", "id": "o1",
		"subject": {"reference": "Patient/p1/_history/3"},
		"encounter": {"reference": "https://example.org/fhir/Encounter/e1"},
		"status": "final",
		"code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
		"effectiveDateTime": "2011-10-14T23:37:54+00:00"
	}`)
	vals := fhir.IndexValues("Observation", obs)
	for _, w := range []phivault.IndexValue{
		{Param: "Observation.patient", Value: "Patient/p1"},
		{Param: "Observation.subject", Value: "Patient/p1"},
		{Param: "Observation.code", Value: "http://loinc.org|8302-2"},
		{Param: "Observation.code", Value: "8302-2"},
		{Param: "Observation.status", Value: "final"},
		{Param: "Observation.date", Value: "2011-10-14"},
	} {
		if !has(vals, w.Param, w.Value) {
			t.Errorf("missing %v in %v", w, vals)
		}
	}
	group := mustDecode(t, `{"resourceType": "Observation", "subject": {"reference": "Group/g1"}}`)
	if vals := fhir.IndexValues("Observation", group); has(vals, "Observation.patient", "Group/g1") {
		t.Error("patient indexed a Group reference")
	}
}

func TestIndexValues_ReferenceIdentifier(t *testing.T) {
	team := mustDecode(t, `{
		"resourceType": "CareTeam", "id": "t1",
		"subject": {"reference": "Patient/p1"},
		"participant": [
			{"member": {"identifier": {"system": "urn:phivault:principal", "value": "acct-1"}}},
			{"member": {"identifier": {"value": "local-7"}}},
			{"member": {"reference": "Practitioner/d1", "identifier": {"system": "urn:npi", "value": "123"}}},
			{"member": {"identifier": {"system": "urn:no-value"}}}
		]
	}`)
	var got []phivault.IndexValue
	for _, v := range fhir.IndexValues("CareTeam", team) {
		if strings.HasPrefix(v.Param, "CareTeam.participant") {
			got = append(got, v)
		}
	}
	want := []phivault.IndexValue{
		{Param: "CareTeam.participant", Value: "Practitioner/d1"},
		{Param: "CareTeam.participant:identifier", Value: "123"},
		{Param: "CareTeam.participant:identifier", Value: "acct-1"},
		{Param: "CareTeam.participant:identifier", Value: "local-7"},
		{Param: "CareTeam.participant:identifier", Value: "urn:npi|123"},
		{Param: "CareTeam.participant:identifier", Value: "urn:phivault:principal|acct-1"},
		{Param: "CareTeam.participant:identifier", Value: "|local-7"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("CareTeam participant values =\n%v\nwant\n%v", got, want)
	}
	// Every reference param indexes identifiers, whatever its targets.
	obs := mustDecode(t, `{"resourceType": "Observation", "subject": {"reference": "Patient/p1"},
		"encounter": {"type": "Encounter", "identifier": {"system": "urn:visit", "value": "v9"}}}`)
	if vals := fhir.IndexValues("Observation", obs); !has(vals, "Observation.encounter:identifier", "urn:visit|v9") ||
		has(vals, "Observation.encounter", "urn:visit|v9") || has(vals, "Observation.encounter:identifier", "urn:visit|") {
		t.Errorf("Observation encounter values = %v", vals)
	}
}

// accented maps the accented family names in patients-100 to their index
// form.
var accented = map[string]string{"Ordóñez": "ordonez", "Echevarría": "echevarria"}

// TestIndexValues_Synthea checks every Synthea Patient's index against
// values read from the resource itself.
func TestIndexValues_Synthea(t *testing.T) {
	bundles := mustSearchBundles(t)
	for _, b := range bundles {
		for _, e := range b.Entries {
			vals := fhir.IndexValues(e.Type, e.Resource)
			switch e.Type {
			case "Patient":
				p := e.Resource
				birth := p["birthDate"].(string)
				for _, v := range []string{birth, birth[:7], birth[:4]} {
					if !has(vals, "Patient.birthdate", v) {
						t.Errorf("%s: birthdate %s not indexed", b.Name, v)
					}
				}
				if !has(vals, "Patient.gender", p["gender"].(string)) {
					t.Errorf("%s: gender not indexed", b.Name)
				}
				name := p["name"].([]any)[0].(map[string]any)
				family := strings.ToLower(name["family"].(string))
				if f, ok := accented[name["family"].(string)]; ok {
					family = f
				}
				if !has(vals, "Patient.family", family) || !has(vals, "Patient.name", family) {
					t.Errorf("%s: family not indexed", b.Name)
				}
				for _, id := range p["identifier"].([]any) {
					id := id.(map[string]any)
					if !has(vals, "Patient.identifier", id["system"].(string)+"|"+id["value"].(string)) {
						t.Errorf("%s: identifier not indexed", b.Name)
					}
				}
			case "Observation", "Encounter", "Condition", "Procedure":
				if !slices.ContainsFunc(vals, func(v phivault.IndexValue) bool { return v.Param == e.Type+".status" }) && e.Resource["status"] != nil {
					t.Errorf("%s: %s status not indexed", b.Name, e.Type)
				}
			}
		}
	}
}

func BenchmarkIndexValues_Synthea(b *testing.B) {
	bundles := mustSearchBundles(b)
	var entries []searchEntry
	for _, bd := range bundles[:10] {
		entries = append(entries, bd.Entries...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; b.Loop(); i++ {
		e := entries[i%len(entries)]
		n += len(fhir.IndexValues(e.Type, e.Resource))
	}
	b.ReportMetric(float64(n)/float64(b.N), "values/op")
}
