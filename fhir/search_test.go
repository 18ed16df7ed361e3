package fhir_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault/fhir"
)

func TestLookupParam(t *testing.T) {
	tests := []struct {
		typ, name, ptype string
		paths, targets   []string
	}{
		{"Patient", "birthdate", "date", []string{"Patient.birthDate"}, nil},
		{"Patient", "phone", "token", []string{"Patient.telecom.where(system='phone')"}, nil},
		{"Patient", "_id", "token", []string{"Patient.id"}, nil},
		{"Observation", "patient", "reference", []string{"Observation.subject"}, []string{"Patient"}},
		{"Observation", "date", "date", []string{"Observation.effective"}, nil},
		{"MedicationRequest", "code", "token", []string{"MedicationRequest.medication"}, nil},
		{"Encounter", "class", "token", []string{"Encounter.class"}, nil},
		{"Encounter", "date", "date", []string{"Encounter.period"}, nil},
		{"Organization", "name", "string", []string{"Organization.name", "Organization.alias"}, nil},
		{"Practitioner", "identifier", "token", []string{"Practitioner.identifier"}, nil},
	}
	for _, tt := range tests {
		p, ok := fhir.LookupParam(tt.typ, tt.name)
		if !ok {
			t.Errorf("LookupParam(%s, %s) not found", tt.typ, tt.name)
			continue
		}
		if p.Name != tt.name || p.Type != tt.ptype || !slices.Equal(p.Paths, tt.paths) || !slices.Equal(p.Targets, tt.targets) {
			t.Errorf("LookupParam(%s, %s) = %+v", tt.typ, tt.name, *p)
		}
	}
	for _, miss := range [][2]string{{"Patient", "code"}, {"Observation", "family"}, {"Nonsense", "_id"}, {"Patient", ""}} {
		if _, ok := fhir.LookupParam(miss[0], miss[1]); ok {
			t.Errorf("LookupParam(%s, %s) found", miss[0], miss[1])
		}
	}
}

func TestSearchParams(t *testing.T) {
	types := fhir.SearchTypes()
	if !slices.IsSorted(types) {
		t.Error("SearchTypes not sorted")
	}
	for _, typ := range []string{"Patient", "Observation", "Encounter", "Practitioner", "Organization", "Claim", "ExplanationOfBenefit"} {
		if !slices.Contains(types, typ) {
			t.Errorf("SearchTypes lacks %s", typ)
		}
	}
	for _, typ := range types {
		params := fhir.SearchParams(typ)
		if !slices.IsSortedFunc(params, func(a, b *fhir.SearchParam) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("SearchParams(%s) not sorted", typ)
		}
		for _, p := range params {
			for _, path := range p.Paths {
				if !strings.HasPrefix(path, typ+".") {
					t.Errorf("%s.%s: path %q", typ, p.Name, path)
				}
			}
			if q, ok := fhir.LookupParam(typ, p.Name); !ok || q != p {
				t.Errorf("LookupParam(%s, %s) disagrees with SearchParams", typ, p.Name)
			}
		}
	}
	if n := len(fhir.SearchParams("Nonsense")); n != 0 {
		t.Errorf("SearchParams(Nonsense) has %d params", n)
	}
}
