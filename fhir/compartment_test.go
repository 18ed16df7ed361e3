package fhir_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault"

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
			got, err := fhir.Compartment(e.Type, e.Resource)
			if err != nil {
				t.Errorf("%s: Compartment(%s %v): %v", b.Name, e.Type, e.Resource["id"], err)
			}
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
		{"Observation", `{"subject": {"reference": "urn:uuid:1234"}}`, ""},
		// patient comes before the params listed earlier.
		{"MedicationAdministration", `{"performer": [{"actor": {"reference": "Patient/p2"}}], "subject": {"reference": "Patient/p1"}}`, "p1"},
		{"AllergyIntolerance", `{"recorder": {"reference": "Patient/p3"}}`, "p3"},
		{"Encounter", `{}`, ""},
		{"Practitioner", `{"id": "x"}`, ""},
		{"Organization", `{"id": "x"}`, ""},
	}
	for _, tt := range tests {
		if got, err := fhir.Compartment(tt.typ, mustDecode(t, tt.json)); got != tt.want || err != nil {
			t.Errorf("Compartment(%s %s) = %q, %v, want %q", tt.typ, tt.json, got, err, tt.want)
		}
	}
	for typ, want := range map[string]bool{"Patient": true, "Observation": true, "Encounter": true,
		"Group": true, "Practitioner": false, "Organization": false, "Location": false, "Nonsense": false} {
		if got := fhir.IsCompartmentType(typ); got != want {
			t.Errorf("IsCompartmentType(%s) = %v, want %v", typ, got, want)
		}
	}
}

// TestCompartment_foreignPatient checks that a resource about a Patient
// that is not a local one is refused rather than stored outside every
// compartment, under the shared key (review finding 1 and 6).
func TestCompartment_foreignPatient(t *testing.T) {
	for _, body := range []string{
		`{"subject": {"reference": "https://evil.example/fhir/Patient/p1"}}`,
		`{"subject": {"reference": "https://evil.example/fhir/Patient/p1/_history/1"}}`,
		`{"subject": {"reference": "Patient?identifier=x|1"}}`,
		`{"subject": {"reference": "#p"}, "contained": [{"resourceType": "Patient", "id": "p"}]}`,
		`{"subject": {"type": "Patient", "identifier": {"system": "x", "value": "1"}}}`,
		`{"subject": {"reference": "Patient/p1"}, "performer": [{"reference": "http://x/Patient/p2"}]}`,
	} {
		got, err := fhir.Compartment("Observation", mustDecode(t, body))
		if phivault.ErrorCode(err) != phivault.EUNPROCESSABLE {
			t.Errorf("Compartment(Observation %s) = %q, %v, want EUNPROCESSABLE", body, got, err)
		}
	}
	for _, body := range []string{
		`{"subject": {"reference": "https://other.example/fhir/Group/g1"}}`,
		`{"subject": {"reference": "#d"}, "contained": [{"resourceType": "Device", "id": "d"}]}`,
		`{"subject": {"type": "Group", "identifier": {"system": "x", "value": "1"}}}`,
	} {
		if got, err := fhir.Compartment("Observation", mustDecode(t, body)); got != "" || err != nil {
			t.Errorf("Compartment(Observation %s) = %q, %v, want \"\", nil", body, got, err)
		}
	}
}

func TestLocalRef(t *testing.T) {
	tests := []struct {
		give    string
		typ, id string
		wantOK  bool
	}{
		{"Patient/p1", "Patient", "p1", true},
		{"Patient/p1/_history/2", "Patient", "p1", true},
		{"https://x.example/fhir/Patient/p1", "", "", false},
		{"urn:uuid:5b6f1b9e-1b0e-4f67-9d5a-3b0f2c6f8f7a", "", "", false},
		{"#p1", "", "", false},
		{"Patient?identifier=1", "", "", false},
		{"Patient/p1/extra", "", "", false},
		{"patient/p1", "", "", false},
		{"Patient/p1/_history/", "", "", false},
		{"/Patient/p1", "", "", false},
	}
	for _, tt := range tests {
		typ, id, ok := fhir.LocalRef(tt.give)
		if typ != tt.typ || id != tt.id || ok != tt.wantOK {
			t.Errorf("LocalRef(%q) = %q, %q, %v, want %q, %q, %v", tt.give, typ, id, ok, tt.typ, tt.id, tt.wantOK)
		}
	}
}

func TestLocalizeReferences(t *testing.T) {
	obj := mustDecode(t, `{
		"subject": {"reference": "https://vault.example/fhir/Patient/p1"},
		"encounter": {"reference": "https://vault.example/fhir/Encounter/e1/_history/2"},
		"performer": [{"reference": "https://vault.example.evil/fhir/Practitioner/x"},
			{"reference": "https://other.example/fhir/Practitioner/y"},
			{"reference": "https://vault.example/fhir/Patient/p1/more"}]
	}`)
	fhir.LocalizeReferences(obj, "https://vault.example/fhir/")
	var got []string
	fhir.RewriteReferences(obj, func(ref string) string { got = append(got, ref); return ref })
	slices.Sort(got)
	want := []string{"Encounter/e1/_history/2", "Patient/p1",
		"https://other.example/fhir/Practitioner/y", "https://vault.example.evil/fhir/Practitioner/x",
		"https://vault.example/fhir/Patient/p1/more"}
	if !slices.Equal(got, want) {
		t.Errorf("LocalizeReferences: references %q, want %q", got, want)
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
