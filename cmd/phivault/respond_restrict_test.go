package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/playbook"
)

// containmentVault is a vault served by openApp over HTTP, with the
// incident responder's controls at hand, that a test can stop and start
// again on the same data folder.
type containmentVault struct {
	t     *testing.T
	dir   dataDir
	store StoreConfig // zero: SQLite in the folder
	admin string      // the bootstrap token
	app   *app
	srv   *httptest.Server
}

func newContainmentVault(t *testing.T, sc StoreConfig) *containmentVault {
	t.Helper()
	if sc.URL != "" {
		setStoreEnv(t, sc)
	}
	dir := filepath.Join(t.TempDir(), "data")
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"init", "-data", dir, "-audit-witness-file", testWitness(dataDir(dir))}, &out, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	_, after, _ := strings.Cut(out.String(), "only its hash is kept):\n")
	v := &containmentVault{t: t, dir: dataDir(dir), store: sc, admin: strings.TrimSpace(strings.SplitN(after, "\n", 2)[0])}
	v.start()
	t.Cleanup(v.stop)
	return v
}

func (v *containmentVault) start() {
	v.t.Helper()
	a, err := openApp(context.Background(), Config{Data: v.dir, Passphrase: "correct horse battery staple", Store: v.store,
		Audit: AuditConfig{WitnessFile: testWitness(v.dir)}}, slog.New(slog.DiscardHandler))
	if err != nil {
		v.t.Fatalf("openApp: %v", err)
	}
	v.app, v.srv = a, httptest.NewServer(a.fhirAndAdmin())
}

func (v *containmentVault) stop() {
	if v.app != nil {
		v.srv.Close()
		v.app.Close()
		v.app = nil
	}
}

// controls returns the responder's controls, as detect.go wires them.
func (v *containmentVault) controls() *vaultControls {
	a := v.app
	return &vaultControls{accounts: a.accounts, revoker: a.signIn.Sessions(), log: a.audit.log,
		containment: containment{access: a.access.rs, detail: a.detail}}
}

func (v *containmentVault) do(token, method, path, body string) (int, []byte) {
	v.t.Helper()
	req, err := http.NewRequest(method, v.srv.URL+path, strings.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (v *containmentVault) create(typ, body string) string {
	v.t.Helper()
	status, b := v.do(v.admin, "POST", "/fhir/"+typ, body)
	if status != http.StatusCreated {
		v.t.Fatalf("create %s = %d %s", typ, status, b)
	}
	var r struct{ ID string }
	json.Unmarshal(b, &r)
	return r.ID
}

// staffToken creates an active staff account (once) and returns a
// session token of a fresh login for it.
func (v *containmentVault) staffToken(id string, roles ...string) string {
	v.t.Helper()
	ctx := context.Background()
	if _, err := v.app.accounts.AccountByID(ctx, id); err != nil {
		err := v.app.accounts.CreateAccount(ctx, &phivault.Account{ID: id, Username: id, Kind: phivault.PrincipalStaff, Roles: roles,
			TrainingValidUntil: time.Now().Add(365 * 24 * time.Hour), Status: phivault.AccountActive, Created: time.Now()})
		if err != nil {
			v.t.Fatal(err)
		}
	}
	is, err := v.app.signIn.Sessions().Start(phivault.Principal{ID: id, Kind: phivault.PrincipalStaff, Roles: roles,
		TrainingValidUntil: time.Now().Add(365 * 24 * time.Hour), AuthTime: time.Now()}, false)
	if err != nil {
		v.t.Fatal(err)
	}
	return is.AccessToken
}

func responderCtx() context.Context {
	return phivault.WithRequestInfo(context.Background(), phivault.RequestInfo{Actor: incident.Actor, Purpose: "incident-response"})
}

// TestRestrictCompartment_API shows restrict-compartment through the
// HTTP API: a nurse on the patient's care team reads the patient; once
// the compartment is restricted, the read, a search, _history,
// $everything and a Bundle that reads the patient are refused; after
// breaking the glass they succeed; the restriction survives a restart;
// undoing it gives the care team its access back.
func TestRestrictCompartment_API(t *testing.T) { testRestrictCompartment(t, StoreConfig{}) }

// TestRestrictCompartment_APIPostgres is TestRestrictCompartment_API on
// a vault in PostgreSQL.
func TestRestrictCompartment_APIPostgres(t *testing.T) { testRestrictCompartment(t, testPostgres(t)) }

func testRestrictCompartment(t *testing.T, sc StoreConfig) {
	v := newContainmentVault(t, sc)
	pat := v.create("Patient", `{"resourceType":"Patient","active":true}`)
	care := func(id string) string {
		return `{"identifier":{"system":"` + access.PrincipalSystem + `","value":"` + id + `"}}`
	}
	v.create("CareTeam", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/`+pat+`"},"participant":[{"member":`+care("n-on-team")+`},{"member":`+care("n-other")+`}]}`)
	obs := v.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+pat+`"}}`)

	type probe struct{ name, method, path, body string }
	bundle := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/` + pat + `"}},{"request":{"method":"GET","url":"Observation/` + obs + `"}}]}`
	probes := []probe{
		{"read", "GET", "/fhir/Patient/" + pat, ""},
		{"read observation", "GET", "/fhir/Observation/" + obs, ""},
		{"search", "GET", "/fhir/Observation?subject=Patient/" + pat, ""},
		{"search include", "GET", "/fhir/Observation?_id=" + obs + "&_include=Observation:subject", ""},
		{"history", "GET", "/fhir/Observation/" + obs + "/_history", ""},
		{"everything", "GET", "/fhir/Patient/" + pat + "/$everything", ""},
		{"bundle", "POST", "/fhir", bundle},
	}
	// sees reports whether token gets pat's records through p: a 200
	// whose body holds the Observation (or, for the Bundle, both reads
	// answered 200).
	sees := func(token string, p probe) bool {
		t.Helper()
		status, body := v.do(token, p.method, p.path, p.body)
		if status >= 500 {
			t.Fatalf("%s = %d %s", p.name, status, body)
		}
		if status != http.StatusOK {
			return false
		}
		if p.name == "bundle" {
			return strings.Count(string(body), `"status":"200`) == 2
		}
		if p.name == "read" {
			return strings.Contains(string(body), pat)
		}
		return strings.Contains(string(body), `"id":"`+obs+`"`)
	}
	nurse, other := v.staffToken("n-on-team", "nurse"), v.staffToken("n-other", "nurse")
	for _, p := range probes {
		if !sees(nurse, p) {
			t.Fatalf("before the restriction, the care team's nurse is refused %s", p.name)
		}
	}

	act := incident.Action{ID: "act-restrict-1", Kind: playbook.ActionRestrictCompartment, Target: incident.Target{Patients: []string{pat}}}
	if err := v.controls().Do(responderCtx(), act); err != nil {
		t.Fatal(err)
	}
	for _, p := range probes {
		if sees(nurse, p) {
			t.Errorf("restricted: the care team's nurse still gets %s", p.name)
		}
	}
	if status, _ := v.do(v.admin, "GET", "/fhir/Observation/"+obs, ""); status == http.StatusOK {
		t.Error("restricted: the bootstrap token still reads the compartment")
	}
	// A write into the compartment, alone or in a transaction, is refused.
	write := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + pat + `"}}`
	if status, _ := v.do(nurse, "POST", "/fhir/Observation", write); status != http.StatusForbidden {
		t.Errorf("restricted: a create in the compartment = %d, want 403", status)
	}
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Observation"},"resource":` + write + `}]}`
	if status, body := v.do(nurse, "POST", "/fhir", tx); status == http.StatusOK {
		t.Errorf("restricted: a transaction writing the compartment = %d %s", status, body)
	}

	// The glass, once broken, opens the compartment to this nurse only.
	status, body := v.do(nurse, "POST", "/fhir/admin/break-glass", `{"patient":"`+pat+`","purpose":"ETREAT","reason":"cardiac arrest"}`)
	if status != http.StatusCreated {
		t.Fatalf("break the glass = %d %s", status, body)
	}
	for _, p := range probes {
		if !sees(nurse, p) {
			t.Errorf("with a break-the-glass grant, the nurse is refused %s", p.name)
		}
		if sees(other, p) {
			t.Errorf("another nurse of the team gets %s through someone else's grant", p.name)
		}
	}

	// The patient's access report lists the refused attempts without
	// naming the restriction.
	status, body = v.do(v.admin, "GET", "/fhir/admin/reports/patients/"+pat+"/access", "")
	if status != http.StatusOK || !strings.Contains(string(body), "n-on-team") {
		t.Fatalf("access report = %d %s", status, body)
	}
	if strings.Contains(string(body), "restrict") {
		t.Errorf("the patient's access report tells of the restriction: %s", body)
	}

	// A restart keeps the restriction.
	v.stop()
	v.start()
	other = v.staffToken("n-other", "nurse")
	if sees(other, probes[0]) {
		t.Fatal("the restriction did not survive a restart")
	}
	if err := v.controls().Undo(responderCtx(), act); err != nil {
		t.Fatal(err)
	}
	for _, p := range probes {
		if !sees(other, p) {
			t.Errorf("after undo, the care team's nurse is refused %s", p.name)
		}
	}

	// Each change was recorded, naming the patient only as its target.
	trail := (&auditApp{app: v.app}).trail(t)
	var changes []string
	for _, e := range trail {
		if e.Action == phivault.ActionIncident && e.TargetID == pat {
			changes = append(changes, e.Decision)
			if len(e.Compartments) > 0 {
				t.Errorf("the restriction's entry lists compartments %v (a tell in the patient's access report)", e.Compartments)
			}
		}
	}
	if len(changes) != 2 || !strings.Contains(changes[0], "restrict-compartment act-restrict-1") || !strings.Contains(changes[1], "undone") {
		t.Errorf("restriction entries %q", changes)
	}

	// Bad actions are refused with a reason, not carried out.
	for _, bad := range []incident.Action{
		{ID: "act-x", Kind: playbook.ActionRestrictCompartment},
		{ID: "act-y", Kind: playbook.ActionRestrictCompartment, Target: incident.Target{Patients: []string{"not an id!"}}},
	} {
		if err := v.controls().Do(responderCtx(), bad); phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("Do(%+v) = %v, want EINVALID", bad.Target, err)
		}
	}
}

var tokenRE = regexp.MustCompile(`^[a-z:]+=[0-9a-f]{32}$`)

// TestRaiseDetail_API shows raise-detail through the HTTP API: while it
// is raised, the target user's searches record each value as a keyed
// token, which the audit token route computes again from the value, and
// never the value; other users' searches, and the target's after the
// window or after undo, record names only. The raised set survives a
// restart.
func TestRaiseDetail_API(t *testing.T) { testRaiseDetail(t, StoreConfig{}) }

// TestRaiseDetail_APIPostgres is TestRaiseDetail_API on a vault in
// PostgreSQL.
func TestRaiseDetail_APIPostgres(t *testing.T) { testRaiseDetail(t, testPostgres(t)) }

func testRaiseDetail(t *testing.T, sc StoreConfig) {
	v := newContainmentVault(t, sc)
	watched, bystander := v.staffToken("u-watched", "physician"), v.staffToken("u-bystander", "physician")
	privacy := v.staffToken("u-privacy", "privacy-officer")
	const secret = "Zebulon"
	search := func(token string) {
		t.Helper()
		if status, body := v.do(token, "GET", "/fhir/Patient?name="+secret+"&birthdate=1970-01-01", ""); status != http.StatusOK {
			t.Fatalf("search = %d %s", status, body)
		}
	}
	// entries returns the search entries of actor since the trail had n.
	entries := func(actor string, n int) (all []*phivault.AuditEntry, size int) {
		trail := (&auditApp{app: v.app}).trail(t)
		for _, e := range trail[n:] {
			if e.Actor == actor && e.Action == phivault.ActionSearch {
				all = append(all, e)
			}
		}
		return all, len(trail)
	}
	_, n := entries("", 0)

	search(watched)
	if es, _ := entries("u-watched", n); len(es) != 1 || es[0].SearchValues != nil {
		t.Fatalf("before raise-detail: %+v", es)
	}
	act := incident.Action{ID: "act-detail-1", Kind: playbook.ActionRaiseDetail, Target: incident.Target{User: "u-watched"}, For: time.Hour}
	if err := v.controls().Do(responderCtx(), act); err != nil {
		t.Fatal(err)
	}
	_, n = entries("", 0)
	search(watched)
	search(bystander)
	es, _ := entries("u-watched", n)
	if len(es) != 1 || len(es[0].SearchValues) != 2 {
		t.Fatalf("raised: entries %+v", es)
	}
	for _, tv := range es[0].SearchValues {
		if !tokenRE.MatchString(tv) {
			t.Errorf("search value %q is not name=TOKEN", tv)
		}
	}
	if others, _ := entries("u-bystander", n); len(others) != 1 || others[0].SearchValues != nil {
		t.Errorf("another user's search records values: %+v", others)
	}
	// The investigator's token of the value matches; another value's does not.
	token := func(value string) string {
		t.Helper()
		status, body := v.do(privacy, "POST", "/fhir/audit/token", `{"param":"name","value":"`+value+`"}`)
		if status != http.StatusOK {
			t.Fatalf("token = %d %s", status, body)
		}
		var tr tokenResponse
		json.Unmarshal(body, &tr)
		return "name=" + tr.Token
	}
	if got := token(" zebulon "); !slices.Contains(es[0].SearchValues, got) {
		t.Errorf("token of the searched value %q, recorded %q", got, es[0].SearchValues)
	}
	if got := token("Zachary"); slices.Contains(es[0].SearchValues, got) {
		t.Error("another value has the searched value's token")
	}
	// The CLI asks the same route.
	t.Setenv("PHIVAULT_TOKEN", privacy)
	var cli bytes.Buffer
	if err := run(context.Background(), []string{"audit", "token", "-url", v.srv.URL + "/fhir", "-param", "name", "ZEBULON"}, &cli, io.Discard); err != nil {
		t.Fatalf("phivault audit token: %v", err)
	}
	if got := strings.TrimSpace(cli.String()); !slices.Contains(es[0].SearchValues, got) {
		t.Errorf("phivault audit token printed %q, recorded %q", got, es[0].SearchValues)
	}
	if status, _ := v.do(watched, "POST", "/fhir/audit/token", `{"param":"name","value":"x"}`); status != http.StatusForbidden {
		t.Errorf("a physician computes tokens: %d", status)
	}
	if status, _ := v.do(privacy, "POST", "/fhir/audit/token", `{"param":"name:exact","value":"x"}`); status != http.StatusBadRequest {
		t.Errorf("a modifier in param: %d", status)
	}

	// A restart keeps it; past the window, names only.
	v.stop()
	v.start()
	watched = v.staffToken("u-watched", "physician")
	_, n = entries("", 0)
	search(watched)
	if es, _ := entries("u-watched", n); len(es) != 1 || len(es[0].SearchValues) != 2 {
		t.Fatalf("after a restart: %+v", es)
	}
	q := &phivault.Query{Type: "Patient", Params: []phivault.QueryParam{{Name: "name", Values: []string{"x"}}}}
	if vals, err := v.app.detail.SearchValues(context.Background(), "u-watched", time.Now(), q); err != nil || len(vals) != 1 {
		t.Fatalf("within the window: %q, %v", vals, err)
	}
	if vals, err := v.app.detail.SearchValues(context.Background(), "u-watched", time.Now().Add(2*time.Hour), q); err != nil || vals != nil {
		t.Fatalf("past the window: %q, %v", vals, err)
	}

	// Undo stops it at once.
	if err := v.controls().Undo(responderCtx(), act); err != nil {
		t.Fatal(err)
	}
	_, n = entries("", 0)
	search(watched)
	if es, _ := entries("u-watched", n); len(es) != 1 || es[0].SearchValues != nil {
		t.Fatalf("after undo: %+v", es)
	}

	// The value itself is nowhere in the trail.
	for _, e := range (&auditApp{app: v.app}).trail(t) {
		b, _ := json.Marshal(e)
		if strings.Contains(strings.ToLower(string(b)), "zebulon") {
			t.Fatalf("the trail holds the searched value: %s", b)
		}
	}
}

// failNth is an audit log that refuses its nth append, once.
type failNth struct {
	phivault.AuditLog
	n, seen int
}

func (l *failNth) Append(ctx context.Context, es ...*phivault.AuditEntry) error {
	l.seen++
	if l.seen == l.n {
		return phivault.Errorf(phivault.EUNAVAILABLE, "down")
	}
	return l.AuditLog.Append(ctx, es...)
}

// TestRestrictCompartment_rollback shows that a restrict-compartment
// that fails part way lifts what it restricted (a failed action cannot be
// undone).
func TestRestrictCompartment_rollback(t *testing.T) {
	v := newContainmentVault(t, StoreConfig{})
	p1, p2 := v.create("Patient", `{"resourceType":"Patient"}`), v.create("Patient", `{"resourceType":"Patient"}`)
	c := v.controls()
	c.log = &failNth{AuditLog: c.log, n: 2}
	act := incident.Action{ID: "act-r", Kind: playbook.ActionRestrictCompartment, Target: incident.Target{Patients: []string{p1, p2}}}
	if err := c.Do(responderCtx(), act); phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
		t.Fatalf("Do = %v, want EUNAVAILABLE", err)
	}
	for _, p := range []string{p1, p2} {
		if r, err := v.app.access.rs.Restricted(context.Background(), p); err != nil || r {
			t.Errorf("after the failed action, %s restricted = %v, %v", p, r, err)
		}
	}
}

// TestRaisedDetail_reload shows that a raise-detail stored by another
// node (straight into the vault, not through this node's controls)
// applies here once the set is read again, and that its lowering does too.
func TestRaisedDetail_reload(t *testing.T) {
	v := newContainmentVault(t, StoreConfig{})
	d, ctx := v.app.detail, context.Background()
	clock := time.Now()
	d.now = func() time.Time { return clock }
	q := &phivault.Query{Type: "Patient", Params: []phivault.QueryParam{{Name: "name", Values: []string{"x"}}}}
	values := func() []string {
		t.Helper()
		vals, err := d.SearchValues(ctx, "u-elsewhere", clock, q)
		if err != nil {
			t.Fatal(err)
		}
		return vals
	}
	if vals := values(); vals != nil {
		t.Fatalf("before: %q", vals)
	}
	if err := v.app.access.rs.RaiseDetail(ctx, access.Watch{User: "u-elsewhere", Action: "act-other-node"}); err != nil {
		t.Fatal(err)
	}
	if vals := values(); vals != nil {
		t.Fatalf("read again too soon: %q", vals)
	}
	clock = clock.Add(detailReload)
	if vals := values(); len(vals) != 1 {
		t.Fatalf("after a reload: %q, want one token", vals)
	}
	if err := v.app.access.rs.LowerDetail(ctx, "act-other-node"); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(detailReload)
	if vals := values(); vals != nil {
		t.Fatalf("after lowering elsewhere and a reload: %q", vals)
	}
}
