package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/phivault/phivault"
	"golang.org/x/mod/sumdb/tlog"
)

// The audit trail's storage: DB implements auditlog.Storage.

// auditLock is the pg_advisory_xact_lock key that serializes audit appends
// across nodes.
const auditLock = 0x61756474 // "audt"

// AuditSize returns one more than the highest audit entry index, or 0.
func (db *DB) AuditSize(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries`).Scan(&n); err != nil {
		return 0, wrapErr("audit size", ctxErr(ctx, err))
	}
	return n, nil
}

// AppendAudit stores entries at start… and their tree hashes from
// tlog.StoredHashIndex(0, start) on, in one transaction, provided the log
// holds exactly start entries. An advisory lock serializes appends from
// several nodes; the loser of a race gets ECONFLICT.
func (db *DB) AppendAudit(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return wrapErr("begin", ctxErr(ctx, err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(auditLock)); err != nil {
		return fmt.Errorf("postgres: lock audit log: %v", err)
	}
	var n int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries`).Scan(&n); err != nil {
		return fmt.Errorf("postgres: audit size: %v", err)
	}
	if n != start {
		return phivault.Errorf(phivault.ECONFLICT, "The audit log holds %d entries, not %d.", n, start)
	}
	idx := make([]int64, len(data))
	for i := range data {
		idx[i] = start + int64(i)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_entries (idx, data) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, idx, data); err != nil {
		return fmt.Errorf("postgres: insert audit entries: %v", err)
	}
	first := tlog.StoredHashIndex(0, start)
	hidx := make([]int64, len(hashes))
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hidx[i] = first + int64(i)
		hs[i] = hashes[i][:]
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, hidx, hs); err != nil {
		return fmt.Errorf("postgres: insert audit hashes: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit audit: %v", err)
	}
	return nil
}

// ReadAuditHashes returns the stored tree hashes at indexes, in order.
func (db *DB) ReadAuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT idx, hash FROM audit_hashes WHERE idx = ANY($1)`, indexes)
	if err != nil {
		return nil, wrapErr("read audit hashes", ctxErr(ctx, err))
	}
	got := make(map[int64]tlog.Hash, len(indexes))
	var (
		idx int64
		h   []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&idx, &h}, func() error {
		if len(h) != tlog.HashSize {
			return fmt.Errorf("audit hash %d has %d bytes", idx, len(h))
		}
		got[idx] = tlog.Hash(h)
		return nil
	})
	if err != nil {
		return nil, wrapErr("read audit hashes", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("postgres: audit hash %d not found", x)
		}
		out[i] = h
	}
	return out, nil
}

// ReadAuditEntries returns the entries with indexes in [start, end), nil
// where an index has none.
func (db *DB) ReadAuditEntries(ctx context.Context, start, end int64) ([][]byte, error) {
	if end <= start {
		return nil, nil
	}
	out := make([][]byte, end-start)
	rows, err := db.pool.Query(ctx, `SELECT idx, data FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, start, end)
	if err != nil {
		return nil, wrapErr("read audit entries", ctxErr(ctx, err))
	}
	var (
		idx  int64
		data []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&idx, &data}, func() error {
		out[idx-start] = append([]byte{}, data...)
		return nil
	})
	if err != nil {
		return nil, wrapErr("read audit entries", err)
	}
	return out, nil
}
