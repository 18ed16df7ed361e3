package synth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/synth"
)

// syntheaLike is a patient as Synthea writes one: its id repeated as the
// record number, an SSN in 999-, a tag, no managing organisation.
const syntheaLike = `{"resourceType":"Patient","meta":{"tag":[{"system":"https://smarthealthit.org/tags","code":"synthea-5-2019"}]},
"identifier":[{"system":"https://github.com/synthetichealth/synthea","value":"%[1]s"},
{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}],"text":"Medical Record Number"},"system":"http://hospital.smarthealthit.org","value":"%[1]s"},
{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"SS"}]},"system":"http://hl7.org/fhir/sid/us-ssn","value":"%[2]s"}],
"name":[{"family":"Quennell"}]}`

var nameOrRandomUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[34][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }

func syntheaPatient(id, ssn string) json.RawMessage {
	return json.RawMessage(strings.NewReplacer("%[1]s", id, "%[2]s", ssn).Replace(syntheaLike))
}

// testSite is a site of two organisations, the first with its own
// location and clinicians, the second with none, and two clinicians no
// organisation lists.
func testSite() *synth.Site {
	return &synth.Site{
		Organizations: []synth.SiteOrganization{
			{Reference: "Organization/o1", Locations: []string{"Location/l1"}, Practitioners: []string{"Practitioner/p1", "Practitioner/p2"}},
			{Reference: "Organization/o2"},
		},
		Practitioners: []string{"Practitioner/p3", "Practitioner/p4"},
		Patients: []json.RawMessage{
			syntheaPatient("e925b0f3-8006-43f6-aa31-94bd215e55e7", "999-22-1962"),
			syntheaPatient("6c040c7c-b3d9-3f5d-aabe-6ddc67676adc", "999-47-3310"),
		},
	}
}

// TestDecoys_Site checks that decoys of a site reference only its
// organisations, locations and clinicians, literally, and copy the look of
// its patients: the same identifier systems with new values of the same
// shape, the shared value still shared, the tag on every resource, no
// managing organisation or general practitioner since the site's
// patients have none.
func TestDecoys_Site(t *testing.T) {
	site := testSite()
	site.Organizations[1].Practitioners = nil
	raw := mustDecoys(t, 3, 10, synth.DecoyOptions{Site: site})
	_, rs := MustDecode(t, raw)
	known := []string{"Organization/o1", "Organization/o2", "Location/l1", "Practitioner/p1", "Practitioner/p2", "Practitioner/p3", "Practitioner/p4"}
	seen, versions := map[string]bool{}, map[byte]bool{}
	for i, res := range rs {
		for j, r := range res {
			for _, ref := range references(r) {
				if !strings.HasPrefix(ref, "urn:uuid:") && !slices.Contains(known, ref) {
					t.Errorf("decoy %d entry %d references %q, not the site's", i, j, ref)
				}
				seen[ref] = true
			}
			tags, _ := json.Marshal(r["meta"])
			if string(tags) != `{"tag":[{"code":"synthea-5-2019","system":"https://smarthealthit.org/tags"}]}` {
				t.Errorf("decoy %d entry %d meta %s, want the site's tag alone", i, j, tags)
			}
		}
		p := res[0]
		if _, ok := p["managingOrganization"]; ok {
			t.Errorf("decoy %d has a managing organisation the site's patients lack", i)
		}
		if _, ok := p["generalPractitioner"]; ok {
			t.Errorf("decoy %d names a general practitioner the site's patients do not", i)
		}
		ids := asSlice(p["identifier"])
		if len(ids) != 3 {
			t.Fatalf("decoy %d identifiers %v, want the site's three", i, ids)
		}
		id0, mrn, ssn := ids[0].(map[string]any), ids[1].(map[string]any), ids[2].(map[string]any)
		if u := mrn["value"].(string); id0["value"] != u || !nameOrRandomUUID.MatchString(u) {
			t.Errorf("decoy %d: id %v and record number %v, want one new UUID", i, id0["value"], mrn["value"])
		}
		versions[mrn["value"].(string)[14]] = true
		if mrn["system"] != "http://hospital.smarthealthit.org" || mrn["type"] == nil {
			t.Errorf("decoy %d record number %v, want the site's system and type", i, mrn)
		}
		v := ssn["value"].(string)
		if len(v) != 11 || !strings.HasPrefix(v, "999-") || v[6] != '-' || v == "999-22-1962" || v == "999-47-3310" {
			t.Errorf("decoy %d SSN %q, want a new 999-xx-xxxx", i, v)
		}
	}
	if !versions['3'] || !versions['4'] {
		t.Errorf("UUID versions %v, want the site's 3 and 4", versions)
	}
	for _, ref := range known {
		if !seen[ref] {
			t.Errorf("no decoy of ten references %s", ref)
		}
	}
	for i, b := range raw {
		if typ, _, err := fhir.Parse(b); err != nil || typ != "Bundle" {
			t.Errorf("decoy %d: fhir.Parse = %q, %v", i, typ, err)
		}
	}
	if again := mustDecoys(t, 3, 10, synth.DecoyOptions{Site: site}); !slices.EqualFunc(raw, again, bytes.Equal) {
		t.Error("the same random source gave other decoys")
	}
}

// TestDecoys_SiteLook checks that a decoy following a site patient with a
// managing organisation and a general practitioner has both, the
// organisation the patient's, no meta when the patient has none, and a
// record number keeping the prefix the site's agree on.
func TestDecoys_SiteLook(t *testing.T) {
	site := testSite()
	patient := func(mrn string) json.RawMessage {
		return json.RawMessage(`{"resourceType":"Patient","identifier":[{"system":"urn:site:mrn","value":"` + mrn + `"}],
		"managingOrganization":{"reference":"Organization/o2"},"generalPractitioner":[{"reference":"Practitioner/p9"}]}`)
	}
	site.Patients = []json.RawMessage{patient("MRN-004521"), patient("MRN-01733")}
	_, rs := MustDecode(t, mustDecoys(t, 4, 5, synth.DecoyOptions{Site: site}))
	for i, res := range rs {
		p := res[0]
		if ref := references(p["managingOrganization"]); len(ref) != 1 || ref[0] != "Organization/o2" {
			t.Errorf("decoy %d managing organisation %v, want the site patient's", i, ref)
		}
		if gp := references(p["generalPractitioner"]); len(gp) != 1 || !strings.HasPrefix(gp[0], "Practitioner/p") || gp[0] == "Practitioner/p9" {
			t.Errorf("decoy %d general practitioner %v, want one of its own clinicians", i, gp)
		}
		id := asSlice(p["identifier"])[0].(map[string]any)
		if v := id["value"].(string); !strings.HasPrefix(v, "MRN-0") || len(v) < 9 || v == "MRN-004521" || v == "MRN-01733" {
			t.Errorf("decoy %d MRN %q, want the site's MRN-0 and new digits", i, v)
		}
		for j, r := range res {
			if m, ok := r["meta"]; ok {
				t.Errorf("decoy %d entry %d has meta %v; the site's patient has none", i, j, m)
			}
		}
	}
}

// TestDecoys_SiteTaken checks that an identifier a patient has is drawn
// again, and that a site whose identifiers are all taken is refused.
func TestDecoys_SiteTaken(t *testing.T) {
	site := testSite()
	var asked []string
	site.Taken = func(system, value string) (bool, error) {
		asked = append(asked, value)
		return len(asked) == 1, nil // the first draw is taken
	}
	_, rs := MustDecode(t, mustDecoys(t, 5, 1, synth.DecoyOptions{Site: site}))
	got := asSlice(rs[0][0]["identifier"])[0].(map[string]any)["value"]
	if len(asked) < 2 || got == asked[0] || got != asked[1] {
		t.Errorf("asked %v, decoy has %v: want the second draw", asked, got)
	}

	site.Taken = func(string, string) (bool, error) { return true, nil }
	if err := synth.Decoys(newRand(5), 1, synth.DecoyOptions{Site: site}, func([]byte) bool { return true }); phivault.ErrorCode(err) != phivault.ECONFLICT {
		t.Errorf("every identifier taken: %v, want ECONFLICT", err)
	}
	boom := errors.New("boom")
	site.Taken = func(string, string) (bool, error) { return false, boom }
	if err := synth.Decoys(newRand(5), 1, synth.DecoyOptions{Site: site}, func([]byte) bool { return true }); !errors.Is(err, boom) {
		t.Errorf("Taken failing: %v, want its error", err)
	}
}

// TestDecoys_SiteErrors checks that a site without an organisation, a
// practitioner or a patient to follow is refused, and that a site with
// just one of each is not.
func TestDecoys_SiteErrors(t *testing.T) {
	for name, edit := range map[string]func(*synth.Site){
		"no organisation":                   func(s *synth.Site) { s.Organizations = nil },
		"no practitioner":                   func(s *synth.Site) { s.Organizations[0].Practitioners, s.Practitioners = nil, nil },
		"no patient":                        func(s *synth.Site) { s.Patients = nil },
		"a patient that is no JSON":         func(s *synth.Site) { s.Patients = []json.RawMessage{json.RawMessage(`[`)} },
		"an organisation without reference": func(s *synth.Site) { s.Organizations[1].Reference = "" },
	} {
		s := testSite()
		edit(s)
		if err := synth.Decoys(newRand(1), 1, synth.DecoyOptions{Site: s}, func([]byte) bool { return true }); phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	minimal := &synth.Site{
		Organizations: []synth.SiteOrganization{{Reference: "Organization/o"}},
		Practitioners: []string{"Practitioner/p"},
		Patients:      []json.RawMessage{json.RawMessage(`{"resourceType":"Patient"}`)},
	}
	_, rs := MustDecode(t, mustDecoys(t, 1, 2, synth.DecoyOptions{Site: minimal}))
	for i, res := range rs {
		if _, ok := res[0]["identifier"]; ok {
			t.Errorf("decoy %d has identifiers; the site's patient has none", i)
		}
		for _, r := range res {
			if r["resourceType"] == "Encounter" {
				if _, ok := r["location"]; ok {
					t.Errorf("decoy %d encounter has a location; the site has none", i)
				}
			}
		}
	}
}

// TestDecoys_SiteWideMeta checks that a decoy carries only the tags and
// labels at least half the site's patients carry: the site's tag, the
// normal confidentiality two of three have, never the VIP label or the
// study tag of one patient, which would mislead policies and worklists.
func TestDecoys_SiteWideMeta(t *testing.T) {
	site := testSite()
	const (
		tag    = `{"system":"https://smarthealthit.org/tags","code":"synthea-5-2019"}`
		normal = `{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"N"}`
		vip    = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"VIP"}`
		study  = `{"system":"urn:site:study","code":"trial-17"}`
	)
	patient := func(tags, labels string) json.RawMessage {
		return json.RawMessage(`{"resourceType":"Patient","meta":{"tag":[` + tags + `],"security":[` + labels + `]}}`)
	}
	site.Patients = []json.RawMessage{patient(tag+","+study, normal+","+vip), patient(tag, normal), patient(tag, "")}
	_, rs := MustDecode(t, mustDecoys(t, 6, 30, synth.DecoyOptions{Site: site}))
	normals := 0
	for i, res := range rs {
		for j, r := range res {
			m, _ := json.Marshal(r["meta"])
			if strings.Contains(string(m), "VIP") || strings.Contains(string(m), "trial-17") {
				t.Errorf("decoy %d entry %d meta %s carries one patient's label or tag", i, j, m)
			}
			if !strings.Contains(string(m), "synthea-5-2019") {
				t.Errorf("decoy %d entry %d meta %s lacks the site's tag", i, j, m)
			}
			if j == 0 && strings.Contains(string(m), `"code":"N"`) {
				normals++
			}
		}
	}
	if normals == 0 || normals == len(rs) {
		t.Errorf("%d of %d decoys carry N, want some (as two of three patients do)", normals, len(rs))
	}
}

// TestDecoys_SiteElements checks that a decoy has the optional Patient
// elements its site's patients have and no other: none of active,
// telecom, address, maritalStatus or communication after Synthea's (no
// active), all after a patient with all.
func TestDecoys_SiteElements(t *testing.T) {
	full := json.RawMessage(`{"resourceType":"Patient","active":true,"telecom":[{"system":"phone","value":"x"}],"address":[{"city":"x"}],
		"maritalStatus":{"text":"x"},"communication":[{"language":{"text":"x"}}]}`)
	sparse := json.RawMessage(`{"resourceType":"Patient","telecom":[{"system":"phone","value":"x"}],"address":[{"city":"x"}]}`)
	for name, c := range map[string]struct {
		patient json.RawMessage
		want    []string
	}{
		"full":   {full, []string{"active", "address", "communication", "maritalStatus", "telecom"}},
		"sparse": {sparse, []string{"address", "telecom"}},
	} {
		site := testSite()
		site.Patients = []json.RawMessage{c.patient}
		_, rs := MustDecode(t, mustDecoys(t, 7, 4, synth.DecoyOptions{Site: site}))
		for i, res := range rs {
			var got []string
			for _, e := range []string{"active", "telecom", "address", "maritalStatus", "communication"} {
				if _, ok := res[0][e]; ok {
					got = append(got, e)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: decoy %d has %v, want %v", name, i, got, c.want)
			}
		}
	}
}

// TestDecoys_SiteLoneValue checks that a value no other of its system
// teaches anything about keeps none of its letters or digits (a
// driver's licence that spells its holder's surname), while a value
// with a peer of its length keeps what they share.
func TestDecoys_SiteLoneValue(t *testing.T) {
	site := testSite()
	site.Patients = []json.RawMessage{json.RawMessage(`{"resourceType":"Patient","identifier":[
		{"system":"urn:wa:dl","value":"HALLONA123BC"},{"system":"urn:site:mrn","value":"MRN-004521"}]}`),
		json.RawMessage(`{"resourceType":"Patient","identifier":[{"system":"urn:site:mrn","value":"MRN-017733"}]}`)}
	_, rs := MustDecode(t, mustDecoys(t, 8, 20, synth.DecoyOptions{Site: site}))
	lone := 0
	for i, res := range rs {
		for _, x := range asSlice(res[0]["identifier"]) {
			id := x.(map[string]any)
			v := id["value"].(string)
			switch id["system"] {
			case "urn:wa:dl":
				lone++
				if strings.HasPrefix(v, "HAL") || len(v) != 12 {
					t.Errorf("decoy %d licence %q keeps its holder's letters", i, v)
				}
			case "urn:site:mrn":
				if !strings.HasPrefix(v, "MRN-0") || len(v) != 10 {
					t.Errorf("decoy %d MRN %q, want MRN-0 and five new digits", i, v)
				}
			}
		}
	}
	if lone == 0 {
		t.Error("no decoy of 20 follows the patient with a licence")
	}
}

// TestDecoys_SiteIdentifierShape checks that a decoy's identifier copies
// the use, type, system and assigner of the site patient's and neither
// its period (when that patient registered) nor its extensions.
func TestDecoys_SiteIdentifierShape(t *testing.T) {
	site := testSite()
	site.Patients = []json.RawMessage{json.RawMessage(`{"resourceType":"Patient","identifier":[{"use":"official","type":{"text":"MRN"},
		"system":"urn:site:mrn","value":"MRN-004521","assigner":{"reference":"Organization/o1"},"period":{"start":"2011-06-14"},
		"extension":[{"url":"urn:site:note","valueString":"x"}]}]}`)}
	_, rs := MustDecode(t, mustDecoys(t, 9, 2, synth.DecoyOptions{Site: site}))
	for i, res := range rs {
		id := asSlice(res[0]["identifier"])[0].(map[string]any)
		got := slices.Sorted(maps.Keys(id))
		if want := []string{"assigner", "system", "type", "use", "value"}; !slices.Equal(got, want) {
			t.Errorf("decoy %d identifier has %v, want %v", i, got, want)
		}
	}
}

// TestDecoys_SiteUnlocated checks that decoys' encounters name no
// location when none of the site's do, and some do when half of them do.
func TestDecoys_SiteUnlocated(t *testing.T) {
	for _, c := range []struct {
		share   float64
		located func(n, of int) bool
	}{
		{1, func(n, _ int) bool { return n == 0 }},
		{0.5, func(n, of int) bool { return n > 0 && n < of }},
	} {
		site := testSite()
		site.UnlocatedEncounters = c.share
		_, rs := MustDecode(t, mustDecoys(t, 10, 10, synth.DecoyOptions{Site: site}))
		located, encounters := 0, 0
		for _, res := range rs {
			for _, r := range res {
				if r["resourceType"] == "Encounter" {
					encounters++
					if _, ok := r["location"]; ok {
						located++
					}
				}
			}
		}
		if !c.located(located, encounters) {
			t.Errorf("share %v unlocated: %d of %d decoy encounters name a location", c.share, located, encounters)
		}
	}
}

// TestDecoys_SitePlaces checks that decoys live where at least five of
// the site's patients do (city, state, postal code and country), never
// where four or one do, and in synth's own places when no place is
// shared by five.
func TestDecoys_SitePlaces(t *testing.T) {
	patient := func(city, postal string) json.RawMessage {
		return json.RawMessage(`{"resourceType":"Patient","address":[{"line":["4 Quarry Lane"],"city":"` + city + `","state":"VT","postalCode":"` + postal + `","country":"US"}]}`)
	}
	site := testSite()
	site.Patients = []json.RawMessage{patient("Smallville", "05001")}
	for range 5 {
		site.Patients = append(site.Patients, patient("Northfield", "05663"))
	}
	for range 4 {
		site.Patients = append(site.Patients, patient("Greenfield", "05301"))
	}
	address := func(res []map[string]any) map[string]any { return asSlice(res[0]["address"])[0].(map[string]any) }
	_, rs := MustDecode(t, mustDecoys(t, 11, 10, synth.DecoyOptions{Site: site}))
	for i, res := range rs {
		a := address(res)
		if a["city"] != "Northfield" || a["state"] != "VT" || a["postalCode"] != "05663" || a["country"] != "US" || a["line"] == nil {
			t.Errorf("decoy %d lives at %v, want a street of Northfield VT 05663", i, a)
		}
		if slices.Contains(asSlice(a["line"]), any("4 Quarry Lane")) {
			t.Errorf("decoy %d has a patient's street", i)
		}
	}
	site.Patients = site.Patients[:5] // Smallville and four in Northfield
	_, rs = MustDecode(t, mustDecoys(t, 11, 10, synth.DecoyOptions{Site: site}))
	for i, res := range rs {
		if a := address(res); a["state"] == "VT" {
			t.Errorf("decoy %d lives at %v, where fewer than five patients do", i, a)
		}
	}
}
