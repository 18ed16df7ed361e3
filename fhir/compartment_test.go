package fhir_test

import (
	"strings"
	"testing"

	"github.com/phivault/phivault/fhir"
)

// TestCompartment_Synthea checks that every resource of a compartment type
// in a Synthea bundle lands in the bundle patient's compartment, and every
// other resource in none.
func TestCompartment_Synthea(t *testing.T) {
	bundles := mustSearchBundles(t)
	types := map[string]int{}
	for _, b := range bundles {
		for _, e := range b.Entries {
			got := fhir.Compartment(e.Type, e.Resource)
			want := ""
			if fhir.IsCompartmentType(e.Type) {
				want = b.PatientID
				types[e.Type]++
			}
			if got != want {
				t.Errorf("%s: Compartment(%s %v) = %q, want %q", b.Name, e.Type, e.Resource["id"], got, want)
			}
		}
	}
	for _, typ := range []string{"Patient", "Encounter", "Observation", "Condition", "Procedure", "Claim",
		"ExplanationOfBenefit", "Immunization", "MedicationRequest", "CarePlan", "Goal", "DiagnosticReport",
		"AllergyIntolerance", "ImagingStudy"} {
		if types[typ] == 0 {
			t.Errorf("no %s checked", typ)
		}
	}
}

func TestCompartment(t *testing.T) {
	tests := []struct {
		typ, json, want string
	}{
		{"Patient", `{"id": "p1"}`, "p1"},
		{"Observation", `{"subject": {"reference": "Patient/p1"}}`, "p1"},
		{"Observation", `{"subject": {"reference": "Group/g1"}, "performer": [{"reference": "Patient/p2"}]}`, "p2"},
		{"Observation", `{"subject": {"reference": "Patient/p1/_history/2"}}`, "p1"},
		{"Observation", `{"subject": {"reference": "https://other.example/Patient/p1"}}`, ""},
		{"Observation", `{"subject": {"reference": "urn:uuid:1234"}}`, ""},
		// patient comes before the params listed earlier.
		{"MedicationAdministration", `{"performer": [{"actor": {"reference": "Patient/p2"}}], "subject": {"reference": "Patient/p1"}}`, "p1"},
		{"AllergyIntolerance", `{"recorder": {"reference": "Patient/p3"}}`, "p3"},
		{"Encounter", `{}`, ""},
		{"Practitioner", `{"id": "x"}`, ""},
		{"Organization", `{"id": "x"}`, ""},
	}
	for _, tt := range tests {
		if got := fhir.Compartment(tt.typ, mustDecode(t, tt.json)); got != tt.want {
			t.Errorf("Compartment(%s %s) = %q, want %q", tt.typ, tt.json, got, tt.want)
		}
	}
	for typ, want := range map[string]bool{"Patient": true, "Observation": true, "Encounter": true,
		"Group": true, "Practitioner": false, "Organization": false, "Location": false, "Nonsense": false} {
		if got := fhir.IsCompartmentType(typ); got != want {
			t.Errorf("IsCompartmentType(%s) = %v, want %v", typ, got, want)
		}
	}
}

func TestRewriteReferences(t *testing.T) {
	obj := mustDecode(t, `{
		"resourceType": "ExplanationOfBenefit",
		"contained": [{"resourceType": "ServiceRequest", "subject": {"reference": "urn:uuid:a"}}],
		"patient": {"reference": "urn:uuid:a", "display": "x"},
		"item": [{"encounter": [{"reference": "urn:uuid:b"}]}],
		"insurer": {"identifier": {"assigner": {"reference": "urn:uuid:c"}}},
		"text": {"div": "reference"},
		"weird": {"reference": 3}
	}`)
	var seen []string
	fhir.RewriteReferences(obj, func(ref string) string {
		seen = append(seen, ref)
		return "X/" + strings.TrimPrefix(ref, "urn:uuid:")
	})
	if len(seen) != 4 {
		t.Errorf("fn called for %q, want 4 references", seen)
	}
	for _, got := range []any{
		obj["contained"].([]any)[0].(map[string]any)["subject"].(map[string]any)["reference"],
		obj["patient"].(map[string]any)["reference"],
		obj["item"].([]any)[0].(map[string]any)["encounter"].([]any)[0].(map[string]any)["reference"],
		obj["insurer"].(map[string]any)["identifier"].(map[string]any)["assigner"].(map[string]any)["reference"],
	} {
		if s, _ := got.(string); !strings.HasPrefix(s, "X/") {
			t.Errorf("reference %v not rewritten", got)
		}
	}
}
