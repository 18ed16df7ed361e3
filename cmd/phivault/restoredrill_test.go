package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/phivault/phivault/backup/restoredrill"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRestoreDrillServeHelper is not a test: run by the restore drill
// tests as the phivault binary (the arguments after "-- phivault"), it
// runs one phivault command in this process until SIGINT.
func TestRestoreDrillServeHelper(t *testing.T) {
	args := flag.Args()
	if len(args) == 0 || args[0] != "phivault" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "phivault: %v\n", err)
		os.Exit(1)
	}
}

// testBinaryCommand runs this test binary as phivault with args, through
// TestRestoreDrillServeHelper: a real server process built from this
// package, with the race detector when the tests have it.
func testBinaryCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^TestRestoreDrillServeHelper$", "--", "phivault"}, args...)...)
}

// restoreDrillRun runs "phivault restore-drill" with args and the test
// binary as phivault, and returns its JSON report.
func restoreDrillRun(t *testing.T, args ...string) (*restoredrill.Report, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &restoreDrillCommand{stdout: &out, stderr: &errOut, command: testBinaryCommand}
	err := c.Run(context.Background(), append(args, "-json"))
	var rep restoredrill.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("restore-drill printed %q (%v), stderr %q; want a JSON report", out.String(), err, errOut.String())
	}
	return &rep, err
}

// TestRestoreDrill_backupOfVault backs up a vault with patients, runs
// the restore drill against it through a real server process, and checks
// the report, the history and that nothing is left behind; drills the
// same snapshot after a patient was shredded (the shred applied again);
// then it corrupts the backup's chunks and checks that the drill fails at the
// restore, saying so, and still leaves no scratch folder.
func TestRestoreDrill_backupOfVault(t *testing.T) {
	ctx := context.Background()
	d, witness := initTestData(t)
	root := t.TempDir()
	bk := filepath.Join(root, "backups")
	identity, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(root, "backup-identity.txt")
	if err := os.WriteFile(idFile, []byte(identity.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, closeVault := openVault(t, d, witness)
	const patients = 8
	var ids []string
	for i := range patients {
		status, body := a.do(t, "POST", "/fhir/Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":"Drillson%d"}]}`, i))
		if status != http.StatusCreated {
			t.Fatalf("create = %d %s", status, body)
		}
		var p struct{ ID string }
		json.Unmarshal(body, &p)
		ids = append(ids, p.ID)
	}
	closeVault()
	snapshot, _, _ := backupRun(t, "-data", string(d), "-to", bk, "-recipient", identity.Recipient().String())
	liveWitness, err := os.ReadFile(witness)
	if err != nil {
		t.Fatal(err)
	}

	// Relative to the working folder, as an operator types it: the
	// scratch folder's paths must not depend on the server's.
	t.Chdir(filepath.Dir(string(d)))
	rep, err := restoreDrillRun(t, "-data", filepath.Base(string(d)), "-from", bk, "-identity", idFile)
	if err != nil {
		t.Fatalf("restore-drill = %v; report %+v", err, rep)
	}
	var text bytes.Buffer
	rep.Text(&text)
	t.Logf("%s", text.String())
	if !rep.Pass || rep.Snapshot != snapshot {
		t.Errorf("report: pass %v, snapshot %s, failures %v; want a pass of snapshot %s", rep.Pass, rep.Snapshot, rep.Failures, snapshot)
	}
	for _, name := range []string{restoredrill.StepRestore, restoredrill.StepFiles, restoredrill.StepCount, restoredrill.StepSource,
		restoredrill.StepStart, restoredrill.StepRead, restoredrill.StepStop, restoredrill.StepAudit, restoredrill.StepCleanup} {
		if s, ok := rep.Step(name); !ok || s.Outcome != restoredrill.OutcomeDone {
			t.Errorf("step %s = %+v (ran %v), want done", name, s, ok)
		}
	}
	if rep.Patients != restoredrill.DefaultSample {
		t.Errorf("patients read through the API = %d, want %d", rep.Patients, restoredrill.DefaultSample)
	}
	if rep.RTOMS < 0 || rep.RPOMS < 0 {
		t.Errorf("RTO %d ms, RPO %d ms; want both measured", rep.RTOMS, rep.RPOMS)
	}
	if rep.AuditCheckpoint == 0 || rep.AuditEntries < rep.AuditCheckpoint {
		t.Errorf("audit entries %d, snapshot checkpoint %d; want a checkpoint and a trail that extends it", rep.AuditEntries, rep.AuditCheckpoint)
	}
	var main *restoredrill.Database
	for i := range rep.Databases {
		if rep.Databases[i].Name == "phivault.db" {
			main = &rep.Databases[i]
		}
	}
	if main == nil || main.Rows < patients || len(main.SHA256) != 64 {
		t.Errorf("phivault.db in the report = %+v, want its hash and at least %d rows", main, patients)
	}
	if after, _ := os.ReadFile(witness); !bytes.Equal(after, liveWitness) {
		t.Errorf("the drill changed the live witness file")
	}
	drills := filepath.Join(string(d), restoredrill.Folder)
	wantOnlyHistory := func() {
		t.Helper()
		entries, err := os.ReadDir(drills)
		if err != nil || len(entries) != 1 || entries[0].Name() != restoredrill.HistoryFile {
			t.Errorf("%s holds %v (%v), want the history only", drills, entries, err)
		}
	}
	wantOnlyHistory()
	var hist bytes.Buffer
	if err := run(ctx, []string{"restore-drill", "history", "-data", string(d)}, &hist, io.Discard); err != nil || !strings.Contains(hist.String(), snapshot+"  pass") {
		t.Errorf("restore-drill history = %v:\n%s\nwant the drill of %s, passed", err, hist.String(), snapshot)
	}

	// A patient shredded after the snapshot: a drill of that snapshot
	// shreds them again, as a restore does, and the records database is
	// then the one file allowed to differ from the manifest.
	a, closeVault = openVault(t, d, witness)
	if status, body := a.do(t, "POST", "/fhir/admin/patients/"+ids[0]+"/$shred", ""); status != http.StatusOK {
		t.Fatalf("shred = %d %s", status, body)
	}
	closeVault()
	backupRun(t, "-data", string(d), "-to", bk) // records the tombstone
	rep, err = restoreDrillRun(t, "-data", string(d), "-from", bk, "-identity", idFile, "-snapshot", snapshot)
	if err != nil || !rep.Pass || rep.Snapshot != snapshot || rep.Shreds != 1 {
		t.Errorf("restore-drill of the snapshot before a shred = %v: pass %v, snapshot %s, shreds %d; want a pass of %s with 1 shred applied again",
			err, rep.Pass, rep.Snapshot, rep.Shreds, snapshot)
	}

	// Near miss: every chunk changed in the backup folder.
	chunks, _ := os.ReadDir(filepath.Join(bk, "chunks"))
	for _, c := range chunks {
		p := filepath.Join(bk, "chunks", c.Name())
		b, _ := os.ReadFile(p)
		b[len(b)-1] ^= 0x80
		os.Chmod(p, 0o600)
		os.WriteFile(p, b, 0o400)
	}
	rep, err = restoreDrillRun(t, "-data", string(d), "-from", bk, "-identity", idFile)
	if err == nil || !strings.Contains(err.Error(), "restore: ") || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("restore-drill of a corrupted backup = %v, want a failure of the restore step naming the corruption", err)
	}
	if s, _ := rep.Step(restoredrill.StepRestore); rep.Pass || s.Outcome != restoredrill.OutcomeFailed || rep.RTOMS != -1 {
		t.Errorf("report of the corrupted backup: pass %v, restore step %+v, RTO %d; want failed, no RTO", rep.Pass, s, rep.RTOMS)
	}
	if s, _ := rep.Step(restoredrill.StepStart); s.Outcome != restoredrill.OutcomeSkipped {
		t.Errorf("start-server after a failed restore = %+v, want skipped", s)
	}
	wantOnlyHistory()
	reports, err := restoredrill.NewHistory(string(d)).Read()
	if err != nil || len(reports) != 3 || !reports[0].Pass || !reports[1].Pass || reports[2].Pass {
		t.Errorf("history = %d reports (%v), want two passes then a failure", len(reports), err)
	}
}

// TestRestoreDrill_schedule checks serve's -restore-drill-* flags (a
// short interval, or no backup folder, refused) and runs the schedule
// against a backup folder without backups: each drill fails at the
// restore, is kept in the history, counted as failed and logged with its
// failures.
func TestRestoreDrill_schedule(t *testing.T) {
	d, _ := initTestData(t)
	root := t.TempDir()
	identity, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(root, "backup-identity.txt")
	os.WriteFile(idFile, []byte(identity.String()+"\n"), 0o600)
	cfg := Config{Data: d, Passphrase: "correct horse battery staple"}
	discard := slog.New(slog.DiscardHandler)
	for _, f := range []restoreDrillFlags{{every: "10s", from: root, identity: idFile}, {every: "1h", identity: idFile}, {every: "1h", from: root}} {
		if s, err := f.schedule(cfg, discard, prometheus.NewRegistry()); err == nil || s != nil {
			t.Errorf("schedule(%+v) = %v, %v; want refused", f, s, err)
		}
	}
	if s, err := (&restoreDrillFlags{}).schedule(cfg, discard, prometheus.NewRegistry()); s != nil || err != nil {
		t.Errorf("schedule without -restore-drill-every = %v, %v; want none", s, err)
	}

	var logs strings.Builder
	f := restoreDrillFlags{every: "1h", from: filepath.Join(root, "no-backups"), identity: idFile}
	s, err := f.schedule(cfg, slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s.every = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.run(ctx); close(done) }()
	h := restoredrill.NewHistory(string(d))
	for {
		reports, err := h.Read()
		if err != nil {
			t.Fatal(err)
		}
		if len(reports) > 0 {
			cancel()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	<-done
	reports, _ := h.Read()
	if st, _ := reports[0].Step(restoredrill.StepRestore); reports[0].Pass || st.Outcome != restoredrill.OutcomeFailed {
		t.Errorf("scheduled drill of no backup: pass %v, restore %+v; want failed at the restore", reports[0].Pass, st)
	}
	if got := testutil.ToFloat64(s.runs.WithLabelValues("fail")); got < 1 {
		t.Errorf("phivault_restore_drills_total{fail} = %v, want ≥ 1", got)
	}
	if !strings.Contains(logs.String(), `"msg":"restore drill failed"`) || !strings.Contains(logs.String(), `"failures":["restore: `) {
		t.Errorf("no error logged for the failed drill:\n%s", logs.String())
	}
}
