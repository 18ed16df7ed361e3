package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
)

func TestAuditIndex(t *testing.T) {
	storetest.RunAuditIndex(t, func(t *testing.T) auditlog.IndexStorage { return MustOpen(t) })
}

// TestAuditIndex_tamper deletes and alters audit index rows directly in
// PostgreSQL and checks that auditlog.VerifyIndex reports each change.
func TestAuditIndex_tamper(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	conn, err := pgx.Connect(ctx, testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	table := pgx.Identifier{db.Schema, "audit_index"}.Sanitize()
	storetest.RunAuditIndexTamper(t, db, func(q string) error {
		_, err := conn.Exec(ctx, strings.ReplaceAll(q, "audit_index", table))
		return err
	})
}

// TestAuditMonitor edits an entry and deletes an index row behind a running
// log, after dropping the append-only trigger as a database superuser
// could, and checks that the monitor's next full pass reports each.
func TestAuditMonitor(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	conn, err := pgx.Connect(ctx, testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := pgx.Identifier{db.Schema}.Sanitize()
	if _, err := conn.Exec(ctx, `DROP TRIGGER audit_entries_append_only ON `+schema+`.audit_entries`); err != nil {
		t.Fatal(err)
	}
	storetest.RunAuditMonitor(t, db, func(idx int64, data []byte) error {
		_, err := conn.Exec(ctx, `UPDATE `+schema+`.audit_entries SET data = $1 WHERE idx = $2`, data, idx)
		return err
	}, func(q string) error {
		_, err := conn.Exec(ctx, strings.ReplaceAll(q, "audit_index", schema+".audit_index"))
		return err
	})
}
