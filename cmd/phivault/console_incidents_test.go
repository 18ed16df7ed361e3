package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident"
)

// incidentsAPI calls the incidents API of srv as the bearer of token.
func incidentsAPI(t *testing.T, srv *httptest.Server, token, method, path string, body any, header ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.URL+"/security/incidents"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// TestConsoleIncidents opens an incident through the API, with an action
// done and one awaiting a second person, and works it in the console: the
// list and the page as officers, refused to a nurse; approve and undo
// (refused without the form's CSRF token or on a stale version, nothing
// changed); a change; the evidence archive, which verifies; the breach
// report and the notice letters, a PDF for the privacy officer and the
// API's refusal for a security admin.
func TestConsoleIncidents(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	people := consolePeople(t, a)
	api := func(method, path string, body any, header ...string) (int, http.Header, []byte) {
		t.Helper()
		return incidentsAPI(t, srv, a.token, method, path, body, header...)
	}
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }
	view := func(id string) incident.View {
		t.Helper()
		status, _, b := api(http.MethodGet, "/"+id, nil)
		var v incident.View
		if status != http.StatusOK || json.Unmarshal(b, &v) != nil {
			t.Fatalf("GET incident = %d %s", status, b)
		}
		return v
	}

	// The operator reads a patient with an address: a breach of one.
	status, b := a.do(t, http.MethodPost, "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"Quixote","given":["Zebulon"]}],`+
		`"address":[{"use":"home","line":["12 Larkspur Lane"],"city":"Boston","state":"MA","postalCode":"02110"}]}`)
	var patient struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(b, &patient) != nil {
		t.Fatalf("create patient = %d %s", status, b)
	}
	if status, b = a.do(t, http.MethodGet, "/fhir/Patient/"+patient.ID, ""); status != http.StatusOK {
		t.Fatalf("read patient = %d %s", status, b)
	}
	const title, note = "Operator read a chart it had no reason to", "The ward phoned about it"
	status, _, b = api(http.MethodPost, "", map[string]any{"title": title, "severity": "high", "note": note,
		"scope": map[string]any{"users": []string{phivault.OperatorID}, "patients": []string{patient.ID}}})
	var in incident.View
	if status != http.StatusCreated || json.Unmarshal(b, &in) != nil {
		t.Fatalf("open = %d %s", status, b)
	}
	id := in.ID
	for _, p := range []map[string]any{
		{"kind": "raise-detail", "target": map[string]any{"user": "u-porter"}, "for": "1h"},
		{"kind": "raise-detail", "target": map[string]any{"user": "u-porter"}, "twoPerson": true},
		{"kind": "block-source", "target": map[string]any{"sources": []string{"203.0.113.7"}}, "for": "1h"},
	} {
		if status, _, b = api(http.MethodPost, "/"+id+"/actions", p, "If-Match", `W/"`+itoa(view(id).Version)+`"`); status != http.StatusOK {
			t.Fatalf("propose = %d %s", status, b)
		}
	}
	in = view(id)
	if len(in.Actions) != 3 || in.Actions[0].State != incident.ActionDone || in.Actions[1].State != incident.ActionAwaiting || in.Actions[2].State != incident.ActionAwaiting {
		t.Fatalf("actions %+v", in.Actions)
	}
	done, awaiting, block := in.Actions[0].ID, in.Actions[1].ID, in.Actions[2].ID
	page := "/console/incidents/" + id

	officer := newConsoleBrowser(t, srv)
	officer.signIn("/console/incidents", people["privacy"])
	pg := officer.get("/console/incidents")
	if pg.status != http.StatusOK || !strings.Contains(pg.body, `<a href="/console/incidents" aria-current="page">Incidents</a>`) ||
		!strings.Contains(pg.body, `href="`+page+`">`+title) || !strings.Contains(pg.body, "notify: due") {
		t.Fatalf("list = %d %s", pg.status, pg.body)
	}
	if pg = officer.get("/console/incidents?status=closed"); pg.status != http.StatusOK || strings.Contains(pg.body, title) || !strings.Contains(pg.body, `class="empty">No incident matches`) {
		t.Fatalf("closed list = %d %s", pg.status, pg.body)
	}
	if pg = officer.get("/console/incidents?status=closed&phase=contain"); pg.status != http.StatusBadRequest || !strings.Contains(pg.body, "choose a phase or closed") {
		t.Fatalf("closed and a phase = %d %s", pg.status, pg.body)
	}
	pg = officer.get(page)
	for _, want := range []string{"<h1>", title, note, "u-porter", `<a href="/console/incidents/` + id + `/breach">`,
		`action="` + page + `/actions/` + awaiting + `/approve"`, `action="` + page + `/actions/` + awaiting + `/reject"`,
		`action="` + page + `/actions/` + done + `/undo"`, `href="` + page + `/evidence"`, "<dt>Patients</dt><dd>1", ">notify</th>"} {
		if !strings.Contains(pg.body, want) {
			t.Fatalf("page lacks %q: %d %s", want, pg.status, pg.body)
		}
	}
	if strings.Contains(pg.body, `/actions/`+awaiting+`/undo"`) || strings.Contains(pg.body, `/actions/`+done+`/approve"`) {
		t.Fatalf("page offers an operation the action's state does not allow:\n%s", pg.body)
	}

	nurse := newConsoleBrowser(t, srv)
	nurse.signIn("/console/report", people["nurse"])
	for _, path := range []string{"/console/incidents", page, page + "/evidence", page + "/breach"} {
		if pg := nurse.get(path); pg.status != http.StatusForbidden || !strings.Contains(pg.body, "Not allowed") || strings.Contains(pg.body, title) ||
			strings.Contains(pg.body, `href="/console/incidents"`) {
			t.Fatalf("the nurse's %s = %d %s", path, pg.status, pg.body)
		}
	}

	csrf := officer.csrf(pg)
	version := itoa(in.Version)
	approve := page + "/actions/" + awaiting + "/approve"
	// Without the form's CSRF token: refused, nothing changed.
	if pg = officer.do(http.MethodPost, approve, url.Values{"version": {version}}); pg.status != http.StatusForbidden {
		t.Fatalf("approve without CSRF = %d %s", pg.status, pg.body)
	}
	if pg = officer.do(http.MethodPost, page+"/actions/"+done+"/undo", url.Values{"version": {version}}); pg.status != http.StatusForbidden {
		t.Fatalf("undo without CSRF = %d %s", pg.status, pg.body)
	}
	// On a version the incident has moved on from: the API's 412, its
	// message on the page as it is now, nothing changed.
	if pg = officer.do(http.MethodPost, approve, url.Values{"csrf": {csrf}, "version": {itoa(in.Version - 1)}}); pg.status != http.StatusPreconditionFailed ||
		!strings.Contains(pg.body, "The incident changed since version") || !strings.Contains(pg.body, `value="`+version+`"`) {
		t.Fatalf("stale approve = %d %s", pg.status, pg.body)
	}
	if v := view(id); v.Version != in.Version || v.Actions[1].State != incident.ActionAwaiting || v.Actions[0].State != incident.ActionDone {
		t.Fatalf("after the refusals: version %d, actions %+v", v.Version, v.Actions)
	}
	if pg = officer.do(http.MethodPost, approve, url.Values{"csrf": {csrf}, "version": {version}}); pg.status != http.StatusSeeOther || pg.location != page+"#actions" {
		t.Fatalf("approve = %d %q %s", pg.status, pg.location, pg.body)
	}
	in = view(id)
	if in.Actions[1].State != incident.ActionDone || in.Actions[1].By != accountID(t, a, "privacy") {
		t.Fatalf("approved action %+v", in.Actions[1])
	}
	const reason = "The address is the clinic proxy"
	if pg = officer.do(http.MethodPost, page+"/actions/"+block+"/reject", url.Values{"csrf": {csrf}, "version": {itoa(in.Version)}, "reason": {reason}}); pg.status != http.StatusSeeOther {
		t.Fatalf("reject = %d %s", pg.status, pg.body)
	}
	if in = view(id); in.Actions[2].State != incident.ActionRejected {
		t.Fatalf("rejected action %+v", in.Actions[2])
	}
	if pg = officer.get(page); !strings.Contains(pg.body, `<div class="note">`+reason) {
		t.Fatalf("the page lacks the rejection's reason:\n%s", pg.body)
	}
	if pg = officer.do(http.MethodPost, page+"/actions/"+done+"/undo", url.Values{"csrf": {csrf}, "version": {itoa(in.Version)}}); pg.status != http.StatusSeeOther {
		t.Fatalf("undo = %d %s", pg.status, pg.body)
	}
	if in = view(id); in.Actions[0].State != incident.ActionUndone {
		t.Fatalf("undone action %+v", in.Actions[0])
	}
	if pg = officer.get(page); !strings.Contains(pg.body, `class="state action-undone"`) || strings.Contains(pg.body, done+"/undo\"") ||
		strings.Contains(pg.body, "/approve\"") || !strings.Contains(pg.body, awaiting+"/undo\"") {
		t.Fatalf("the page after the undo offers an operation:\n%s", pg.body)
	}
	// The change form: a stale one refused and kept; a good one saved.
	if pg = officer.do(http.MethodPost, page+"/change", url.Values{"csrf": {csrf}, "version": {"1"}, "owner": {"u-keeper"}}); pg.status != http.StatusPreconditionFailed ||
		!strings.Contains(pg.body, `value="u-keeper"`) {
		t.Fatalf("stale change = %d %s", pg.status, pg.body)
	}
	if pg = officer.do(http.MethodPost, page+"/change", url.Values{"csrf": {csrf}, "version": {itoa(in.Version)}, "phase": {"contain"}, "owner": {"u-keeper"}}); pg.status != http.StatusSeeOther {
		t.Fatalf("change = %d %s", pg.status, pg.body)
	}
	if in = view(id); in.Phase != incident.PhaseContain || in.Owner != "u-keeper" {
		t.Fatalf("after the change: phase %q owner %q", in.Phase, in.Owner)
	}
	// Each operation is the API's own audit entry, the officer's.
	privacyID, n := accountID(t, a, "privacy"), 0
	for _, e := range a.trail(t) {
		if e.Actor == privacyID && e.Action == phivault.ActionIncident && e.TargetID == id && e.Outcome == "ok" {
			n++
		}
	}
	if n < 3 {
		t.Errorf("%d incident entries by the officer, want the approval, the undo and the change", n)
	}

	// The evidence archive, as a file, verifies offline.
	res, archive := officer.file(http.MethodGet, page+"/evidence", nil)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-tar" ||
		res.Header.Get("Content-Disposition") != `attachment; filename=`+id+`.phivault-evidence` || len(archive) == 0 {
		t.Fatalf("evidence = %d %v (%d bytes)", res.StatusCode, res.Header, len(archive))
	}
	saved := filepath.Join(t.TempDir(), "inc.phivault-evidence")
	if err := os.WriteFile(saved, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify-evidence", saved, "-key", a.cfg.Data.auditVerifierKey()}, &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), "evidence archive OK: incident "+id) {
		t.Fatalf("verify-evidence = %q, %v", out.String(), err)
	}
	if res, _ := officer.file(http.MethodGet, "/console/incidents/inc-00000000000000000000000000000000/evidence", nil); res.StatusCode != http.StatusNotFound ||
		res.Header.Get("Content-Disposition") != "" {
		t.Fatalf("evidence of no incident = %d %v", res.StatusCode, res.Header)
	}

	// The breach report and the notice letters.
	pg = officer.get(page + "/breach")
	for _, want := range []string{"<h1>Breach impact</h1>", "resource versions of 1 patient</dd>", ">individuals</th>", "164.404(b)", "The nature and extent of the PHI", `name="what_happened"`} {
		if !strings.Contains(pg.body, want) {
			t.Fatalf("breach page lacks %q: %d %s", want, pg.status, pg.body)
		}
	}
	letter := url.Values{"csrf": {csrf}, "format": {"pdf"}, "name": {"Hillside Clinic"}, "phone": {"1-800-555-0100"}, "email": {"privacy@hillside.example"},
		"contact": {"Ada Byrne"}, "what_happened": {"An account read records it had no reason to read."}, "steps": {"Watch your statements."}, "mitigation": {"We closed the account."}}
	short := url.Values{}
	for k, v := range letter {
		if k != "what_happened" {
			short[k] = v
		}
	}
	if pg = officer.do(http.MethodPost, page+"/notices", short); pg.status != http.StatusBadRequest || !strings.Contains(pg.body, "what_happened is required") ||
		!strings.Contains(pg.body, `value="Hillside Clinic"`) || !strings.Contains(pg.body, "Watch your statements.") {
		t.Fatalf("notices without what happened = %d %s", pg.status, pg.body)
	}
	res, pdf := officer.file(http.MethodPost, page+"/notices", letter)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/pdf" ||
		res.Header.Get("Content-Disposition") != `attachment; filename=notices-`+id+`.pdf` || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("notices = %d %v %q", res.StatusCode, res.Header, pdf[:min(len(pdf), 16)])
	}

	secadmin := newConsoleBrowser(t, srv)
	pg = secadmin.signIn(page, people["secadmin"])
	if pg = secadmin.get(page); pg.status != http.StatusOK || !strings.Contains(pg.body, title) || strings.Contains(pg.body, page+"/breach") ||
		!strings.Contains(pg.body, "are for privacy officers") {
		t.Fatalf("the security admin's page = %d %s", pg.status, pg.body)
	}
	// The console stops a security admin before the breach report's API
	// (whose refusal would be an audit entry of its own).
	before := len(a.trail(t))
	if pg := secadmin.get(page + "/breach"); pg.status != http.StatusForbidden || !strings.Contains(pg.body, "not open to your role") {
		t.Fatalf("the security admin's breach page = %d %s", pg.status, pg.body)
	}
	if after := a.trail(t); len(after) != before {
		t.Fatalf("the security admin's breach page called the API: %+v", after[before:])
	}
	letter.Set("csrf", secadmin.csrf(pg))
	if pg = secadmin.do(http.MethodPost, page+"/notices", letter); pg.status != http.StatusForbidden || !strings.Contains(pg.body, "Breach notices are for privacy officers.") ||
		strings.Contains(pg.body, "%PDF") {
		t.Fatalf("the security admin's notices = %d %s", pg.status, pg.body)
	}

	// Closed, the incident leaves the default list (open ones) for the
	// closed ones.
	if pg = officer.do(http.MethodPost, page+"/change", url.Values{"csrf": {csrf}, "version": {itoa(view(id).Version)}, "phase": {"closed"}}); pg.status != http.StatusSeeOther {
		t.Fatalf("close = %d %s", pg.status, pg.body)
	}
	for path, listed := range map[string]bool{"/console/incidents": false, "/console/incidents?status=closed": true, "/console/incidents?status=": true} {
		if pg = officer.get(path); pg.status != http.StatusOK || strings.Contains(pg.body, title) != listed {
			t.Errorf("%s lists the closed incident: %v, want %v", path, !listed, listed)
		}
	}
}
