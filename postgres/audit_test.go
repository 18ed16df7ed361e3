package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/internal/testenv"
	"github.com/phivault/phivault/postgres"
	"golang.org/x/mod/sumdb/tlog"
)

var _ auditlog.Storage = (*postgres.DB)(nil)

func TestAuditStorage(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) auditlog.Storage { return MustOpen(t) })
}

// TestAudit_tamper changes audit entries directly in PostgreSQL, after
// dropping the append-only triggers as a database superuser could, and
// checks that verification fails every time (storetest).
func TestAudit_tamper(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	conn, err := pgx.Connect(ctx, testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := pgx.Identifier{db.Schema}.Sanitize()
	for _, q := range []string{
		`DROP TRIGGER audit_entries_append_only ON ` + schema + `.audit_entries`,
		`DROP TRIGGER audit_entries_no_truncate ON ` + schema + `.audit_entries`,
		`DROP TRIGGER audit_hashes_append_only ON ` + schema + `.audit_hashes`,
		`DROP TRIGGER audit_hashes_no_truncate ON ` + schema + `.audit_hashes`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// Fewer cases than on SQLite: each is a round trip per row here.
	storetest.RunAuditTamper(t, db, func(entries map[int64][]byte, hashes map[int64]tlog.Hash) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		batch := &pgx.Batch{}
		batch.Queue(`DELETE FROM ` + schema + `.audit_entries`)
		batch.Queue(`DELETE FROM ` + schema + `.audit_hashes`)
		for idx, d := range entries {
			batch.Queue(`INSERT INTO `+schema+`.audit_entries (idx, data) VALUES ($1, $2)`, idx, d)
		}
		for idx, h := range hashes {
			batch.Queue(`INSERT INTO `+schema+`.audit_hashes (idx, hash) VALUES ($1, $2)`, idx, h[:])
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}, 1000/testenv.SampleStep())
}
