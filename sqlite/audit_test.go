package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
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
	raw := mustRaw(t, path)
	for _, q := range []string{
		`UPDATE audit_entries SET data = x'00'`, `DELETE FROM audit_entries`,
		`UPDATE audit_hashes SET hash = x'00'`, `DELETE FROM audit_hashes`,
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
	raw := mustRaw(t, path)
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
		for idx, h := range hashes {
			if _, err := tx.Exec(`INSERT INTO audit_hashes (idx, hash) VALUES (?, ?)`, idx, h[:]); err != nil {
				return err
			}
		}
		return tx.Commit()
	}, 2000/testenv.SampleStep())
}

var _ auditlog.Storage = (*sqlite.DB)(nil)
