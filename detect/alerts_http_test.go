package detect_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// alertsAuth is a fake Authenticator: bearer token → principal.
type alertsAuth map[string]*phivault.Principal

func (a alertsAuth) Authenticate(ctx context.Context, token string) (context.Context, error) {
	p, ok := a[token]
	if !ok {
		return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "The bearer token is not valid.")
	}
	return phivault.WithPrincipal(ctx, p), nil
}

var alertsPrincipals = alertsAuth{
	"officer":  {ID: "po-1", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RolePrivacyOfficer}},
	"security": {ID: "sa-1", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RoleSecurityAdmin}},
	"nurse":    {ID: "nurse-1", Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}},
}

// alertsLog is an AuditLog that keeps entries in a slice. Each entry is
// stamped with whether the response had begun when it was appended.
type alertsLog struct {
	mu      sync.Mutex
	entries []*phivault.AuditEntry
	early   []bool // early[i]: entries[i] was appended before any byte of the response
	w       *alertsWatch
	fail    bool
}

func (l *alertsLog) Append(ctx context.Context, entries ...*phivault.AuditEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return errors.New("disk full")
	}
	for _, e := range entries {
		cp := *e
		l.entries = append(l.entries, &cp)
		l.early = append(l.early, l.w == nil || !l.w.wrote)
	}
	return nil
}

func (l *alertsLog) last(t *testing.T) *phivault.AuditEntry {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) == 0 {
		t.Fatal("no audit entry recorded")
	}
	if !l.early[len(l.early)-1] {
		t.Fatal("audit entry appended after the response began")
	}
	return l.entries[len(l.entries)-1]
}

func (l *alertsLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// alertsWatch notes when a response begins.
type alertsWatch struct {
	http.ResponseWriter
	wrote bool
}

func (w *alertsWatch) WriteHeader(code int) { w.wrote = true; w.ResponseWriter.WriteHeader(code) }
func (w *alertsWatch) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// alertsSealer is a NoteSealer with AES-GCM under a random key.
type alertsSealer struct{ aead cipher.AEAD }

func newAlertsSealer(t *testing.T) *alertsSealer {
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return &alertsSealer{g}
}

func (s *alertsSealer) Seal(alert string, p []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, p, []byte(alert)), nil
}

func (s *alertsSealer) Open(alert string, c []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(c) < n {
		return nil, errors.New("short")
	}
	return s.aead.Open(nil, c[:n], c[n:], []byte(alert))
}

var alertsT0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// alertsFixture is a handler over a MemStore holding five alerts.
type alertsFixture struct {
	store    *detect.MemStore
	log      *alertsLog
	h        http.Handler
	alerts   []*detect.Alert
	triaged  []*detect.Triage
	suppress *detect.TriageSuppressor
}

func newAlertsFixture(t *testing.T) *alertsFixture {
	t.Helper()
	f := &alertsFixture{store: detect.NewMemStore(), log: &alertsLog{}, suppress: detect.NewTriageSuppressor(nil)}
	mk := func(rule, key, user string, sev detect.Severity, score int, hoursAgo int, patients ...string) *detect.Alert {
		return &detect.Alert{
			ID: detect.AlertID(rule, key), Rule: rule, Key: key, Severity: sev, Score: score, User: user,
			Patients: patients, First: alertsT0.Add(-time.Hour), Last: alertsT0,
			Detected: alertsT0.Add(-time.Duration(hoursAgo) * time.Hour),
			Why:      "User " + user + " opened the record of patient " + strings.Join(patients, ",") + " with no care relationship.",
			Evidence: []string{"trail/12", "ingest/3"}, Events: 2, Factors: []string{"3 distinct patients today, 5x the user's usual"},
			State: detect.StateOpen,
		}
	}
	f.alerts = []*detect.Alert{
		mk("self-access", "u1|p1", "u1", detect.SeverityHigh, 80, 1, "p1"),
		mk("family", "u1|p2", "u1", detect.SeverityMedium, 60, 2, "p2"),
		mk("family", "u2|p3", "u2", detect.SeverityMedium, 40, 3, "p3", "p1"),
		mk("honeytoken", "u3|p9", "u3", detect.SeverityCritical, 100, 4, "p9"),
		mk("volume-spike", "u2|2026-12-01", "u2", detect.SeverityLow, 20, 5),
	}
	if err := f.store.Commit(t.Context(), &detect.Commit{Alerts: f.alerts}); err != nil {
		t.Fatal(err)
	}
	f.h = detect.NewHandler(detect.HandlerOptions{
		Store: f.store, Auth: alertsPrincipals, Log: f.log, Notes: newAlertsSealer(t),
		OnTriage: func(tr *detect.Triage) { f.triaged = append(f.triaged, tr); f.suppress.Observe(tr) },
		Now:      func() time.Time { return alertsT0 },
	})
	return f
}

// do serves one request and returns the response.
func (f *alertsFixture) do(t *testing.T, token, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	w := &alertsWatch{ResponseWriter: rec}
	f.log.mu.Lock()
	f.log.w = w
	f.log.mu.Unlock()
	f.h.ServeHTTP(w, r)
	return rec
}

type alertsPageJSON struct {
	Alerts []alertJSON `json:"alerts"`
	Next   string      `json:"next"`
}

type alertJSON struct {
	ID          string    `json:"id"`
	Rule        string    `json:"rule"`
	Severity    string    `json:"severity"`
	Score       int       `json:"score"`
	User        string    `json:"user"`
	Patients    []string  `json:"patients"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Detected    time.Time `json:"detected"`
	Explanation string    `json:"explanation"`
	Factors     []string  `json:"factors"`
	Evidence    []string  `json:"evidence"`
	Events      int64     `json:"events"`
	State       string    `json:"state"`
	Suppressed  bool      `json:"suppressed"`
	Triages     []struct {
		Decision string `json:"decision"`
		Reason   string `json:"reason"`
		By       string `json:"by"`
		Note     string `json:"note"`
	} `json:"triages"`
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

func ids(alerts []alertJSON) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.ID)
	}
	return out
}

func TestAlertsAPI_List(t *testing.T) {
	f := newAlertsFixture(t)
	t.Run("OK", func(t *testing.T) {
		rec := f.do(t, "officer", "GET", "/security/alerts", "")
		if rec.Code != 200 {
			t.Fatalf("GET /security/alerts = %d %s, want 200", rec.Code, rec.Body)
		}
		page := decode[alertsPageJSON](t, rec)
		want := []string{f.alerts[0].ID, f.alerts[1].ID, f.alerts[2].ID, f.alerts[3].ID, f.alerts[4].ID} // newest first
		if got := ids(page.Alerts); !slices.Equal(got, want) {
			t.Errorf("ids = %v, want %v", got, want)
		}
		if page.Next != "" {
			t.Errorf("next = %q on the only page", page.Next)
		}
		a := page.Alerts[0]
		if a.Rule != "self-access" || a.Severity != "high" || a.Score != 80 || a.User != "u1" ||
			!slices.Equal(a.Patients, []string{"p1"}) || !a.First.Equal(alertsT0.Add(-time.Hour)) || !a.Last.Equal(alertsT0) ||
			!a.Detected.Equal(alertsT0.Add(-time.Hour)) || !strings.Contains(a.Explanation, "no care relationship") ||
			!slices.Equal(a.Evidence, []string{"trail/12", "ingest/3"}) || a.Events != 2 || a.State != "open" || len(a.Factors) != 1 {
			t.Errorf("first alert = %+v", a)
		}
		e := f.log.last(t)
		if e.Action != phivault.ActionSearch || e.TargetType != detect.TargetAlert || e.Actor != "po-1" || e.Outcome != "ok" {
			t.Errorf("entry = %+v, want a search of alerts by po-1", e)
		}
		slices.Sort(e.Compartments)
		if !slices.Equal(e.Compartments, []string{"p1", "p2", "p3", "p9"}) || len(e.Returned) != 5 {
			t.Errorf("entry compartments %v returned %v, want every listed alert's patients and ids", e.Compartments, e.Returned)
		}
	})
	t.Run("Filters", func(t *testing.T) {
		tests := []struct {
			query string
			want  []string
		}{
			{"rule=family", []string{f.alerts[1].ID, f.alerts[2].ID}},
			{"user=u2", []string{f.alerts[2].ID, f.alerts[4].ID}},
			{"patient=p1", []string{f.alerts[0].ID, f.alerts[2].ID}},
			{"min_score=60", []string{f.alerts[0].ID, f.alerts[1].ID, f.alerts[3].ID}},
			{"since=" + url.QueryEscape(alertsT0.Add(-2*time.Hour).Format(time.RFC3339)), []string{f.alerts[0].ID, f.alerts[1].ID}},
			{"state=open&rule=honeytoken", []string{f.alerts[3].ID}},
			{"state=benign", nil},
		}
		for _, tt := range tests {
			rec := f.do(t, "security", "GET", "/security/alerts?"+tt.query, "")
			if rec.Code != 200 {
				t.Fatalf("GET ?%s = %d %s", tt.query, rec.Code, rec.Body)
			}
			if got := ids(decode[alertsPageJSON](t, rec).Alerts); !slices.Equal(got, tt.want) {
				t.Errorf("GET ?%s = %v, want %v", tt.query, got, tt.want)
			}
			if e := f.log.last(t); e.Outcome != "ok" || len(e.SearchParams) == 0 {
				t.Errorf("GET ?%s: entry %+v, want ok with parameter names", tt.query, e)
			}
		}
	})
	t.Run("Paging", func(t *testing.T) {
		var got []string
		next := "/security/alerts?limit=2"
		pages := 0
		for next != "" {
			rec := f.do(t, "officer", "GET", next, "")
			if rec.Code != 200 {
				t.Fatalf("GET %s = %d %s", next, rec.Code, rec.Body)
			}
			page := decode[alertsPageJSON](t, rec)
			if len(page.Alerts) > 2 {
				t.Fatalf("page of %d alerts with limit=2", len(page.Alerts))
			}
			if page.Next != "" && rec.Header().Get("Link") != "<"+page.Next+`>; rel="next"` {
				t.Errorf("Link = %q, want next %q", rec.Header().Get("Link"), page.Next)
			}
			got = append(got, ids(page.Alerts)...)
			next = page.Next
			if pages++; pages > 5 {
				t.Fatal("paging does not end")
			}
		}
		if len(got) != 5 || pages != 3 {
			t.Errorf("paged %v in %d pages, want 5 alerts in 3", got, pages)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		for _, q := range []string{
			"min_score=101", "min_score=x", "limit=0", "limit=1001", "since=yesterday",
			"state=closed", "rule=Self%20Access", "after=zz", "name=Smith", "rule=a&rule=b",
			"user=" + strings.Repeat("x", 300),
		} {
			n := f.log.count()
			rec := f.do(t, "officer", "GET", "/security/alerts?"+q, "")
			if rec.Code != 400 || !strings.Contains(rec.Body.String(), "OperationOutcome") {
				t.Errorf("GET ?%s = %d %s, want 400 OperationOutcome", q, rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), "Smith") {
				t.Errorf("GET ?%s echoed the parameter: %s", q, rec.Body)
			}
			if f.log.count() != n+1 || f.log.last(t).Outcome != phivault.EINVALID {
				t.Errorf("GET ?%s: refusal not recorded as invalid", q)
			}
			if slices.Contains(f.log.last(t).SearchParams, "name") {
				t.Errorf("GET ?%s: unknown parameter name in the trail", q)
			}
		}
	})
}

func TestAlertsAPI_Get(t *testing.T) {
	f := newAlertsFixture(t)
	t.Run("OK", func(t *testing.T) {
		id := f.alerts[2].ID
		rec := f.do(t, "officer", "GET", "/security/alerts/"+id, "")
		if rec.Code != 200 {
			t.Fatalf("GET = %d %s", rec.Code, rec.Body)
		}
		if a := decode[alertJSON](t, rec); a.ID != id || a.Rule != "family" || !slices.Equal(a.Patients, []string{"p3", "p1"}) {
			t.Errorf("alert = %+v", a)
		}
		e := f.log.last(t)
		if e.Action != phivault.ActionRead || e.TargetType != detect.TargetAlert || e.TargetID != id ||
			!slices.Equal(e.Compartments, []string{"p3", "p1"}) || e.Outcome != "ok" {
			t.Errorf("entry = %+v, want a read of Alert/%s about p3 and p1", e, id)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		rec := f.do(t, "officer", "GET", "/security/alerts/0123456789abcdef", "")
		if rec.Code != 404 {
			t.Errorf("GET unknown = %d %s, want 404", rec.Code, rec.Body)
		}
		if e := f.log.last(t); e.Outcome != phivault.ENOTFOUND || e.TargetID != "0123456789abcdef" {
			t.Errorf("entry = %+v, want not-found", e)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		rec := f.do(t, "officer", "GET", "/security/alerts/Smith", "")
		if rec.Code != 400 {
			t.Errorf("GET malformed id = %d, want 400", rec.Code)
		}
		if e := f.log.last(t); e.TargetID != "" {
			t.Errorf("entry target %q: a malformed id is free text, kept out of the trail", e.TargetID)
		}
	})
	t.Run("ErrForbidden", func(t *testing.T) {
		n := f.log.count()
		rec := f.do(t, "nurse", "GET", "/security/alerts/"+f.alerts[0].ID, "")
		if rec.Code != 403 || strings.Contains(rec.Body.String(), f.alerts[0].ID) {
			t.Errorf("GET as nurse = %d %s, want 403 without data", rec.Code, rec.Body)
		}
		if f.log.count() != n+1 {
			t.Error("refusal not recorded")
		}
		if rec := f.do(t, "", "GET", "/security/alerts", ""); rec.Code != 401 {
			t.Errorf("GET without token = %d, want 401", rec.Code)
		}
	})
}

func TestAlertsAPI_AuditDown(t *testing.T) {
	f := newAlertsFixture(t)
	f.log.fail = true
	id := f.alerts[0].ID
	for _, r := range []struct{ method, target, body string }{
		{"GET", "/security/alerts", ""},
		{"GET", "/security/alerts/" + id, ""},
		{"POST", "/security/alerts/" + id + "/triage", `{"decision":"false-positive"}`},
	} {
		rec := f.do(t, "officer", r.method, r.target, r.body)
		if rec.Code != 503 {
			t.Errorf("%s %s with the trail down = %d, want 503", r.method, r.target, rec.Code)
		}
		for _, a := range f.alerts {
			if strings.Contains(rec.Body.String(), a.ID) || strings.Contains(rec.Body.String(), "u1") {
				t.Errorf("%s %s with the trail down leaked alert data: %s", r.method, r.target, rec.Body)
			}
		}
	}
	if a, _ := f.store.Alert(t.Context(), id); a.State != detect.StateOpen {
		t.Errorf("state = %s after a triage that could not be recorded, want open", a.State)
	}
	if tr, _ := f.store.Triages(t.Context(), ""); len(tr) != 0 || len(f.triaged) != 0 {
		t.Errorf("triage stored although it could not be recorded: %v", tr)
	}
}

func TestAlertsAPI_Triage(t *testing.T) {
	const note = "Checked with Dr Alice Moreau: covering for ward 4B, patient Jean Dupont"
	t.Run("OK", func(t *testing.T) {
		f := newAlertsFixture(t)
		id := f.alerts[1].ID
		body, _ := json.Marshal(map[string]string{"decision": "benign", "reason": "covering-shift", "note": note})
		rec := f.do(t, "officer", "POST", "/security/alerts/"+id+"/triage", string(body))
		if rec.Code != 200 {
			t.Fatalf("POST triage = %d %s", rec.Code, rec.Body)
		}
		if a := decode[alertJSON](t, rec); a.State != "benign" || a.ID != id {
			t.Errorf("answer = %+v, want the alert, benign", a)
		}
		if strings.Contains(rec.Body.String(), "Moreau") {
			t.Errorf("triage answer repeats the note: %s", rec.Body)
		}
		e := f.log.last(t)
		if e.Action != phivault.ActionUpdate || e.TargetID != id || !slices.Equal(e.Compartments, []string{"p2"}) || e.Actor != "po-1" {
			t.Errorf("entry = %+v, want an update of Alert/%s about p2 by po-1", e, id)
		}
		if strings.Contains(e.Decision, "Moreau") || !strings.Contains(e.Decision, "benign") {
			t.Errorf("entry decision = %q, want the decision and not the note", e.Decision)
		}
		stored, _ := f.store.Triages(t.Context(), id)
		if len(stored) != 1 || stored[0].Decision != "benign" || stored[0].Reason != "covering-shift" || stored[0].By != "po-1" ||
			stored[0].Rule != "family" || stored[0].User != "u1" || !stored[0].At.Equal(alertsT0) {
			t.Fatalf("stored triages = %+v", stored)
		}
		if len(stored[0].Note) == 0 || strings.Contains(string(stored[0].Note), "Moreau") {
			t.Errorf("stored note %q, want it sealed", stored[0].Note)
		}
		if len(f.triaged) != 1 || f.triaged[0].Note != nil {
			t.Errorf("OnTriage got %+v, want the triage without its note", f.triaged)
		}
		// The note comes back opened to an auditor reading the alert.
		rec = f.do(t, "security", "GET", "/security/alerts/"+id, "")
		a := decode[alertJSON](t, rec)
		if len(a.Triages) != 1 || a.Triages[0].Note != note || a.Triages[0].By != "po-1" || a.Triages[0].Reason != "covering-shift" {
			t.Errorf("triages = %+v, want the note opened", a.Triages)
		}
		// Listing does not carry notes.
		if rec := f.do(t, "security", "GET", "/security/alerts", ""); strings.Contains(rec.Body.String(), "Moreau") {
			t.Errorf("the list carries the note: %s", rec.Body)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		f := newAlertsFixture(t)
		id := f.alerts[0].ID
		for _, body := range []string{
			`{"decision":"maybe"}`,
			`{"decision":"benign"}`,
			`{"decision":"benign","reason":"Covering Shift"}`,
			`{"decision":"false-positive","reason":"covering-shift"}`,
			`{"decision":"true-positive","extra":1}`,
			`{"decision":"true-positive"} {}`,
			`not json`,
			`{"decision":"true-positive","note":"` + strings.Repeat("x", detect.MaxTriageNote+1) + `"}`,
		} {
			rec := f.do(t, "officer", "POST", "/security/alerts/"+id+"/triage", body)
			if rec.Code != 400 || !strings.Contains(rec.Body.String(), "OperationOutcome") {
				t.Errorf("POST %.40s = %d %s, want 400", body, rec.Code, rec.Body)
			}
			if e := f.log.last(t); e.Outcome != phivault.EINVALID || e.Action != phivault.ActionUpdate {
				t.Errorf("POST %.40s: entry %+v, want an invalid update", body, e)
			}
		}
		r := httptest.NewRequest("POST", "/security/alerts/"+id+"/triage", strings.NewReader(`{"decision":"true-positive"}`))
		r.Header.Set("Authorization", "Bearer officer")
		r.Header.Set("Content-Type", "text/plain")
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, r)
		if rec.Code != 400 {
			t.Errorf("POST text/plain = %d, want 400", rec.Code)
		}
		if a, _ := f.store.Alert(t.Context(), id); a.State != detect.StateOpen {
			t.Errorf("state = %s after refused triages, want open", a.State)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		f := newAlertsFixture(t)
		rec := f.do(t, "officer", "POST", "/security/alerts/0123456789abcdef/triage", `{"decision":"true-positive"}`)
		if rec.Code != 404 {
			t.Errorf("POST unknown = %d %s, want 404", rec.Code, rec.Body)
		}
	})
	t.Run("NoSealer", func(t *testing.T) {
		f := newAlertsFixture(t)
		h := detect.NewHandler(detect.HandlerOptions{Store: f.store, Auth: alertsPrincipals, Log: f.log})
		f.h = h
		rec := f.do(t, "officer", "POST", "/security/alerts/"+f.alerts[0].ID+"/triage", `{"decision":"true-positive","note":"Jean Dupont"}`)
		if rec.Code != 400 {
			t.Errorf("POST note without sealer = %d, want 400", rec.Code)
		}
		rec = f.do(t, "officer", "POST", "/security/alerts/"+f.alerts[0].ID+"/triage", `{"decision":"true-positive"}`)
		if rec.Code != 200 {
			t.Errorf("POST without note and sealer = %d %s, want 200", rec.Code, rec.Body)
		}
	})
}

// Triages through the API tune suppression: after three benign or
// false-positive decisions on alerts of u1 and "family", a new one does
// not page.
func TestAlertsAPI_TriageTunesSuppression(t *testing.T) {
	f := newAlertsFixture(t)
	var more []*detect.Alert
	for _, p := range []string{"p4", "p5"} {
		a := *f.alerts[1]
		a.Key, a.Patients = "u1|"+p, []string{p}
		a.ID = detect.AlertID(a.Rule, a.Key)
		more = append(more, &a)
	}
	if err := f.store.Commit(t.Context(), &detect.Commit{Alerts: more}); err != nil {
		t.Fatal(err)
	}
	next := &detect.Alert{Rule: "family", User: "u1", Severity: detect.SeverityMedium}
	for i, id := range []string{f.alerts[1].ID, more[0].ID, more[1].ID} {
		if f.suppress.Suppress(next) {
			t.Fatalf("suppressed after %d triages", i)
		}
		decision := `{"decision":"false-positive"}`
		if i == 1 {
			decision = `{"decision":"benign","reason":"same-household-carer"}`
		}
		if rec := f.do(t, "officer", "POST", "/security/alerts/"+id+"/triage", decision); rec.Code != 200 {
			t.Fatalf("triage = %d %s", rec.Code, rec.Body)
		}
	}
	if !f.suppress.Suppress(next) {
		t.Error("not suppressed after three benign or false-positive triages")
	}
	// A suppressor built from the store at start agrees.
	all, _ := f.store.Triages(t.Context(), "")
	if !detect.NewTriageSuppressor(all).Suppress(next) {
		t.Error("a suppressor built from Store.Triages does not suppress")
	}
}

// TestUserRisk reads users' risk scores: auditors only, each read an
// audit entry before the answer, an unseen user the neutral prior.
func TestUserRisk(t *testing.T) {
	log := &alertsLog{}
	h := detect.NewHandler(detect.HandlerOptions{Store: detect.NewMemStore(), Auth: alertsPrincipals, Log: log, Risk: detect.NewRiskScorer()})
	get := func(token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/security/users/u7/risk", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	rec := get("officer")
	var got struct {
		User    string
		Score   int
		Factors []string
		Days    []detect.UserDay
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &got) != nil || got.User != "u7" || got.Score < 1 || got.Score > 99 || len(got.Factors) == 0 ||
		got.Days == nil || len(got.Days) != 0 {
		t.Fatalf("officer GET risk = %d %s", rec.Code, rec.Body)
	}
	if e := log.last(t); e.TargetType != detect.TargetUserRisk || e.TargetID != "u7" || e.Actor != "po-1" || e.Outcome != "ok" {
		t.Fatalf("audit entry = %+v", e)
	}
	if rec := get("nurse"); rec.Code != 403 || strings.Contains(rec.Body.String(), "score") {
		t.Fatalf("nurse GET risk = %d %s", rec.Code, rec.Body)
	}
	r := httptest.NewRequest("GET", "/security/users/a%0Ab/risk", nil)
	r.Header.Set("Authorization", "Bearer officer")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if e := log.last(t); rec.Code != 400 || e.TargetID != "" || e.Outcome != phivault.EINVALID {
		t.Fatalf("GET risk of a bad id = %d, entry %+v", rec.Code, e)
	}
}

// TestSecurityAPI_scopes refuses a privacy officer's SMART token whose
// scopes do not read AuditEvent, on every route, and records the refusal;
// the same officer with an AuditEvent scope gets through.
func TestSecurityAPI_scopes(t *testing.T) {
	log := &alertsLog{}
	auth := alertsAuth{
		"narrow": {ID: "po-2", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RolePrivacyOfficer}, SMART: true, Scopes: []string{"patient/*.rs"}},
		"audit":  {ID: "po-3", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RolePrivacyOfficer}, SMART: true, Scopes: []string{"user/AuditEvent.rs"}},
	}
	h := detect.NewHandler(detect.HandlerOptions{Store: detect.NewMemStore(), Auth: auth, Log: log, Risk: detect.NewRiskScorer()})
	get := func(token, path string) int {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	for _, path := range []string{"/security/alerts", "/security/detector", "/security/honeytokens", "/security/users/u1/risk"} {
		before := log.count()
		if code := get("narrow", path); code != 403 {
			t.Errorf("narrow-scoped GET %s = %d, want 403", path, code)
		}
		if log.count() != before+1 || log.last(t).Outcome != phivault.EFORBIDDEN {
			t.Errorf("refusal of %s not recorded", path)
		}
		if code := get("audit", path); code != 200 {
			t.Errorf("AuditEvent-scoped GET %s = %d, want 200", path, code)
		}
	}
}

// failingDecoys makes some decoys, then fails.
type failingDecoys struct{ made []string }

func (f failingDecoys) MakeDecoys(ctx context.Context, n int) ([]string, error) {
	return f.made, phivault.Errorf(phivault.EPRECONDITION, "The hospital these decoys need is not in the vault.")
}

// TestHoneytokens_partialAndRefused registers the decoys made before a
// failure (so none goes unwatched), records the failure after the
// request's entry, and records a refused request.
func TestHoneytokens_partialAndRefused(t *testing.T) {
	log := &alertsLog{}
	store := detect.NewMemStore()
	h := detect.NewHandler(detect.HandlerOptions{Store: store, Auth: alertsPrincipals, Log: log, Decoys: failingDecoys{[]string{"d1", "d2"}}})
	post := func(body string) int {
		r := httptest.NewRequest("POST", "/security/honeytokens", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer security")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	if code := post(`{"count":5}`); code != 412 {
		t.Fatalf("POST = %d, want 412", code)
	}
	recs, err := store.ReadIngest(t.Context(), 0, 0)
	if err != nil || len(recs) != 2 || recs[0].Honeytoken != "d1" || recs[1].Honeytoken != "d2" {
		t.Fatalf("registered %+v, %v; want d1 and d2", recs, err)
	}
	if n := log.count(); n != 2 || log.last(t).Outcome != phivault.EPRECONDITION {
		t.Fatalf("%d entries, last %+v; want the request, then its failure", n, log.last(t))
	}
	if code := post(`{"count":0}`); code != 400 || log.count() != 3 || log.last(t).Outcome != phivault.EINVALID {
		t.Fatalf("bad count = %d, %d entries", code, log.count())
	}
}

// TestRiskSummary ranks users and counts today's accesses for auditors
// only; the entry lists the users returned; a bad top is refused.
func TestRiskSummary(t *testing.T) {
	log := &alertsLog{}
	risk := detect.NewRiskScorer()
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	risk.Observe(nil, &detect.Event{Time: now, User: "u7", Roles: []string{"nurse"}, Action: phivault.ActionRead, OK: true, Patients: []string{"p1"}})
	h := detect.NewHandler(detect.HandlerOptions{Store: detect.NewMemStore(), Auth: alertsPrincipals, Log: log, Risk: risk})
	get := func(token, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	rec := get("officer", "/security/risk?top=5")
	var got detect.RiskSummary
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &got) != nil || len(got.Users) != 1 || got.Users[0].User != "u7" || got.Hourly[10] != 1 {
		t.Fatalf("officer GET risk = %d %s", rec.Code, rec.Body)
	}
	if e := log.last(t); e.TargetType != detect.TargetUserRisk || e.Actor != "po-1" || e.Outcome != "ok" || !slices.Equal(e.Returned, []string{"UserRisk/u7"}) {
		t.Fatalf("audit entry = %+v", e)
	}
	if rec := get("nurse", "/security/risk"); rec.Code != 403 || strings.Contains(rec.Body.String(), "u7") {
		t.Fatalf("nurse GET risk = %d %s", rec.Code, rec.Body)
	}
	for _, top := range []string{"0", "101", "x"} {
		if rec := get("officer", "/security/risk?top="+top); rec.Code != 400 || log.last(t).Outcome != phivault.EINVALID {
			t.Errorf("top=%s = %d", top, rec.Code)
		}
	}
}
