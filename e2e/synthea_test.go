package e2e_test

import (
	"encoding/json"
	"testing"

	"github.com/phivault/phivault/internal/testenv"
)

// syntheaArchive holds the 100 patients the tests import.
const syntheaArchive = "patients-100.tar.gz"

// syntheaIdentifierSystem is the identifier system every Synthea Patient
// carries, one value per patient.
const syntheaIdentifierSystem = "https://github.com/synthetichealth/synthea"

// bundle is one Synthea transaction bundle (one patient).
type bundle struct {
	name    string
	data    []byte
	patient syntheaPatient
	types   map[string]int // resources per type
}

// syntheaPatient holds the Patient fields the tests look for.
type syntheaPatient struct {
	Identifier []struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
	Name []struct {
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	Address []struct {
		Line []string `json:"line"`
	} `json:"address"`
	BirthDate string `json:"birthDate"`
}

// syntheaID returns the patient's Synthea identifier value.
func (p *syntheaPatient) syntheaID() string {
	for _, id := range p.Identifier {
		if id.System == syntheaIdentifierSystem {
			return id.Value
		}
	}
	return ""
}

// loadBundles reads the first n bundles of the Synthea archive (all when n
// is 0), skipping the test when the archive is absent.
func loadBundles(t *testing.T, n int) []bundle {
	t.Helper()
	var out []bundle
	testenv.SyntheaBundles(t, syntheaArchive, func(name string, data []byte) {
		if n > 0 && len(out) == n {
			return
		}
		var doc struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b := bundle{name: name, data: data, types: map[string]int{}}
		for _, e := range doc.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			if err := json.Unmarshal(e.Resource, &head); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b.types[head.ResourceType]++
			if head.ResourceType == "Patient" {
				if err := json.Unmarshal(e.Resource, &b.patient); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
		if b.types["Patient"] != 1 || b.patient.syntheaID() == "" {
			t.Fatalf("%s: want one Patient with a %s identifier", name, syntheaIdentifierSystem)
		}
		out = append(out, b)
	})
	if len(out) == 0 {
		t.Fatalf("no bundles in %s", syntheaArchive)
	}
	return out
}
