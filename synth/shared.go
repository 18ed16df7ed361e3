package synth

import (
	"fmt"
	"math/rand/v2"
)

// Departments of the hospital. deptHospital is the hospital itself, which
// runs the inpatient wards.
const (
	deptHospital = iota
	deptFamily
	deptPediatrics
	deptEmergency
	numDepts
)

var departments = [numDepts]struct {
	name, location string
	orgType        code
	practitioners  int
	locType        code
}{
	deptHospital:   {"Riverbend General Hospital", "Riverbend General Hospital, Main Campus", code{sysOrgType, "prov", "Healthcare Provider"}, 5, code{sysRoleCode, "HOSP", "Hospital"}},
	deptFamily:     {"Riverbend Family Medicine Clinic", "Family Medicine Clinic, Building B", orgDept, 9, code{sysRoleCode, "GIM", "General internal medicine clinic"}},
	deptPediatrics: {"Riverbend Pediatrics Clinic", "Pediatrics Clinic, Building C", orgDept, 5, code{sysRoleCode, "PEDC", "Pediatrics clinic"}},
	deptEmergency:  {"Riverbend General Emergency Department", "Emergency Department, Main Campus", orgDept, 6, code{sysRoleCode, "ER", "Emergency room"}},
}

var orgDept = code{sysOrgType, "dept", "Hospital Department"}

var degrees = []code{
	{sysV2Degree, "MD", "Doctor of Medicine"},
	{sysV2Degree, "MD", "Doctor of Medicine"},
	{sysV2Degree, "MD", "Doctor of Medicine"},
	{sysV2Degree, "DO", "Doctor of Osteopathy"},
	{sysV2Degree, "NP", "Nurse Practitioner"},
	{sysV2Degree, "PA", "Physician Assistant"},
}

// shared is the shared bundle plus the conditional references that patient
// bundles use to point into it.
type shared struct {
	bundle bundle
	depts  [numDepts]dept
}

type dept struct {
	org, location string   // conditional references
	practitioners []string // conditional references
}

func newShared(r *rand.Rand) *shared {
	sh := &shared{bundle: bundle{ResourceType: "Bundle", Type: "transaction"}}
	used := map[string]bool{}
	uniqueNPI := func() string {
		for {
			if v := npi(r); !used[v] {
				used[v] = true
				return v
			}
		}
	}
	add := func(typ string, res any, system, value string) string {
		id := newUUID(r)
		sh.bundle.Entry = append(sh.bundle.Entry, entry{
			FullURL:  urn(id),
			Resource: res,
			Request:  request{Method: "POST", URL: typ, IfNoneExist: "identifier=" + system + "|" + value},
		})
		return urn(id)
	}
	street := fmt.Sprintf("%d %s %s", between(r, 100, 999), pick(r, streetNames), "Boulevard")
	postal := fmt.Sprintf("%03d%02d", 28, r.IntN(100))

	var hospitalURN string
	for i, d := range departments {
		orgNPI := uniqueNPI()
		org := &organization{
			ResourceType: "Organization",
			Meta:         newMeta(),
			Identifier:   []identifier{{System: NPISystem, Value: orgNPI}},
			Active:       true,
			Type:         []concept{d.orgType.concept()},
			Name:         d.name,
			Telecom:      []contactPoint{{System: "phone", Value: phone(r), Use: "work"}},
			Address:      []address{{Use: "work", Line: []string{street}, City: "Riverbend", State: hospitalState, PostalCode: postal, Country: "US"}},
		}
		if i != deptHospital {
			org.PartOf = &reference{Reference: hospitalURN, Display: departments[deptHospital].name}
		}
		orgURN := add("Organization", org, NPISystem, orgNPI)
		if i == deptHospital {
			hospitalURN = orgURN
		}
		sh.depts[i].org = conditional("Organization", NPISystem, orgNPI)

		locID := fmt.Sprintf("LOC-%d%03d", i+1, r.IntN(1000))
		add("Location", &location{
			ResourceType:         "Location",
			Meta:                 newMeta(),
			Identifier:           []identifier{{System: LocationSystem, Value: locID}},
			Status:               "active",
			Name:                 d.location,
			Mode:                 "instance",
			Type:                 []concept{d.locType.concept()},
			Address:              &address{Use: "work", Line: []string{street}, City: "Riverbend", State: hospitalState, PostalCode: postal, Country: "US"},
			ManagingOrganization: &reference{Reference: orgURN},
		}, LocationSystem, locID)
		sh.depts[i].location = conditional("Location", LocationSystem, locID)
	}

	for i, d := range departments {
		for range d.practitioners {
			female := chance(r, 0.5)
			given := pick(r, maleNames)
			gender := "male"
			if female {
				given, gender = pick(r, femaleNames), "female"
			}
			deg := pick(r, degrees)
			name := humanName{Use: "official", Family: pick(r, familyNames), Given: []string{given}}
			if deg.code == "MD" || deg.code == "DO" {
				name.Prefix = []string{"Dr."}
			}
			v := uniqueNPI()
			add("Practitioner", &practitioner{
				ResourceType:  "Practitioner",
				Meta:          newMeta(),
				Identifier:    []identifier{{System: NPISystem, Value: v}},
				Active:        true,
				Name:          []humanName{name},
				Telecom:       []contactPoint{{System: "phone", Value: phone(r), Use: "work"}},
				Gender:        gender,
				Qualification: []qualification{{Code: deg.concept()}},
			}, NPISystem, v)
			sh.depts[i].practitioners = append(sh.depts[i].practitioners, conditional("Practitioner", NPISystem, v))
		}
	}
	return sh
}
