package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/phivault/phivault"
	"golang.org/x/mod/sumdb/tlog"
)

// The audit trail's storage: DB implements auditlog.Storage on its audit
// file (see audit_db.go).

// AuditSize returns one more than the highest audit entry index, or 0.
func (db *DB) AuditSize(ctx context.Context) (int64, error) {
	var n int64
	if err := db.audit.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries`).Scan(&n); err != nil {
		return 0, wrapErr(ctx, "audit size", err)
	}
	return n, nil
}

// AppendAudit stores entries at start… and their tree hashes from
// tlog.StoredHashIndex(0, start) on, in one durable transaction, provided
// the log holds exactly start entries.
func (db *DB) AppendAudit(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error {
	return db.appendAudit(ctx, true, start, data, hashes)
}

// AppendAuditDeferred is AppendAudit without waiting for durability: the
// commit is not fsynced (auditlog's journal makes the entries durable).
// Commits stay in order: a crash loses a suffix of them at most.
func (db *DB) AppendAuditDeferred(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error {
	return db.appendAudit(ctx, false, start, data, hashes)
}

// SyncAudit makes every audit commit so far durable, by making one more
// with an fsync of the audit file's WAL.
func (db *DB) SyncAudit(ctx context.Context) error {
	a := db.audit
	err := a.write(ctx, func(conn *sql.Conn) error {
		a.syncs++
		_, err := conn.ExecContext(context.WithoutCancel(ctx), `INSERT OR REPLACE INTO audit_sync (id, n) VALUES (1, ?)`, a.syncs)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: sync audit file: %v", err)
	}
	return nil
}

// AuditJournal returns the directory of the audit log's journal, beside the
// audit file: "phivault.audit.db" → "phivault.audit.journal".
func (db *DB) AuditJournal() string {
	p := db.auditPath()
	return strings.TrimSuffix(p, filepath.Ext(p)) + ".journal"
}

func (db *DB) appendAudit(ctx context.Context, durable bool, start int64, data [][]byte, hashes []tlog.Hash) error {
	a := db.audit
	err := a.writeSync(ctx, durable, func(conn *sql.Conn) error {
		var n int64
		size, err := a.stmt(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries`)
		if err == nil {
			err = size.QueryRowContext(context.WithoutCancel(ctx)).Scan(&n)
		}
		if err != nil {
			return fmt.Errorf("audit size: %v", err)
		}
		if n != start {
			return phivault.Errorf(phivault.ECONFLICT, "The audit log holds %d entries, not %d.", n, start)
		}
		// Group the hashes by the entry whose append stores them: each
		// entry's row holds its run of the hashes, laid end to end.
		all := make([]byte, 0, len(hashes)*tlog.HashSize)
		for _, h := range hashes {
			all = append(all, h[:]...)
		}
		blobs := make([][]byte, len(data))
		pos := 0
		for i := range data {
			k := storedPerRecord(start + int64(i))
			if pos+k > len(hashes) {
				return fmt.Errorf("%d tree hashes for %d entries from %d", len(hashes), len(data), start)
			}
			blobs[i], pos = all[pos*tlog.HashSize:(pos+k)*tlog.HashSize:(pos+k)*tlog.HashSize], pos+k
		}
		if pos != len(hashes) {
			return fmt.Errorf("%d tree hashes for %d entries from %d", len(hashes), len(data), start)
		}
		if err := a.insertRows(ctx, "audit_entries", "data", start, len(data), func(i int) any { return data[i] }); err != nil {
			return err
		}
		return a.insertRows(ctx, "audit_hashes", "hashes", start, len(data), func(i int) any { return blobs[i] })
	})
	if err != nil && phivault.ErrorCode(err) != phivault.ECONFLICT {
		return fmt.Errorf("sqlite: append audit: %w", err)
	}
	return err
}

// insertChunks are the row counts of the prepared multi-row inserts; a
// batch is split greedily into them, so a handful of statements serve
// every batch size.
var insertChunks = []int{256, 64, 16, 4, 1} // 512 variables at most, far under SQLite's limit

// insertRows inserts (idx, value) rows with idx from first on, with the
// prepared statements of insertChunks. The caller holds a.mu.
func (a *auditDB) insertRows(ctx context.Context, table, col string, first int64, n int, value func(int) any) error {
	args := make([]any, 0, 2*insertChunks[0])
	for lo := 0; lo < n; {
		rows := 1
		for _, c := range insertChunks {
			if c <= n-lo {
				rows = c
				break
			}
		}
		st, err := a.insert(ctx, table, col, rows)
		if err != nil {
			return fmt.Errorf("prepare insert into %s: %v", table, err)
		}
		args = args[:0]
		for i := lo; i < lo+rows; i++ {
			args = append(args, first+int64(i), value(i))
		}
		if _, err := st.ExecContext(context.WithoutCancel(ctx), args...); err != nil {
			return fmt.Errorf("insert into %s: %v", table, err)
		}
		lo += rows
	}
	return nil
}

// ReadAuditHashes returns the stored tree hashes at indexes, in order.
func (db *DB) ReadAuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	// Stored hash x at level L of subtree n was stored by the append of
	// the subtree's last entry, ((n+1) << L) - 1, as its L'th hash.
	records := make([]int64, len(indexes))
	want := map[int64]bool{}
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		records[i] = (n+1)<<level - 1
		want[records[i]] = true
	}
	blobs := make(map[int64][]byte, len(want))
	err := func() error {
		list := make([]any, 0, len(want))
		for r := range want {
			list = append(list, r)
		}
		const perStmt = 500
		for lo := 0; lo < len(list); lo += perStmt {
			part := list[lo:min(lo+perStmt, len(list))]
			rows, err := db.audit.rdb.QueryContext(ctx, `SELECT idx, hashes FROM audit_hashes WHERE idx IN (?`+strings.Repeat(", ?", len(part)-1)+`)`, part...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var (
					idx int64
					b   []byte
				)
				if err := rows.Scan(&idx, &b); err != nil {
					rows.Close()
					return err
				}
				blobs[idx] = b
			}
			if err := rows.Close(); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		return nil, wrapErr(ctx, "read audit hashes", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		level, _ := tlog.SplitStoredHashIndex(x)
		b := blobs[records[i]]
		if len(b) < (level+1)*tlog.HashSize {
			return nil, fmt.Errorf("sqlite: audit hash %d not found", x)
		}
		out[i] = tlog.Hash(b[level*tlog.HashSize : (level+1)*tlog.HashSize])
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
	err := func() error {
		rows, err := db.audit.rdb.QueryContext(ctx, `SELECT idx, data FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx`, start, end)
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
	}()
	if err != nil {
		return nil, wrapErr(ctx, "read audit entries", err)
	}
	return out, nil
}
