package incident_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
)

// tokens authenticates bearer tokens as fixed principals.
type tokens map[string]*phivault.Principal

func (a tokens) Authenticate(ctx context.Context, token string) (context.Context, error) {
	p, ok := a[token]
	if !ok {
		return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "The bearer token is not valid.")
	}
	return phivault.WithPrincipal(ctx, p), nil
}

var people = tokens{
	"officer":  {ID: "po-1", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RolePrivacyOfficer}},
	"security": {ID: "sa-1", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RoleSecurityAdmin}},
	"nurse":    {ID: "nurse-1", Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}},
}

type apiFixture struct {
	*fixture
	h      http.Handler
	alerts *detect.MemStore
}

func newAPIFixture(t *testing.T) *apiFixture {
	f := &apiFixture{fixture: newFixture(t), alerts: detect.NewMemStore()}
	err := f.alerts.Commit(context.Background(), &detect.Commit{Alerts: []*detect.Alert{
		{ID: "00000000000000a1", Rule: "honeytoken", Severity: detect.SeverityCritical, User: "u-snoop", Patients: []string{"p-decoy"},
			First: f.now.Add(-3 * time.Hour), Last: f.now.Add(-2 * time.Hour), Detected: f.now.Add(-150 * time.Minute)},
		{ID: "00000000000000a2", Rule: "family", Severity: detect.SeverityHigh, User: "u-snoop", Patients: []string{"p-2"},
			First: f.now.Add(-5 * time.Hour), Last: f.now.Add(-5 * time.Hour), Detected: f.now.Add(-4 * time.Hour)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.h = incident.NewHandler(incident.HandlerOptions{
		Service: f.svc, API: &detect.API{Auth: people, Log: f.log, Now: func() time.Time { return f.now }}, Alerts: f.alerts,
	})
	return f
}

func (f *apiFixture) do(t *testing.T, token, method, target, body string, header ...string) *httptest.ResponseRecorder {
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

func decodeView(t *testing.T, w *httptest.ResponseRecorder) incident.View {
	t.Helper()
	var v incident.View
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s: %v", w.Body, err)
	}
	return v
}

func TestAPI_openGetChange(t *testing.T) {
	f := newAPIFixture(t)
	w := f.do(t, "officer", "POST", "/security/incidents",
		`{"title":"Jane Roe's chart opened by a porter","severity":"high","scope":{"users":["u-porter"],"patients":["p-9"]},"note":"Jane Roe called"}`)
	if w.Code != http.StatusCreated || w.Header().Get("ETag") != `W/"1"` {
		t.Fatalf("POST = %d %s, ETag %q", w.Code, w.Body, w.Header().Get("ETag"))
	}
	v := decodeView(t, w)
	if v.Title != "Jane Roe's chart opened by a porter" || v.Source != incident.SourceManual || v.Phase != incident.PhaseDetect || len(v.Clocks) != 3 {
		t.Fatalf("opened %+v", v)
	}

	w = f.do(t, "security", "GET", "/security/incidents/"+v.ID, "")
	got := decodeView(t, w)
	if w.Code != 200 || len(got.Timeline) != 1 || got.Timeline[0].Note != "Jane Roe called" || got.Timeline[0].Request == "" {
		t.Fatalf("GET = %d %+v", w.Code, got)
	}

	// A change without If-Match, or on a stale version, changes nothing.
	if w := f.do(t, "officer", "PATCH", "/security/incidents/"+v.ID, `{"phase":"contain"}`); w.Code != 400 {
		t.Fatalf("PATCH without If-Match = %d", w.Code)
	}
	w = f.do(t, "officer", "PATCH", "/security/incidents/"+v.ID, `{"phase":"contain","owner":"po-1"}`, "If-Match", `W/"1"`)
	if w.Code != 200 || w.Header().Get("ETag") != `W/"2"` {
		t.Fatalf("PATCH = %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "security", "PATCH", "/security/incidents/"+v.ID, `{"owner":"sa-1"}`, "If-Match", `W/"1"`); w.Code != 412 {
		t.Fatalf("stale PATCH = %d", w.Code)
	}
	w = f.do(t, "officer", "GET", "/security/incidents?open=true&user=u-porter", "")
	var list struct{ Incidents []incident.View }
	json.Unmarshal(w.Body.Bytes(), &list)
	if w.Code != 200 || len(list.Incidents) != 1 || list.Incidents[0].Phase != incident.PhaseContain || list.Incidents[0].Owner != "po-1" {
		t.Fatalf("list = %d %s", w.Code, w.Body)
	}

	// Every request is an entry, none with the title or the note.
	es := f.log.all()
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action+":"+e.Outcome)
		if strings.Contains(e.Decision, "Jane") {
			t.Fatalf("entry holds the title: %+v", e)
		}
	}
	want := []string{"incident:ok", "read:ok", "incident:invalid", "incident:ok", "incident:precondition", "search:ok"}
	if !slices.Equal(actions, want) {
		t.Fatalf("entries %v, want %v", actions, want)
	}
	if e := es[1]; !slices.Equal(e.Compartments, []string{"p-9"}) || !slices.Equal(e.Returned, []string{"Incident/" + v.ID}) {
		t.Fatalf("read entry %+v", e)
	}
	if e := es[5]; !slices.Equal(e.SearchParams, []string{"open", "user"}) {
		t.Fatalf("search entry params %v", e.SearchParams)
	}
}

func TestAPI_openFromAlerts(t *testing.T) {
	f := newAPIFixture(t)
	w := f.do(t, "security", "POST", "/security/incidents", `{"title":"decoy touched","alerts":["00000000000000a1","00000000000000a2"]}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST = %d %s", w.Code, w.Body)
	}
	v := decodeView(t, w)
	// Severity, scope and discovery come from the alerts.
	if v.Source != incident.SourceAlert || v.Severity != "critical" || !slices.Equal(v.Scope.Users, []string{"u-snoop"}) ||
		!slices.Equal(v.Scope.Patients, []string{"p-decoy", "p-2"}) || !v.Discovered.Equal(f.now.Add(-4*time.Hour)) ||
		!v.Scope.From.Equal(f.now.Add(-5*time.Hour)) || !v.Scope.To.Equal(f.now.Add(-2*time.Hour)) {
		t.Fatalf("from alerts: %+v", v)
	}
	// The near miss: an alert that does not exist is refused, and
	// nothing is opened.
	if w := f.do(t, "security", "POST", "/security/incidents", `{"title":"x","alerts":["00000000000000ff"]}`); w.Code != 400 {
		t.Fatalf("unknown alert = %d", w.Code)
	}
	if list, _ := f.svc.List(context.Background(), incident.Filter{}); len(list) != 1 {
		t.Fatalf("%d incidents, want 1", len(list))
	}
}

func TestAPI_refused(t *testing.T) {
	f := newAPIFixture(t)
	open := f.do(t, "officer", "POST", "/security/incidents", `{"title":"x","severity":"low"}`)
	id := decodeView(t, open).ID
	for _, tc := range []struct {
		name, token, method, target, body string
		code                              int
	}{
		{"no token", "", "GET", "/security/incidents", "", 401},
		{"nurse lists", "nurse", "GET", "/security/incidents", "", 403},
		{"nurse reads", "nurse", "GET", "/security/incidents/" + id, "", 403},
		{"nurse opens", "nurse", "POST", "/security/incidents", `{"title":"x","severity":"low"}`, 403},
		{"unknown field", "officer", "POST", "/security/incidents", `{"title":"x","severity":"low","ssn":"123"}`, 400},
		{"bad severity", "officer", "POST", "/security/incidents", `{"title":"x","severity":"dire"}`, 400},
		{"not JSON", "officer", "POST", "/security/incidents", `title=x`, 400},
		{"two values", "officer", "POST", "/security/incidents", `{"title":"x","severity":"low"}{}`, 400},
		{"bad phase filter", "officer", "GET", "/security/incidents?phase=panic", "", 400},
		{"bad limit", "officer", "GET", "/security/incidents?limit=100000", "", 400},
		{"missing", "officer", "GET", "/security/incidents/inc-00000000000000000000000000000000", "", 404},
		{"caller's words as id", "officer", "GET", "/security/incidents/Jane%20Roe", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(f.log.all())
			w := f.do(t, tc.token, tc.method, tc.target, tc.body)
			if w.Code != tc.code {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.target, w.Code, w.Body, tc.code)
			}
			if strings.Contains(w.Body.String(), "123") {
				t.Fatal("answer echoes a value")
			}
			es := f.log.all()
			if tc.code != 401 && len(es) != n+1 {
				t.Fatalf("%d entries recorded, want 1", len(es)-n)
			}
			for _, e := range es[n:] {
				if e.Outcome == "ok" || strings.Contains(e.TargetID, "Jane") {
					t.Fatalf("refusal recorded as %+v", e)
				}
			}
		})
	}
	// Nothing changed.
	if list, _ := f.svc.List(context.Background(), incident.Filter{}); len(list) != 1 || list[0].Version != 1 {
		t.Fatalf("incidents after refusals: %d", len(list))
	}
}

func TestAPI_auditDown(t *testing.T) {
	f := newAPIFixture(t)
	open := f.do(t, "officer", "POST", "/security/incidents", `{"title":"x","severity":"low"}`)
	id := decodeView(t, open).ID
	f.log.fail = true
	if w := f.do(t, "officer", "GET", "/security/incidents/"+id, ""); w.Code != 503 || strings.Contains(w.Body.String(), id) {
		t.Fatalf("GET with the trail down = %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "officer", "PATCH", "/security/incidents/"+id, `{"phase":"analyse"}`, "If-Match", "1"); w.Code != 503 {
		t.Fatalf("PATCH with the trail down = %d %s", w.Code, w.Body)
	}
	f.log.fail = false
	if in, _ := f.svc.Get(context.Background(), id); in.Version != 1 {
		t.Fatal("a change was stored without its entry")
	}
}

func TestAPI_actions(t *testing.T) {
	f, r, c := newResponder(t)
	h := incident.NewHandler(incident.HandlerOptions{
		Service: f.svc, API: &detect.API{Auth: people, Log: f.log, Now: func() time.Time { return f.now }}, Responder: r,
	})
	af := &apiFixture{fixture: f, h: h}
	a := decoyAlert(f.now)
	a.Rule, a.Severity = detect.RuleMassChange, detect.SeverityHigh
	in := r.Answer(context.Background(), a)[0]
	var block, suspend incident.Action
	for _, act := range in.Actions {
		switch act.Kind {
		case "block-client":
			block = act
		case "suspend-account":
			suspend = act
		}
	}
	base := "/security/incidents/" + in.ID + "/actions/"
	etag := `W/"` + strconv.FormatInt(in.Version, 10) + `"`
	for _, tc := range []struct {
		name, token, target, ifMatch string
		code                         int
	}{
		{"nurse", "nurse", base + block.ID + "/approve", etag, 403},
		{"no If-Match", "officer", base + block.ID + "/approve", "", 400},
		{"stale", "officer", base + block.ID + "/approve", `W/"1"`, 412},
		{"unknown op", "officer", base + block.ID + "/explode", etag, 404},
		{"unknown action", "officer", base + "act-0000000000000000/approve", etag, 404},
		{"undo what cannot be", "officer", base + block.ID + "/undo", etag, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := af.do(t, tc.token, "POST", tc.target, "", "If-Match", tc.ifMatch); w.Code != tc.code {
				t.Fatalf("= %d %s, want %d", w.Code, w.Body, tc.code)
			}
		})
	}
	if slices.Contains(c.all(), "block-client u-nurse") {
		t.Fatal("a refused approval carried the action out")
	}
	w := af.do(t, "officer", "POST", base+block.ID+"/approve", "", "If-Match", etag)
	v := decodeView(t, w)
	if w.Code != 200 || !slices.Contains(c.all(), "block-client u-nurse") {
		t.Fatalf("approve = %d %s", w.Code, w.Body)
	}
	for _, x := range v.Actions {
		if x.ID == block.ID && (x.State != incident.ActionDone || x.By != "po-1") {
			t.Fatalf("approved action %+v", x)
		}
	}
	w = af.do(t, "security", "POST", base+suspend.ID+"/undo", "", "If-Match", w.Header().Get("ETag"))
	if w.Code != 200 || !slices.Contains(c.all(), "undo suspend-account u-nurse") {
		t.Fatalf("undo = %d %s", w.Code, w.Body)
	}
}

// sliceTrail is an audit trail in memory.
type sliceTrail []*phivault.AuditEntry

func (s sliceTrail) Size(context.Context) (int64, error) { return int64(len(s)), nil }
func (s sliceTrail) Entries(_ context.Context, start, end int64) ([]*phivault.AuditEntry, error) {
	return s[start:end], nil
}

type residences map[string]string

func (r residences) States(_ context.Context, patients []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range patients {
		out[p] = r[p]
	}
	return out, nil
}

func TestAPI_breach(t *testing.T) {
	f := newAPIFixture(t)
	t0 := f.now.Add(-3 * time.Hour)
	trail := sliceTrail{
		{Time: t0, Actor: "u-porter", Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{"p-9"}, Returned: []string{"Patient/p-9/_history/1"}},
		{Time: t0.Add(time.Minute), Actor: "u-porter", Action: phivault.ActionSearch, Outcome: "ok", Compartments: []string{"p-8"},
			Returned: []string{"Condition/c-1/_history/1", "Patient/p-8/_history/2"}},
		{Time: t0.Add(2 * time.Minute), Actor: "u-other", Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{"p-7"}, Returned: []string{"Patient/p-7/_history/1"}},
	}
	f.h = incident.NewHandler(incident.HandlerOptions{
		Service: f.svc, API: &detect.API{Auth: people, Log: f.log, Now: func() time.Time { return f.now }},
		Trail: trail, Residences: residences{"p-9": "MA"},
	})
	w := f.do(t, "officer", "POST", "/security/incidents", `{"title":"porter","severity":"high","scope":{"users":["u-porter"]}}`)
	id := decodeView(t, w).ID
	if w := f.do(t, "security", "GET", "/security/incidents/"+id+"/breach", ""); w.Code != 403 {
		t.Fatalf("a security admin's breach report = %d", w.Code)
	}
	w = f.do(t, "officer", "GET", "/security/incidents/"+id+"/breach", "")
	var rep incident.Report
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &rep) != nil {
		t.Fatalf("breach = %d %s", w.Code, w.Body)
	}
	if !slices.Equal(rep.Impact.Patients, []string{"p-8", "p-9"}) || len(rep.Impact.Resources) != 3 || rep.Secured ||
		rep.ResidentsByState["MA"] != 1 || rep.ResidentsByState[""] != 1 || len(rep.Worksheet) != 4 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Deadlines) != 2 || rep.Deadlines[0].Notice != "individuals" || rep.Deadlines[1].Notice != "hhs-annual-log" {
		t.Fatalf("deadlines %+v", rep.Deadlines)
	}
	es := f.log.all()
	e := es[len(es)-1]
	if e.Action != phivault.ActionExport || !slices.Equal(e.Compartments, []string{"p-8", "p-9"}) || e.Outcome != "ok" {
		t.Fatalf("entry %+v", e)
	}
	// The near miss: an incident whose scope read nothing.
	w = f.do(t, "officer", "POST", "/security/incidents", `{"title":"quiet","severity":"low","scope":{"users":["u-none"]}}`)
	w = f.do(t, "officer", "GET", "/security/incidents/"+decodeView(t, w).ID+"/breach", "")
	rep = incident.Report{}
	if json.Unmarshal(w.Body.Bytes(), &rep) != nil || !rep.Secured || len(rep.Impact.Patients) != 0 || len(rep.Deadlines) != 0 {
		t.Fatalf("quiet report %s", w.Body)
	}
}

// TestAPI_propose adds actions by hand: one that needs no second person
// is carried out before the answer; a two-person one waits, and neither
// its proposer nor the person it is about may approve it.
func TestAPI_propose(t *testing.T) {
	f, r, c := newResponder(t)
	af := &apiFixture{fixture: f, h: incident.NewHandler(incident.HandlerOptions{
		Service: f.svc, API: &detect.API{Auth: people, Log: f.log, Now: func() time.Time { return f.now }}, Responder: r,
	})}
	in := f.open(t)
	path := "/security/incidents/" + in.ID + "/actions"
	etag := `W/"1"`
	for _, tc := range []struct {
		name, token, body, ifMatch string
		code                       int
	}{
		{"nurse", "nurse", `{"kind":"revoke-sessions","target":{"user":"u-nurse"}}`, etag, 403},
		{"no If-Match", "officer", `{"kind":"revoke-sessions","target":{"user":"u-nurse"}}`, "", 400},
		{"stale", "security", `{"kind":"revoke-sessions","target":{"user":"u-nurse"}}`, `W/"7"`, 412},
		{"unknown kind", "officer", `{"kind":"format-disk"}`, etag, 400},
		{"a duration it takes not", "officer", `{"kind":"suspend-account","target":{"user":"u-nurse"},"for":"1h"}`, etag, 400},
		{"not a duration", "officer", `{"kind":"block-source","target":{"sources":["203.0.113.7"]},"for":"soon"}`, etag, 400},
		{"unknown channel", "officer", `{"kind":"notify","channels":["pager"]}`, etag, 400},
		{"an id with a space", "officer", `{"kind":"revoke-sessions","target":{"user":"u nurse"}}`, etag, 400},
		{"unknown field", "officer", `{"kind":"revoke-sessions","approval":"auto"}`, etag, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := af.do(t, tc.token, "POST", path, tc.body, "If-Match", tc.ifMatch); w.Code != tc.code {
				t.Fatalf("= %d %s, want %d", w.Code, w.Body, tc.code)
			}
		})
	}
	if len(c.all()) != 0 {
		t.Fatalf("refused proposals carried out %v", c.all())
	}

	// Automatic: carried out at once, recorded as the officer's.
	w := af.do(t, "officer", "POST", path, `{"kind":"revoke-sessions","target":{"user":"u-nurse"}}`, "If-Match", etag)
	v := decodeView(t, w)
	if w.Code != 200 || !slices.Equal(c.all(), []string{"revoke-sessions u-nurse"}) || len(v.Actions) != 1 ||
		v.Actions[0].State != incident.ActionDone || v.Actions[0].ProposedBy != "po-1" {
		t.Fatalf("propose revoke-sessions = %d %s; controls did %v", w.Code, w.Body, c.all())
	}
	// Two-person by default: it waits; its proposer cannot approve it.
	w = af.do(t, "officer", "POST", path, `{"kind":"block-source","target":{"sources":["203.0.113.7"]},"for":"72h"}`, "If-Match", w.Header().Get("ETag"))
	v = decodeView(t, w)
	block := v.Actions[len(v.Actions)-1]
	if w.Code != 200 || block.State != incident.ActionAwaiting || block.For != 72*time.Hour || len(c.all()) != 1 {
		t.Fatalf("propose block-source = %d %s", w.Code, w.Body)
	}
	approve := path + "/" + block.ID + "/approve"
	if w2 := af.do(t, "officer", "POST", approve, "", "If-Match", w.Header().Get("ETag")); w2.Code != 403 {
		t.Fatalf("the proposer's own approval = %d %s", w2.Code, w2.Body)
	}
	w = af.do(t, "security", "POST", approve, "", "If-Match", w.Header().Get("ETag"))
	if w.Code != 200 || !slices.Contains(c.all(), "block-source ") {
		t.Fatalf("a second person's approval = %d %s; controls did %v", w.Code, w.Body, c.all())
	}
	// Asked for two people although it needs one: it waits.
	w = af.do(t, "security", "POST", path, `{"kind":"suspend-account","target":{"user":"u-nurse"},"twoPerson":true}`, "If-Match", w.Header().Get("ETag"))
	v = decodeView(t, w)
	if last := v.Actions[len(v.Actions)-1]; w.Code != 200 || last.State != incident.ActionAwaiting || last.Approval != "two-person" {
		t.Fatalf("propose two-person suspend = %d %s", w.Code, w.Body)
	}
}
