package backup_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/phivault/phivault/backup"
	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite"
)

// testVault is a data folder with a live WAL-mode SQLite database and a
// few small files, backed up to a Dir.
type testVault struct {
	dir      string
	db       *sql.DB
	target   *backup.Dir
	identity *age.X25519Identity
	signer   note.Signer
	verifier note.Verifier
	// signerKey is the signer's private key, for child processes.
	signerKey string
	keys      *backup.KeySet
	// checkpoint is the last signed checkpoint in audit-checkpoints.log.
	checkpoint string
}

func mustTestVault(t testing.TB) *testVault {
	t.Helper()
	root := t.TempDir()
	v := &testVault{dir: filepath.Join(root, "data"), target: &backup.Dir{Path: filepath.Join(root, "backups")}}
	if err := os.MkdirAll(filepath.Join(v.dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"keyring.age": "wrapped keys", "tls/key.pem": "key", "install-id": "0123", "phivault.db-wal": "never copied"} {
		if err := os.WriteFile(filepath.Join(v.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(v.dir, "phivault.db-wal"))
	v.db = mustOpenDB(t, filepath.Join(v.dir, "phivault.db"))
	for _, q := range []string{
		"CREATE TABLE a (id INTEGER PRIMARY KEY, data BLOB)",
		"CREATE TABLE b (id INTEGER PRIMARY KEY, a INTEGER)",
	} {
		if _, err := v.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "phivault-audit-test")
	if err != nil {
		t.Fatal(err)
	}
	v.signer, _ = note.NewSigner(skey)
	v.signerKey = skey
	v.verifier, _ = note.NewVerifier(vkey)
	// A checkpoint log of two signed checkpoints, as the file witness
	// writes it: each note, then an empty line.
	var log []byte
	for _, text := range []string{"phivault-audit\n1\nAAAA\n", "phivault-audit\n2\nBBBB\n"} {
		signed, err := note.Sign(&note.Note{Text: text}, v.signer)
		if err != nil {
			t.Fatal(err)
		}
		log = append(append(log, signed...), '\n')
		v.checkpoint = string(signed)
	}
	if err := os.WriteFile(filepath.Join(v.dir, "audit-checkpoints.log"), log, 0o600); err != nil {
		t.Fatal(err)
	}
	v.identity, _ = age.GenerateX25519Identity()
	if v.keys, err = backup.Init(context.Background(), v.target, rand.Reader, vkey, v.identity.Recipient()); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustOpenDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// insert adds n rows to a, each with a row in b, in one transaction each:
// a consistent copy has as many rows in a as in b.
func (v *testVault) insert(t testing.TB, n, size int) {
	for range n {
		data := make([]byte, size)
		rand.Read(data)
		tx, err := v.db.Begin()
		if err != nil {
			t.Error(err)
			return
		}
		res, err := tx.Exec("INSERT INTO a (data) VALUES (?)", data)
		if err == nil {
			id, _ := res.LastInsertId()
			_, err = tx.Exec("INSERT INTO b (a) VALUES (?)", id)
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			t.Error(err)
			return
		}
	}
}

func (v *testVault) backup(t *testing.T) *backup.Result {
	t.Helper()
	res, err := backup.Backup(context.Background(), v.dir, v.target, backup.Options{Keys: v.keys, Signer: v.signer})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return res
}

func (v *testVault) restore(id, dest string) (*backup.Manifest, error) {
	return backup.Restore(context.Background(), v.target, id, dest, backup.RestoreOptions{Identities: []age.Identity{v.identity}, Verifier: v.verifier})
}

// checkDB opens the restored database at path and checks it: integrity_check
// ok, and a and b of the same size, which it returns.
func checkDB(t *testing.T, path string) int {
	t.Helper()
	db := mustOpenDB(t, path)
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check of the restored database = %q, %v", ok, err)
	}
	var na, nb int
	if err := db.QueryRow("SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)").Scan(&na, &nb); err != nil {
		t.Fatal(err)
	}
	if na != nb {
		t.Fatalf("restored database has %d rows in a and %d in b: not a consistent copy", na, nb)
	}
	return na
}

func TestBackup_roundTrip(t *testing.T) {
	v := mustTestVault(t)
	v.insert(t, 50, 1000)
	res := v.backup(t)
	v.insert(t, 5, 1000) // after the snapshot: not restored
	dest := filepath.Join(t.TempDir(), "restored")
	m, err := v.restore(res.Snapshot, dest)
	if err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if m.Snapshot != res.Snapshot {
		t.Errorf("Restore restored snapshot %s, want %s", m.Snapshot, res.Snapshot)
	}
	if m.Checkpoint != v.checkpoint {
		t.Errorf("manifest's checkpoint = %q, want the log's last, %q", m.Checkpoint, v.checkpoint)
	}
	for _, name := range []string{"phivault.db-wal", "phivault.db-shm"} {
		if _, err := os.Stat(filepath.Join(dest, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("restored folder holds %s (%v); a snapshot takes whole databases", name, err)
		}
	}
	if n := checkDB(t, filepath.Join(dest, "phivault.db")); n != 50 {
		t.Errorf("restored database has %d rows, want 50", n)
	}
	for name, want := range map[string]string{"keyring.age": "wrapped keys", "tls/key.pem": "key", "install-id": "0123"} {
		b, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || string(b) != want {
			t.Errorf("restored %s = %q, %v; want %q", name, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dest, "tls/key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored tls/key.pem mode = %v, %v; want 0600", fi.Mode(), err)
	}

	// A killed snapshot's copies are removed by the next one once stale,
	// not while they may be a running snapshot's.
	stale, fresh := filepath.Join(v.dir, ".backup-1"), filepath.Join(v.dir, ".backup-2")
	for _, p := range []string{stale, fresh} {
		os.Mkdir(p, 0o700)
		os.WriteFile(filepath.Join(p, "phivault.db"), []byte("copy"), 0o600)
	}
	os.Chtimes(stale, time.Now().Add(-backup.StaleSnapshot-time.Hour), time.Now().Add(-backup.StaleSnapshot-time.Hour))
	v.backup(t)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a stale snapshot folder stays (%v), want it removed", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh snapshot folder was removed (%v), want it kept", err)
	}

	// The latest, by default; and into an existing empty folder.
	empty := filepath.Join(t.TempDir(), "empty")
	os.Mkdir(empty, 0o700)
	if m, err := v.restore("", empty); err != nil || m.Snapshot == res.Snapshot {
		t.Errorf("Restore(latest) into an empty folder = %v, %v; want the snapshot after %s", m, err, res.Snapshot)
	}
	// Never into a folder with something in it.
	if _, err := v.restore(res.Snapshot, dest); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Restore into a non-empty folder = %v, want refused", err)
	}
}

// TestBackup_incremental changes a few rows of a database of several
// megabytes: the second backup writes a small part of the snapshot.
func TestBackup_incremental(t *testing.T) {
	v := mustTestVault(t)
	v.insert(t, 2000, 4000) // ~8 MB
	first := v.backup(t)
	if first.BytesWritten < first.Size {
		t.Fatalf("first backup wrote %d bytes of %d: want all of it", first.BytesWritten, first.Size)
	}
	if _, err := v.db.Exec("UPDATE a SET data = randomblob(4000) WHERE id IN (7, 1500)"); err != nil {
		t.Fatal(err)
	}
	v.insert(t, 3, 4000)
	second := v.backup(t)
	ratio := float64(second.BytesWritten) / float64(second.Size)
	t.Logf("first: %d of %d bytes; second: %d of %d bytes (%.3f), %d of %d chunks new",
		first.BytesWritten, first.Size, second.BytesWritten, second.Size, ratio, second.NewChunks, second.Chunks)
	if ratio > 0.15 {
		t.Errorf("second backup wrote %d of %d bytes (%.2f), want at most 15%%", second.BytesWritten, second.Size, ratio)
	}
	if second.NewChunks == 0 {
		t.Errorf("second backup wrote no new chunk, though rows changed")
	}
	dest := filepath.Join(t.TempDir(), "restored")
	if _, err := v.restore(second.Snapshot, dest); err != nil {
		t.Fatal(err)
	}
	if n := checkDB(t, filepath.Join(dest, "phivault.db")); n != 2003 {
		t.Errorf("restored database has %d rows, want 2003", n)
	}
}

// TestBackup_duringWrites backs up while transactions commit: the copy is
// one consistent state (integrity ok, a and b of one size).
func TestBackup_duringWrites(t *testing.T) {
	v := mustTestVault(t)
	v.insert(t, 200, 2000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				v.insert(t, 1, 2000)
			}
		}
	}()
	var ids []string
	for range 3 {
		ids = append(ids, v.backup(t).Snapshot)
	}
	close(stop)
	wg.Wait()
	for i, id := range ids {
		dest := filepath.Join(t.TempDir(), fmt.Sprint("restored", i))
		if _, err := v.restore(id, dest); err != nil {
			t.Fatal(err)
		}
		if n := checkDB(t, filepath.Join(dest, "phivault.db")); n < 200 {
			t.Errorf("restored database has %d rows, want at least 200", n)
		}
	}
}
