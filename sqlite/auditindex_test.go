package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/sqlite"
)

func TestAuditIndex(t *testing.T) {
	storetest.RunAuditIndex(t, func(t *testing.T) auditlog.IndexStorage { return MustOpen(t) })
}

// TestAuditIndex_tamper deletes and alters audit index rows directly in the
// audit file and checks that auditlog.VerifyIndex reports each change.
func TestAuditIndex_tamper(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := mustOpenPath(t, path)
	raw := mustRaw(t, sqlite.DefaultAuditPath(path))
	storetest.RunAuditIndexTamper(t, db, func(q string) error {
		_, err := raw.Exec(q)
		return err
	})
}

// TestAuditMonitor edits an entry and deletes an index row behind a running
// log and checks that the monitor's next full pass reports each.
func TestAuditMonitor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := mustOpenPath(t, path)
	raw := mustRaw(t, sqlite.DefaultAuditPath(path))
	if _, err := raw.Exec("DROP TRIGGER audit_entries_no_update"); err != nil { // what an attacker with the file can do
		t.Fatal(err)
	}
	storetest.RunAuditMonitor(t, db, func(idx int64, data []byte) error {
		_, err := raw.Exec(`UPDATE audit_entries SET data = ? WHERE idx = ?`, data, idx)
		return err
	}, func(q string) error {
		_, err := raw.Exec(q)
		return err
	})
}
