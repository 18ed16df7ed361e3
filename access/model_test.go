package access_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/policy"
	"github.com/phivault/phivault/sqlite"
	"github.com/phivault/phivault/vault"
	"pgregory.net/rapid"
)

// TestModel drives random sequences of API calls, as random principals
// (physicians, a nurse, front desk, a patient), through the real stack
// (access over the vault over SQLite and the envelope), and checks after
// every call, against a plain reference model of who may see and change
// what, that nothing was read or written outside it:
//
//   - every resource a call returned lies in a compartment the caller may
//     read;
//   - every version a call stored (found in the store, not in the answer)
//     lies in a compartment the caller may change, with its previous
//     version too; staff never store anything outside a compartment.
//
// The model computes each patient's care team from the CareTeams and
// Encounters stored in that patient's compartment (each of them passed the
// write check when it was stored), and the department from the stored
// Patient. Calls use every form of reference an attacker has: relative,
// absolute to another server, conditional, urn:uuid:, Patient fullUrls on
// any method, ifNoneExist on other departments' patients.
//
// CI runs it with -rapid.checks=1000: 100,000 calls.
func TestModel(t *testing.T) {
	callsPerWorld := 100
	if raceEnabled {
		callsPerWorld = 10 // the race detector makes each call ten times slower
	}
	keys, _ := vaulttest.Keyring(t, t.TempDir())
	authz, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var world, calls, allowed int
	rapid.Check(t, func(rt *rapid.T) {
		world++
		m := newModel(t, rt, keys, authz, world)
		defer m.close()
		for range callsPerWorld {
			if m.step(rt) {
				allowed++
			}
			calls++
		}
	})
	t.Logf("%d calls in %d worlds, %d of them allowed", calls, world, allowed)
	if allowed == 0 || allowed == calls {
		t.Fatalf("%d of %d calls allowed: the model test is vacuous", allowed, calls)
	}
}

// model is one world: a store, the stack over it, its principals, and
// the clock that every layer reads.
type model struct {
	t       *testing.T
	dir     string
	db      *sqlite.DB
	v       *vault.Service
	rs      *access.RecordService
	clock   time.Time
	ns      string // prefix of every id of this world
	people  []*phivault.Principal
	pats    []string // patient ids of the setup
	orgs    []string
	current map[string]*decoded // Type/id → current version, as the store holds it
	depts   map[string]string   // patient id → department of its last live version
	seq     int                 // ids drawn by the vault
}

const modelBase = "https://vault.test/fhir"

// fataler is a *testing.T or a *rapid.T.
type fataler interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func newModel(t *testing.T, rt fataler, keys phivault.Keyring, authz *policy.Authorizer, world int) *model {
	dir, err := os.MkdirTemp(t.TempDir(), "world")
	if err != nil {
		rt.Fatal(err)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "phivault.db"))
	if err != nil {
		rt.Fatal(err)
	}
	sealer := envelope.New(keys, envelope.Options{})
	if err := db.Update(ctx, func(tx phivault.StoreTx) error { return sealer.Init(ctx, tx) }); err != nil {
		rt.Fatal(err)
	}
	m := &model{t: t, dir: dir, db: db, clock: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), ns: fmt.Sprintf("w%d", world),
		current: map[string]*decoded{}, depts: map[string]string{}}
	m.v = vault.New(db, sealer)
	m.v.Now = func() time.Time { return m.clock }
	m.v.NewID = func() string { // deterministic, so that rapid can replay a failure
		m.seq++
		return m.id(fmt.Sprintf("id%d", m.seq))
	}
	m.v.BaseURL = modelBase
	m.rs = access.NewRecordService(m.v, authz)
	m.rs.Now = func() time.Time { return m.clock }
	m.rs.BuiltInPolicies = true // as serve sets it: staff searches bounded
	m.orgs = []string{m.id("D1"), m.id("D2")}
	for _, o := range m.orgs {
		m.put(rt, "Organization", o, `{"resourceType":"Organization","id":%q}`, o)
	}
	for i := 1; i <= 3; i++ {
		pr := m.id(fmt.Sprintf("Pr%d", i))
		m.put(rt, "Practitioner", pr, `{"resourceType":"Practitioner","id":%q}`, pr)
	}
	for i := 1; i <= 3; i++ {
		p := m.id(fmt.Sprintf("P%d", i))
		m.pats = append(m.pats, p)
		m.put(rt, "Patient", p, `{"resourceType":"Patient","id":%q,"identifier":[{"system":"urn:mrn","value":%q}],"managingOrganization":{"reference":"Organization/%s"}}`,
			p, p, m.orgs[(i+1)%2])
	}
	// Physician 1 treats P1 and physician 2 treats P2; nobody treats P3.
	for i := 1; i <= 2; i++ {
		ct := m.id(fmt.Sprintf("CT%d", i))
		m.put(rt, "CareTeam", ct, `{"resourceType":"CareTeam","id":%q,"status":"active","subject":{"reference":"Patient/%s"},"participant":[{"member":{"reference":"Practitioner/%s"}}]}`,
			ct, m.pats[i-1], m.id(fmt.Sprintf("Pr%d", i)))
	}
	train := m.clock.Add(365 * 24 * time.Hour)
	person := func(id, pr, role string) *phivault.Principal {
		return &phivault.Principal{ID: m.id(id), Kind: phivault.PrincipalStaff, Roles: []string{role}, PractitionerID: pr,
			Department: m.orgs[0], TrainingValidUntil: train, AuthTime: m.clock}
	}
	m.people = []*phivault.Principal{
		person("doc1", m.id("Pr1"), "physician"),
		person("doc2", m.id("Pr2"), "physician"),
		person("nurse", "", "nurse"),
		person("desk", "", "front-desk"),
		{ID: m.id("pat1"), Kind: phivault.PrincipalPatient, PatientID: m.pats[0]},
	}
	return m
}

func (m *model) id(s string) string { return m.ns + "-" + s }

func (m *model) close() {
	m.db.Close()
	os.RemoveAll(m.dir)
}

// put stores a setup resource directly in the vault.
func (m *model) put(rt fataler, typ, id, format string, args ...any) {
	r, _, err := m.v.Update(context.Background(), typ, id, []byte(fmt.Sprintf(format, args...)), phivault.UpdateOptions{})
	if err != nil {
		rt.Fatalf("setup %s/%s: %v", typ, id, err)
	}
	m.keep(rt, r)
}

// step makes one random call and checks it; it reports whether the call
// succeeded.
func (m *model) step(rt *rapid.T) bool {
	m.clock = m.clock.Add(access.DefaultContextTTL + time.Second) // contexts expire
	before := m.snapshot(rt)
	who := m.people[rapid.IntRange(0, len(m.people)-1).Draw(rt, "who")]
	note := &phivault.AuditNote{}
	ctx := phivault.WithPrincipal(phivault.WithRequestInfo(context.Background(),
		phivault.RequestInfo{ID: "req", Actor: who.ID, Note: note, Purpose: "TREAT"}), who)
	var got []*phivault.Resource
	var err error
	what := ""
	switch op := rapid.IntRange(0, 6).Draw(rt, "op"); op {
	case 0:
		typ, id := m.anyResource(rt, before)
		what = "read " + typ + "/" + id
		var r *phivault.Resource
		if r, err = m.rs.Read(ctx, typ, id); r != nil {
			got = append(got, r)
		}
	case 1:
		typ := rapid.SampledFrom([]string{"Observation", "CareTeam", "Appointment", "Encounter", "Patient", "Consent"}).Draw(rt, "type")
		p := rapid.SampledFrom(m.pats).Draw(rt, "patient")
		param := "patient"
		if typ == "Patient" {
			param = "_id"
		}
		what = "search " + typ
		var res *phivault.SearchResult
		if res, err = m.rs.Search(ctx, &phivault.Query{Type: typ, Count: 1000, Params: []phivault.QueryParam{{Name: param, Values: []string{p}}}}); res != nil {
			got = append(append(got, res.Matches...), res.Included...)
		}
	case 2:
		typ, body := m.body(rt, "")
		what = "create " + typ
		var r *phivault.Resource
		r, _, err = m.rs.Create(ctx, typ, body, phivault.CreateOptions{IfNoneExist: m.ifNoneExist(rt, typ)})
		if r != nil {
			got = append(got, r)
		}
	case 3:
		typ, id := m.anyResource(rt, before)
		_, body := m.body(rt, typ)
		body = withID(body, id)
		what = "update " + typ + "/" + id
		var r *phivault.Resource
		if r, _, err = m.rs.Update(ctx, typ, id, body, phivault.UpdateOptions{}); r != nil {
			got = append(got, r)
		}
	case 4:
		typ, id := m.anyResource(rt, before)
		what = "delete " + typ + "/" + id
		err = m.rs.Delete(ctx, typ, id)
	default:
		kind := rapid.SampledFrom([]string{"batch", "transaction"}).Draw(rt, "bundle")
		what = kind
		var res *phivault.BundleResult
		if res, err = m.rs.Bundle(ctx, m.bundle(rt, kind, before), modelBase); err == nil {
			got = append(got, m.bundleReads(rt, res)...)
		}
	}
	changed := m.changed(rt) // first: it learns the departments of created patients
	for _, r := range got {
		if !m.mayRead(before, who, r) {
			rt.Fatalf("%s %s returned %s in compartment %q, which the model says %s may not read", who.ID, what, r.Ref(), r.Compartment, who.ID)
		}
	}
	for _, r := range changed {
		m.checkWrite(rt, before, who, what, r)
	}
	return err == nil
}

// world is what the model knows of the store before a call.
type world struct {
	resources []*phivault.Resource // every current resource
	careTeam  map[string][]string  // patient id → Practitioner ids and principal ids
	dept      map[string]string    // patient id → Organization id
}

// snapshot computes the model's view from the current resources, which
// the model keeps up to date from what each call stored.
func (m *model) snapshot(rt *rapid.T) *world {
	w := &world{careTeam: map[string][]string{}, dept: maps.Clone(m.depts)}
	for _, ref := range slices.Sorted(maps.Keys(m.current)) {
		r := m.current[ref]
		w.resources = append(w.resources, r.Resource)
		obj := r.obj
		switch r.Type {
		case "CareTeam":
			if st, _ := obj["status"].(string); st == "inactive" || st == "entered-in-error" || r.Compartment == "" {
				continue
			}
			for _, part := range asMaps(obj["participant"]) {
				w.careTeam[r.Compartment] = append(w.careTeam[r.Compartment], member(part["member"])...)
			}
		case "Encounter":
			if st, _ := obj["status"].(string); st == "entered-in-error" || st == "cancelled" || r.Compartment == "" {
				continue
			}
			for _, part := range asMaps(obj["participant"]) {
				w.careTeam[r.Compartment] = append(w.careTeam[r.Compartment], member(part["individual"])...)
			}
		}
	}
	return w
}

// decoded is a current resource with its decoded body.
type decoded struct {
	*phivault.Resource
	obj map[string]any
}

// keep records r as the current version of its resource (or its deletion).
func (m *model) keep(rt fataler, r *phivault.Resource) {
	if r.Deleted {
		delete(m.current, r.Ref())
		return
	}
	var obj map[string]any
	if err := json.Unmarshal(r.Body, &obj); err != nil {
		rt.Fatal(err)
	}
	m.current[r.Ref()] = &decoded{r, obj}
	if r.Type == "Patient" {
		// A deleted Patient's compartment keeps its last department.
		m.depts[r.ID] = localID(obj["managingOrganization"], "Organization")
	}
}

// member returns who a CareTeam member or Encounter individual names: a
// Practitioner id, or a principal id by identifier.
func member(v any) []string {
	m, _ := v.(map[string]any)
	var out []string
	if id := localID(m, "Practitioner"); id != "" {
		out = append(out, "Practitioner/"+id)
	}
	if ident, _ := m["identifier"].(map[string]any); ident != nil && ident["system"] == access.PrincipalSystem {
		if v, _ := ident["value"].(string); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// localID reads a reference the way the model does: only "Type/id".
func localID(v any, typ string) string {
	m, _ := v.(map[string]any)
	ref, _ := m["reference"].(string)
	rest, ok := strings.CutPrefix(ref, typ+"/")
	if !ok || rest == "" || strings.ContainsAny(rest, "/?#:") {
		return ""
	}
	return rest
}

// onTeam reports whether who is on the care team of patient p.
func (w *world) onTeam(who *phivault.Principal, p string) bool {
	team := w.careTeam[p]
	return slices.Contains(team, who.ID) || (who.PractitionerID != "" && slices.Contains(team, "Practitioner/"+who.PractitionerID))
}

func hasRole(who *phivault.Principal, role string) bool { return slices.Contains(who.Roles, role) }

// mayRead is the model's read rule (the default policies, without labels,
// consents or break-the-glass, which these worlds do not use).
func (m *model) mayRead(w *world, who *phivault.Principal, r *phivault.Resource) bool {
	if r.Compartment == "" {
		return true // shared resources: Organization, Practitioner
	}
	switch {
	case who.Kind == phivault.PrincipalPatient:
		return r.Compartment == who.PatientID
	case hasRole(who, "physician") || hasRole(who, "nurse"):
		return w.onTeam(who, r.Compartment)
	case hasRole(who, "front-desk"):
		dept, known := w.dept[r.Compartment]
		if !known {
			dept = m.createdDept(r.Compartment) // a Patient the call created
		}
		return (r.Type == "Patient" || r.Type == "Appointment") && dept == who.Department
	}
	return false
}

// checkWrite checks one version stored by the call: who must be allowed to
// change its compartment, and that of the version it replaced.
func (m *model) checkWrite(rt *rapid.T, w *world, who *phivault.Principal, what string, r *phivault.Resource) {
	if why := m.mayWrite(rt, w, who, r); why != "" {
		rt.Fatalf("%s %s stored %s version %d in compartment %q: %s", who.ID, what, r.Ref(), r.Version, r.Compartment, why)
	}
	if r.Version == 1 {
		return
	}
	// The version replaced, or for a re-creation the last one before the
	// deletion: a write over a deleted resource is decided on it too.
	var prev *phivault.Resource
	var err error
	for v := r.Version - 1; v > 0 && prev == nil; v-- {
		if prev, err = m.v.VRead(context.Background(), r.Type, r.ID, v); err != nil && phivault.ErrorCode(err) != phivault.EGONE {
			rt.Fatal(err)
		}
	}
	if prev == nil {
		return
	}
	prev.Deleted = r.Deleted
	if why := m.mayWrite(rt, w, who, prev); why != "" {
		rt.Fatalf("%s %s stored %s version %d over version %d in compartment %q: %s", who.ID, what, r.Ref(), r.Version, prev.Version, prev.Compartment, why)
	}
}

// mayWrite is the model's write rule; it returns why r may not be stored
// by who, or "".
func (m *model) mayWrite(rt *rapid.T, w *world, who *phivault.Principal, r *phivault.Resource) string {
	if r.Compartment == "" {
		return "staff never store outside a compartment"
	}
	dept, known := w.dept[r.Compartment]
	if !known {
		dept = m.createdDept(r.Compartment) // a Patient the call created
	}
	switch {
	case hasRole(who, "physician") || hasRole(who, "nurse"):
		if r.Deleted && !hasRole(who, "physician") {
			return "only physicians delete"
		}
		if !w.onTeam(who, r.Compartment) {
			return "not on the patient's care team"
		}
	case hasRole(who, "front-desk"):
		if (r.Type != "Patient" && r.Type != "Appointment") || r.Deleted || dept != who.Department {
			return "front desk changes its own department's Patients and Appointments only"
		}
	default:
		return "this principal may not write"
	}
	return ""
}

// createdDept is the department of a Patient the call created.
func (m *model) createdDept(p string) string { return m.depts[p] }

// changed returns every version the last call stored (all carry the
// call's clock time), read from the store directly, and updates the
// model's current resources.
func (m *model) changed(rt fataler) []*phivault.Resource {
	ctx := context.Background()
	var sealed []*phivault.SealedResource
	err := m.db.View(ctx, func(tx phivault.StoreTx) error {
		for _, typ := range modelTypes {
			vs, _, err := tx.History(ctx, phivault.HistoryFilter{Type: typ, Since: m.clock})
			if err != nil {
				return err
			}
			sealed = append(sealed, vs...)
		}
		return nil
	})
	if err != nil {
		rt.Fatal(err)
	}
	var out []*phivault.Resource
	for _, sr := range sealed {
		r := &phivault.Resource{Type: sr.Type, ID: sr.ID, Version: sr.Version, Compartment: sr.Compartment, Deleted: true}
		if !sr.Deleted {
			if r, err = m.v.VRead(ctx, sr.Type, sr.ID, sr.Version); err != nil {
				rt.Fatal(err)
			}
		}
		out = append(out, r)
	}
	// Oldest first, so that the newest version of each resource is kept.
	slices.SortFunc(out, func(a, b *phivault.Resource) int { return int(a.Version - b.Version) })
	for _, r := range out {
		m.keep(rt, r)
	}
	return out
}

// modelTypes are the types a call may write.
var modelTypes = []string{"Patient", "CareTeam", "Encounter", "Observation", "Appointment", "Consent", "Organization", "Practitioner", "Basic"}

// anyResource picks a current resource of the world, or a random id.
func (m *model) anyResource(rt *rapid.T, w *world) (string, string) {
	if len(w.resources) == 0 || rapid.IntRange(0, 9).Draw(rt, "missing") == 0 {
		return "Observation", m.id("missing")
	}
	r := w.resources[rapid.IntRange(0, len(w.resources)-1).Draw(rt, "resource")]
	return r.Type, r.ID
}

// patientRef draws a reference to one of the world's patients, in any of
// the forms an attacker might use; inBundle adds the forms that only a
// Bundle resolves.
func (m *model) patientRef(rt *rapid.T, inBundle bool, fullURLs []string) string {
	p := rapid.SampledFrom(m.pats).Draw(rt, "ref-patient")
	forms := []string{
		"Patient/" + p,
		"https://evil.example/fhir/Patient/" + p,
		modelBase + "/Patient/" + p,
		"Patient?identifier=urn:mrn|" + p,
	}
	if inBundle && len(fullURLs) > 0 && rapid.Bool().Draw(rt, "ref-fullUrl") {
		return rapid.SampledFrom(fullURLs).Draw(rt, "ref-to")
	}
	return rapid.SampledFrom(forms).Draw(rt, "ref-form")
}

// body draws a resource body of typ (any type if typ is "").
func (m *model) body(rt *rapid.T, typ string) (string, []byte) {
	return m.bundleBody(rt, typ, false, nil)
}

func (m *model) bundleBody(rt *rapid.T, typ string, inBundle bool, fullURLs []string) (string, []byte) {
	if typ == "" || typ == "Organization" || typ == "Practitioner" || typ == "Basic" {
		typ = rapid.SampledFrom([]string{"Observation", "CareTeam", "Appointment", "Encounter", "Patient", "Consent"}).Draw(rt, "body-type")
	}
	ref := func() string { return m.patientRef(rt, inBundle, fullURLs) }
	pr := m.id(rapid.SampledFrom([]string{"Pr1", "Pr2", "Pr3"}).Draw(rt, "practitioner"))
	nurse := m.id("nurse")
	var obj map[string]any
	switch typ {
	case "Observation":
		obj = map[string]any{"status": "final", "code": map[string]any{"text": "x"}, "subject": map[string]any{"reference": ref()}}
	case "CareTeam":
		parts := []any{map[string]any{"member": map[string]any{"reference": "Practitioner/" + pr}},
			map[string]any{"member": map[string]any{"identifier": map[string]any{"system": access.PrincipalSystem, "value": nurse}}}}
		if rapid.Bool().Draw(rt, "patient-member") {
			parts = append(parts, map[string]any{"member": map[string]any{"reference": ref()}})
		}
		obj = map[string]any{"status": "active", "participant": parts}
		if rapid.Bool().Draw(rt, "subject") {
			obj["subject"] = map[string]any{"reference": ref()}
		}
	case "Appointment":
		obj = map[string]any{"status": "booked", "participant": []any{map[string]any{"status": "accepted", "actor": map[string]any{"reference": ref()}}}}
	case "Encounter":
		obj = map[string]any{"status": "finished", "class": map[string]any{"code": "AMB"}, "subject": map[string]any{"reference": ref()},
			"participant": []any{map[string]any{"individual": map[string]any{"reference": "Practitioner/" + pr}}}}
	case "Consent":
		obj = map[string]any{"status": "active", "scope": map[string]any{"text": "x"}, "category": []any{map[string]any{"text": "x"}},
			"patient": map[string]any{"reference": ref()}}
	case "Patient":
		obj = map[string]any{"identifier": []any{map[string]any{"system": "urn:mrn", "value": m.id("new")}},
			"managingOrganization": map[string]any{"reference": "Organization/" + rapid.SampledFrom(m.orgs).Draw(rt, "org")}}
	}
	obj["resourceType"] = typ
	b, _ := json.Marshal(obj)
	return typ, b
}

// ifNoneExist draws an If-None-Exist for a create of typ, or "".
func (m *model) ifNoneExist(rt *rapid.T, typ string) string {
	if typ != "Patient" || !rapid.Bool().Draw(rt, "if-none-exist") {
		return ""
	}
	return "identifier=urn:mrn|" + rapid.SampledFrom(m.pats).Draw(rt, "match")
}

// bundle draws a batch or transaction of one to four entries. Half of them
// open with a Patient entry carrying a fullUrl (a POST with ifNoneExist on
// some patient, a PUT of a patient, or a DELETE that carries a Patient),
// which the later entries' references name half of the time: the shapes of
// the review's findings 2 and 5, drawn often enough to be found.
func (m *model) bundle(rt *rapid.T, kind string, w *world) []byte {
	n := rapid.IntRange(1, 4).Draw(rt, "entries")
	type entry struct {
		method, url, fullURL, ifNone string
		body                         []byte
	}
	entries := make([]entry, n)
	var fullURLs []string
	patientFirst := rapid.Bool().Draw(rt, "patient-entry")
	for i := range entries {
		e := &entries[i]
		e.method = rapid.SampledFrom([]string{"POST", "POST", "PUT", "DELETE", "GET"}).Draw(rt, "method")
		if i == 0 && patientFirst {
			e.method = rapid.SampledFrom([]string{"POST", "PUT", "DELETE"}).Draw(rt, "patient-method")
		}
		forms := 4
		if i == 0 && patientFirst {
			forms = 3 // always a fullUrl
		}
		switch rapid.IntRange(0, forms-1).Draw(rt, "fullUrl") {
		case 0:
			e.fullURL = fmt.Sprintf("urn:uuid:%08d-0000-4000-8000-000000000000", i)
		case 1:
			e.fullURL = "Patient/" + rapid.SampledFrom(m.pats).Draw(rt, "fullUrl-patient")
		case 2:
			e.fullURL = modelBase + "/Patient/" + rapid.SampledFrom(m.pats).Draw(rt, "fullUrl-patient")
		}
		if e.fullURL != "" {
			fullURLs = append(fullURLs, e.fullURL)
		}
	}
	var out []any
	for i := range entries {
		e := &entries[i]
		var typ, id string
		patient := i == 0 && patientFirst
		switch {
		case patient && e.method == "POST":
			typ, e.body = m.bundleBody(rt, "Patient", true, fullURLs)
			e.url = typ
			e.ifNone = "identifier=urn:mrn|" + rapid.SampledFrom(m.pats).Draw(rt, "match")
		case patient && e.method == "PUT":
			id = rapid.SampledFrom(m.pats).Draw(rt, "put-patient")
			_, body := m.bundleBody(rt, "Patient", true, fullURLs)
			e.body, e.url = withID(body, id), "Patient/"+id
		case patient:
			typ, id = m.anyResource(rt, w)
			e.url = typ + "/" + id
			_, e.body = m.bundleBody(rt, "Patient", true, fullURLs) // a resource where none belongs
			e.body = withID(e.body, rapid.SampledFrom(m.pats).Draw(rt, "own-patient"))
		case e.method == "POST":
			typ, e.body = m.bundleBody(rt, "", true, fullURLs)
			e.url = typ
			e.ifNone = m.ifNoneExist(rt, typ)
		case e.method == "PUT":
			typ, id = m.anyResource(rt, w)
			_, body := m.bundleBody(rt, typ, true, fullURLs)
			e.body, e.url = withID(body, id), typ+"/"+id
		default:
			typ, id = m.anyResource(rt, w)
			e.url = typ + "/" + id
		}
		ent := map[string]any{"request": map[string]any{"method": e.method, "url": e.url}}
		if e.ifNone != "" {
			ent["request"].(map[string]any)["ifNoneExist"] = e.ifNone
		}
		if e.fullURL != "" {
			ent["fullUrl"] = e.fullURL
		}
		if e.body != nil {
			ent["resource"] = json.RawMessage(e.body)
		}
		out = append(out, ent)
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": kind, "entry": out})
	return b
}

// bundleReads returns the resources a Bundle response carries.
func (m *model) bundleReads(rt *rapid.T, res *phivault.BundleResult) []*phivault.Resource {
	var out struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(res.Body, &out); err != nil {
		rt.Fatal(err)
	}
	var rs []*phivault.Resource
	for _, e := range out.Entry {
		if len(e.Resource) == 0 {
			continue
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Meta         struct {
				VersionID string `json:"versionId"`
			} `json:"meta"`
		}
		json.Unmarshal(e.Resource, &head)
		version, _ := strconv.ParseInt(head.Meta.VersionID, 10, 64)
		r, err := m.v.VRead(context.Background(), head.ResourceType, head.ID, version) // a later entry may have changed it
		if err != nil {
			rt.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

// withID sets the id of a JSON body.
func withID(body []byte, id string) []byte {
	var obj map[string]any
	json.Unmarshal(body, &obj)
	obj["id"] = id
	b, _ := json.Marshal(obj)
	return b
}
