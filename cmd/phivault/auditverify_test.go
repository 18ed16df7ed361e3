package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/sqlite"
)

// TestAuditVerify_index deletes the audit index rows that make a patient's
// read show in their access report, as someone with the database can, and
// checks that "phivault audit verify" fails and names the entry, although
// every entry and hash is intact: on SQLite, and on PostgreSQL with the
// store given to the command as to serve.
func TestAuditVerify_index(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		d, _ := initTestData(t)
		testAuditVerifyIndex(t, d, StoreConfig{}, func(patient string) int64 {
			raw, err := sql.Open("sqlite", "file:"+sqlite.DefaultAuditPath(d.database())+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			res, err := raw.Exec(`DELETE FROM audit_index WHERE patient = ? AND action = 'read'`, patient)
			if err != nil {
				t.Fatalf("delete index rows: %v", err)
			}
			n, _ := res.RowsAffected()
			return n
		})
	})
	t.Run("postgres", func(t *testing.T) {
		sc := testPostgres(t)
		setStoreEnv(t, sc)
		d, _ := initTestData(t)
		testAuditVerifyIndex(t, d, sc, func(patient string) int64 {
			return pgExec(t, sc, `DELETE FROM audit_index WHERE patient = $1 AND action = 'read'`, patient)
		})
	})
}

// testAuditVerifyIndex reads a patient in the vault in d on store sc,
// checks that audit verify passes, removes the read's index rows with
// deleteRows, and checks that audit verify fails naming the patient.
func testAuditVerifyIndex(t *testing.T, d dataDir, sc StoreConfig, deleteRows func(patient string) int64) {
	ctx := context.Background()
	a := mustServeTestApp(t, d, sc)
	status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"Quendolyn"}]}`)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %s", status, body)
	}
	var p struct{ ID string }
	json.Unmarshal(body, &p)
	if status, body := a.do(t, "GET", "/fhir/Patient/"+p.ID, ""); status != http.StatusOK {
		t.Fatalf("read = %d %s", status, body)
	}
	report := func() string {
		t.Helper()
		status, body := a.do(t, "GET", "/fhir/admin/reports/patients/"+p.ID+"/access?format=csv", "")
		if status != http.StatusOK {
			t.Fatalf("access report = %d %s", status, body)
		}
		return string(body)
	}
	// The second report indexes the first report's own entry, so the
	// read's rows are not the index's last (whose loss the next catch-up
	// would repair).
	report()
	if r := report(); !strings.Contains(r, ",read,") {
		t.Fatalf("the access report does not show the read:\n%s", r)
	}
	if _, err := a.audit.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	verify := []string{"audit", "verify", "-data", string(d), "-audit-witness-file", testWitness(d)}
	if err := run(ctx, verify, io.Discard, io.Discard); err != nil {
		t.Fatalf("audit verify of an untouched trail = %v", err)
	}

	if n := deleteRows(p.ID); n == 0 {
		t.Fatal("deleted no index rows")
	}
	if strings.Contains(report(), ",read,") {
		t.Fatalf("the access report still shows the read; the tampering did not take")
	}
	err := run(ctx, verify, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "audit index does not match the entries") || !strings.Contains(err.Error(), p.ID) {
		t.Errorf("audit verify with index rows deleted = %v, want it to fail naming the patient's missing row", err)
	}
}

// initTestData runs init, with args added, in a new data folder with an
// outside witness file (testWitness) and returns both paths.
func initTestData(t *testing.T, args ...string) (dataDir, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	witness := testWitness(dataDir(dir))
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	if err := run(context.Background(), append([]string{"init", "-data", dir, "-audit-witness-file", witness}, args...), io.Discard, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	// A key file with a low scrypt work factor: these tests open the vault
	// many times. It wraps nothing yet, so replacing it loses nothing.
	d := dataDir(dir)
	if err := os.Remove(d.keyFile()); err != nil {
		t.Fatal(err)
	}
	if err := keyring.CreateFile(d.keyFile(), []byte("correct horse battery staple"), keyring.FileOptions{WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	return d, witness
}

// testWitness is the outside witness file that the tests' data folder d
// has: "witness/audit-checkpoints.log" beside it.
func testWitness(d dataDir) string {
	return filepath.Join(filepath.Dir(string(d)), "witness", "audit-checkpoints.log")
}

// mustServeTestApp opens the vault in d on store sc with a new admin token
// and serves its FHIR API on an httptest server until the test ends.
func mustServeTestApp(t *testing.T, d dataDir, sc StoreConfig) *auditApp {
	t.Helper()
	token, err := newAdminToken(d)
	if err != nil {
		t.Fatal(err)
	}
	a, err := openApp(context.Background(), Config{Data: d, Passphrase: "correct horse battery staple", Store: sc, Audit: AuditConfig{WitnessFile: testWitness(d)}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	srv := httptest.NewServer(a.fhirAndAdmin())
	t.Cleanup(func() { srv.Close(); a.Close() })
	return &auditApp{app: a, url: srv.URL, token: token}
}

// openTestApp opens the vault in d with the audit trail configured as cfg,
// and with d's witness file (testWitness) if cfg names none.
func openTestApp(d dataDir, cfg AuditConfig) (*app, error) {
	if cfg.WitnessFile == "" {
		cfg.WitnessFile = testWitness(d)
	}
	return openApp(context.Background(), Config{Data: d, Passphrase: "correct horse battery staple", Audit: cfg}, slog.New(slog.DiscardHandler))
}

// appendAndClose opens the vault in d, appends n entries and closes it,
// which leaves a checkpoint of them in every witness.
func appendAndClose(t *testing.T, d dataDir, n int) {
	t.Helper()
	a, err := openTestApp(d, AuditConfig{})
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	for i := range n {
		if err := a.audit.log.Append(context.Background(), &phivault.AuditEntry{Actor: "admin", Action: phivault.ActionRead, TargetType: "Patient", TargetID: fmt.Sprint(i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// cutAuditTail removes the entries from index from on, as someone with
// the database file can after dropping the append-only triggers.
func cutAuditTail(t *testing.T, d dataDir, from int64) {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+sqlite.DefaultAuditPath(d.database())+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{
		"DROP TRIGGER audit_entries_no_delete", "DROP TRIGGER audit_hashes_no_delete",
		fmt.Sprintf("DELETE FROM audit_entries WHERE idx >= %d", from), fmt.Sprintf("DELETE FROM audit_hashes WHERE idx >= %d", from),
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestAudit_cutTail cuts the audit log's tail and deletes the data folder's
// checkpoint file (finding 9): the outside witness file stops the start.
// With the outside file deleted too, the start is refused for want of any
// checkpoint, unless -audit-recover names the log's size, which is
// recorded. Then the outside file alone is deleted: the folder's own
// checkpoints, which whoever holds the folder can forge, do not suffice to
// start. Last, the server refuses a witness file inside the folder. (One
// data folder throughout: each init costs a key derivation.)
func TestAudit_cutTail(t *testing.T) {
	d, witness := initTestData(t)
	appendAndClose(t, d, 10)
	cutAuditTail(t, d, 6)
	if err := os.Remove(d.auditCheckpoints()); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"audit", "verify", "-data", string(d), "-audit-witness-file", witness}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "entries were removed") {
		t.Errorf("audit verify of a cut log = %v, want the outside witness's checkpoint to fail it", err)
	}
	if a, err := openTestApp(d, AuditConfig{}); err == nil {
		a.Close()
		t.Fatal("openApp with a cut log and the folder's checkpoints deleted succeeded; want the outside witness to stop it")
	} else if !strings.Contains(err.Error(), witness) || !strings.Contains(err.Error(), "entries were removed") {
		t.Errorf("openApp with a cut log = %v, want it to name the witness file and removed entries", err)
	}

	if err := os.Remove(witness); err != nil {
		t.Fatal(err)
	}
	if a, err := openTestApp(d, AuditConfig{}); err == nil {
		a.Close()
		t.Fatal("openApp with entries and no checkpoint anywhere succeeded; want a refusal")
	} else if !errors.Is(err, errNoCheckpoint) || !strings.Contains(hintOf(err), "-audit-recover=6") {
		t.Errorf("openApp with entries and no checkpoint = %v (hint %q), want %v with a hint of -audit-recover=6", err, hintOf(err), errNoCheckpoint)
	}
	recoverAndReopen(t, d)

	// The outside witness file alone lost.
	if err := os.Remove(witness); err != nil {
		t.Fatal(err)
	}
	if a, err := openTestApp(d, AuditConfig{}); err == nil {
		a.Close()
		t.Fatal("openApp with the outside witness file deleted succeeded; want a refusal")
	} else if !errors.Is(err, errNoCheckpoint) || !strings.Contains(err.Error(), witness) {
		t.Errorf("openApp with the outside witness file deleted = %v, want %v naming it", err, errNoCheckpoint)
	}
	err = run(context.Background(), []string{"audit", "verify", "-data", string(d), "-audit-witness-file", witness}, io.Discard, io.Discard)
	if !errors.Is(err, errNoCheckpoint) {
		t.Errorf("audit verify with the outside witness file deleted = %v, want %v", err, errNoCheckpoint)
	}
	recoverAndReopen(t, d)

	if a, err := openTestApp(d, AuditConfig{WitnessFile: d.path("witness.log")}); err == nil {
		a.Close()
		t.Error("openApp with the witness file inside the data folder succeeded; want a refusal")
	}
}

// hintOf returns the hint of err, or "".
func hintOf(err error) string {
	var h *hintError
	if errors.As(err, &h) {
		return h.hint
	}
	return ""
}

// auditSize returns the number of entries in the audit log of d.
func auditSize(t *testing.T, d dataDir) int64 {
	t.Helper()
	ctx := context.Background()
	db, err := openStore(ctx, d, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.AuditSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// recoverAndReopen starts the vault in d with -audit-recover set to the
// log's size, checks that the recovery is recorded, and that the next start
// needs no flag.
func recoverAndReopen(t *testing.T, d dataDir) {
	t.Helper()
	n := auditSize(t, d)
	a, err := openTestApp(d, AuditConfig{Recover: n})
	if err != nil {
		t.Fatalf("openApp with -audit-recover=%d: %v", n, err)
	}
	checkRecovered(t, a, n)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// The recovery left checkpoints: the next start needs no flag.
	a, err = openTestApp(d, AuditConfig{})
	if err != nil {
		t.Fatalf("openApp after recovering: %v", err)
	}
	a.Close()
}

// checkRecovered checks that the last entry of a's log records a start
// with -audit-recover=n.
func checkRecovered(t *testing.T, a *app, n int64) {
	t.Helper()
	size := a.audit.log.Tree().N
	data, err := a.db.ReadAuditEntries(context.Background(), size-1, size)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := auditlog.Decode(data[0]); err != nil || e.Action != phivault.ActionAuditRecover || !strings.Contains(e.Decision, fmt.Sprintf("-audit-recover=%d:", n)) {
		t.Errorf("last entry after -audit-recover=%d = %+v, %v; want the recovery recorded", n, e, err)
	}
}

// TestAudit_recoverOnce checks that -audit-recover is a one-time override
// (follow-up review, finding 2): it names the size of the log the operator
// accepts without a checkpoint, and any other size is refused, so the flag
// left in a service's configuration stops the next start instead of
// letting every later loss of the witness pass with a warning.
func TestAudit_recoverOnce(t *testing.T) {
	d, witness := initTestData(t)
	appendAndClose(t, d, 10)
	if err := os.Remove(witness); err != nil {
		t.Fatal(err)
	}
	if a, err := openTestApp(d, AuditConfig{Recover: 9}); err == nil {
		a.Close()
		t.Fatal("openApp with -audit-recover=9 on a log of 10 entries succeeded; want a refusal")
	} else if !errors.Is(err, errRecoverMismatch) {
		t.Errorf("openApp with -audit-recover=9 on a log of 10 entries = %v, want %v", err, errRecoverMismatch)
	}
	a, err := openTestApp(d, AuditConfig{Recover: 10})
	if err != nil {
		t.Fatalf("openApp with -audit-recover=10 on a log of 10 entries: %v", err)
	}
	checkRecovered(t, a, 10)
	for i := range 3 {
		if err := a.audit.log.Append(context.Background(), &phivault.AuditEntry{Actor: "admin", Action: phivault.ActionRead, TargetType: "Patient", TargetID: fmt.Sprint(i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// The flag left in place: refused with the witness intact, and when
	// the witness is lost again.
	if a, err := openTestApp(d, AuditConfig{Recover: 10}); err == nil {
		a.Close()
		t.Error("second openApp with -audit-recover=10 after more entries succeeded; want a refusal")
	} else if !errors.Is(err, errRecoverMismatch) {
		t.Errorf("second openApp with -audit-recover=10 = %v, want %v", err, errRecoverMismatch)
	}
	if err := os.Remove(witness); err != nil {
		t.Fatal(err)
	}
	if a, err := openTestApp(d, AuditConfig{Recover: 10}); err == nil {
		a.Close()
		t.Error("openApp with -audit-recover=10 after more entries and the witness lost again succeeded; want a refusal")
	} else if !errors.Is(err, errRecoverMismatch) {
		t.Errorf("openApp with -audit-recover=10 after the witness was lost again = %v, want %v", err, errRecoverMismatch)
	}
	recoverAndReopen(t, d) // the value that matches the log proceeds
}

// TestInit_witnessRequired checks that init refuses to make a data folder
// without an outside witness file, or with one inside the folder.
func TestInit_witnessRequired(t *testing.T) {
	t.Setenv("PHIVAULT_AUDIT_WITNESS_FILE", "")
	dir := filepath.Join(t.TempDir(), "data")
	err := run(context.Background(), []string{"init", "-data", dir}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "audit witness file") {
		t.Errorf("init without a witness file = %v, want it to ask for one", err)
	}
	err = run(context.Background(), []string{"init", "-data", dir, "-audit-witness-file", filepath.Join(dir, "w.log")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "inside the data folder") {
		t.Errorf("init with the witness file inside the folder = %v, want a refusal", err)
	}
}

// TestAudit_monitor edits an entry in the database behind a running vault
// (finding 9): the monitor's next full pass reports it, /healthz answers
// 503, and the metric phivault_audit_verify_ok drops to 0.
func TestAudit_monitor(t *testing.T) {
	ctx := context.Background()
	d, _ := initTestData(t)
	a, err := openTestApp(d, AuditConfig{VerifyInterval: -1}) // passes run when the test calls Check
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	defer a.Close()
	for i := range 5 {
		if err := a.audit.log.Append(ctx, &phivault.AuditEntry{Actor: "admin", Action: phivault.ActionRead, TargetType: "Patient", TargetID: fmt.Sprint(i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	health := a.audit.health(a.seal.health())
	healthz := func() int {
		w := httptest.NewRecorder()
		health.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
		return w.Code
	}
	verifyOK := func() float64 {
		t.Helper()
		mfs, err := a.metrics.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "phivault_audit_verify_ok" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no phivault_audit_verify_ok metric")
		return 0
	}
	if err := a.audit.monitor.Check(ctx, true); err != nil || healthz() != http.StatusOK || verifyOK() != 1 {
		t.Fatalf("check of an untouched trail = %v, healthz %d, verify_ok %v", err, healthz(), verifyOK())
	}

	raw, err := sql.Open("sqlite", "file:"+sqlite.DefaultAuditPath(d.database())+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{"DROP TRIGGER audit_entries_no_update", `UPDATE audit_entries SET data = replace(data, '"target_id":"2"', '"target_id":"7"') WHERE instr(data, '"target_id":"2"') > 0`} {
		if res, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		} else if n, _ := res.RowsAffected(); strings.HasPrefix(q, "UPDATE") && n != 1 {
			t.Fatalf("%s: %d rows", q, n)
		}
	}
	if err := a.audit.monitor.Check(ctx, true); err == nil {
		t.Error("check after an entry was edited = nil, want a mismatch")
	}
	if code := healthz(); code != http.StatusServiceUnavailable {
		t.Errorf("healthz after the mismatch = %d, want 503", code)
	}
	if v := verifyOK(); v != 0 {
		t.Errorf("phivault_audit_verify_ok after the mismatch = %v, want 0", v)
	}
}

// TestAudit_redirectedWitness is the follow-up review's first finding:
// whoever holds the data folder cuts the log's tail, signs a checkpoint of
// the cut log with the folder's own key into a new file outside the folder
// (and into the folder's file), and points the folder's record of the
// outside witness at it. The server must refuse to start, and audit verify
// must fail: the outside witness is the file the operator names on every
// start, never the one the folder names.
func TestAudit_redirectedWitness(t *testing.T) {
	ctx := context.Background()
	t.Setenv("PHIVAULT_AUDIT_WITNESS_FILE", "")
	d, witness := initTestData(t)
	appendAndClose(t, d, 10)
	cutAuditTail(t, d, 6)
	forged := forgeCheckpoint(t, d)
	if err := writeFileAtomic(d.auditWitnessRecord(), []byte(forged+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Started without naming the witness file: before the fix, the path
	// came from the folder's record, and the start and verify passed.
	if a, err := openApp(ctx, Config{Data: d, Passphrase: "correct horse battery staple"}, slog.New(slog.DiscardHandler)); err == nil {
		a.Close()
		t.Fatal("openApp on a cut log, with the witness record pointed at a forged file, succeeded; want a refusal")
	} else if !errors.Is(err, errNoWitnessFile) {
		t.Errorf("openApp without the witness file named = %v, want %v", err, errNoWitnessFile)
	}
	if err := run(ctx, []string{"audit", "verify", "-data", string(d)}, io.Discard, io.Discard); err == nil {
		t.Error("audit verify of a cut log, with the witness record pointed at a forged file, succeeded; want a failure")
	} else if !errors.Is(err, errNoWitnessFile) {
		t.Errorf("audit verify without the witness file named = %v, want %v", err, errNoWitnessFile)
	}

	// Named, as it must be now: it is not the file the record names.
	if a, err := openTestApp(d, AuditConfig{WitnessFile: witness}); err == nil {
		a.Close()
		t.Fatal("openApp with the witness record redirected succeeded; want a refusal")
	} else if !errors.Is(err, errWitnessMismatch) || !strings.Contains(err.Error(), forged) {
		t.Errorf("openApp with the witness record redirected = %v, want %v naming the recorded file", err, errWitnessMismatch)
	}
	verify := []string{"audit", "verify", "-data", string(d), "-audit-witness-file", witness}
	if err := run(ctx, verify, io.Discard, io.Discard); !errors.Is(err, errWitnessMismatch) {
		t.Errorf("audit verify with the witness record redirected = %v, want %v", err, errWitnessMismatch)
	}

	// The record put back: the named witness's checkpoints find the cut.
	if err := writeFileAtomic(d.auditWitnessRecord(), []byte(witness+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, err := openTestApp(d, AuditConfig{WitnessFile: witness}); err == nil {
		a.Close()
		t.Fatal("openApp on a cut log with the forged checkpoints in the folder succeeded; want a refusal")
	} else if !strings.Contains(err.Error(), "entries were removed") {
		t.Errorf("openApp on a cut log = %v, want it to find removed entries", err)
	}
	if err := run(ctx, verify, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "entries were removed") {
		t.Errorf("audit verify of a cut log = %v, want it to find removed entries", err)
	}
	// A folder without the record (made before init kept one) starts on
	// the file named alone, and the log is still checked against it.
	if err := os.Remove(d.auditWitnessRecord()); err != nil {
		t.Fatal(err)
	}
	if a, err := openTestApp(d, AuditConfig{WitnessFile: witness}); err == nil {
		a.Close()
		t.Error("openApp on a cut log without the witness record succeeded; want a refusal")
	}
}

// forgeCheckpoint signs a checkpoint of d's log as it stands with d's own
// key, as whoever holds the folder can, into a new file outside d and into
// a new audit-checkpoints.log in d, and returns the new file's path.
func forgeCheckpoint(t *testing.T, d dataDir) string {
	t.Helper()
	ctx := context.Background()
	signer, _, err := auditKeys(d)
	if err != nil {
		t.Fatal(err)
	}
	db, err := openStore(ctx, d, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	forged := filepath.Join(t.TempDir(), "forged-checkpoints.log")
	if err := os.Remove(d.auditCheckpoints()); err != nil {
		t.Fatal(err)
	}
	l := auditlog.New(db, signer.Name(), signer)
	l.CheckpointInterval = -1
	l.Witnesses = []auditlog.Witness{&auditlog.FileWitness{Path: forged}, &auditlog.FileWitness{Path: d.auditCheckpoints()}}
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil { // signs and publishes a checkpoint
		t.Fatal(err)
	}
	return forged
}
