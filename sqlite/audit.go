package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/phivault/phivault"
	"golang.org/x/mod/sumdb/tlog"
)

// The audit trail's storage: DB implements auditlog.Storage. Entries and
// hashes are appended through Update, so they share the writer's group
// commit with record writes.

// AuditSize returns one more than the highest audit entry index, or 0.
func (db *DB) AuditSize(ctx context.Context) (int64, error) {
	var n int64
	err := db.View(ctx, func(tx phivault.StoreTx) error {
		return tx.(*Tx).conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries`).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: audit size: %v", err)
	}
	return n, nil
}

// AppendAudit stores entries at start… and their tree hashes from
// tlog.StoredHashIndex(0, start) on, in one durable transaction, provided
// the log holds exactly start entries.
func (db *DB) AppendAudit(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error {
	return db.Update(ctx, func(stx phivault.StoreTx) error {
		conn := stx.(*Tx).conn
		var n int64
		if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries`).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: audit size: %v", err)
		}
		if n != start {
			return phivault.Errorf(phivault.ECONFLICT, "The audit log holds %d entries, not %d.", n, start)
		}
		if err := insertRows(ctx, conn, "audit_entries", "data", start, len(data), func(i int) any { return data[i] }); err != nil {
			return err
		}
		first := tlog.StoredHashIndex(0, start)
		return insertRows(ctx, conn, "audit_hashes", "hash", first, len(hashes), func(i int) any { return hashes[i][:] })
	})
}

// insertRows inserts (idx, value) rows with idx from first on, many per
// statement.
func insertRows(ctx context.Context, conn *sql.Conn, table, col string, first int64, n int, value func(int) any) error {
	const perStmt = 256 // well under SQLite's limit of 32766 variables
	for lo := 0; lo < n; lo += perStmt {
		hi := min(lo+perStmt, n)
		var b strings.Builder
		args := make([]any, 0, 2*(hi-lo))
		fmt.Fprintf(&b, "INSERT INTO %s (idx, %s) VALUES ", table, col)
		for i := lo; i < hi; i++ {
			if i > lo {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?)")
			args = append(args, first+int64(i), value(i))
		}
		if _, err := conn.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("sqlite: insert into %s: %v", table, err)
		}
	}
	return nil
}

// ReadAuditHashes returns the stored tree hashes at indexes, in order.
func (db *DB) ReadAuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	got := make(map[int64]tlog.Hash, len(indexes))
	err := db.View(ctx, func(stx phivault.StoreTx) error {
		conn := stx.(*Tx).conn
		const perStmt = 500
		for lo := 0; lo < len(indexes); lo += perStmt {
			part := indexes[lo:min(lo+perStmt, len(indexes))]
			args := make([]any, len(part))
			for i, x := range part {
				args[i] = x
			}
			rows, err := conn.QueryContext(ctx, `SELECT idx, hash FROM audit_hashes WHERE idx IN (?`+strings.Repeat(", ?", len(part)-1)+`)`, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var (
					idx int64
					h   []byte
				)
				if err := rows.Scan(&idx, &h); err != nil {
					rows.Close()
					return err
				}
				if len(h) != tlog.HashSize {
					rows.Close()
					return fmt.Errorf("audit hash %d has %d bytes", idx, len(h))
				}
				got[idx] = tlog.Hash(h)
			}
			if err := rows.Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: read audit hashes: %v", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("sqlite: audit hash %d not found", x)
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
	err := db.View(ctx, func(stx phivault.StoreTx) error {
		rows, err := stx.(*Tx).conn.QueryContext(ctx, `SELECT idx, data FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx`, start, end)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				idx  int64
				data []byte
			)
			if err := rows.Scan(&idx, &data); err != nil {
				return err
			}
			if data == nil {
				data = []byte{}
			}
			out[idx-start] = data
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: read audit entries: %v", err)
	}
	return out, nil
}
