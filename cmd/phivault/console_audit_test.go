package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var updateProofFixture = flag.Bool("update-proof-fixture", false, "rewrite console/testdata/proof_fixture.json from a real trail")

// auditRowAttrs finds the rows of the console's audit table.
var auditRowAttrs = regexp.MustCompile(`<tr data-index="(\d+)" data-recorded="([^"]*)" data-actor="([^"]*)">`)

// consoleRow is a row of the audit table, as proof.js reads it.
type consoleRow struct {
	Index    string `json:"index"`
	Recorded string `json:"recorded"`
	Actor    string `json:"actor"`
}

func auditRows(body string) []consoleRow {
	var out []consoleRow
	for _, m := range auditRowAttrs.FindAllStringSubmatch(body, -1) {
		out = append(out, consoleRow{m[1], html.UnescapeString(m[2]), html.UnescapeString(m[3])})
	}
	return out
}

func rowIndexes(rows []consoleRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Index)
	}
	return out
}

// TestConsoleAudit_search searches the trail as officers, with filters,
// and checks that others are refused.
func TestConsoleAudit_search(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	people := consolePeople(t, a)
	patient := a.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Quendolyn"}]}`)
	if status, body := a.do(t, "GET", "/fhir/Patient/"+patient, ""); status != http.StatusOK {
		t.Fatalf("read = %d %s", status, body)
	}

	officer := newConsoleBrowser(t, srv)
	officer.signIn("/console/audit", people["privacy"])
	pg := officer.get("/console/audit")
	if pg.status != http.StatusOK || !strings.Contains(pg.body, "<h1>Audit trail</h1>") || !strings.Contains(pg.body, `src="/console/static/proof.js"`) ||
		!strings.Contains(pg.body, `class="proof-verify" data-index="0" aria-label="Verify entry 0"`) || !strings.Contains(pg.body, `href="/console/audit" aria-current="page"`) {
		t.Fatalf("audit = %d %s", pg.status, pg.body)
	}

	// proof.js is served; its test and fixture are not embedded.
	if pg := officer.get("/console/static/proof.js"); pg.status != http.StatusOK || !strings.Contains(pg.body, "verifyEntry") {
		t.Fatalf("proof.js = %d", pg.status)
	}
	for _, path := range []string{"/console/static/proof_test.mjs", "/console/static/testdata/proof_fixture.json"} {
		if pg := officer.get(path); pg.status != http.StatusNotFound {
			t.Fatalf("%s = %d, want 404", path, pg.status)
		}
	}

	// The filters are the API's: the rows are the entries that match.
	trail := a.trail(t)
	pg = officer.get("/console/audit?patient=" + patient)
	if got, want := rowIndexes(auditRows(pg.body)), want(trail, touches(patient)); pg.status != http.StatusOK || !slices.Equal(got, want) || len(want) != 2 {
		t.Fatalf("patient filter = %d %v, want %v", pg.status, got, want)
	}
	pg = officer.get("/console/audit?patient=" + patient + "&action=C")
	if got := rowIndexes(auditRows(pg.body)); len(got) != 1 || trail[atoi(t, got[0])].Action != phivault.ActionCreate {
		t.Fatalf("patient and action filter = %v", got)
	}
	privacyID := accountID(t, a, "privacy")
	pg = officer.get("/console/audit?agent=" + privacyID)
	rows := auditRows(pg.body)
	if len(rows) == 0 {
		t.Fatalf("agent filter: no rows: %s", pg.body)
	}
	for _, r := range rows {
		if r.Actor != privacyID {
			t.Fatalf("agent filter: row %v", r)
		}
	}
	if pg = officer.get("/console/audit?date=1999-01-01"); pg.status != http.StatusOK || !strings.Contains(pg.body, `class="empty"`) || len(auditRows(pg.body)) != 0 {
		t.Fatalf("date filter = %d %s", pg.status, pg.body)
	}
	// A bad filter is the API's 400, with its message.
	if pg = officer.get("/console/audit?action=X"); pg.status != http.StatusBadRequest || !strings.Contains(pg.body, "The action must be one of C, R, U, D or E.") {
		t.Fatalf("bad action = %d %s", pg.status, pg.body)
	}
	// The search is the API's, recorded as a read of the trail by the officer.
	trail = a.trail(t)
	if !slices.ContainsFunc(trail, func(e *phivault.AuditEntry) bool {
		return e.Actor == privacyID && e.Action == phivault.ActionExport && e.TargetType == "AuditEvent" && slices.Contains(e.SearchParams, "patient")
	}) {
		t.Fatal("no audit entry of the officer's search")
	}

	secadmin := newConsoleBrowser(t, srv)
	secadmin.signIn("/console/audit", people["secadmin"])
	if pg = secadmin.get("/console/audit"); pg.status != http.StatusOK || len(auditRows(pg.body)) == 0 {
		t.Fatalf("security admin's audit = %d", pg.status)
	}

	nurse := newConsoleBrowser(t, srv)
	nurse.signIn("/console/report", people["nurse"])
	for _, path := range []string{"/console/audit", "/console/audit/proof?index=0"} {
		pg = nurse.get(path)
		if pg.status != http.StatusForbidden || !strings.Contains(pg.body, "Not allowed") || strings.Contains(pg.body, `href="/console/audit"`) || strings.Contains(pg.body, "checkpoint") {
			t.Fatalf("the nurse's %s = %d %s", path, pg.status, pg.body)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// proofData is the proof route's answer.
type proofData struct {
	Index      int64    `json:"index"`
	Checkpoint string   `json:"checkpoint"`
	Entry      []byte   `json:"entry"`
	Proof      [][]byte `json:"proof"`
	Pending    bool     `json:"pending"`
}

func getProof(t *testing.T, b *consoleBrowser, index string) (proofData, string) {
	t.Helper()
	pg := b.get("/console/audit/proof?index=" + index)
	if pg.status != http.StatusOK {
		t.Fatalf("proof of %s = %d %s", index, pg.status, pg.body)
	}
	var d proofData
	if err := json.Unmarshal([]byte(pg.body), &d); err != nil {
		t.Fatalf("proof of %s: %v %s", index, err, pg.body)
	}
	return d, pg.body
}

// checkProof is proof.js's check in Go: the checkpoint's signature with
// the verifier, the leaf hashed from the entry's bytes, and the inclusion
// proof up to the checkpoint's root.
func checkProof(d proofData, verifier note.Verifier) error {
	c, err := auditlog.OpenCheckpoint([]byte(d.Checkpoint), verifier, verifier.Name())
	if err != nil {
		return err
	}
	proof := make(tlog.RecordProof, len(d.Proof))
	for i, h := range d.Proof {
		if len(h) != tlog.HashSize {
			return fmt.Errorf("proof hash %d is %d bytes", i, len(h))
		}
		proof[i] = tlog.Hash(h)
	}
	return tlog.CheckRecord(proof, c.N, c.Hash, d.Index, tlog.RecordHash(d.Entry))
}

// TestConsoleAudit_proof checks that the proof route gives the browser
// the entry's own bytes, a signed checkpoint and the inclusion proof, and
// that proof.js's check (here in Go, and in Node when it is installed)
// passes with them and fails for a changed entry.
func TestConsoleAudit_proof(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	people := consolePeople(t, a)
	patient := a.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Quendolyn"}]}`)
	officer := newConsoleBrowser(t, srv)
	officer.signIn("/console/audit", people["privacy"])
	verifier, err := readVerifier(a.cfg.Data.auditVerifierKey())
	if err != nil {
		t.Fatal(err)
	}

	rows := auditRows(officer.get("/console/audit?patient=" + patient).body)
	if len(rows) != 1 {
		t.Fatalf("rows of the patient = %v", rows)
	}
	row := rows[0]
	d, body := getProof(t, officer, row.Index)
	stored, err := a.db.ReadAuditEntries(context.Background(), int64(atoi(t, row.Index)), int64(atoi(t, row.Index))+1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Pending || !bytes.Equal(d.Entry, stored[0]) || strings.Contains(body, "leaf_hash") {
		t.Fatalf("proof data = %s, want the stored entry %s and no leaf hash", body, stored[0])
	}
	if err := checkProof(d, verifier); err != nil {
		t.Fatalf("check of the proof data: %v", err)
	}
	var e struct{ Time, Actor string }
	if err := json.Unmarshal(d.Entry, &e); err != nil || e.Time != row.Recorded || e.Actor != row.Actor {
		t.Fatalf("entry %s is not the row %+v", d.Entry, row)
	}
	// A changed entry (one byte), a changed proof, another key: each fails.
	changed := d
	changed.Entry = bytes.Replace(d.Entry, []byte(`"create"`), []byte(`"creatE"`), 1)
	if bytes.Equal(changed.Entry, d.Entry) {
		t.Fatalf("entry %s is not a create", d.Entry)
	}
	if err := checkProof(changed, verifier); err == nil {
		t.Fatal("a changed entry checks")
	}
	if len(d.Proof) > 0 {
		changed = d
		changed.Proof = slices.Clone(d.Proof)
		changed.Proof[0] = bytes.Clone(d.Proof[0])
		changed.Proof[0][0] ^= 1
		if err := checkProof(changed, verifier); err == nil {
			t.Fatal("a changed proof checks")
		}
	}
	_, other, _ := note.GenerateKey(nil, verifier.Name())
	otherV, _ := note.NewVerifier(other)
	if err := checkProof(d, otherV); err == nil {
		t.Fatal("a checkpoint checks with another key")
	}

	// Bad and unknown indexes are refused with a message.
	for index, want := range map[string]int{"x": http.StatusBadRequest, "-1": http.StatusBadRequest, "99999": http.StatusNotFound} {
		pg := officer.get("/console/audit/proof?index=" + index)
		var out struct{ Error string }
		if pg.status != want || json.Unmarshal([]byte(pg.body), &out) != nil || out.Error == "" || strings.Contains(pg.body, "checkpoint") {
			t.Fatalf("proof of %s = %d %s, want %d", index, pg.status, pg.body, want)
		}
	}
	// Reading the entry's bytes is the API's export, recorded.
	privacyID := accountID(t, a, "privacy")
	if !slices.ContainsFunc(a.trail(t), func(e *phivault.AuditEntry) bool {
		return e.Actor == privacyID && e.Action == phivault.ActionExport && slices.Contains(e.SearchParams, "start")
	}) {
		t.Fatal("no audit entry of the export behind the proof")
	}

	// The same data, and a pending case, checked by proof.js itself.
	fixture := proofFixture(t, a, officer, verifier, d, row, patient)
	path := filepath.Join(t.TempDir(), "proof_fixture.json")
	if err := os.WriteFile(path, fixture, 0o644); err != nil {
		t.Fatal(err)
	}
	if *updateProofFixture {
		if err := os.WriteFile("../../console/testdata/proof_fixture.json", fixture, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runProofJS(t, path)
}

// proofFixture returns the fixture of console/static/proof_test.mjs: the
// verifier key, and cases of rows as the page shows them with the proof
// route's answers. Besides d, the verified row, it makes a pending case:
// a later entry with the checkpoint of d, which is older than it.
func proofFixture(t *testing.T, a *auditApp, b *consoleBrowser, verifier note.Verifier, d proofData, row consoleRow, patient string) []byte {
	t.Helper()
	vkey, err := os.ReadFile(a.cfg.Data.auditVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	// Entries after d's checkpoint: a read of the patient, then its row.
	if status, body := a.do(t, "GET", "/fhir/Patient/"+patient, ""); status != http.StatusOK {
		t.Fatalf("read = %d %s", status, body)
	}
	rows := auditRows(b.get("/console/audit?patient=" + patient + "&action=R").body)
	if len(rows) != 1 {
		t.Fatalf("read rows = %v", rows)
	}
	later, _ := getProof(t, b, rows[0].Index)
	if err := checkProof(later, verifier); err != nil {
		t.Fatalf("check of the later entry: %v", err)
	}
	pending := later
	pending.Checkpoint, pending.Proof, pending.Pending = d.Checkpoint, [][]byte{}, true
	if c, _ := auditlog.OpenCheckpoint([]byte(d.Checkpoint), verifier, ""); c.N > pending.Index {
		t.Fatalf("checkpoint of %d entries covers entry %d", c.N, pending.Index)
	}
	type fixtureCase struct {
		Name string     `json:"name"`
		Row  consoleRow `json:"row"`
		Data proofData  `json:"data"`
		Want string     `json:"want"`
	}
	out, err := json.MarshalIndent(struct {
		Comment string        `json:"comment"`
		VKey    string        `json:"vkey"`
		Cases   []fixtureCase `json:"cases"`
	}{
		Comment: "Made by TestConsoleAudit_proof (go test ./cmd/phivault -run TestConsoleAudit_proof -update-proof-fixture) from a real trail.",
		VKey:    strings.TrimSpace(string(vkey)),
		Cases: []fixtureCase{
			{"create", row, d, "verified"},
			{"read", rows[0], later, "verified"},
			{"pending", rows[0], pending, "pending"},
		},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// runProofJS runs console/static/proof_test.mjs under Node on fixture.
func runProofJS(t *testing.T, fixture string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("PHIVAULT_E2E") == "1" {
			t.Fatal("node is needed to test console/static/proof.js: install Node.js 20 or later")
		}
		t.Skip("node is not installed: console/static/proof.js is not run (CI sets PHIVAULT_E2E=1 and has node)")
	}
	cmd := exec.Command(node, "--test", "../../console/static/proof_test.mjs")
	cmd.Env = append(os.Environ(), "PROOF_FIXTURE="+fixture)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test proof_test.mjs: %v\n%s", err, out)
	}
	t.Logf("node --test proof_test.mjs:\n%s", out)
}

// reportRowIndex finds the rows of the access report's table.
var reportRowIndex = regexp.MustCompile(`<tr data-index="(\d+)">`)

func reportRows(body string) []string {
	var out []string
	for _, m := range reportRowIndex.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// download gets path with b's session and returns its answer and headers.
func (b *consoleBrowser) download(path string) (int, http.Header, []byte) {
	b.t.Helper()
	res, err := b.client.Get(b.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return res.StatusCode, res.Header, body
}

// TestConsoleAccess_report finds a patient and reads their access report
// as a privacy officer, filtered and exported, and checks that others
// are refused.
func TestConsoleAccess_report(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	people := consolePeople(t, a)
	patient := a.create(t, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"MRN-4711"}],"name":[{"family":"Quendolyn","given":["Ada"]}],"birthDate":"1970-03-04","telecom":[{"system":"phone","value":"555-0199"}],"address":[{"line":["12 Elmstreet"]}]}`)
	if status, body := a.do(t, "GET", "/fhir/Patient/"+patient, ""); status != http.StatusOK {
		t.Fatalf("read = %d %s", status, body)
	}
	privacyID := accountID(t, a, "privacy")

	officer := newConsoleBrowser(t, srv)
	officer.signIn("/console/access", people["privacy"])
	pg := officer.get("/console/access")
	if pg.status != http.StatusOK || !strings.Contains(pg.body, "<h1>Access report</h1>") || !strings.Contains(pg.body, `href="/console/access" aria-current="page"`) {
		t.Fatalf("access = %d %s", pg.status, pg.body)
	}
	// The search is the privacy officers' patient lookup: it finds any
	// patient by name or identifier, and shows only the name, birth date
	// and id; the API records each search in the patient's compartment.
	// It is a form posted with the session's CSRF token: no name travels
	// in an address.
	csrf := officer.csrf(pg)
	find := func(b *consoleBrowser, by, q string) page {
		t.Helper()
		return b.do(http.MethodPost, "/console/access", url.Values{"csrf": {csrf}, "by": {by}, "q": {q}})
	}
	for _, q := range [][2]string{{"name", "quendolyn"}, {"identifier", "MRN-4711"}, {"identifier", "urn:mrn|MRN-4711"}} {
		pg = find(officer, q[0], q[1])
		if pg.status != http.StatusOK || !strings.Contains(pg.body, `<a href="/console/access/`+patient+`">Ada Quendolyn</a>`) || !strings.Contains(pg.body, "1970-03-04") ||
			!strings.Contains(pg.body, "1 patient found") || strings.Contains(pg.body, "555-0199") || strings.Contains(pg.body, "Elmstreet") {
			t.Fatalf("search %s = %d %s", q, pg.status, pg.body)
		}
	}
	if !slices.ContainsFunc(a.trail(t), func(e *phivault.AuditEntry) bool {
		return e.Actor == privacyID && e.Action == phivault.ActionSearch && e.TargetType == auditlog.TargetPatientLookup && e.Outcome == "ok" &&
			slices.Equal(e.Compartments, []string{patient}) && slices.Equal(e.SearchParams, []string{"name"})
	}) {
		t.Fatal("no audit entry of the officer's patient search in the patient's compartment")
	}
	if pg = find(officer, "email", "x"); pg.status != http.StatusBadRequest {
		t.Fatalf("search by email = %d", pg.status)
	}
	if pg = officer.get("/console/access?by=name&q=quendolyn"); pg.status != http.StatusBadRequest || strings.Contains(pg.body, "Quendolyn") || strings.Contains(pg.body, "quendolyn") {
		t.Fatalf("a search in the address = %d %s, want 400 and nothing found", pg.status, pg.body)
	}
	if pg = officer.do(http.MethodPost, "/console/access", url.Values{"by": {"name"}, "q": {"quendolyn"}}); pg.status != http.StatusForbidden || strings.Contains(pg.body, "Quendolyn") {
		t.Fatalf("a search without the CSRF token = %d %s, want 403", pg.status, pg.body)
	}
	if pg = officer.get("/console/access?patient=" + patient); pg.status != http.StatusSeeOther || pg.location != "/console/access/"+patient {
		t.Fatalf("open by id = %d %q", pg.status, pg.location)
	}
	// A search the API refuses shows its message, what was typed, and the
	// way on by id.
	if pg = find(officer, "identifier", "|"); pg.status != http.StatusBadRequest || !strings.Contains(pg.body, "The patient search was refused: ") ||
		!strings.Contains(pg.body, "neither a system nor a code") || !strings.Contains(pg.body, `name="q" type="text" value="|"`) || !strings.Contains(pg.body, `name="patient"`) {
		t.Fatalf("refused search = %d %s", pg.status, pg.body)
	}
	if pg = find(officer, "identifier", "MRN-0000"); pg.status != http.StatusOK || !strings.Contains(pg.body, `<p class="empty">No patient matches`) || strings.Contains(pg.body, "Quendolyn") {
		t.Fatalf("search of another identifier = %d %s", pg.status, pg.body)
	}

	// The report: every access to the patient, filtered by the API.
	trail := a.trail(t)
	pg = officer.get("/console/access/" + patient)
	got, all := reportRows(pg.body), want(trail, touches(patient))
	if pg.status != http.StatusOK || !strings.Contains(pg.body, "<h1>Who accessed patient <code>"+patient+"</code></h1>") || len(got) < 3 || !slices.Equal(got[:len(all)], all) {
		t.Fatalf("report = %d %v, want %v first\n%s", pg.status, got, all, pg.body)
	}
	creates := want(trail, func(e *phivault.AuditEntry) bool { return touches(patient)(e) && e.Action == phivault.ActionCreate })
	for q, want := range map[string][]string{
		"action=C":                    creates,
		"action=C&from=2000-01-01":    creates,
		"action=C&to=2000-01-01":      nil,
		"action=C&to=" + today():      creates,
		"from=" + tomorrow():          nil,
		"action=C&purpose=BTG":        nil,
		"action=R&purpose=&from=&to=": want(trail, func(e *phivault.AuditEntry) bool { return touches(patient)(e) && e.Action == phivault.ActionRead }),
	} {
		pg = officer.get("/console/access/" + patient + "?" + q)
		if got := reportRows(pg.body); pg.status != http.StatusOK || !slices.Equal(got, want) || len(want) == 0 && !strings.Contains(pg.body, `class="empty"`) {
			t.Fatalf("report?%s = %d %v, want %v", q, pg.status, got, want)
		}
	}
	for q, msg := range map[string]string{"from=yesterday": "Give the dates as YYYY-MM-DD.", "action=Q": "The action must be one of", "purpose=a|b": "purpose takes v3-ActReason codes"} {
		if pg = officer.get("/console/access/" + patient + "?" + q); pg.status != http.StatusBadRequest || !strings.Contains(pg.body, msg) || len(reportRows(pg.body)) != 0 {
			t.Fatalf("report?%s = %d %s", q, pg.status, pg.body)
		}
	}
	if !slices.ContainsFunc(a.trail(t), func(e *phivault.AuditEntry) bool {
		return e.Actor == privacyID && e.Action == phivault.ActionExport && e.TargetType == auditlog.TargetAccessReport && e.TargetID == patient
	}) {
		t.Fatal("no audit entry of the officer's report")
	}

	// The CSV is the API's own, as an attachment.
	status, header, csvBody := officer.download("/console/access/" + patient + ".csv?action=C")
	_, apiCSV := a.do(t, "GET", "/fhir/admin/reports/patients/"+patient+"/access?format=csv&action=C", "")
	if status != http.StatusOK || header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		header.Get("Content-Disposition") != `attachment; filename="access-report-patient-`+patient+`.csv"` || !bytes.Equal(csvBody, apiCSV) ||
		!bytes.HasPrefix(csvBody, []byte(strings.Join(auditlog.CSVHeader, ",")+"\n")) || bytes.Count(csvBody, []byte("\n")) != 1+len(creates) {
		t.Fatalf("CSV = %d %v\n%s\nwant\n%s", status, header, csvBody, apiCSV)
	}
	if status, _, _ = officer.download("/console/access/" + patient + ".csv?action=Q"); status != http.StatusBadRequest {
		t.Fatalf("CSV with a bad filter = %d", status)
	}
	// The PDF: a table of the same rows.
	status, header, pdf := officer.download("/console/access/" + patient + ".pdf")
	if status != http.StatusOK || header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(pdf, []byte("%PDF-")) ||
		header.Get("Content-Disposition") != `attachment; filename="access-report-patient-`+patient+`.pdf"` {
		t.Fatalf("PDF = %d %v %.40q", status, header, pdf)
	}

	// Others may not, and see no link.
	secadmin := newConsoleBrowser(t, srv)
	secadmin.signIn("/console/audit", people["secadmin"])
	nurse := newConsoleBrowser(t, srv)
	nurse.signIn("/console/report", people["nurse"])
	for _, b := range []*consoleBrowser{secadmin, nurse} {
		for _, path := range []string{"/console/access", "/console/access?by=name&q=quendolyn", "/console/access/" + patient, "/console/access/" + patient + ".csv", "/console/access/" + patient + ".pdf"} {
			pg = b.get(path)
			if pg.status != http.StatusForbidden || !strings.Contains(pg.body, "Not allowed") || strings.Contains(pg.body, `href="/console/access"`) || strings.Contains(pg.body, "Quendolyn") {
				t.Fatalf("%s = %d %s", path, pg.status, pg.body)
			}
		}
		home := b.get("/console/reports")
		if pg = b.do(http.MethodPost, "/console/access", url.Values{"csrf": {b.csrf(home)}, "by": {"name"}, "q": {"quendolyn"}}); pg.status != http.StatusForbidden || strings.Contains(pg.body, "Quendolyn") {
			t.Fatalf("search = %d %s", pg.status, pg.body)
		}
	}

	// Sealed, names cannot be searched: the page says so and offers the
	// report by id, which reads the trail only.
	if status, body := a.do(t, "POST", "/fhir/admin/$seal", ""); status != http.StatusOK {
		t.Fatalf("seal = %d %s", status, body)
	}
	if pg = find(officer, "name", "quendolyn"); pg.status != http.StatusServiceUnavailable || !strings.Contains(pg.body, "The vault is sealed: patient names") ||
		!strings.Contains(pg.body, `name="patient"`) || strings.Contains(pg.body, "Quendolyn</a>") {
		t.Fatalf("search while sealed = %d %s", pg.status, pg.body)
	}
	if pg = officer.get("/console/access/" + patient); pg.status != http.StatusOK || len(reportRows(pg.body)) == 0 {
		t.Fatalf("report while sealed = %d %s", pg.status, pg.body)
	}
}

// today is the UTC day, YYYY-MM-DD.
func today() string { return time.Now().UTC().Format(time.DateOnly) }

// tomorrow is the next UTC day, YYYY-MM-DD.
func tomorrow() string { return time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly) }
