package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRestore_shredSurvives shreds a patient after a backup was taken,
// restores that older backup and finds the patient unreadable: the API
// answers 410 and no file of the restored folder holds the patient's
// wrapped key. The shred reaches the backup folder as a tombstone with
// the next backup. The restore also rolls the audit trail back, which it
// records as a gap that the restored server starts with.
func TestRestore_shredSurvives(t *testing.T) {
	ctx := context.Background()
	f := newBackupFixture(t)
	d, witness, root, bk, identity, idFile := f.d, f.witness, f.root, f.bk, f.identity, f.idFile

	a, closeVault := openVault(t, d, witness)
	ids := make([]string, 2)
	for i, family := range []string{"Shredwell", "Keepwell"} {
		status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"`+family+`"}]}`)
		if status != http.StatusCreated {
			t.Fatalf("create = %d %s", status, body)
		}
		var p struct{ ID string }
		json.Unmarshal(body, &p)
		ids[i] = p.ID
	}
	before, _, _ := backupRun(t, "-data", string(d), "-to", bk, "-recipient", identity.Recipient().String())
	var wrapped []byte
	db := mustOpenSQLite(t, d.database())
	if err := db.QueryRow(`SELECT wrapped FROM keys WHERE id = ?`, "patient/"+ids[0]).Scan(&wrapped); err != nil || len(wrapped) < 16 {
		t.Fatalf("read the patient's wrapped key: %v", err)
	}
	db.Close()
	if status, body := a.do(t, "POST", "/fhir/admin/patients/"+ids[0]+"/$shred", ""); status != http.StatusOK {
		t.Fatalf("shred = %d %s", status, body)
	}
	gone, _ := a.do(t, "GET", "/fhir/Patient/"+ids[0], "")
	closeVault()
	var out bytes.Buffer
	if err := run(ctx, []string{"backup", "-data", string(d), "-to", bk}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "recorded 1 new shred tombstones") {
		t.Fatalf("backup after the shred = %v, printed %q; want one tombstone recorded", err, out.String())
	}

	d2 := dataDir(filepath.Join(root, "restored"))
	out.Reset()
	if err := run(ctx, []string{"restore", "-from", bk, "-snapshot", before, "-identity", idFile, "-data", string(d2), "-audit-witness-file", witness}, &out, io.Discard); err != nil {
		t.Fatalf("restore of the backup from before the shred = %v", err)
	}
	for _, want := range []string{"shredded again 1 patients", "GAP: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("restore printed %q, want %q", out.String(), want)
		}
	}
	// The whole restore verified the snapshot: backup list says so.
	out.Reset()
	if err := run(ctx, []string{"backup", "list", "-data", string(d), "-to", bk}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(before + `\s.*\syes\n`).MatchString(out.String()) {
		t.Errorf("backup list after the restore:\n%s\nwant snapshot %s verified", out.String(), before)
	}
	r, closeRestored := openVault(t, d2, witness)
	if status, body := r.do(t, "GET", "/fhir/Patient/"+ids[0], ""); status != gone || status == http.StatusOK {
		t.Errorf("read the shredded patient after restoring an older backup = %d %s, want %d as before the restore", status, body, gone)
	}
	if status, body := r.do(t, "GET", "/fhir/Patient/"+ids[1], ""); status != http.StatusOK || !strings.Contains(string(body), "Keepwell") {
		t.Errorf("read the other patient = %d %s, want 200", status, body)
	}
	closeRestored()
	err := filepath.Walk(string(d2), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, wrapped) {
			t.Errorf("%s holds the shredded patient's wrapped key", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"audit", "verify", "-data", string(d2), "-audit-witness-file", witness}, io.Discard, io.Discard); err != nil {
		t.Errorf("audit verify of the restored vault = %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"audit", "export", "-data", string(d2)}, &out, io.Discard); err != nil {
		t.Fatalf("audit export = %v", err)
	}
	for _, want := range []string{`"action":"audit-gap"`, "started on a data folder restored from a backup: snapshot " + before} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the restored trail does not record the restore: no %q", want)
		}
	}
}

// TestRestore_gapRefusals checks the near misses of a recorded gap: a
// restored server does not start if the witness went on after the restore
// (the old server still writing), or if its gap record was changed; and
// audit verify fails a trail whose gap entry is missing.
func TestRestore_gapRefusals(t *testing.T) {
	ctx := context.Background()
	f := newBackupFixture(t)
	d, witness, root, bk, identity, idFile := f.d, f.witness, f.root, f.bk, f.identity, f.idFile
	a, closeVault := openVault(t, d, witness)
	a.do(t, "GET", "/fhir/Patient", "")
	backupRun(t, "-data", string(d), "-to", bk, "-recipient", identity.Recipient().String())
	a.do(t, "GET", "/fhir/Patient", "")
	closeVault() // writes a checkpoint past the backup
	restore := func(name string) dataDir {
		t.Helper()
		dd := dataDir(filepath.Join(root, name))
		if err := run(ctx, []string{"restore", "-from", bk, "-identity", idFile, "-data", string(dd), "-audit-witness-file", witness}, io.Discard, io.Discard); err != nil {
			t.Fatalf("restore = %v", err)
		}
		if _, err := os.Stat(dd.auditGapRecord()); err != nil {
			t.Fatalf("restore wrote no gap record: %v", err)
		}
		return dd
	}

	// A changed gap record.
	changed := restore("changed")
	b, _ := os.ReadFile(changed.auditGapRecord())
	os.WriteFile(changed.auditGapRecord(), bytes.Replace(b, []byte("restored "), []byte("restored 1"), 1), 0o600)
	if app, err := openTestApp(changed, AuditConfig{WitnessFile: witness}); err == nil {
		app.Close()
		t.Error("a server started on a restored folder whose gap record was changed")
	} else if !strings.Contains(err.Error(), "gap record") {
		t.Errorf("start with a changed gap record = %v, want it named", err)
	}

	// The old server went on after the restore.
	moved := restore("moved")
	a, closeVault = openVault(t, d, witness)
	a.do(t, "GET", "/fhir/Patient", "")
	closeVault()
	if app, err := openTestApp(moved, AuditConfig{WitnessFile: witness}); err == nil {
		app.Close()
		t.Error("a server started on a restored folder although the witness went on after the restore")
	} else if !strings.Contains(err.Error(), "went on since the restore") {
		t.Errorf("start after the witness went on = %v, want it said", err)
	}
}
