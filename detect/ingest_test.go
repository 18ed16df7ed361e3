package detect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// ingestAuth maps bearer tokens to principals.
type ingestAuth map[string]*phivault.Principal

func (a ingestAuth) Authenticate(ctx context.Context, token string) (context.Context, error) {
	p := a[token]
	if p == nil {
		return nil, errors.New("unknown token")
	}
	return phivault.WithPrincipal(ctx, p), nil
}

// ingestAudit is an audit log in memory.
type ingestAudit struct {
	mu      sync.Mutex
	entries []*phivault.AuditEntry
	err     error // if set, Append fails with it
}

func (l *ingestAudit) Append(ctx context.Context, entries ...*phivault.AuditEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.entries = append(l.entries, entries...)
	return nil
}

func (l *ingestAudit) all() []*phivault.AuditEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*phivault.AuditEntry(nil), l.entries...)
}

// failingStore is a MemStore whose Ingest fails.
type failingStore struct{ *detect.MemStore }

func (failingStore) Ingest(context.Context, []detect.Record) (int64, error) {
	return 0, errors.New("disk full")
}

// ingestServer is the security API over real HTTP, with a MemStore, a
// pipeline and an HMAC tokenizer.
type ingestServer struct {
	*httptest.Server
	store    detect.Store
	tok      *ingestTokenizer
	audit    *ingestAudit
	pipeline *detect.Pipeline
}

const (
	tokenAuditor = "auditor-token"
	tokenNurse   = "nurse-token"
)

func newIngestServer(tb testing.TB, store detect.Store) *ingestServer {
	tb.Helper()
	if store == nil {
		store = detect.NewMemStore()
	}
	s := &ingestServer{store: store, tok: newIngestTokenizer(tb), audit: &ingestAudit{}}
	s.pipeline = detect.NewPipeline(store, detect.NewEngine(detect.NewDirectory(), nil, nil))
	if err := s.pipeline.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	s.Server = httptest.NewServer(detect.NewHandler(detect.HandlerOptions{
		Store:    store,
		Pipeline: s.pipeline,
		Auth: ingestAuth{
			tokenAuditor: {ID: "po-1", Kind: phivault.PrincipalSystem, Roles: []string{phivault.RoleSecurityAdmin}},
			tokenNurse:   {ID: "nurse-1", Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}},
		},
		Log:       s.audit,
		Tokenizer: s.tok,
	}))
	tb.Cleanup(s.Close)
	return s
}

// post sends body to path and returns the status and the answer.
func (s *ingestServer) post(tb testing.TB, token, path, contentType string, body io.Reader) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, body)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, b
}

func (s *ingestServer) ingest(tb testing.TB, path, contentType, body string) *detect.IngestReport {
	tb.Helper()
	status, b := s.post(tb, tokenAuditor, path, contentType, strings.NewReader(body))
	if status != http.StatusOK {
		tb.Fatalf("POST %s = %d %s, want 200", path, status, b)
	}
	var rep detect.IngestReport
	if err := json.Unmarshal(b, &rep); err != nil {
		tb.Fatalf("POST %s answer %s: %v", path, b, err)
	}
	return &rep
}

func (s *ingestServer) records(tb testing.TB) []detect.Record {
	tb.Helper()
	recs, err := s.store.ReadIngest(context.Background(), 0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

const accessLines = `{"time":"2026-12-06T08:00:00+01:00","system":"ehr","user":"jdoe","role":"Nurse","department":"cardiology","patient":"p1","action":"read","resource_type":"Observation","source_address":"10.0.0.7","result_count":3,"outcome":"ok"}
{"time":"2026-12-06T07:01:00Z","system":"ehr","user":"jdoe","action":"search","result_count":250}

{"time":"2026-12-06T07:02:00.5Z","system":"ehr","user":"mallory","action":"login","source_address":"[2001:db8::1]:443","outcome":"denied"}
`

func TestIngest_Access(t *testing.T) {
	s := newIngestServer(t, nil)
	rep := s.ingest(t, "/security/ingest/access", "application/x-ndjson", accessLines)
	if rep.Accepted != 3 || rep.Rejected != 0 || rep.First != 1 || rep.Last != 3 {
		t.Fatalf("report = %+v, want 3 accepted as 1..3", rep)
	}
	recs := s.records(t)
	if len(recs) != 3 {
		t.Fatalf("store holds %d records, want 3", len(recs))
	}
	ev := recs[0].Event
	if recs[0].Kind != detect.RecordAccess || ev == nil {
		t.Fatalf("record 1 = %+v, want an access event", recs[0])
	}
	want := detect.Event{
		Stream: detect.StreamIngest, Time: time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC), System: "ehr",
		User: "ehr:jdoe", Roles: []string{"nurse"}, Department: "cardiology", Source: "10.0.0.7",
		Action: phivault.ActionRead, ResourceType: "Observation", Patients: []string{"ehr:p1"}, Count: 3,
		OK: true, Outcome: "ok",
	}
	if got, _ := json.Marshal(ev); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("event 1 = %s\nwant       %s", got, must(json.Marshal(want)))
	}
	if ev := recs[1].Event; ev.Count != 250 || ev.Action != phivault.ActionSearch || len(ev.Patients) != 0 {
		t.Errorf("event 2 = %+v, want a search of 250 results and no patient", ev)
	}
	if ev := recs[2].Event; ev.Action != detect.ActionLoginFailed || ev.OK || ev.Outcome != phivault.EFORBIDDEN || ev.Source != "2001:db8::1" {
		t.Errorf("event 3 = action %s ok %v outcome %s source %s; want a failed login, forbidden, from 2001:db8::1", ev.Action, ev.OK, ev.Outcome, ev.Source)
	}

	// The request is in the audit trail, with its kind.
	entries := s.audit.all()
	if len(entries) != 1 {
		t.Fatalf("audit entries = %d, want 1", len(entries))
	}
	if e := entries[0]; e.Action != phivault.ActionCreate || e.TargetType != detect.TargetIngest || e.TargetID != "access" ||
		e.Actor != "po-1" || e.Outcome != "ok" {
		t.Errorf("audit entry = %+v, want po-1 create Ingest/access ok", e)
	}

	// The pipeline consumes the stream.
	if _, err := s.pipeline.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.pipeline.Status(); st.Cursor.Ingest != 3 || st.Events != 3 {
		t.Errorf("pipeline status = %+v, want 3 ingest records processed", st)
	}

	// A second request continues the sequence.
	rep = s.ingest(t, "/security/ingest/access?system=ehr", "application/x-ndjson; charset=utf-8",
		`{"time":"2026-12-06T09:00:00Z","user":"jdoe","action":"print","patient":"p2"}`)
	if rep.Accepted != 1 || rep.First != 4 || rep.Last != 4 {
		t.Errorf("second report = %+v, want 1 accepted as 4", rep)
	}
	if ev := s.records(t)[3].Event; ev.User != "ehr:jdoe" || ev.System != "ehr" || ev.Action != detect.ActionPrint {
		t.Errorf("event 4 = %+v, want ehr:jdoe printing, system from ?system=", ev)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Plaintext sent in rosters to compare people, and values sent in bad
// lines.
var ingestSecrets = []string{
	"Müller", "muller", "Lüdenscheid", "ludenscheid", "Zebediah",
	"Evergreen", "evergreen", "Terrace", "SW1A", "1AA",
	"7946", "0958",
	"Quentin", "Oakhurst", "9Q9", "5550199",
}

func TestIngest_NoPlaintextKept(t *testing.T) {
	s := newIngestServer(t, nil)
	staff := "system,id,family,given,address,postal_code,phone,department,role,status,patient,birth_date\n" +
		"ehr,s1,Müller-Lüdenscheid,Zebediah,\"742 Evergreen Terrace, Apt 3\",SW1A 1AA,+44 20 7946 0958,cardiology,Nurse;charge-nurse,active,p9,1980-01-02\n" +
		"ehr,s2,Quentin,Quentin,1 Oakhurst Way,9Q9 9Q9,555 0199,oncology,physician,suspended,,1970-05-06\n"
	if rep := s.ingest(t, "/security/ingest/staff", "text/csv", staff); rep.Accepted != 2 || rep.Rejected != 0 {
		t.Fatalf("staff report = %+v, want 2 accepted", rep)
	}
	patients := `{"system":"ehr","id":"p1","family":"MULLER-LUDENSCHEID","given":["Zebediah"],"address":["744 Evergreen Terrace"],"postal_code":"sw1a1aa","phone":["+44 (20) 7946-0958"],"labels":"vip;employee","deceased":false,"employee":"s1"}
{"system":"ehr","id":"p2","family":"Quentin","address":"9 Oakhurst Way","postal_code":"9Q99Q9","phone":"5550199","deceased":"yes"}
`
	if rep := s.ingest(t, "/security/ingest/patients", "application/x-ndjson", patients); rep.Accepted != 2 || rep.Rejected != 0 {
		t.Fatalf("patients report = %+v, want 2 accepted", rep)
	}
	rels := "user,patient,kind,start,end\ns1,p1,care-team,2026-12-01,2026-12-05\n"
	if rep := s.ingest(t, "/security/ingest/relationships?system=ehr", "text/csv", rels); rep.Accepted != 1 {
		t.Fatalf("relationships report = %+v, want 1 accepted", rep)
	}
	// Bad lines carrying the same values are rejected without echo.
	status, answer := s.post(t, tokenAuditor, "/security/ingest/access", "application/x-ndjson", strings.NewReader(
		`{"time":"Zebediah Müller","system":"ehr","user":"u","action":"read"}`+"\n"+
			`{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"u","action":"742 Evergreen Terrace"}`+"\n"+
			`{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"u","action":"read","source_address":"SW1A 1AA"}`+"\n"+
			`{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"u","action":"read","result_count":"+44 20 7946 0958"}`+"\n"+
			`{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"u","action":"read","outcome":"Quentin Oakhurst"}`+"\n"+
			`{"time": Zebediah}`+"\n"))
	if status != http.StatusOK {
		t.Fatalf("bad lines: %d %s", status, answer)
	}

	if _, err := s.pipeline.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	saved, err := s.store.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	everything := string(must(json.Marshal(s.records(t)))) + string(must(json.Marshal(saved))) +
		string(must(json.Marshal(s.audit.all()))) + string(answer)
	for _, secret := range ingestSecrets {
		if strings.Contains(strings.ToLower(everything), strings.ToLower(secret)) {
			t.Errorf("the store, trail or answer holds %q", secret)
		}
	}

	// What is kept compares people: staff s1 and patient p1 share a
	// family name, a street and a phone, not an address.
	if len(saved.Users) != 2 || len(saved.Patients) != 2 || len(saved.Relationships) != 1 {
		t.Fatalf("saved %d users, %d patients, %d relationships; want 2, 2, 1", len(saved.Users), len(saved.Patients), len(saved.Relationships))
	}
	dir := detect.NewDirectory()
	for _, u := range saved.Users {
		dir.PutUser(u)
	}
	for _, p := range saved.Patients {
		dir.PutPatient(p)
	}
	s1, p1, p2 := dir.User("ehr:s1"), dir.Patient("ehr:p1"), dir.Patient("ehr:p2")
	if s1 == nil || p1 == nil || p2 == nil {
		t.Fatalf("directory misses ehr:s1, ehr:p1 or ehr:p2: %v %v %v", s1, p1, p2)
	}
	if !detect.Shares(s1.Person.Family, p1.Person.Family) || !detect.Shares(s1.Person.Street, p1.Person.Street) ||
		!detect.Shares(s1.Person.Phone, p1.Person.Phone) || detect.Shares(s1.Person.Address, p1.Person.Address) {
		t.Errorf("s1 and p1 share family %v street %v phone %v address %v; want true, true, true, false",
			detect.Shares(s1.Person.Family, p1.Person.Family), detect.Shares(s1.Person.Street, p1.Person.Street),
			detect.Shares(s1.Person.Phone, p1.Person.Phone), detect.Shares(s1.Person.Address, p1.Person.Address))
	}
	if detect.Shares(s1.Person.Family, p2.Person.Family) || detect.Shares(s1.Person.Street, p2.Person.Street) {
		t.Error("s1 and p2 compare equal")
	}
	if s1.Patient != "ehr:p9" || s1.Department != "cardiology" || strings.Join(s1.Roles, ",") != "nurse,charge-nurse" || !s1.Active() {
		t.Errorf("s1 = %+v", s1)
	}
	if s2 := dir.User("ehr:s2"); s2.Status != phivault.AccountSuspended || s2.Active() {
		t.Errorf("s2 status = %q, want suspended", s2.Status)
	}
	if p1.Employee != "ehr:s1" || strings.Join(p1.Labels, ",") != "VIP,EMP" || p1.Deceased || !p2.Deceased {
		t.Errorf("p1 = %+v, p2 deceased %v; want employee ehr:s1, labels VIP,EMP, p2 deceased", p1, p2.Deceased)
	}
	r := saved.Relationships[0]
	if r.User != "ehr:s1" || r.Patient != "ehr:p1" || r.Kind != detect.KindCareTeam || r.Origin != "ingest:ehr" ||
		!r.Start.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || !r.End.Equal(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("relationship = %+v, want ehr:s1 care-team of ehr:p1 from Dec 1 through Dec 5", r)
	}

	// The vault loader's reading of the same person gives the same tokens.
	var fhirPatient map[string]any
	json.Unmarshal([]byte(`{"resourceType":"Patient","name":[{"family":"MULLER-LUDENSCHEID","given":["Zebediah"]}],
		"address":[{"line":["744 Evergreen Terrace"],"postalCode":"sw1a1aa"}],
		"telecom":[{"system":"phone","value":"+44 (20) 7946-0958"}]}`), &fhirPatient)
	fromVault := mustPersonTokens(t, s.tok, detect.PersonDataOf(fhirPatient))
	if got, want := string(must(json.Marshal(p1.Person))), string(must(json.Marshal(fromVault))); got != want {
		t.Errorf("ingested p1 person = %s\nfrom FHIR          %s", got, want)
	}
}

func TestIngest_LineErrors(t *testing.T) {
	s := newIngestServer(t, nil)
	body := `{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"a","action":"read","patient":"p1"}
{"time":"yesterday","system":"ehr","user":"b","action":"read"}
{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"c","action":"peek"}
{"time":"2026-12-06T07:00:00Z","system":"ehr","action":"read"}
{"time":"2026-12-06T07:00:00Z","system":"e:hr","user":"d","action":"read"}
{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"e","action":"read","result_count":-1}
{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"f","action":"read","role":7}
not json
[1,2]
{"time":"2026-12-06T07:01:00Z","system":"ehr","user":"g","action":"export","result_count":5000}
`
	rep := s.ingest(t, "/security/ingest/access", "application/x-ndjson", body)
	want := []detect.LineError{
		{Line: 2, Field: "time", Reason: "not an RFC 3339 time"},
		{Line: 3, Field: "action", Reason: "not one of read, search, create, update, delete, export, print, login, login-failed, break-glass"},
		{Line: 4, Field: "user", Reason: "required"},
		{Line: 5, Field: "system", Reason: "may hold only letters, digits, '.', '_' and '-'"},
		{Line: 6, Field: "result_count", Reason: "negative"},
		{Line: 7, Field: "role", Reason: "wrong JSON type"},
		{Line: 8, Reason: "not a JSON object"},
		{Line: 9, Reason: "not a JSON object"},
	}
	if rep.Accepted != 2 || rep.Rejected != len(want) || rep.First != 1 || rep.Last != 2 {
		t.Errorf("report = %d accepted (%d..%d), %d rejected; want 2 (1..2), %d", rep.Accepted, rep.First, rep.Last, rep.Rejected, len(want))
	}
	if got, w := fmt.Sprint(rep.Errors), fmt.Sprint(want); got != w {
		t.Errorf("errors = %s\nwant     %s", got, w)
	}
	recs := s.records(t)
	if len(recs) != 2 || recs[0].Event.User != "ehr:a" || recs[1].Event.User != "ehr:g" {
		t.Errorf("store holds %d records, want the good lines a and g", len(recs))
	}

	// CSV: a row with the wrong column count, a bad boolean, a missing id;
	// the good rows are kept.
	csv := "system,id,family,deceased,labels\n" +
		"ehr,p1,Smith,false,VIP\n" +
		"ehr,p2,Jones\n" +
		"ehr,p3,Brown,perhaps,\n" +
		"ehr,,Green,no,\n" +
		"\"ehr\",\"p4\",\"Multi\nline\",true,R\n" +
		"ehr,p5,White,1,\n"
	rep = s.ingest(t, "/security/ingest/patients", "text/csv", csv)
	wantCSV := []detect.LineError{
		{Line: 3, Reason: "row has 3 fields, the header 5"},
		{Line: 4, Field: "deceased", Reason: "not a boolean (true, false, yes, no, 1, 0)"},
		{Line: 5, Field: "id", Reason: "required"},
	}
	if rep.Accepted != 3 || rep.First != 3 || rep.Last != 5 {
		t.Errorf("CSV report = %d accepted (%d..%d), want 3 (3..5)", rep.Accepted, rep.First, rep.Last)
	}
	if got, w := fmt.Sprint(rep.Errors), fmt.Sprint(wantCSV); got != w {
		t.Errorf("CSV errors = %s\nwant         %s", got, w)
	}
	recs = s.records(t)
	if len(recs) != 5 || recs[2].Patient.ID != "ehr:p1" || recs[3].Patient.ID != "ehr:p4" || recs[4].Patient.ID != "ehr:p5" ||
		!recs[3].Patient.Deceased || recs[3].Patient.Labels[0] != detect.LabelRestricted {
		t.Errorf("store holds %d records, want p1, p4 (deceased, restricted) and p5 after the access events", len(recs))
	}

	// Relationships: an end before the start; a date that is no date.
	rep = s.ingest(t, "/security/ingest/relationships", "application/x-ndjson",
		`{"system":"ehr","user":"a","patient":"p1","kind":"encounter","start":"2026-12-05T00:00:00Z","end":"2026-12-01"}
{"system":"ehr","user":"a","patient":"p1","kind":"encounter","start":"next week"}
{"system":"ehr","user":"a","patient":"p1","kind":"Encounter"}
`)
	wantRel := []detect.LineError{
		{Line: 1, Field: "end", Reason: "before start"},
		{Line: 2, Field: "start", Reason: "not an RFC 3339 time or a date (YYYY-MM-DD)"},
	}
	if got, w := fmt.Sprint(rep.Errors), fmt.Sprint(wantRel); rep.Accepted != 1 || got != w {
		t.Errorf("relationships: %d accepted, errors %s; want 1, %s", rep.Accepted, got, w)
	}
}

// A line over the line limit is one bad line; a request over the line
// or byte limit is refused whole and stores nothing.
func TestIngest_Limits(t *testing.T) {
	s := newIngestServer(t, nil)
	good := `{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"a","action":"read"}` + "\n"
	long := `{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"a","action":"read","x":"` + strings.Repeat("y", detect.DefaultIngestMaxLine) + "\"}\n"
	rep := s.ingest(t, "/security/ingest/access", "application/x-ndjson", good+long+good)
	if rep.Accepted != 2 || len(rep.Errors) != 1 || rep.Errors[0].Line != 2 || rep.Errors[0].Reason != "line longer than 65536 bytes" {
		t.Errorf("long line: report = %+v, want line 2 too long, 2 accepted", rep)
	}

	status, answer := s.post(t, tokenAuditor, "/security/ingest/access", "application/x-ndjson",
		strings.NewReader(strings.Repeat(good, detect.DefaultIngestMaxLines)+good))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(string(answer), "OperationOutcome") || !strings.Contains(string(answer), "100000 lines") {
		t.Errorf("too many lines: %d %s, want 413 with an OperationOutcome", status, answer)
	}
	if n := len(s.records(t)); n != 2 {
		t.Errorf("after the refused request the store holds %d records, want 2", n)
	}
	if e := s.audit.all(); e[len(e)-1].Outcome != phivault.ETOOLARGE {
		t.Errorf("refused request recorded with outcome %q, want %q", e[len(e)-1].Outcome, phivault.ETOOLARGE)
	}

	// The byte limit, through Ingest with a small one.
	store := detect.NewMemStore()
	_, err := detect.Ingest(context.Background(), store, nil, detect.IngestAccess, detect.ContentNDJSON,
		strings.NewReader(good+good+good), detect.IngestOptions{MaxBytes: int64(2 * len(good))})
	if phivault.ErrorCode(err) != phivault.ETOOLARGE {
		t.Errorf("Ingest over MaxBytes = %v, want %s", err, phivault.ETOOLARGE)
	}
	if n, _ := store.IngestSize(context.Background()); n != 0 {
		t.Errorf("Ingest over MaxBytes stored %d records, want 0", n)
	}
	csv := "system,id\n" + strings.Repeat("ehr,s1\n", 100)
	_, err = detect.Ingest(context.Background(), store, nil, detect.IngestStaff, detect.ContentCSV,
		strings.NewReader(csv), detect.IngestOptions{MaxBytes: int64(len(csv) - 1)})
	if phivault.ErrorCode(err) != phivault.ETOOLARGE {
		t.Errorf("Ingest of CSV over MaxBytes = %v, want %s", err, phivault.ETOOLARGE)
	}
	_, err = detect.Ingest(context.Background(), store, nil, detect.IngestStaff, detect.ContentCSV,
		strings.NewReader(csv), detect.IngestOptions{MaxLines: 99})
	if phivault.ErrorCode(err) != phivault.ETOOLARGE {
		t.Errorf("Ingest of CSV over MaxLines = %v, want %s", err, phivault.ETOOLARGE)
	}
	if n, _ := store.IngestSize(context.Background()); n != 0 {
		t.Errorf("refused CSV stored %d records, want 0", n)
	}
	rep, err = detect.Ingest(context.Background(), store, nil, detect.IngestAccess, detect.ContentNDJSON,
		strings.NewReader(good+good), detect.IngestOptions{MaxBytes: int64(2 * len(good)), MaxLines: 2})
	if err != nil || rep.Accepted != 2 {
		t.Errorf("Ingest at MaxBytes and MaxLines = %+v, %v; want 2 accepted", rep, err)
	}
	rep, err = detect.Ingest(context.Background(), store, nil, detect.IngestAccess, detect.ContentNDJSON,
		strings.NewReader(strings.Repeat(good, 3)), detect.IngestOptions{MaxBytes: -1, MaxLines: -1})
	if err != nil || rep.Accepted != 3 {
		t.Errorf("Ingest without limits = %+v, %v; want 3 accepted", rep, err)
	}
}

func TestIngest_Refused(t *testing.T) {
	s := newIngestServer(t, nil)
	line := `{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"a","action":"read"}`
	tests := []struct {
		name        string
		token       string
		path        string
		contentType string
		body        string
		want        int
	}{
		{"no token", "", "/security/ingest/access", "application/x-ndjson", line, http.StatusUnauthorized},
		{"not an auditor", tokenNurse, "/security/ingest/access", "application/x-ndjson", line, http.StatusForbidden},
		{"unknown kind", tokenAuditor, "/security/ingest/secrets", "application/x-ndjson", line, http.StatusNotFound},
		{"JSON, not NDJSON", tokenAuditor, "/security/ingest/access", "application/json", line, http.StatusUnsupportedMediaType},
		{"access as CSV", tokenAuditor, "/security/ingest/access", "text/csv", "time,user\n", http.StatusUnsupportedMediaType},
		{"not UTF-8", tokenAuditor, "/security/ingest/staff", "text/csv; charset=latin1", "id\n", http.StatusUnsupportedMediaType},
		{"no content type", tokenAuditor, "/security/ingest/staff", "", "id\n", http.StatusUnsupportedMediaType},
		{"CSV without id", tokenAuditor, "/security/ingest/staff?system=ehr", "text/csv", "family\nSmith\n", http.StatusBadRequest},
		{"CSV without system", tokenAuditor, "/security/ingest/staff", "text/csv", "id\ns1\n", http.StatusBadRequest},
		{"CSV with a column twice", tokenAuditor, "/security/ingest/staff?system=ehr", "text/csv", "id,ID\ns1,s2\n", http.StatusBadRequest},
		{"bad system parameter", tokenAuditor, "/security/ingest/access?system=a:b", "application/x-ndjson", line, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, b := s.post(t, tt.token, tt.path, tt.contentType, strings.NewReader(tt.body))
			if status != tt.want || !strings.Contains(string(b), `"resourceType":"OperationOutcome"`) {
				t.Errorf("POST %s = %d %s, want %d with an OperationOutcome", tt.path, status, b, tt.want)
			}
		})
	}
	if n := len(s.records(t)); n != 0 {
		t.Errorf("refused requests stored %d records", n)
	}
	entries := s.audit.all()
	if len(entries) != len(tests)-1 { // the unauthenticated one is not recorded
		t.Errorf("%d audit entries, want %d", len(entries), len(tests)-1)
	}
	for _, e := range entries {
		if e.TargetType != detect.TargetIngest || e.Outcome == "ok" || e.TargetID == "secrets" {
			t.Errorf("entry of a refused request = %+v", e)
		}
	}
}

// A store, tokenizer or trail that cannot be written is a 503, never a
// 500; nothing is acknowledged.
func TestIngest_Unavailable(t *testing.T) {
	line := `{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"a","action":"read"}`
	t.Run("store", func(t *testing.T) {
		s := newIngestServer(t, failingStore{detect.NewMemStore()})
		status, b := s.post(t, tokenAuditor, "/security/ingest/access", "application/x-ndjson", strings.NewReader(line))
		if status != http.StatusServiceUnavailable || strings.Contains(string(b), "disk full") {
			t.Errorf("store failure: %d %s, want 503 without the cause", status, b)
		}
		// The entry written before the store, then the failure.
		if e := s.audit.all(); len(e) != 2 || e[0].Outcome != "ok" || e[1].Outcome != phivault.EUNAVAILABLE || e[1].TargetID != "access" {
			t.Errorf("audit entries = %d, want the request then its failure", len(e))
		}
	})
	t.Run("tokenizer", func(t *testing.T) {
		s := newIngestServer(t, nil)
		s.tok.err = errors.New("sealed")
		status, b := s.post(t, tokenAuditor, "/security/ingest/staff", "application/x-ndjson",
			strings.NewReader(`{"system":"ehr","id":"s1","family":"Smith"}`))
		if status != http.StatusServiceUnavailable || len(s.records(t)) != 0 {
			t.Errorf("tokenizer failure: %d %s, %d records stored; want 503, none", status, b, len(s.records(t)))
		}
		// A roster line without names, addresses or phones needs no tokens.
		s.ingest(t, "/security/ingest/staff", "application/x-ndjson", `{"system":"ehr","id":"s1","role":"nurse"}`)
	})
	t.Run("trail", func(t *testing.T) {
		s := newIngestServer(t, nil)
		s.audit.err = errors.New("trail down")
		status, b := s.post(t, tokenAuditor, "/security/ingest/access", "application/x-ndjson", strings.NewReader(line))
		if status != http.StatusServiceUnavailable || len(s.records(t)) != 0 {
			t.Errorf("trail failure: %d %s, %d records stored; want 503, none", status, b, len(s.records(t)))
		}
	})
}

// Rosters larger than one tokenizer call keep each person's tokens with
// the right line.
func TestIngest_ManyPeople(t *testing.T) {
	ctx := context.Background()
	tok := newIngestTokenizer(t)
	var b strings.Builder
	b.WriteString("id,family,phone\n")
	const n = 2500
	for i := range n {
		fmt.Fprintf(&b, "s%d,Family%d,+1 555 %07d\n", i, i, i)
	}
	recs, rep, err := detect.ParseIngest(ctx, tok, detect.IngestStaff, detect.ContentCSV, strings.NewReader(b.String()), detect.IngestOptions{System: "ehr"})
	if err != nil || rep.Accepted != n || len(recs) != n {
		t.Fatalf("ParseIngest = %d records, %+v, %v; want %d", len(recs), rep, err, n)
	}
	if tok.calls != 3 {
		t.Errorf("tokenizer calls = %d, want 3 (chunks of 1024 lines)", tok.calls)
	}
	for i, r := range recs {
		if r.User.ID != fmt.Sprintf("ehr:s%d", i) || len(r.User.Person.Family) != 1 ||
			r.User.Person.Family[0] != tok.token(detect.ParamFamily, fmt.Sprintf("family%d", i)) ||
			r.User.Person.Phone[0] != tok.token(detect.ParamPhone, fmt.Sprintf("+1555%07d", i)) {
			t.Fatalf("record %d = %+v: wrong id or tokens", i, r.User)
		}
	}
}

// Ingested access events raise the same kind of alerts as phivault's own:
// here, a rule of the test that flags every read of a patient.
func TestIngest_EventsReachRules(t *testing.T) {
	ctx := context.Background()
	store := detect.NewMemStore()
	eng := detect.NewEngine(detect.NewDirectory(), []detect.Rule{ingestReadRule{}}, nil)
	p := detect.NewPipeline(store, eng)
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := detect.Ingest(ctx, store, nil, detect.IngestAccess, detect.ContentNDJSON, strings.NewReader(accessLines), detect.IngestOptions{})
	if err != nil || rep.Accepted != 3 {
		t.Fatalf("Ingest = %+v, %v", rep, err)
	}
	if _, err := p.Step(ctx); err != nil {
		t.Fatal(err)
	}
	alerts, err := store.Alerts(ctx, detect.AlertFilter{})
	if err != nil || len(alerts) != 1 || alerts[0].User != "ehr:jdoe" || alerts[0].Patients[0] != "ehr:p1" {
		t.Fatalf("alerts = %v, %v; want one for ehr:jdoe reading ehr:p1", alerts, err)
	}
}

type ingestReadRule struct{}

func (ingestReadRule) Name() string { return "test-read" }

func (ingestReadRule) Observe(x *detect.Context, ev *detect.Event) {
	if ev.Action == phivault.ActionRead && len(ev.Patients) > 0 {
		x.Report(detect.Finding{Rule: "test-read", Key: ev.User + "|" + ev.Patients[0], Severity: detect.SeverityLow,
			User: ev.User, Patients: ev.Patients, Why: ev.User + " read " + ev.Patients[0] + "."})
	}
}

// FuzzIngestAccess: no input panics, every line is accepted or rejected
// with a known field, and accepted events are namespaced.
func FuzzIngestAccess(f *testing.F) {
	for _, l := range strings.Split(accessLines, "\n") {
		f.Add([]byte(l))
	}
	f.Add([]byte(`{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"\u0000","action":"read","result_count":1e3}`))
	f.Add([]byte("{}\n\r\n[]\nnull\n{\"time\":1}\n\xff\xfe"))
	f.Add([]byte(`{"time":"2026-12-06T07:00:00Z","user":"u","action":"break-glass","purpose":"ETREAT","search_params":["family:exact","given=x"]}`))
	f.Add([]byte(`{"time":"2026-12-06T07:00:00Z","user":"u","action":"search","search_params":"name;;_count"}`))
	f.Add([]byte(`{"time":"2026-12-06T07:00:00Z","user":"u","action":"export","patients":["p1","p2","p1",""],"patient":"p3"}`))
	fields := map[string]bool{"": true, "time": true, "system": true, "user": true, "role": true, "department": true,
		"patient": true, "action": true, "resource_type": true, "source_address": true, "result_count": true, "outcome": true,
		"purpose": true, "search_params": true, "patients": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, rep, err := detect.ParseIngest(context.Background(), nil, detect.IngestAccess, detect.ContentNDJSON,
			bytes.NewReader(body), detect.IngestOptions{MaxLine: 512, System: "dflt"})
		if err != nil {
			if c := phivault.ErrorCode(err); c != phivault.ETOOLARGE && c != phivault.EINVALID {
				t.Fatalf("ParseIngest error %v", err)
			}
			return
		}
		if rep.Accepted != len(recs) {
			t.Fatalf("accepted %d, records %d", rep.Accepted, len(recs))
		}
		lines := bytes.Count(body, []byte("\n")) + 1
		for _, e := range rep.Errors {
			if e.Line < 1 || e.Line > lines || !fields[e.Field] || e.Reason == "" {
				t.Fatalf("line error %+v (of %d lines)", e, lines)
			}
		}
		for _, r := range recs {
			ev := r.Event
			if r.Kind != detect.RecordAccess || ev.Stream != detect.StreamIngest || !strings.HasPrefix(ev.User, ev.System+":") ||
				ev.Time.Location() != time.UTC || ev.Action == "" {
				t.Fatalf("record %+v", ev)
			}
		}
	})
}

// FuzzIngestCSV: no roster or relationship CSV panics, and accepted
// rows are namespaced and hold tokens only.
func FuzzIngestCSV(f *testing.F) {
	f.Add(uint8(0), []byte("system,id,family,address,postal_code,phone,role,status,patient\nehr,s1,Smith,1 Main St,AB1,555 0100,nurse,active,p1\n"))
	f.Add(uint8(1), []byte("id,family,labels,deceased,employee\np1,\"Sm\"\"ith\",VIP;R,yes,s1\np2,x\n\"unterminated\n"))
	f.Add(uint8(2), []byte("user,patient,kind,start,end\nu,p,encounter,2026-01-01,2026-01-02T00:00:00Z\n"))
	f.Add(uint8(1), []byte("\uFEFFID , Family\n\n,\n"))
	kinds := []string{detect.IngestStaff, detect.IngestPatients, detect.IngestRelationships}
	tok := newIngestTokenizer(f)
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		kind := kinds[int(k)%len(kinds)]
		recs, rep, err := detect.ParseIngest(context.Background(), tok, kind, detect.ContentCSV,
			bytes.NewReader(body), detect.IngestOptions{System: "dflt", MaxLine: 512})
		if err != nil {
			if c := phivault.ErrorCode(err); c != phivault.ETOOLARGE && c != phivault.EINVALID {
				t.Fatalf("ParseIngest(%s) error %v", kind, err)
			}
			return
		}
		if rep.Accepted != len(recs) {
			t.Fatalf("accepted %d, records %d", rep.Accepted, len(recs))
		}
		for _, e := range rep.Errors {
			if e.Line < 2 || e.Reason == "" {
				t.Fatalf("line error %+v", e)
			}
		}
		for _, r := range recs {
			var id string
			switch {
			case r.User != nil:
				id = r.User.ID
			case r.Patient != nil:
				id = r.Patient.ID
			case r.Relationship != nil:
				id = r.Relationship.User
			}
			if !strings.Contains(id, ":") || strings.HasPrefix(id, ":") {
				t.Fatalf("%s record id %q not namespaced", kind, id)
			}
		}
	})
}

// benchAccessBody returns n access lines of NDJSON.
func benchAccessBody(n int) []byte {
	var body bytes.Buffer
	for i := range n {
		fmt.Fprintf(&body, `{"time":"2026-12-06T07:%02d:%02dZ","system":"ehr","user":"u%d","role":"nurse","department":"cardiology","patient":"p%d","action":"read","resource_type":"Observation","source_address":"10.0.%d.%d","result_count":%d,"outcome":"ok"}`+"\n",
			i/60%60, i%60, i%200, i*7%5000, i/256%256, i%256, i%20)
	}
	return body.Bytes()
}

// BenchmarkIngestAccess parses access requests (NDJSON, as sent over
// HTTPS) into events; the store and TLS are not in it. A request of
// 1,000 lines is one chunk, parsed on one core; one of 100,000 (the
// most a request holds) is parsed on every core.
func BenchmarkIngestAccess(b *testing.B) {
	for _, lines := range []int{1000, detect.DefaultIngestMaxLines} {
		b.Run(fmt.Sprint(lines), func(b *testing.B) { benchIngestAccess(b, lines) })
	}
}

func benchIngestAccess(b *testing.B, lines int) {
	body := benchAccessBody(lines)
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		recs, rep, err := detect.ParseIngest(ctx, nil, detect.IngestAccess, detect.ContentNDJSON, bytes.NewReader(body), detect.IngestOptions{})
		if err != nil || rep.Accepted != lines || len(recs) != lines {
			b.Fatalf("ParseIngest = %d, %+v, %v", len(recs), rep, err)
		}
	}
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkIngestStaff parses and tokenizes 1,000-line staff rosters.
func BenchmarkIngestStaff(b *testing.B) {
	var body bytes.Buffer
	body.WriteString("system,id,family,given,address,postal_code,phone,department,role\n")
	for i := range 1000 {
		fmt.Fprintf(&body, "ehr,s%d,Family%d,Given,%d Main Street,AB%d 1CD,+1 555 %07d,cardiology,nurse\n", i, i%300, i, i%50, i)
	}
	ctx := context.Background()
	tok := newIngestTokenizer(b)
	b.ReportAllocs()
	for b.Loop() {
		_, rep, err := detect.ParseIngest(ctx, tok, detect.IngestStaff, detect.ContentCSV, bytes.NewReader(body.Bytes()), detect.IngestOptions{})
		if err != nil || rep.Accepted != 1000 {
			b.Fatalf("ParseIngest = %+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkIngestHTTPS sends 1,000-line access requests through the
// handler over TLS (httptest), into a MemStore, from two clients.
func BenchmarkIngestHTTPS(b *testing.B) {
	store := detect.NewMemStore()
	srv := httptest.NewTLSServer(detect.NewHandler(detect.HandlerOptions{
		Store: store,
		Auth:  ingestAuth{tokenAuditor: {ID: "po-1", Kind: phivault.PrincipalSystem, Roles: []string{phivault.RoleSecurityAdmin}}},
		Log:   &ingestAudit{},
	}))
	defer srv.Close()
	body := benchAccessBody(1000)
	client := srv.Client()
	b.SetBytes(int64(len(body)))
	b.SetParallelism(1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/security/ingest/access", bytes.NewReader(body))
			req.Header.Set("Content-Type", detect.ContentNDJSON)
			req.Header.Set("Authorization", "Bearer "+tokenAuditor)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
}

// The report lists the first MaxIngestErrors bad lines and counts all.
func TestParseIngest_ErrorCap(t *testing.T) {
	body := strings.Repeat("{}\n", detect.MaxIngestErrors+5) + `{"time":"2026-12-06T07:00:00Z","system":"ehr","user":"a","action":"read"}`
	recs, rep, err := detect.ParseIngest(context.Background(), nil, detect.IngestAccess, detect.ContentNDJSON, strings.NewReader(body), detect.IngestOptions{})
	if err != nil || len(recs) != 1 || rep.Rejected != detect.MaxIngestErrors+5 || len(rep.Errors) != detect.MaxIngestErrors {
		t.Errorf("ParseIngest = %d records, %d rejected, %d errors listed, %v; want 1, %d, %d",
			len(recs), rep.Rejected, len(rep.Errors), err, detect.MaxIngestErrors+5, detect.MaxIngestErrors)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r    io.Reader
	read int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.read += n
	return n, err
}

// TestParseIngest_CSVFieldBound sends CSV whose quoted field never closes:
// the row is one line error and the parser stops reading a little past
// MaxLine instead of holding the rest of the request as one field. A
// quoted field spanning lines within MaxLine is taken (the near miss), and
// a row a little over MaxLine is rejected alone, the rows after it kept.
func TestParseIngest_CSVFieldBound(t *testing.T) {
	const maxLine = 100
	opts := detect.IngestOptions{System: "ehr", MaxLine: maxLine}
	header := "user,patient,kind,note\n" // notes are ignored
	good := "s1,p1,care-team,\n"
	parse := func(body string) (*countingReader, []detect.Record, *detect.IngestReport) {
		t.Helper()
		cr := &countingReader{r: strings.NewReader(body)}
		recs, rep, err := detect.ParseIngest(context.Background(), nil, detect.IngestRelationships, detect.ContentCSV, cr, opts)
		if err != nil {
			t.Fatal(err)
		}
		return cr, recs, rep
	}

	unclosed := header + good + "s2,\"p2" + strings.Repeat("x", 1<<20) + "\n" + good
	cr, recs, rep := parse(unclosed)
	want := []detect.LineError{{Line: 3, Reason: "line longer than 100 bytes (an unclosed quote?); the lines after it were not read"}}
	if len(recs) != 1 || rep.Rejected != 1 || fmt.Sprint(rep.Errors) != fmt.Sprint(want) {
		t.Errorf("unclosed quote: %d records, errors %v; want 1, %v", len(recs), rep.Errors, want)
	}
	if cr.read > 16<<10 {
		t.Errorf("read %d bytes of a row that never ends, want at most 16 KiB", cr.read)
	}

	multiline := header + "s2,p2,care-team,\"a note\nover two lines\"\n" + good
	if _, recs, rep := parse(multiline); len(recs) != 2 || rep.Rejected != 0 {
		t.Errorf("a quoted field over two lines: %d records, errors %v; want 2, none", len(recs), rep.Errors)
	}
	long := header + "s2,p2,care-team,\"" + strings.Repeat("x", 2*maxLine) + "\"\n" + good
	_, recs, rep = parse(long)
	want = []detect.LineError{{Line: 2, Reason: "line longer than 100 bytes"}}
	if len(recs) != 1 || fmt.Sprint(rep.Errors) != fmt.Sprint(want) {
		t.Errorf("a row a little over MaxLine: %d records, errors %v; want 1, %v", len(recs), rep.Errors, want)
	}
}
