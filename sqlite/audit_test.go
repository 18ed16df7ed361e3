package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/internal/testenv"
	"github.com/phivault/phivault/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

func TestAuditStorage(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) auditlog.Storage { return MustOpen(t) })
}

func TestDB_AuditAppendOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := mustOpenPath(t, path)
	if err := db.AppendAudit(ctx, 0, [][]byte{[]byte("e")}, []tlog.Hash{tlog.RecordHash([]byte("e"))}); err != nil {
		t.Fatal(err)
	}
	raw := mustRaw(t, sqlite.DefaultAuditPath(path))
	for _, q := range []string{
		`UPDATE audit_entries SET data = x'00'`, `DELETE FROM audit_entries`,
		`UPDATE audit_hashes SET hashes = x'00'`, `DELETE FROM audit_hashes`,
	} {
		if _, err := raw.Exec(q); err == nil {
			t.Errorf("%s = nil error, want the append-only trigger to refuse it", q)
		}
	}
}

func mustRaw(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	tb.Cleanup(func() { raw.Close() })
	return raw
}

// TestAudit_tamper changes audit entries directly in SQLite, thousands of
// times, and checks that verification fails every time (storetest).
func TestAudit_tamper(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := mustOpenPath(t, path)
	raw := mustRaw(t, sqlite.DefaultAuditPath(path))
	for _, trg := range []string{"audit_entries_no_update", "audit_entries_no_delete", "audit_hashes_no_update", "audit_hashes_no_delete"} {
		if _, err := raw.Exec("DROP TRIGGER " + trg); err != nil { // what an attacker with the file can do
			t.Fatal(err)
		}
	}
	// Thousands of cases in the ordinary run; a sample under -race.
	storetest.RunAuditTamper(t, db, func(entries map[int64][]byte, hashes map[int64]tlog.Hash) error {
		tx, err := raw.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.Exec(`DELETE FROM audit_entries`); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM audit_hashes`); err != nil {
			return err
		}
		for idx, d := range entries {
			if _, err := tx.Exec(`INSERT INTO audit_entries (idx, data) VALUES (?, ?)`, idx, d); err != nil {
				return err
			}
		}
		// The audit file keeps the hashes grouped by the entry whose append
		// stored them, level 0 first.
		levels := map[int64][][]byte{}
		for idx, h := range hashes {
			level, n := tlog.SplitStoredHashIndex(idx)
			rec := (n+1)<<level - 1
			for len(levels[rec]) <= level {
				levels[rec] = append(levels[rec], nil)
			}
			levels[rec][level] = append([]byte(nil), h[:]...)
		}
		for rec, ls := range levels {
			var blob []byte
			for level, h := range ls {
				if h == nil {
					return fmt.Errorf("entry %d: hash of level %d missing", rec, level)
				}
				blob = append(blob, h...)
			}
			if _, err := tx.Exec(`INSERT INTO audit_hashes (idx, hashes) VALUES (?, ?)`, rec, blob); err != nil {
				return err
			}
		}
		return tx.Commit()
	}, 2000/testenv.SampleStep())
}

var _ auditlog.Storage = (*sqlite.DB)(nil)

// TestAudit_ownFile checks that audit entries go to the audit file, not the
// main one.
func TestAudit_ownFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := mustOpenPath(t, path)
	if err := db.AppendAudit(ctx, 0, [][]byte{[]byte("e")}, []tlog.Hash{tlog.RecordHash([]byte("e"))}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want int
	}{{path, 0}, {sqlite.DefaultAuditPath(path), 1}} {
		var n int
		if err := mustRaw(t, c.path).QueryRow(`SELECT count(*) FROM audit_entries`).Scan(&n); err != nil || n != c.want {
			t.Errorf("%s holds %d audit entries (%v), want %d", filepath.Base(c.path), n, err, c.want)
		}
	}
}

// TestAudit_importLegacy opens a database written before the audit file
// existed, with its entries in the main file: they are copied to the audit
// file once, and the log verifies and grows from there.
func TestAudit_importLegacy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := mustOpenPath(t, path)
	db.Close()
	for _, p := range []string{"", "-wal", "-shm"} {
		os.Remove(sqlite.DefaultAuditPath(path) + p)
	}

	// An old log: entries and hashes made by auditlog, written into the
	// main file's tables as the old store did.
	mem := storetest.NewMemAudit()
	signer, verifier := storetest.NewSigner(t)
	l := auditlog.New(mem, "phivault-test/audit", signer)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 37 {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	raw := mustRaw(t, path)
	for idx, d := range mem.Entries {
		if _, err := raw.Exec(`INSERT INTO audit_entries (idx, data) VALUES (?, ?)`, idx, d); err != nil {
			t.Fatal(err)
		}
	}
	for idx, h := range mem.Hashes {
		if _, err := raw.Exec(`INSERT INTO audit_hashes (idx, hash) VALUES (?, ?)`, idx, h[:]); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	db = mustOpenPath(t, path)
	if n, err := db.AuditSize(ctx); err != nil || n != 37 {
		t.Fatalf("AuditSize() after import = %d, %v, want 37", n, err)
	}
	l2 := auditlog.New(db, "phivault-test/audit", signer)
	l2.CheckpointInterval = -1
	if err := l2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l2.Append(ctx, storetest.Entry(37)); err != nil {
		t.Fatal(err)
	}
	cp2, err := l2.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
	tree, err := auditlog.Verify(ctx, db, verifier, "phivault-test/audit", [][]byte{cp, cp2})
	if err != nil || tree.N != 38 {
		t.Fatalf("Verify() after import = %v, %v, want 38 entries", tree, err)
	}
	db.Close()

	// Reopening does not import again.
	db = mustOpenPath(t, path)
	if n, err := db.AuditSize(ctx); err != nil || n != 38 {
		t.Fatalf("AuditSize() after reopen = %d, %v, want 38", n, err)
	}
}

var _ auditlog.DeferredStorage = (*sqlite.DB)(nil)

// TestAudit_kill9 appends from a child process that is killed with SIGKILL
// while appending, then opens its database: every entry whose Append had
// returned is in the log, which verifies. (A kill keeps what the kernel
// has; TestJournal_crashRecovery in auditlog loses the storage's last
// commits too, as a power loss does.)
func TestAudit_kill9(t *testing.T) {
	if path := os.Getenv("PHIVAULT_AUDIT_KILL9_CHILD"); path != "" {
		kill9Child(path)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phivault.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAudit_kill9$")
	cmd.Env = append(os.Environ(), "PHIVAULT_AUDIT_KILL9_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 3000 {
		acked[sc.Text()] = true
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) < 3000 {
		t.Fatalf("the child acknowledged only %d entries before it stopped", len(acked))
	}

	db := mustOpenPath(t, path)
	journal, _ := filepath.Glob(filepath.Join(db.AuditJournal(), "journal-*.log"))
	if len(journal) == 0 {
		t.Fatal("the killed child left no journal; the test did not kill it while appending")
	}
	signer, verifier := storetest.NewSigner(t)
	l := auditlog.New(db, "phivault-test/audit", signer)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	tree, err := auditlog.Verify(ctx, db, verifier, "", [][]byte{cp})
	if err != nil {
		t.Fatal(err)
	}
	data, err := db.ReadAuditEntries(ctx, 0, tree.N)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range data {
		e, err := auditlog.Decode(d)
		if err != nil {
			t.Fatal(err)
		}
		delete(acked, e.RequestID)
	}
	if len(acked) > 0 {
		t.Fatalf("%d acknowledged entries are missing after kill -9 (of a log of %d)", len(acked), tree.N)
	}
}

// kill9Child appends from 16 goroutines until killed, printing the request
// id of every entry whose Append returned.
func kill9Child(path string) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		panic(err)
	}
	l := auditlog.New(db, "phivault-test/audit", nil)
	if err := l.Open(ctx); err != nil {
		panic(err)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				e := storetest.Entry(int(n.Add(1)))
				if err := l.Append(ctx, e); err != nil {
					panic(err)
				}
				mu.Lock()
				w.WriteString(e.RequestID + "\n")
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
