package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/internal/testenv"
	"github.com/phivault/phivault/synth"
)

// decoyVault is a vault served in-process (mustAuditApp) with its
// security API and, for staff, a FHIR API that authenticates test tokens
// ("token-<account id>") as the staff accounts the test makes.
type decoyVault struct {
	*auditApp
	security string                         // base URL of /security/
	staffURL string                         // base URL of the staff FHIR API
	staff    map[string]*phivault.Principal // by token
}

func mustDecoyVault(t *testing.T) *decoyVault {
	t.Helper()
	v := &decoyVault{auditApp: mustAuditApp(t), staff: map[string]*phivault.Principal{}}
	sec := httptest.NewServer(v.routes["/security/"])
	staff := httptest.NewServer(api.NewHandler(v.records, api.Options{Authenticator: v}))
	t.Cleanup(func() { sec.Close(); staff.Close() })
	v.security, v.staffURL = sec.URL, staff.URL
	return v
}

// Authenticate implements api.Authenticator for the staff tokens.
func (v *decoyVault) Authenticate(ctx context.Context, token string) (context.Context, error) {
	p, ok := v.staff[token]
	if !ok {
		return nil, &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "Unknown token."}
	}
	ctx = api.WithActor(phivault.WithPrincipal(ctx, p), p.ID)
	info, _ := phivault.RequestInfoFromContext(ctx)
	info.Actor = p.ID
	return phivault.WithRequestInfo(ctx, info), nil
}

// addStaff makes an active staff account and returns its token.
func (v *decoyVault) addStaff(t *testing.T, id, role, department, practitioner string) string {
	t.Helper()
	acct := &phivault.Account{ID: id, Username: id, Kind: phivault.PrincipalStaff, Roles: []string{role},
		Department: department, PractitionerID: practitioner, Status: phivault.AccountActive}
	if err := v.accounts.CreateAccount(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
	v.staff["token-"+id] = &phivault.Principal{ID: id, Kind: phivault.PrincipalStaff, Roles: []string{role},
		Department: department, PractitionerID: practitioner,
		TrainingValidUntil: time.Now().AddDate(1, 0, 0), AuthTime: time.Now()}
	return "token-" + id
}

// get sends GET path to the staff FHIR API with token and decodes the
// JSON answer into out.
func (v *decoyVault) get(t *testing.T, token, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, v.staffURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return res.StatusCode
}

// plant sends POST /security/honeytokens {"count": n} with the admin
// token and returns the status and the decoys' ids, or the body.
func (v *decoyVault) plant(t *testing.T, n int) (int, []string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, v.security+"/security/honeytokens", strings.NewReader(fmt.Sprintf(`{"count":%d}`, n)))
	req.Header.Set("Authorization", "Bearer "+v.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Honeytokens []string }
	json.Unmarshal(raw, &body)
	return res.StatusCode, body.Honeytokens, string(raw)
}

// testSite is a small non-demo site: a clinic with a location and a
// practitioner (by PractitionerRole), a closed location and a retired
// practitioner of the clinic, a practitioner no organisation lists, an
// insurer, and three patients of the clinic, each with an encounter there.
type testSite struct {
	clinic, insurer, location string
	doctor, floater, retired  string
	patients                  []string
	mrnSystem                 string
	allowedRefs               []string // the shared resources decoys may reference
}

// loadSite creates the site through the system client, as an import
// would.
func (v *decoyVault) loadSite(t *testing.T) *testSite {
	t.Helper()
	sys := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test"))
	create := func(typ, body string) string {
		t.Helper()
		r, _, err := v.records.Create(sys, typ, []byte(body), phivault.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v", typ, err)
		}
		return r.ID
	}
	s := &testSite{mrnSystem: "urn:oid:2.16.840.1.113883.19.5.99"}
	s.clinic = create("Organization", `{"resourceType":"Organization","active":true,"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/organization-type","code":"prov"}]}],"name":"Northfield Clinic"}`)
	s.insurer = create("Organization", `{"resourceType":"Organization","active":true,"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/organization-type","code":"pay"}]}],"name":"Northfield Mutual"}`)
	s.location = create("Location", `{"resourceType":"Location","status":"active","name":"Northfield Clinic, Ward 2","managingOrganization":{"reference":"Organization/`+s.clinic+`"}}`)
	s.doctor = create("Practitioner", `{"resourceType":"Practitioner","active":true,"name":[{"family":"Okonkwo","given":["Adaeze"]}]}`)
	s.floater = create("Practitioner", `{"resourceType":"Practitioner","active":true,"name":[{"family":"Lindqvist","given":["Maja"]}]}`)
	s.retired = create("Practitioner", `{"resourceType":"Practitioner","active":false,"name":[{"family":"Abernethy","given":["Hugh"]}]}`)
	closed := create("Location", `{"resourceType":"Location","status":"inactive","name":"Northfield Clinic, Old Wing","managingOrganization":{"reference":"Organization/`+s.clinic+`"}}`)
	for _, pr := range []string{s.doctor, s.retired} {
		create("PractitionerRole", `{"resourceType":"PractitionerRole","active":true,"practitioner":{"reference":"Practitioner/`+pr+`"},"organization":{"reference":"Organization/`+s.clinic+`"},"location":[{"reference":"Location/`+s.location+`"}]}`)
	}
	for i, mrn := range []string{"MRN-004521", "MRN-017733", "MRN-020914"} {
		p := create("Patient", `{"resourceType":"Patient","identifier":[{"use":"usual","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"`+s.mrnSystem+`","value":"`+mrn+`"}],
			"active":true,"name":[{"use":"official","family":"Halloran","given":["Niamh"]}],"telecom":[{"system":"phone","value":"413-555-0142","use":"home"}],"gender":"female","birthDate":"198`+fmt.Sprint(i)+`-04-02",
			"address":[{"use":"home","line":["4 Quarry Lane"],"city":"Northfield","state":"MA","postalCode":"01360","country":"US"}],
			"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M"}]},"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"en-US"}]},"preferred":true}],
			"generalPractitioner":[{"reference":"Practitioner/`+s.doctor+`"}],"managingOrganization":{"reference":"Organization/`+s.clinic+`"}}`)
		create("Encounter", `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/`+p+`"},
			"participant":[{"individual":{"reference":"Practitioner/`+s.doctor+`"}}],"period":{"start":"2025-03-0`+fmt.Sprint(i+1)+`T09:00:00Z","end":"2025-03-0`+fmt.Sprint(i+1)+`T09:30:00Z"},
			"location":[{"location":{"reference":"Location/`+s.location+`"}}],"serviceProvider":{"reference":"Organization/`+s.clinic+`"}}`)
		s.patients = append(s.patients, p)
	}
	s.allowedRefs = []string{"Organization/" + s.clinic, "Location/" + s.location, "Practitioner/" + s.doctor, "Practitioner/" + s.floater}
	_ = closed // never referenced: allowedRefs lacks it
	return s
}

// siteRef matches a reference to a shared resource.
var siteRef = regexp.MustCompile(`"reference":"((?:Organization|Location|Practitioner|PractitionerRole)[/?][^"]*)"`)

// TestDecoys_site plants decoys in a vault of a non-demo site and checks
// that they are treated by its clinicians at its clinic (never the
// insurer, the retired practitioner or the demo hospital), carry record
// numbers shaped like its own and none of its patients', and that a
// touch is a critical alert.
func TestDecoys_site(t *testing.T) {
	v := mustDecoyVault(t)
	s := v.loadSite(t)
	status, ids, body := v.plant(t, 3)
	if status != http.StatusCreated || len(ids) != 3 {
		t.Fatalf("POST /security/honeytokens = %d %s", status, body)
	}
	mrn := regexp.MustCompile(`^MRN-0\d{5}$`)
	seen := map[string]bool{}
	for _, id := range ids {
		// Read below access and audit: this look is no touch.
		all, err := v.reindex.records.Everything(context.Background(), id, 1000, 0)
		if err != nil || len(all.Matches) < 5 {
			t.Fatalf("decoy %s: %v, %v", id, all, err)
		}
		for _, r := range all.Matches {
			for _, m := range siteRef.FindAllSubmatch(r.Body, -1) {
				ref := string(m[1])
				if !slices.Contains(s.allowedRefs, ref) {
					t.Errorf("decoy %s %s references %s, not the site's clinic or active clinicians", id, r.Ref(), ref)
				}
				seen[ref] = true
			}
		}
		var p struct {
			Identifier []struct{ System, Value string }
		}
		i := slices.IndexFunc(all.Matches, func(r *phivault.Resource) bool { return r.Type == "Patient" })
		json.Unmarshal(all.Matches[i].Body, &p)
		if len(p.Identifier) != 1 || p.Identifier[0].System != s.mrnSystem || !mrn.MatchString(p.Identifier[0].Value) ||
			slices.Contains([]string{"MRN-004521", "MRN-017733", "MRN-020914"}, p.Identifier[0].Value) {
			t.Errorf("decoy %s identifiers %+v, want a new MRN-0xxxxx of the site's system", id, p.Identifier)
		}
	}
	for _, ref := range []string{"Organization/" + s.clinic, "Location/" + s.location, "Practitioner/" + s.doctor} {
		if !seen[ref] {
			t.Errorf("no decoy references %s", ref)
		}
	}

	// The record numbers the site has are taken; others are not.
	m := &decoyMaker{records: v.records, vault: v.reindex.records}
	sys := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test"))
	site, err := m.readSite(sys, mathrand.New(mathrand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for value, want := range map[string]bool{"MRN-017733": true, "MRN-017734": false} {
		if taken, err := site.Taken(s.mrnSystem, value); err != nil || taken != want {
			t.Errorf("Taken(%s) = %v, %v; want %v", value, taken, err, want)
		}
	}

	// A nurse of the clinic opens one: a critical alert.
	nurse := v.addStaff(t, "nurse1", "nurse", s.clinic, s.doctor)
	var got map[string]any
	if status := v.get(t, nurse, "/fhir/Patient/"+ids[0], &got); status != http.StatusOK {
		t.Fatalf("nurse GET decoy = %d", status)
	}
	alerts := waitHoneytokenAlert(t, v, ids[0])
	if alerts.Severity != "critical" || alerts.User != "nurse1" {
		t.Errorf("alert %+v, want critical for nurse1", alerts)
	}
}

// TestDecoys_unlocatedShare checks the share of the site's encounters
// that name no location: none of the test site's three, then one of
// four.
func TestDecoys_unlocatedShare(t *testing.T) {
	v := mustDecoyVault(t)
	s := v.loadSite(t)
	m := &decoyMaker{records: v.records, vault: v.reindex.records}
	sys := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test"))
	share := func() float64 {
		t.Helper()
		site, err := m.readSite(sys, mathrand.New(mathrand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		return site.UnlocatedEncounters
	}
	if got := share(); got != 0 {
		t.Errorf("unlocated share %v, want 0", got)
	}
	if _, _, err := v.records.Create(sys, "Encounter", []byte(`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/`+s.patients[0]+`"}}`), phivault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := share(); got != 0.25 {
		t.Errorf("unlocated share %v after one unlocated encounter of four, want 0.25", got)
	}
}

// waitHoneytokenAlert polls the alerts until a honeytoken alert names
// patient, and returns it.
func waitHoneytokenAlert(t *testing.T, v *decoyVault, patient string) (found struct {
	Severity, User string
	Patients       []string
}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, v.security+"/security/alerts?rule=honeytoken", nil)
		req.Header.Set("Authorization", "Bearer "+v.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Alerts []struct {
				Severity, User string
				Patients       []string
			}
		}
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET /security/alerts = %d, %v", res.StatusCode, err)
		}
		for _, a := range body.Alerts {
			if slices.Contains(a.Patients, patient) {
				found.Severity, found.User, found.Patients = a.Severity, a.User, a.Patients
				return found
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no honeytoken alert for the decoy after 30 s: %+v", body.Alerts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDecoys_emptySite checks that a vault without clinicians or
// patients refuses decoys with a 412 saying what to load, and makes none.
func TestDecoys_emptySite(t *testing.T) {
	v := mustDecoyVault(t)
	status, ids, _ := v.plant(t, 2)
	if status != http.StatusPreconditionFailed || len(ids) != 0 {
		t.Errorf("empty vault: POST /security/honeytokens = %d %v, want 412", status, ids)
	}
	// Patients, but no clinician; then clinicians, but no patient to follow.
	sys := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test"))
	other := mustDecoyVault(t)
	for _, c := range []struct {
		v     *decoyVault
		types []string
	}{{v, []string{"Organization", "Practitioner"}}, {other, []string{"Patient"}}} {
		for _, typ := range c.types {
			if _, _, err := c.v.records.Create(sys, typ, []byte(`{"resourceType":"`+typ+`"}`), phivault.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if status, ids, body := c.v.plant(t, 2); status != http.StatusPreconditionFailed || len(ids) != 0 || !strings.Contains(body, "Load the site's") {
			t.Errorf("vault with only %v: POST /security/honeytokens = %d %s, want 412 saying what to load", c.types, status, body)
		}
	}
	res, err := v.reindex.records.Search(context.Background(), &phivault.Query{Type: "Patient", Summary: "count"})
	if err != nil || res.Total != 0 {
		t.Errorf("patients after refusals: %v, %v; want none", res, err)
	}

	// A clinic and a patient, and a practitioner whose only role is at an
	// insurer: no one may treat a decoy.
	third := mustDecoyVault(t)
	create := func(typ, body string) string {
		t.Helper()
		r, _, err := third.records.Create(sys, typ, []byte(body), phivault.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	create("Organization", `{"resourceType":"Organization","name":"Clinic"}`)
	insurer := create("Organization", `{"resourceType":"Organization","type":[{"coding":[{"code":"pay"}]}],"name":"Insurer"}`)
	reviewer := create("Practitioner", `{"resourceType":"Practitioner"}`)
	create("PractitionerRole", `{"resourceType":"PractitionerRole","practitioner":{"reference":"Practitioner/`+reviewer+`"},"organization":{"reference":"Organization/`+insurer+`"}}`)
	create("Patient", `{"resourceType":"Patient"}`)
	if status, _, body := third.plant(t, 1); status != http.StatusPreconditionFailed || !strings.Contains(body, "Load the site's") {
		t.Errorf("vault whose only practitioner works for an insurer: POST /security/honeytokens = %d %s, want 412", status, body)
	}
}

// TestDecoys_lookLikePatients compares decoys and real patients as staff
// who are not security roles see them, through every read they have:
// Patient search and its count, read, $everything and _history. The
// clinic's physician and front desk count decoys like the patients they
// treat or register; a physician who treats no one sees neither.
func TestDecoys_lookLikePatients(t *testing.T) {
	v := mustDecoyVault(t)
	s := v.loadSite(t)
	status, ids, body := v.plant(t, 2)
	if status != http.StatusCreated || len(ids) != 2 {
		t.Fatalf("POST /security/honeytokens = %d %s", status, body)
	}
	doctor := v.addStaff(t, "doc1", "physician", s.clinic, s.doctor)
	desk := v.addStaff(t, "desk1", "front-desk", s.clinic, "")
	idle := v.addStaff(t, "doc2", "physician", s.clinic, s.retired)

	type bundle struct {
		Type  string
		Total *int
		Entry []struct {
			Resource map[string]any
		}
	}
	count := func(token string) int {
		t.Helper()
		var b bundle
		if status := v.get(t, token, "/fhir/Patient?_summary=count", &b); status != http.StatusOK || b.Total == nil {
			t.Fatalf("GET Patient?_summary=count = %d %+v", status, b)
		}
		return *b.Total
	}
	for name, c := range map[string]struct {
		token string
		want  int
	}{
		"the clinic's physician": {doctor, 5}, "the clinic's front desk": {desk, 5}, "a physician who treats no one": {idle, 0},
	} {
		if got := count(c.token); got != c.want {
			t.Errorf("%s counts %d patients, want %d (3 patients and 2 decoys, or none)", name, got, c.want)
		}
		var list bundle
		v.get(t, c.token, "/fhir/Patient?_count=50", &list)
		if len(list.Entry) != c.want {
			t.Errorf("%s lists %d patients, want %d", name, len(list.Entry), c.want)
		}
	}

	// A decoy and a patient read alike: the same elements, the same meta
	// (no tag or label), the same identifier system and type.
	shape := func(id string) (top, meta, ident []string) {
		t.Helper()
		var p map[string]any
		if status := v.get(t, doctor, "/fhir/Patient/"+id, &p); status != http.StatusOK {
			t.Fatalf("GET Patient/%s = %d", id, status)
		}
		m, _ := p["meta"].(map[string]any)
		for _, x := range p["identifier"].([]any) {
			b, _ := json.Marshal(withoutKey(x.(map[string]any), "value"))
			ident = append(ident, string(b))
		}
		return keys(p), keys(m), ident
	}
	realTop, realMeta, realIdent := shape(s.patients[0])
	for _, id := range ids {
		top, meta, ident := shape(id)
		if !slices.Equal(top, realTop) || !slices.Equal(meta, realMeta) || !slices.Equal(ident, realIdent) {
			t.Errorf("decoy %s reads as %v / meta %v / %v;\npatient as %v / meta %v / %v", id, top, meta, ident, realTop, realMeta, realIdent)
		}
	}

	// $everything and _history answer alike: the Patient and its
	// encounters, one version.
	has := func(b bundle, typ string) bool {
		return slices.ContainsFunc(b.Entry, func(e struct{ Resource map[string]any }) bool { return e.Resource["resourceType"] == typ })
	}
	for _, id := range []string{s.patients[0], ids[0]} {
		var all bundle
		if status := v.get(t, doctor, "/fhir/Patient/"+id+"/$everything?_count=1000", &all); status != http.StatusOK || all.Type != "searchset" ||
			!has(all, "Patient") || !has(all, "Encounter") {
			t.Errorf("$everything of %s = %d %s with %d entries", id, status, all.Type, len(all.Entry))
		}
		var hist bundle
		if status := v.get(t, doctor, "/fhir/Patient/"+id+"/_history", &hist); status != http.StatusOK || hist.Type != "history" || len(hist.Entry) != 1 {
			t.Errorf("_history of %s = %d %s with %d entries", id, status, hist.Type, len(hist.Entry))
		}
	}
}

func withoutKey(m map[string]any, key string) map[string]any {
	out := map[string]any{}
	for k, x := range m {
		if k != key {
			out[k] = x
		}
	}
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestDecoys_demo plants decoys in a vault of the demo hospital: they are
// made of its departments and clinicians, with record numbers of its
// system, and carry its HTEST label, as its patients do.
func TestDecoys_demo(t *testing.T) {
	v := mustDecoyVault(t)
	sys := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test"))
	err := synth.Hospital(synth.Options{Seed: demoSeed, Patients: 3}, func(b []byte) bool {
		if _, err := v.records.Bundle(sys, b, ""); err != nil {
			t.Fatal(err)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	status, ids, body := v.plant(t, 2)
	if status != http.StatusCreated || len(ids) != 2 {
		t.Fatalf("POST /security/honeytokens = %d %s", status, body)
	}
	for _, id := range ids {
		p, err := v.reindex.records.Read(context.Background(), "Patient", id)
		if err != nil {
			t.Fatal(err)
		}
		var pt struct {
			Identifier []struct{ System string }
		}
		json.Unmarshal(p.Body, &pt)
		if !hasTestLabel(p.Body) || len(pt.Identifier) != 1 || pt.Identifier[0].System != synth.MRNSystem {
			t.Errorf("demo decoy %s: %s; want the HTEST label and the hospital's MRN", id, p.Body)
		}
	}
}

// TestDecoys_concurrent makes decoys with two requests at once in the
// demo vault: they continue its numbering one after the other, so no two
// patients share a block of record numbers (each real patient has its
// own), and every decoy made is returned.
func TestDecoys_concurrent(t *testing.T) {
	v := mustDecoyVault(t)
	sys := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test"))
	err := synth.Hospital(synth.Options{Seed: demoSeed, Patients: 3}, func(b []byte) bool {
		_, err := v.records.Bundle(sys, b, "")
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m := &decoyMaker{records: v.records, vault: v.reindex.records}
	type made struct {
		ids []string
		err error
	}
	out := make(chan made)
	for range 2 {
		go func() {
			ids, err := m.MakeDecoys(context.Background(), 2)
			out <- made{ids, err}
		}()
	}
	for range 2 {
		if r := <-out; r.err != nil || len(r.ids) != 2 {
			t.Fatalf("MakeDecoys = %v, %v", r.ids, r.err)
		}
	}
	res, err := v.reindex.records.Search(context.Background(), &phivault.Query{Type: "Patient", Count: 100})
	if err != nil || len(res.Matches) != 7 {
		t.Fatalf("patients: %v, %v; want 3 and 4 decoys", res, err)
	}
	blocks := map[string]bool{}
	for _, r := range res.Matches {
		var p struct{ Identifier []struct{ Value string } }
		if err := json.Unmarshal(r.Body, &p); err != nil || len(p.Identifier) != 1 || len(p.Identifier[0].Value) != 8 {
			t.Fatalf("patient %s: %s", r.ID, r.Body)
		}
		block := p.Identifier[0].Value[:5]
		if blocks[block] {
			t.Errorf("two patients with record numbers in block %sxxx", block)
		}
		blocks[block] = true
	}
}

// TestDecoys_synthea plants decoys in a vault of Synthea patients (where
// the archive is present; the subtest is registered only then): they are
// treated by the practitioners at the organisations the bundles brought,
// and their identifiers, tag and missing managing organisation follow
// Synthea's patients: the id repeated as the record number, an SSN in
// 999-, the synthea tag on every resource.
func TestDecoys_synthea(t *testing.T) {
	files, err := testenv.ReadSynthea("patients-100.tar.gz")
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		t.Logf("no Synthea subtest: %v", err)
		return
	}
	t.Run("patients-100", func(t *testing.T) {
		v := mustDecoyVault(t)
		sys := phivault.WithPrincipal(context.Background(), access.BootstrapPrincipal("test"))
		for _, f := range files[:4] {
			if _, err := v.records.Bundle(sys, f.Data, ""); err != nil {
				t.Fatalf("import %s: %v", f.Name, err)
			}
		}
		// A ward no Synthea encounter names: decoys' must not either.
		if _, _, err := v.records.Create(sys, "Location", []byte(`{"resourceType":"Location","status":"active","name":"Ward 3"}`), phivault.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		status, ids, body := v.plant(t, 2)
		if status != http.StatusCreated || len(ids) != 2 {
			t.Fatalf("POST /security/honeytokens = %d %s", status, body)
		}
		ssn := regexp.MustCompile(`^999-\d\d-\d{4}$`)
		for _, id := range ids {
			all, err := v.reindex.records.Everything(context.Background(), id, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range all.Matches {
				if !strings.Contains(string(r.Body), `"tag":[{"code":"synthea-5-2019","system":"https://smarthealthit.org/tags"}]`) {
					t.Errorf("decoy %s %s lacks the synthea tag: %.200s", id, r.Ref(), r.Body)
				}
				if r.Type == "Encounter" && strings.Contains(string(r.Body), `"location":`) {
					t.Errorf("decoy %s %s names a location; Synthea's encounters do not", id, r.Ref())
				}
				if r.Type == "Patient" && strings.Contains(string(r.Body), `"active":`) {
					t.Errorf("decoy %s has active; Synthea's patients do not", id)
				}
				for _, m := range siteRef.FindAllSubmatch(r.Body, -1) {
					typ, rid, _ := strings.Cut(string(m[1]), "/")
					if _, err := v.reindex.records.Read(context.Background(), typ, rid); err != nil {
						t.Errorf("decoy %s %s references %s: %v", id, r.Ref(), m[1], err)
					}
				}
			}
			p, _ := v.reindex.records.Read(context.Background(), "Patient", id)
			var pt struct {
				Identifier           []struct{ System, Value string }
				ManagingOrganization any
			}
			json.Unmarshal(p.Body, &pt)
			values := map[string]string{}
			for _, x := range pt.Identifier {
				values[x.System] = x.Value
			}
			if len(pt.Identifier) < 3 || values["https://github.com/synthetichealth/synthea"] != values["http://hospital.smarthealthit.org"] ||
				!ssn.MatchString(values["http://hl7.org/fhir/sid/us-ssn"]) || pt.ManagingOrganization != nil {
				t.Errorf("decoy %s identifiers %v, managing organisation %v; want Synthea's", id, pt.Identifier, pt.ManagingOrganization)
			}
		}
	})
}

// TestDecoys_siteOf checks the grouping of a site's shared resources: a
// practitioner goes to each care organisation a role links to, a role's
// location joins its organisation only if active, a payer and what only
// it lists are left out (p2, whose only role is at the payer, too), and
// what no organisation lists is the site's own (p3, with no role).
func TestDecoys_siteOf(t *testing.T) {
	res := func(ref, body string) siteResource {
		var obj map[string]any
		if err := json.Unmarshal([]byte(body), &obj); err != nil {
			t.Fatal(err)
		}
		return siteResource{ref: ref, obj: obj}
	}
	orgs := []siteResource{
		res("Organization/a", `{}`),
		res("Organization/b", `{"type":[{"coding":[{"code":"prov"}]}]}`),
		res("Organization/pay", `{"type":[{"coding":[{"code":"pay"}]}]}`),
	}
	locs := []siteResource{
		res("Location/la", `{"managingOrganization":{"reference":"Organization/a"}}`),
		res("Location/free", `{}`),
	}
	pracs := []siteResource{res("Practitioner/p1", `{}`), res("Practitioner/p2", `{}`), res("Practitioner/p3", `{}`)}
	roles := []siteResource{
		res("PractitionerRole/1", `{"practitioner":{"reference":"Practitioner/p1"},"organization":{"reference":"Organization/a"},"location":[{"reference":"Location/closed"}]}`),
		res("PractitionerRole/2", `{"practitioner":{"reference":"Practitioner/p1"},"organization":{"reference":"Organization/b"},"location":[{"reference":"Location/free"}]}`),
		res("PractitionerRole/3", `{"practitioner":{"reference":"Practitioner/p2"},"organization":{"reference":"Organization/pay"}}`),
	}
	got := siteOf(orgs, locs, pracs, roles)
	want := &synth.Site{
		Organizations: []synth.SiteOrganization{
			{Reference: "Organization/a", Locations: []string{"Location/la"}, Practitioners: []string{"Practitioner/p1"}},
			{Reference: "Organization/b", Locations: []string{"Location/free"}, Practitioners: []string{"Practitioner/p1"}},
		},
		Locations:     []string{"Location/free"},
		Practitioners: []string{"Practitioner/p3"},
	}
	sameOrg := func(a, b synth.SiteOrganization) bool {
		return a.Reference == b.Reference && slices.Equal(a.Locations, b.Locations) && slices.Equal(a.Practitioners, b.Practitioners)
	}
	if !slices.EqualFunc(got.Organizations, want.Organizations, sameOrg) ||
		!slices.Equal(got.Locations, want.Locations) || !slices.Equal(got.Practitioners, want.Practitioners) {
		t.Errorf("siteOf = %+v\nwant %+v", *got, *want)
	}
}
