package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/phivault/phivault/sqlite"
)

// openVault opens the vault in d with witness file witness and a new admin
// token, and serves it on an httptest server; close stops both.
func openVault(t *testing.T, d dataDir, witness string) (a *auditApp, close func()) {
	t.Helper()
	token, err := newAdminToken(d)
	if err != nil {
		t.Fatal(err)
	}
	app, err := openApp(context.Background(), Config{Data: d, Passphrase: "correct horse battery staple", Audit: AuditConfig{WitnessFile: witness}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp(%s): %v", d, err)
	}
	srv := httptest.NewServer(app.fhirAndAdmin())
	return &auditApp{app: app, url: srv.URL, token: token}, func() {
		srv.Close()
		if err := app.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

// backupFixture is a new vault, a backup folder bk in a temporary root,
// and the age identity its backups are encrypted to (also in idFile).
type backupFixture struct {
	d                         dataDir
	witness, root, bk, idFile string
	identity                  *age.X25519Identity
}

func newBackupFixture(t *testing.T) *backupFixture {
	t.Helper()
	f := &backupFixture{root: t.TempDir()}
	f.d, f.witness = initTestData(t)
	f.bk = filepath.Join(f.root, "backups")
	f.identity, _ = age.GenerateX25519Identity()
	f.idFile = filepath.Join(f.root, "backup-identity.txt")
	if err := os.WriteFile(f.idFile, []byte(f.identity.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// backupRun runs "phivault backup" with args and returns the bytes of the
// snapshot and the bytes it wrote.
func backupRun(t *testing.T, args ...string) (id string, size, written int64) {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"backup"}, args...), &out, io.Discard); err != nil {
		t.Fatalf("phivault backup %s = %v", strings.Join(args, " "), err)
	}
	m := regexp.MustCompile(`^snapshot ([0-9a-f]{32}): \d+ files, (\d+) bytes; wrote (\d+) bytes`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("phivault backup printed %q", out.String())
	}
	size, _ = strconv.ParseInt(m[2], 10, 64)
	written, _ = strconv.ParseInt(m[3], 10, 64)
	return m[1], size, written
}

// TestBackup_restoreVault backs up a vault with records while it serves,
// restores it into a new folder, opens it, reads the records back, and
// checks its audit trail with "audit verify".
func TestBackup_restoreVault(t *testing.T) {
	ctx := context.Background()
	f := newBackupFixture(t)
	d, witness, root, bk, identity, idFile := f.d, f.witness, f.root, f.bk, f.identity, f.idFile

	a, closeVault := openVault(t, d, witness)
	patients := map[string]string{} // id → family name
	create := func(n int) {
		for i := range n {
			family := fmt.Sprintf("Backupson%d", len(patients)+i)
			// A few KB each, as real records are.
			notes := strings.Repeat("Backup test patient. ", 200)
			status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"`+family+`"}],"address":[{"text":"`+notes+`"}]}`)
			if status != http.StatusCreated {
				t.Fatalf("create = %d %s", status, body)
			}
			var p struct{ ID string }
			json.Unmarshal(body, &p)
			patients[p.ID] = family
		}
	}
	create(600)
	first, size1, written1 := backupRun(t, "-data", string(d), "-to", bk, "-recipient", identity.Recipient().String())
	create(1)
	second, size2, written2 := backupRun(t, "-data", string(d), "-to", bk)
	t.Logf("first backup: %d of %d bytes written; second: %d of %d (%.3f)", written1, size1, written2, size2, float64(written2)/float64(size2))
	// The vault is small (a few MB), and each page a write touches costs
	// a chunk (64 KiB on average): a quarter at most here, far less on a
	// vault of real size (TestBackup_incremental in package backup). The
	// snapshot's size counts the journal's zero fill, which dedups, so
	// compare with what the first backup wrote too.
	if float64(written2)/float64(size2) > 0.25 || written2 > written1/4 {
		t.Errorf("second backup after one new patient wrote %d of %d bytes (the first wrote %d), want far less", written2, size2, written1)
	}
	closeVault()
	third, _, _ := backupRun(t, "-data", string(d), "-to", bk) // the server stopped

	var list bytes.Buffer
	if err := run(ctx, []string{"backup", "list", "-data", string(d), "-to", bk}, &list, io.Discard); err != nil {
		t.Fatalf("backup list = %v", err)
	}
	for _, id := range []string{first, second, third} {
		if !strings.Contains(list.String(), id) {
			t.Errorf("backup list does not show snapshot %s:\n%s", id, list.String())
		}
	}

	// A wrong identity is refused and leaves nothing.
	other, _ := age.GenerateX25519Identity()
	otherFile := filepath.Join(root, "other-identity.txt")
	os.WriteFile(otherFile, []byte(other.String()+"\n"), 0o600)
	restoreRoot := filepath.Join(root, "restores")
	os.Mkdir(restoreRoot, 0o700)
	d2 := dataDir(filepath.Join(restoreRoot, "data"))
	err := run(ctx, []string{"restore", "-from", bk, "-identity", otherFile, "-data", string(d2), "-audit-witness-file", witness}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "identity") {
		t.Errorf("restore with a wrong identity = %v, want refused naming the identity", err)
	}
	if entries, _ := os.ReadDir(restoreRoot); len(entries) != 0 {
		t.Errorf("a refused restore left %v", entries)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"restore", "-from", bk, "-identity", idFile, "-data", string(d2), "-verifier", d.auditVerifierKey(), "-audit-witness-file", witness}, &out, io.Discard); err != nil {
		t.Fatalf("restore = %v", err)
	}
	if !strings.Contains(out.String(), third) {
		t.Errorf("restore printed %q, want the latest snapshot %s", out.String(), third)
	}
	if !regexp.MustCompile(`audit checkpoint size [1-9][0-9]*\n$`).MatchString(out.String()) {
		t.Errorf("restore printed %q, want the size of the audit checkpoint in the manifest", out.String())
	}
	if _, err := os.Stat(d2.backupKeyCache()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the restored folder holds the backup key cache (%v); backups leave it out", err)
	}
	if err := run(ctx, []string{"restore", "-from", bk, "-identity", idFile, "-data", string(d2), "-audit-witness-file", witness}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a non-empty folder = %v, want refused", err)
	}

	r, closeRestored := openVault(t, d2, witness)
	for id, family := range patients {
		status, body := r.do(t, "GET", "/fhir/Patient/"+id, "")
		if status != http.StatusOK || !strings.Contains(string(body), family) {
			t.Fatalf("read restored Patient/%s = %d %s, want %s", id, status, body, family)
		}
	}
	closeRestored()
	if err := run(ctx, []string{"audit", "verify", "-data", string(d2), "-audit-witness-file", witness}, io.Discard, io.Discard); err != nil {
		t.Errorf("audit verify of the restored vault = %v", err)
	}
}

// TestBackup_whileWriting backs up a vault while patients are being
// created through the API, restores it, and checks that the copy is
// consistent: the restored vault starts against the witness file as it was
// when the backup began (so its trail extends every checkpoint published
// before it), every patient acknowledged before the backup began reads
// back, the database passes integrity_check, and audit verify passes.
func TestBackup_whileWriting(t *testing.T) {
	ctx := context.Background()
	f := newBackupFixture(t)
	d, witness, root, bk, identity, idFile := f.d, f.witness, f.root, f.bk, f.identity, f.idFile

	a, closeVault := openVault(t, d, witness)
	post := func(family string) (string, error) {
		req, _ := http.NewRequest("POST", a.url+"/fhir/Patient", strings.NewReader(`{"resourceType":"Patient","name":[{"family":"`+family+`"}]}`))
		req.Header.Set("Authorization", "Bearer "+a.token)
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var p struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("create = %d, %v", resp.StatusCode, err)
		}
		return p.ID, nil
	}
	before := map[string]string{}
	for i := range 50 {
		family := fmt.Sprint("Before", i)
		id, err := post(family)
		if err != nil {
			t.Fatal(err)
		}
		before[id] = family
	}
	stop := make(chan struct{})
	errs := make(chan error, 2)
	for w := range 2 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if _, err := post(fmt.Sprintf("During%d_%d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Hold the audit database's write lock, as a slow disk would: the
	// entries of the patients created meanwhile are acknowledged from the
	// journal and not yet in the database when the backup copies it, so
	// only the journal's copy brings them back.
	lock := mustOpenSQLite(t, sqlite.DefaultAuditPath(d.database()))
	lock.SetMaxOpenConns(1)
	if _, err := lock.Exec("BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	journaled := map[string]string{}
	for i := range 5 {
		family := fmt.Sprint("Journaled", i)
		id, err := post(family)
		if err != nil {
			t.Fatal(err)
		}
		journaled[id] = family
	}
	backupRun(t, "-data", string(d), "-to", bk, "-recipient", identity.Recipient().String())
	if _, err := lock.Exec("ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	close(stop)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	closeVault()

	d2 := dataDir(filepath.Join(root, "restored"))
	var out bytes.Buffer
	if err := run(ctx, []string{"restore", "-from", bk, "-identity", idFile, "-data", string(d2), "-verifier", d.auditVerifierKey(), "-audit-witness-file", witness}, &out, io.Discard); err != nil {
		t.Fatalf("restore = %v", err)
	}
	// The vault went on after the backup: the witness saw more of the
	// trail than the backup holds, and the restore says so.
	if !regexp.MustCompile(`GAP: the restored audit trail holds \d+ entries, the witnesses saw \d+: [1-9]\d* entries are lost`).MatchString(out.String()) {
		t.Errorf("restore printed %q, want the audit gap", out.String())
	}
	db := mustOpenSQLite(t, d2.database())
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check of the restored phivault.db = %q, %v", ok, err)
	}
	db.Close()
	r, closeRestored := openVault(t, d2, witness)
	for id, family := range before {
		status, body := r.do(t, "GET", "/fhir/Patient/"+id, "")
		if status != http.StatusOK || !strings.Contains(string(body), family) {
			t.Fatalf("read restored Patient/%s = %d %s, want %s", id, status, body, family)
		}
	}
	for id, family := range journaled {
		status, body := r.do(t, "GET", "/fhir/Patient/"+id, "")
		if status != http.StatusOK || !strings.Contains(string(body), family) {
			t.Fatalf("read restored Patient/%s = %d %s, want %s", id, status, body, family)
		}
		status, body = r.do(t, "GET", "/fhir/admin/reports/patients/"+id+"/access?format=csv", "")
		if status != http.StatusOK || !strings.Contains(string(body), ",create,") {
			t.Errorf("restored access report of Patient/%s = %d, without its creation:\n%s", id, status, body)
		}
	}
	closeRestored()
	out.Reset()
	if err := run(ctx, []string{"audit", "verify", "-data", string(d2), "-audit-witness-file", witness}, &out, io.Discard); err != nil {
		t.Errorf("audit verify of the restored vault = %v", err)
	}
	if !strings.Contains(out.String(), "GAP: restored from backup snapshot") {
		t.Errorf("audit verify printed %q, want the gap reported", out.String())
	}
	if _, err := os.Stat(d2.auditGapRecord()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the gap record is still pending after the server started (%v)", err)
	}
}

func mustOpenSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestBackup_refusals checks the command's refusals: no data folder, a
// PostgreSQL folder, a new backup folder without recipients or with a bad
// one, another vault's backup folder without the identity; and a restore
// of a corrupted backup through the command leaves nothing.
func TestBackup_refusals(t *testing.T) {
	ctx := context.Background()
	f := newBackupFixture(t)
	d, _, root, bk, identity, idFile := f.d, f.witness, f.root, f.bk, f.identity, f.idFile
	backupErr := func(args ...string) error {
		return run(ctx, append([]string{"backup"}, args...), io.Discard, io.Discard)
	}

	if err := backupErr("-data", root, "-to", bk, "-recipient", identity.Recipient().String()); err == nil || !strings.Contains(err.Error(), "not a phivault data folder") {
		t.Errorf("backup of a folder that is no vault = %v, want refused", err)
	}
	if err := backupErr("-data", string(d), "-to", bk); err == nil || !strings.Contains(err.Error(), "-recipient") {
		t.Errorf("first backup without recipients = %v, want refused asking for -recipient", err)
	}
	if err := backupErr("-data", string(d), "-to", bk, "-recipient", "age1notakey"); err == nil {
		t.Errorf("backup with a malformed recipient = nil, want refused")
	}
	if _, err := os.Stat(filepath.Join(bk, "keys")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused backups set up the folder anyway (%v)", err)
	}
	backupRun(t, "-data", string(d), "-to", bk, "-recipient", identity.Recipient().String())

	// The same vault on a new host: the key cache is gone.
	os.Remove(d.backupKeyCache())
	if err := backupErr("-data", string(d), "-to", bk); err == nil || !strings.Contains(err.Error(), "-identity") {
		t.Errorf("backup without the key cache or -identity = %v, want refused asking for -identity", err)
	}
	backupRun(t, "-data", string(d), "-to", bk, "-identity", idFile)
	backupRun(t, "-data", string(d), "-to", bk) // the cache again

	// Another vault (another audit key) cannot add to this folder.
	d2, _ := initTestData(t)
	if err := backupErr("-data", string(d2), "-to", bk, "-identity", idFile); err == nil || !strings.Contains(err.Error(), "signer") {
		t.Errorf("backup of another vault into the folder = %v, want refused naming the signer", err)
	}

	pg, _ := initTestData(t)
	os.WriteFile(pg.storeFile(), []byte("postgres\n"), 0o600)
	if err := backupErr("-data", string(pg), "-to", filepath.Join(root, "pg"), "-recipient", identity.Recipient().String()); err == nil || !strings.Contains(err.Error(), "PHIVAULT_STORE") {
		t.Errorf("backup of a PostgreSQL vault's folder without PHIVAULT_STORE = %v, want refused", err)
	}

	// The chunks changed in the backup folder (each is in some snapshot,
	// not each in the latest): restore refuses, naming one.
	chunks, _ := os.ReadDir(filepath.Join(bk, "chunks"))
	for _, c := range chunks {
		p := filepath.Join(bk, "chunks", c.Name())
		b, _ := os.ReadFile(p)
		b[len(b)-1] ^= 0x80
		os.Chmod(p, 0o600)
		os.WriteFile(p, b, 0o400)
	}
	restores := filepath.Join(root, "restores")
	os.Mkdir(restores, 0o700)
	err := run(ctx, []string{"restore", "-from", bk, "-identity", idFile, "-data", filepath.Join(restores, "data"), "-audit-witness-file", filepath.Join(root, "no-witness")}, io.Discard, io.Discard)
	if err == nil || !regexp.MustCompile(`chunks/[0-9a-f]{64}: corrupt`).MatchString(err.Error()) {
		t.Errorf("restore of a backup with a changed chunk = %v, want refused naming the chunk", err)
	}
	if entries, _ := os.ReadDir(restores); len(entries) != 0 {
		t.Errorf("a refused restore left %v", entries)
	}
}
