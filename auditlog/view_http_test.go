package auditlog_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/sqlite"
)

// principalAuth maps bearer tokens to principals; "op" is the bootstrap
// admin token, a system principal with id "admin", and "no-principal" is
// accepted but carries no principal at all.
type principalAuth map[string]*phivault.Principal

func (a principalAuth) Authenticate(ctx context.Context, token string) (context.Context, error) {
	if token == "no-principal" {
		return ctx, nil
	}
	p, ok := a[token]
	if !ok {
		return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "Bad token.")
	}
	return phivault.WithPrincipal(ctx, p), nil
}

var testPrincipals = principalAuth{
	"op":       &phivault.Principal{ID: "admin", Kind: phivault.PrincipalSystem},
	"sysadmin": {ID: "admin", Kind: phivault.PrincipalSystem},
	"po":       {ID: "u-po", Kind: phivault.PrincipalStaff, Roles: []string{"privacy-officer"}},
	"sa":       {ID: "u-sa", Kind: phivault.PrincipalStaff, Roles: []string{"security-admin"}},
	"doc":      {ID: "u-doc", Kind: phivault.PrincipalStaff, Roles: []string{"physician"}},
	"pat-a":    {ID: "u-pa", Kind: phivault.PrincipalPatient, PatientID: "pa"},
	// A patient whose account claims an auditor role is still a patient.
	"pat-b-po": {ID: "u-pb", Kind: phivault.PrincipalPatient, PatientID: "pb", Roles: []string{"privacy-officer", "security-admin"}},
	"siem":     {ID: "c-siem", Kind: phivault.PrincipalSystem, Roles: []string{"security-admin"}},
	"verifier": {ID: "c-verify", Kind: phivault.PrincipalSystem},
	// SMART tokens: scopes bound what the roles allow.
	"po-smart-obs": {ID: "u-po", Kind: phivault.PrincipalStaff, Roles: []string{"privacy-officer"}, SMART: true, Scopes: []string{"user/Observation.rs"}},
	"po-smart-ae":  {ID: "u-po", Kind: phivault.PrincipalStaff, Roles: []string{"privacy-officer"}, SMART: true, Scopes: []string{"user/AuditEvent.rs"}},
	"pat-a-smart":  {ID: "u-pa", Kind: phivault.PrincipalPatient, PatientID: "pa", SMART: true, Scopes: []string{"patient/Observation.rs"}},
}

type viewEnv struct {
	db  *sqlite.DB
	log *auditlog.Log
	url string
}

// newViewEnv serves the view, SIEM and verifier handlers of a SQLite-backed
// log holding entries for patients pa and pb made by actor u1.
func newViewEnv(t *testing.T) *viewEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	signer, _ := storetest.NewSigner(t)
	l := auditlog.New(db, signer.Name(), signer)
	l.CheckpointInterval = -1
	l.ApplyDelay = time.Hour // entries reach the storage only when a view (or the test) flushes
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := range 6 {
		e := storetest.Entry(i)
		e.Actor, e.Compartments = "u1", []string{[]string{"pa", "pb"}[i%2]}
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/", auditlog.NewViewHandler(auditlog.ViewOptions{Store: db, Auth: testPrincipals, Log: l}))
	mux.Handle("/fhir/audit/export", http.StripPrefix("/fhir", auditlog.NewSIEMHandler(l, testPrincipals, auditlog.SIEMOptions{Poll: time.Millisecond})))
	mux.Handle("/fhir/audit/stream", http.StripPrefix("/fhir", auditlog.NewSIEMHandler(l, testPrincipals, auditlog.SIEMOptions{Poll: time.Millisecond})))
	mux.Handle("/fhir/audit/", http.StripPrefix("/fhir", auditlog.NewHandler(l, testPrincipals)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &viewEnv{db: db, log: l, url: srv.URL}
}

// get makes a request and returns the status and, for a stream, the first
// line only.
func (v *viewEnv) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := get(t, ctx, v.url+path, token)
	defer resp.Body.Close()
	if strings.HasPrefix(path, "/fhir/audit/stream") && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "stream" // its first line is the subscription's own entry
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// last returns the log's size and last entry.
func (v *viewEnv) last(t *testing.T) (int64, *phivault.AuditEntry) {
	t.Helper()
	if err := v.log.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := v.log.Tree().N
	data, err := v.db.ReadAuditEntries(context.Background(), n-1, n)
	if err != nil {
		t.Fatal(err)
	}
	e, err := auditlog.Decode(data[0])
	if err != nil {
		t.Fatal(err)
	}
	return n, e
}

// TestView_showsJustAppended: an entry acknowledged a moment before a view
// is asked for is in the view, although the log stores entries in the
// background (ApplyDelay is an hour here).
func TestView_showsJustAppended(t *testing.T) {
	v := newViewEnv(t)
	for _, path := range []string{
		"/fhir/AuditEvent?patient=pz",
		"/fhir/admin/reports/patients/pz/access?format=csv",
		"/fhir/audit/export?from=2000-01-01T00:00:00Z",
	} {
		e := storetest.Entry(100)
		e.Compartments, e.RequestID = []string{"pz"}, "req-just-appended-"+path
		if err := v.log.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		status, body := v.get(t, path, "op")
		if status != http.StatusOK || !strings.Contains(body, e.RequestID) && !strings.Contains(body, `"total":1`) {
			t.Errorf("GET %s = %d, without the entry appended just before: %.300s", path, status, body)
		}
	}
}

// TestView_access checks who may read which part of the trail, and that
// every read and every refusal is recorded before the answer.
func TestView_access(t *testing.T) {
	v := newViewEnv(t)
	const (
		search   = "/fhir/AuditEvent?patient=pa"
		read     = "/fhir/AuditEvent/0"
		reportA  = "/fhir/admin/reports/patients/pa/access?format=csv"
		reportB  = "/fhir/admin/reports/patients/pb/access"
		activity = "/fhir/admin/reports/users/u1/activity"
		export   = "/fhir/audit/export?from=2000-01-01T00:00:00Z"
		stream   = "/fhir/audit/stream?format=ocsf"
		proof    = "/fhir/audit/proof/inclusion?index=0&size=6"
	)
	cases := []struct {
		token string
		want  map[string]int // path → status; paths left out want 403
	}{
		{"op", map[string]int{search: 200, read: 200, reportA: 200, reportB: 200, activity: 200, export: 200, stream: 200, proof: 200}},
		{"sysadmin", map[string]int{search: 200, read: 200, reportA: 200, reportB: 200, activity: 200, export: 200, stream: 200, proof: 200}},
		{"po", map[string]int{search: 200, read: 200, reportA: 200, reportB: 200, activity: 200, export: 200, stream: 200, proof: 200}},
		{"sa", map[string]int{search: 200, read: 200, activity: 200, export: 200, stream: 200, proof: 200}},
		{"siem", map[string]int{search: 200, read: 200, activity: 200, export: 200, stream: 200, proof: 200}},
		{"verifier", map[string]int{proof: 200}},
		{"doc", map[string]int{}},
		{"pat-a", map[string]int{reportA: 200, reportB: 404}},
		{"pat-b-po", map[string]int{reportA: 404, reportB: 200}},
		{"po-smart-obs", map[string]int{}},
		{"po-smart-ae", map[string]int{search: 200, read: 200, reportA: 200, reportB: 200, activity: 200, export: 200, stream: 200, proof: 200}},
		{"pat-a-smart", map[string]int{reportB: 404}},
		{"no-principal", map[string]int{}}, // authenticated, but by nobody: closed, not operator
		{"nobody", map[string]int{search: 401, read: 401, reportA: 401, reportB: 401, activity: 401, export: 401, stream: 401, proof: 401}},
	}
	for _, c := range cases {
		for _, path := range []string{search, read, reportA, reportB, activity, export, stream, proof} {
			want, ok := c.want[path]
			if !ok {
				want = http.StatusForbidden
			}
			before, _ := v.last(t)
			status, body := v.get(t, path, c.token)
			if status != want {
				t.Errorf("%s GET %s = %d, want %d: %.200s", c.token, path, status, want, body)
				continue
			}
			n, e := v.last(t)
			recorded := path != proof && want != http.StatusUnauthorized
			if !recorded {
				if n != before {
					t.Errorf("%s GET %s appended %d entries, want none", c.token, path, n-before)
				}
				continue
			}
			if n != before+1 {
				t.Errorf("%s GET %s appended %d entries, want 1", c.token, path, n-before)
				continue
			}
			wantOutcome := "ok"
			if want == 403 {
				wantOutcome = phivault.EFORBIDDEN
			} else if want == 404 {
				wantOutcome = phivault.ENOTFOUND
			}
			if p := testPrincipals[c.token]; p != nil && e.Actor != p.ID {
				t.Errorf("%s GET %s: recorded actor %q, want %q", c.token, path, e.Actor, p.ID)
			}
			if e.Action != phivault.ActionExport || e.Outcome != wantOutcome {
				t.Errorf("%s GET %s: recorded %s %s, want export %s", c.token, path, e.Action, e.Outcome, wantOutcome)
			}
			wantType, wantID, wantComp := "AuditEvent", "", []string(nil)
			switch path {
			case read:
				wantID = "0"
			case reportA:
				wantType, wantID, wantComp = auditlog.TargetAccessReport, "pa", []string{"pa"}
			case reportB:
				wantType, wantID, wantComp = auditlog.TargetAccessReport, "pb", []string{"pb"}
			case activity:
				wantType, wantID = auditlog.TargetActivityReport, "u1"
			}
			if e.TargetType != wantType || e.TargetID != wantID || !slices.Equal(e.Compartments, wantComp) {
				t.Errorf("%s GET %s: recorded target %s/%s compartments %v, want %s/%s %v", c.token, path, e.TargetType, e.TargetID, e.Compartments, wantType, wantID, wantComp)
			}
		}
	}

	// What each recorded read names: parameter names only, and the
	// AuditEvents a search returned.
	v.get(t, "/fhir/AuditEvent?patient=pa&date=ge2000-01-01", "po")
	_, e := v.last(t)
	if !slices.Equal(e.SearchParams, []string{"date", "patient"}) || len(e.Returned) == 0 || !strings.HasPrefix(e.Returned[0], "AuditEvent/") {
		t.Errorf("search recorded params %v, returned %v", e.SearchParams, e.Returned)
	}
	v.get(t, reportA, "pat-a")
	if _, e := v.last(t); !slices.Equal(e.SearchParams, []string{"format"}) || e.Roles != nil {
		t.Errorf("report recorded params %v, roles %v", e.SearchParams, e.Roles)
	}
}

// TestView_failClosed shows that when the read cannot be recorded no part
// of the trail leaves: every endpoint answers 503.
func TestView_failClosed(t *testing.T) {
	v := newViewEnv(t)
	v.log.Close()
	for _, path := range []string{
		"/fhir/AuditEvent?patient=pa", "/fhir/AuditEvent/0", "/fhir/admin/reports/patients/pa/access?format=csv",
		"/fhir/admin/reports/users/u1/activity", "/fhir/audit/export", "/fhir/audit/stream?since=0",
	} {
		status, body := v.get(t, path, "po")
		if status != http.StatusServiceUnavailable || strings.Contains(body, "u1") || strings.Contains(body, "req0") {
			t.Errorf("GET %s with a closed log = %d %.200s, want 503 and no data", path, status, body)
		}
	}
}

// TestView_patientReportShowsNoOtherPatient checks that a patient's access
// report names no other patient, nor resource ids it cannot attribute to
// the patient, for an entry that touched several compartments (review
// finding 13).
func TestView_patientReportShowsNoOtherPatient(t *testing.T) {
	v := newViewEnv(t)
	e := storetest.Entry(9)
	e.Actor, e.Compartments = "u1", []string{"pa", "p-other-9"}
	e.TargetType, e.TargetID, e.Returned = "Observation", "o-other-9", []string{"Observation/o-other-9/_history/1"}
	if err := v.log.Append(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/fhir/admin/reports/patients/pa/access?format=csv", "/fhir/admin/reports/patients/pa/access"} {
		status, body := v.get(t, path, "pat-a")
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d: %.200s", path, status, body)
		}
		if !strings.Contains(body, "u1") {
			t.Fatalf("GET %s does not show the access: %.300s", path, body)
		}
		if strings.Contains(body, "other-9") {
			t.Errorf("GET %s names another patient or their record: %s", path, body)
		}
	}
}

// TestView_searchPurpose searches the AuditEvents by purpose of use: the
// break-the-glass accesses (BTG, stated or from the decision), the code
// with its system, and two codes at once; a bad token is refused.
func TestView_searchPurpose(t *testing.T) {
	v := newViewEnv(t)
	ctx := context.Background()
	e := storetest.Entry(100)
	e.Decision = "break-glass permit: emergency-access" // index 6
	f := storetest.Entry(101)
	f.Purpose = "ETREAT" // index 7
	g := storetest.Entry(102)
	g.Purpose = "BTG" // index 8
	if err := v.log.Append(ctx, e, f, g); err != nil {
		t.Fatal(err)
	}
	ids := func(path string) []string {
		t.Helper()
		status, body := v.get(t, path, "po")
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, status, body)
		}
		var b struct {
			Entry []struct{ Resource struct{ ID string } }
		}
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, en := range b.Entry {
			out = append(out, en.Resource.ID)
		}
		return out
	}
	tests := []struct {
		give string
		want []string
	}{
		{"purpose=BTG", []string{"6", "8"}},
		{"purpose=http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT", []string{"7"}},
		{"purpose=ETREAT,BTG", []string{"6", "7", "8"}},
		{"purpose=TREAT", nil},
	}
	for _, tt := range tests {
		if got := ids("/fhir/AuditEvent?" + tt.give); !slices.Equal(got, tt.want) {
			t.Errorf("GET /fhir/AuditEvent?%s = %v, want %v", tt.give, got, tt.want)
		}
	}
	for _, bad := range []string{"purpose=http://example.org|BTG", "purpose=", "purpose=B%20TG"} {
		if status, body := v.get(t, "/fhir/AuditEvent?"+bad, "po"); status != http.StatusBadRequest {
			t.Errorf("GET /fhir/AuditEvent?%s = %d %s, want 400", bad, status, body)
		}
	}
}
