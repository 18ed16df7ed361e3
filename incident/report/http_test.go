package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/report"
	"github.com/phivault/phivault/internal/vaulttest"
)

// trail is an AuditLog keeping entries in memory.
type trail struct {
	mu      sync.Mutex
	entries []*phivault.AuditEntry
}

func (l *trail) Append(_ context.Context, es ...*phivault.AuditEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, es...)
	return nil
}

func (l *trail) all() []*phivault.AuditEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

// bytes returns the whole trail as JSON: what an investigator reads.
func (l *trail) bytes(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(l.all())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The nurse who reports: her account id, and the address she works from.
const (
	nurseID   = "u-nurse-4711"
	nurseAddr = "10.9.8.7"
	secret    = "Jane Roe's discharge letter went to the wrong fax"
)

// people authenticates bearer tokens as fixed principals, the way serve
// does: the principal in the context, the actor and roles in the
// request info.
type people map[string]*phivault.Principal

func (a people) Authenticate(ctx context.Context, token string) (context.Context, error) {
	p, ok := a[token]
	if !ok {
		return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "The bearer token is not valid.")
	}
	info, _ := phivault.RequestInfoFromContext(ctx)
	info.Actor, info.Roles = p.ID, p.Roles
	return phivault.WithRequestInfo(api.WithActor(phivault.WithPrincipal(ctx, p), p.ID), info), nil
}

var tokens = people{
	"nurse":    {ID: nurseID, Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}, Client: "ward-tablet-7"},
	"porter":   {ID: "u-porter", Kind: phivault.PrincipalStaff, Roles: []string{"porter"}},
	"patient":  {ID: "pt-1", Kind: phivault.PrincipalPatient, PatientID: "p-1"},
	"officer":  {ID: "po-1", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RolePrivacyOfficer}},
	"officer2": {ID: "po-2", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RolePrivacyOfficer}},
	"security": {ID: "sa-1", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RoleSecurityAdmin}},
	"operator": {ID: phivault.OperatorID, Kind: phivault.PrincipalSystem},
}

type fixture struct {
	h         http.Handler
	log       *trail
	store     *report.MemStore
	incidents *incident.Service
	now       time.Time
}

func newFixture(t *testing.T, limiter *report.Limiter) *fixture {
	t.Helper()
	dir := t.TempDir()
	keys, _ := vaulttest.Keyring(t, dir)
	db, _ := vaulttest.SQLite(t, dir)
	sealer := envelope.New(keys, envelope.Options{})
	f := &fixture{log: &trail{}, store: report.NewMemStore(), now: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)}
	now := func() time.Time { return f.now }
	f.incidents = incident.NewService(incident.Options{Store: incident.NewMemStore(), Audit: f.log,
		Sealer: envelope.NewNoteSealer(db, sealer, "incident"), Now: now})
	svc := report.NewService(report.Options{
		Store: f.store, Audit: f.log, Incidents: f.incidents, Now: now,
		Sealer: envelope.NewNoteSealer(db, sealer, "report"), Reporters: envelope.NewNoteSealer(db, sealer, "reporter"),
	})
	h := report.NewHandler(report.HandlerOptions{Service: svc, API: &detect.API{Auth: tokens, Log: f.log, Now: now}, Limiter: limiter})
	// What the server does first: a request id and the source address.
	n := 0
	var mu sync.Mutex
	f.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		id := strings.Repeat("0", 15) + string(rune('a'+n%6))
		mu.Unlock()
		src := "10.0.0.1"
		if r.Header.Get("Authorization") == "Bearer nurse" {
			src = nurseAddr
		}
		next := r.WithContext(phivault.WithRequestInfo(r.Context(), phivault.RequestInfo{ID: id, Source: src}))
		h.ServeHTTP(w, next)
	})
	return f
}

func (f *fixture) do(t *testing.T, token, method, target, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func (f *fixture) submit(t *testing.T, token, body string) report.Ack {
	t.Helper()
	w := f.do(t, token, "POST", "/security/reports", body)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /security/reports = %d %s", w.Code, w.Body)
	}
	var ack report.Ack
	if err := json.Unmarshal(w.Body.Bytes(), &ack); err != nil {
		t.Fatal(err)
	}
	if ack.ID == "" || ack.Receipt == "" || ack.State != report.StateReceived {
		t.Fatalf("ack %+v", ack)
	}
	return ack
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s: %v", w.Body, err)
	}
	return v
}

func TestSubmit_named(t *testing.T) {
	f := newFixture(t, nil)
	ack := f.submit(t, "nurse", `{"kind":"misdirected-record","description":"`+secret+`","patient":"p-9"}`)

	// The reporter follows it with the receipt, and finds it among hers.
	w := f.do(t, "nurse", "GET", "/security/reports/"+ack.ID, "", report.ReceiptHeader, ack.Receipt)
	if v := decode[report.ReceiptView](t, w); w.Code != 200 || v.ID != ack.ID || v.State != report.StateReceived {
		t.Fatalf("receipt GET = %d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "Jane") {
		t.Fatalf("the receipt view holds the description: %s", w.Body)
	}
	w = f.do(t, "nurse", "GET", "/security/reports?mine", "")
	if v := decode[struct{ Reports []report.ReceiptView }](t, w); w.Code != 200 || len(v.Reports) != 1 || v.Reports[0].ID != ack.ID {
		t.Fatalf("mine = %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "porter", "GET", "/security/reports?mine", ""); !strings.Contains(w.Body.String(), `"reports":[]`) {
		t.Fatalf("another's mine = %d %s", w.Code, w.Body)
	}

	// An officer reads it whole, the description opened.
	w = f.do(t, "officer", "GET", "/security/reports/"+ack.ID, "")
	v := decode[report.View](t, w)
	if w.Code != 200 || v.Description != secret || v.Reporter != nurseID || v.Patient != "p-9" || len(v.History) != 1 {
		t.Fatalf("officer GET = %d %s", w.Code, w.Body)
	}

	// A named submission is the reporter's own entry; nothing holds the description.
	es := f.log.all()
	if e := es[0]; e.Actor != nurseID || e.TargetType != report.TargetType || e.TargetID != ack.ID || !slices.Equal(e.Compartments, []string{"p-9"}) {
		t.Fatalf("submission entry %+v", e)
	}
	if bytes.Contains(f.log.bytes(t), []byte("Jane")) {
		t.Fatal("the trail holds the description")
	}
	// The detectors do not take a report naming a patient for a look at the record.
	for _, e := range es {
		if ev := detect.FromEntry(1, e); ev.OnRecords() {
			t.Fatalf("entry %s %s counts as a look at records", e.Action, e.TargetType)
		}
	}
}

// An anonymous report: nothing investigators see (the reports API, the
// trail) names the nurse or where she sent it from; she still follows it.
func TestSubmit_anonymous(t *testing.T) {
	f := newFixture(t, nil)
	ack := f.submit(t, "nurse", `{"kind":"odd-access","description":"`+secret+`","user":"u-porter","anonymous":true}`)
	if !ack.Anonymous {
		t.Fatalf("ack %+v", ack)
	}
	var seen bytes.Buffer
	for _, path := range []string{"/security/reports", "/security/reports/" + ack.ID, "/security/reports?kind=odd-access"} {
		w := f.do(t, "officer", "GET", path, "")
		if w.Code != 200 {
			t.Fatalf("GET %s = %d %s", path, w.Code, w.Body)
		}
		seen.Write(w.Body.Bytes())
	}
	if !strings.Contains(seen.String(), `"reporter":"anonymous"`) {
		t.Fatalf("officers see %s", seen.String())
	}
	// She follows it; her own list does not show it (nobody's list does).
	if w := f.do(t, "nurse", "GET", "/security/reports/"+ack.ID, "", report.ReceiptHeader, ack.Receipt); w.Code != 200 {
		t.Fatalf("receipt GET = %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "nurse", "GET", "/security/reports?mine", ""); strings.Contains(w.Body.String(), ack.ID) {
		t.Fatalf("mine shows the anonymous report: %s", w.Body)
	}
	seen.Write(f.log.bytes(t))
	stored, _ := f.store.Get(context.Background(), ack.ID)
	b, _ := json.Marshal(stored)
	seen.Write(b)
	for _, tell := range []string{nurseID, nurseAddr, "nurse", "ward-tablet-7", ack.Receipt} {
		if strings.Contains(seen.String(), tell) {
			t.Errorf("investigators can read %q", tell)
		}
	}
	var n int
	for _, e := range f.log.all() {
		if e.TargetID == ack.ID && e.Actor == report.AnonymousActor {
			n++
		}
	}
	if n != 2 { // the submission and the receipt read, but the mine list, which names no report
		t.Fatalf("%d entries of the anonymous reporter, want 2", n)
	}
}

// A wrong receipt is the same 404 as a report that does not exist.
func TestReceipt_wrong(t *testing.T) {
	f := newFixture(t, nil)
	ack := f.submit(t, "nurse", `{"kind":"phishing","description":"a mail asking for my password"}`)
	other := f.submit(t, "porter", `{"kind":"phishing","description":"the same mail"}`)
	wrong := f.do(t, "nurse", "GET", "/security/reports/"+ack.ID, "", report.ReceiptHeader, other.Receipt)
	none := f.do(t, "nurse", "GET", "/security/reports/rep-00000000000000000000000000000000", "", report.ReceiptHeader, ack.Receipt)
	if wrong.Code != 404 || none.Code != 404 || wrong.Body.String() != none.Body.String() {
		t.Fatalf("wrong receipt = %d %s; no report = %d %s", wrong.Code, wrong.Body, none.Code, none.Body)
	}
	// Without a receipt, a nurse is no officer.
	if w := f.do(t, "nurse", "GET", "/security/reports/"+ack.ID, ""); w.Code != 403 {
		t.Fatalf("nurse GET without receipt = %d", w.Code)
	}
	if w := f.do(t, "nurse", "GET", "/security/reports", ""); w.Code != 403 {
		t.Fatalf("nurse list = %d", w.Code)
	}
}

func TestSubmit_refused(t *testing.T) {
	f := newFixture(t, nil)
	const ok = `{"kind":"lost-device","description":"my phone is gone"}`
	for _, tt := range []struct {
		name, token, body string
		want              int
	}{
		{"patient", "patient", ok, http.StatusForbidden},
		{"operator", "operator", ok, http.StatusForbidden},
		{"no token", "", ok, http.StatusUnauthorized},
		{"unknown field", "nurse", `{"kind":"lost-device","description":"x","reporter":"u-1"}`, http.StatusBadRequest},
		{"unknown kind", "nurse", `{"kind":"gossip","description":"x"}`, http.StatusBadRequest},
		{"no description", "nurse", `{"kind":"other","description":"  "}`, http.StatusBadRequest},
		{"too long", "nurse", `{"kind":"other","description":"` + strings.Repeat("x", report.MaxDescription+1) + `"}`, http.StatusBadRequest},
		{"oversized", "nurse", `{"kind":"other","description":"` + strings.Repeat("x", report.MaxBody) + `"}`, http.StatusRequestEntityTooLarge},
		{"two values", "nurse", ok + ok, http.StatusBadRequest},
		{"bad patient id", "nurse", `{"kind":"other","description":"x","patient":"p 1"}`, http.StatusBadRequest},
	} {
		if w := f.do(t, tt.token, "POST", "/security/reports", tt.body); w.Code != tt.want {
			t.Errorf("%s: POST = %d %s, want %d", tt.name, w.Code, w.Body, tt.want)
		}
	}
	if rs, _ := f.store.List(context.Background(), report.Filter{}); len(rs) != 0 {
		t.Fatalf("%d reports stored", len(rs))
	}
	// Refused submissions are recorded without the account, but for
	// those that are not staff (they report nothing).
	for _, e := range f.log.all() {
		if e.Outcome == "ok" || (e.Actor != report.AnonymousActor && e.Actor != "pt-1" && e.Actor != phivault.OperatorID) || e.Source == nurseAddr && e.Actor == report.AnonymousActor {
			t.Errorf("refusal entry %+v", e)
		}
	}
	if n := len(f.log.all()); n != 9 { // all but the unauthenticated one
		t.Errorf("%d entries, want 9", n)
	}
}

func TestSubmit_rateLimited(t *testing.T) {
	f := newFixture(t, &report.Limiter{N: 2, Window: time.Hour, Now: func() time.Time { return time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC) }})
	const body = `{"kind":"phishing","description":"another odd mail","anonymous":true}`
	f.submit(t, "nurse", body)
	f.submit(t, "nurse", body)
	w := f.do(t, "nurse", "POST", "/security/reports", body)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "3600" {
		t.Fatalf("third POST = %d %s, Retry-After %q", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	f.submit(t, "porter", body) // another account is not held back
	es := f.log.all()
	if e := es[2]; e.Outcome != "throttled" || e.Actor != report.AnonymousActor || e.Source != "" {
		t.Fatalf("throttled entry %+v", e)
	}
}

func TestLimiter_bounded(t *testing.T) {
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	l := &report.Limiter{N: 1, Window: time.Hour, Keys: 2, Now: func() time.Time { return now }}
	for _, tt := range []struct {
		key  string
		want bool
	}{{"a", true}, {"a", false}, {"b", true}, {"c", false}} {
		if ok, _ := l.Allow(tt.key); ok != tt.want {
			t.Fatalf("Allow(%q) = %v, want %v", tt.key, ok, tt.want)
		}
	}
	now = now.Add(time.Hour + time.Second) // a and b's windows are over: room again
	if ok, _ := l.Allow("c"); !ok {
		t.Fatal("Allow(c) after the window = false")
	}
}

// Opening an anonymous reporter takes two different officers, each step
// recorded; the reporter sees it through her receipt.
func TestIdentity_twoPeople(t *testing.T) {
	f := newFixture(t, nil)
	ack := f.submit(t, "nurse", `{"kind":"odd-access","description":"`+secret+`","anonymous":true}`)
	path := "/security/reports/" + ack.ID + "/identity"
	for _, tt := range []struct {
		name, token, body string
		want              int
	}{
		{"nurse asks", "nurse", `{"reason":"curious"}`, 403},
		{"operator asks", "operator", `{"reason":"needed"}`, 403},
		{"no reason", "officer", `{}`, 403}, // a read before any opening
		{"officer asks", "officer", `{"reason":"the reporter must testify"}`, 202},
		{"asks again", "officer2", `{"reason":"me too"}`, 409},
		{"same officer approves", "officer", `{"approve":true}`, 403},
		{"same officer reads", "officer", ``, 403},
		{"operator approves", "operator", `{"approve":true}`, 403},
		{"nurse approves", "nurse", `{"approve":true}`, 403},
	} {
		if w := f.do(t, tt.token, "POST", path, tt.body); w.Code != tt.want {
			t.Fatalf("%s: POST identity = %d %s, want %d", tt.name, w.Code, w.Body, tt.want)
		}
	}
	if w := f.do(t, "nurse", "GET", "/security/reports/"+ack.ID, "", report.ReceiptHeader, ack.Receipt); decode[report.ReceiptView](t, w).IdentityRequested.IsZero() {
		t.Fatalf("the reporter does not see the request: %s", w.Body)
	}
	before := len(f.log.all())
	w := f.do(t, "security", "POST", path, `{"approve":true}`)
	if got := decode[report.IdentityAnswer](t, w); w.Code != 200 || got.Reporter != nurseID || got.RequestedBy != "po-1" || got.ApprovedBy != "sa-1" {
		t.Fatalf("second officer approves = %d %s", w.Code, w.Body)
	}
	if e := f.log.all()[before]; e.Actor != "sa-1" || e.TargetID != ack.ID || !strings.Contains(e.Decision, "identity-opened") {
		t.Fatalf("approval entry %+v", e)
	}
	// The two may read it again (each read an entry); a third may not.
	if w := f.do(t, "officer", "POST", path, ``); w.Code != 200 || decode[report.IdentityAnswer](t, w).Reporter != nurseID {
		t.Fatalf("requester reads = %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "officer2", "POST", path, ``); w.Code != 403 {
		t.Fatalf("third officer reads = %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "security", "POST", path, `{"approve":true}`); w.Code != 409 {
		t.Fatalf("approve again = %d", w.Code)
	}
	// The reporter knows; the officers' view shows who opened it, not whom.
	w = f.do(t, "nurse", "GET", "/security/reports/"+ack.ID, "", report.ReceiptHeader, ack.Receipt)
	if decode[report.ReceiptView](t, w).IdentityOpened.IsZero() {
		t.Fatalf("the reporter does not see the opening: %s", w.Body)
	}
	w = f.do(t, "officer2", "GET", "/security/reports/"+ack.ID, "")
	if v := decode[report.View](t, w); v.Reporter != "anonymous" || v.Identity == nil || v.Identity.ApprovedBy != "sa-1" || v.Identity.Reason != "the reporter must testify" {
		t.Fatalf("officer view %s", w.Body)
	}
	// Even once opened, the trail never names her, not even for her
	// refused tries at the officers' routes.
	for _, e := range f.log.all() {
		if b, _ := json.Marshal(e); bytes.Contains(b, []byte(nurseID)) || bytes.Contains(b, []byte(nurseAddr)) {
			t.Fatalf("the trail names the reporter: %s", b)
		}
	}
	// A named report has no identity to open.
	named := f.submit(t, "porter", `{"kind":"other","description":"x"}`)
	if w := f.do(t, "officer", "POST", "/security/reports/"+named.ID+"/identity", `{"reason":"r"}`); w.Code != 400 {
		t.Fatalf("identity of a named report = %d", w.Code)
	}
}

func TestTriage(t *testing.T) {
	f := newFixture(t, nil)
	ack := f.submit(t, "nurse", `{"kind":"misdirected-record","description":"`+secret+`","patient":"p-9","anonymous":true}`)
	path := "/security/reports/" + ack.ID
	if w := f.do(t, "nurse", "POST", path+"/incident", ``, "If-Match", `W/"1"`); w.Code != 403 {
		t.Fatalf("nurse triage = %d", w.Code)
	}
	if w := f.do(t, "officer", "POST", path+"/incident", ``); w.Code != 400 {
		t.Fatalf("triage without If-Match = %d", w.Code)
	}
	w := f.do(t, "officer", "PATCH", path, `{"state":"triaging","note":"calling the fax owner"}`, "If-Match", `W/"1"`)
	if v := decode[report.View](t, w); w.Code != 200 || v.State != report.StateTriaging || v.Version != 2 || v.History[2].Note != "calling the fax owner" {
		t.Fatalf("PATCH = %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "officer", "PATCH", path, `{"state":"closed-no-action"}`, "If-Match", `W/"1"`); w.Code != 412 {
		t.Fatalf("stale PATCH = %d", w.Code)
	}
	if w := f.do(t, "officer", "PATCH", path, `{"state":"incident"}`, "If-Match", `W/"2"`); w.Code != 400 {
		t.Fatalf("PATCH into incident = %d", w.Code)
	}
	w = f.do(t, "officer", "POST", path+"/incident", `{"severity":"high"}`, "If-Match", `W/"2"`)
	got := decode[report.TriageAnswer](t, w)
	if w.Code != 200 || got.Report.State != report.StateIncident || got.Report.Incident != got.Incident || got.Incident == "" {
		t.Fatalf("triage = %d %s", w.Code, w.Body)
	}
	in, err := f.incidents.Get(context.Background(), got.Incident)
	if err != nil || in.Source != incident.SourceReport || in.Severity != detect.SeverityHigh || !slices.Equal(in.Scope.Patients, []string{"p-9"}) || !in.Discovered.Equal(ack.Submitted) {
		t.Fatalf("incident %+v, %v", in, err)
	}
	tl, _ := f.incidents.Timeline(context.Background(), in.ID)
	if note, err := f.incidents.OpenText(in.ID, tl[0].Note); err != nil || string(note) != secret {
		t.Fatalf("the incident's first note = %q, %v", note, err)
	}
	if w := f.do(t, "officer", "POST", path+"/incident", ``, "If-Match", `W/"3"`); w.Code != 409 {
		t.Fatalf("second triage = %d %s", w.Code, w.Body)
	}
	// Another report joins the same incident; a missing incident is refused.
	second := f.submit(t, "porter", `{"kind":"misdirected-record","description":"the same fax","patient":"p-10"}`)
	spath := "/security/reports/" + second.ID + "/incident"
	if w := f.do(t, "officer", "POST", spath, `{"incident":"inc-nope"}`, "If-Match", `W/"1"`); w.Code != 400 {
		t.Fatalf("triage into a missing incident = %d", w.Code)
	}
	if w := f.do(t, "officer", "POST", spath, `{"incident":"`+in.ID+`"}`, "If-Match", `W/"1"`); w.Code != 200 {
		t.Fatalf("triage into an existing incident = %d %s", w.Code, w.Body)
	}
	in, _ = f.incidents.Get(context.Background(), in.ID)
	if !slices.Equal(in.Scope.Patients, []string{"p-9", "p-10"}) || in.Version != 2 {
		t.Fatalf("joined incident %+v", in)
	}
	if w := f.do(t, "officer", "GET", "/security/reports?state=incident", ""); strings.Count(w.Body.String(), `"state":"incident"`) != 2 {
		t.Fatalf("list by state = %s", w.Body)
	}
	if w := f.do(t, "officer", "GET", "/security/reports?state=lost", ""); w.Code != 400 {
		t.Fatalf("bad state filter = %d", w.Code)
	}
}
