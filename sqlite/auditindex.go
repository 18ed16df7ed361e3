package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/phivault/phivault/auditlog"
)

// The audit index: DB implements auditlog.IndexStorage.

var _ auditlog.IndexStorage = (*DB)(nil)

// AuditIndexSize returns one more than the highest indexed entry, or 0.
func (db *DB) AuditIndexSize(ctx context.Context) (int64, error) {
	var n int64
	if err := db.audit.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_index`).Scan(&n); err != nil {
		return 0, wrapErr(ctx, "audit index size", err)
	}
	return n, nil
}

// IndexAudit stores index rows, ignoring rows already stored.
func (db *DB) IndexAudit(ctx context.Context, rows []auditlog.IndexRow) error {
	if len(rows) == 0 {
		return nil
	}
	err := db.audit.write(ctx, func(conn *sql.Conn) error {
		const perStmt = 200 // 6 variables a row, well under SQLite's limit
		for lo := 0; lo < len(rows); lo += perStmt {
			part := rows[lo:min(lo+perStmt, len(rows))]
			var b strings.Builder
			args := make([]any, 0, 6*len(part))
			b.WriteString("INSERT OR IGNORE INTO audit_index (idx, patient, actor, action, time, purpose) VALUES ")
			for i, r := range part {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString("(?, ?, ?, ?, ?, ?)")
				args = append(args, r.Index, r.Patient, r.Actor, r.Action, r.Time.UnixNano(), auditlog.JoinPurposes(r.Purposes))
			}
			if _, err := conn.ExecContext(ctx, b.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: index audit entries: %v", err)
	}
	return nil
}

// SearchAudit returns the indexes of the entries matching q, ascending,
// paged by q.Offset and q.Limit, and how many match in all.
func (db *DB) SearchAudit(ctx context.Context, q auditlog.Query) ([]int64, int64, error) {
	var (
		where []string
		args  []any
	)
	if q.Patient != "" {
		where, args = append(where, "patient = ?"), append(args, q.Patient)
	}
	if q.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, q.Actor)
	}
	if len(q.Actions) > 0 {
		where = append(where, "action IN (?"+strings.Repeat(", ?", len(q.Actions)-1)+")")
		for _, a := range q.Actions {
			args = append(args, a)
		}
	}
	if len(q.Purposes) > 0 {
		var or []string
		for _, p := range q.Purposes {
			or, args = append(or, "instr(purpose, ?) > 0"), append(args, auditlog.JoinPurposes([]string{p}))
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	if !q.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, q.Since.UnixNano())
	}
	if !q.Before.IsZero() {
		where, args = append(where, "time < ?"), append(args, q.Before.UnixNano())
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var (
		total int64
		out   []int64
	)
	err := func() error {
		// One read transaction: the total and the page from one snapshot.
		conn, err := db.audit.rdb.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer conn.Rollback()
		// Unfiltered, every entry is counted: each has at least one row,
		// indexed in order from 0, so the count is the highest index plus
		// one, without reading the index.
		count := `SELECT COUNT(*) FROM (SELECT idx FROM audit_index` + cond + ` GROUP BY idx)`
		if cond == "" {
			count = `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_index`
		}
		if err := conn.QueryRowContext(ctx, count, args...).Scan(&total); err != nil {
			return err
		}
		if q.Limit <= 0 {
			return nil
		}
		if cond == "" { // every index from 0 to total-1 is there: the page is a range
			for idx := int64(max(q.Offset, 0)); idx < total && len(out) < q.Limit; idx++ {
				out = append(out, idx)
			}
			return nil
		}
		rows, err := conn.QueryContext(ctx, `SELECT DISTINCT idx FROM audit_index`+cond+` ORDER BY idx LIMIT ? OFFSET ?`,
			append(args, q.Limit, max(q.Offset, 0))...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var idx int64
			if err := rows.Scan(&idx); err != nil {
				return err
			}
			out = append(out, idx)
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, 0, wrapErr(ctx, "search audit index", err)
	}
	return out, total, nil
}

// ReadAuditIndex returns the index rows of the entries with indexes in
// [start, end).
func (db *DB) ReadAuditIndex(ctx context.Context, start, end int64) ([]auditlog.IndexRow, error) {
	rows, err := db.audit.rdb.QueryContext(ctx, `SELECT idx, patient, actor, action, time, purpose FROM audit_index WHERE idx >= ? AND idx < ? ORDER BY idx, patient`, start, end)
	if err != nil {
		return nil, wrapErr(ctx, "read audit index", err)
	}
	defer rows.Close()
	out, err := auditlog.ScanIndexRows(rows)
	if err != nil {
		return nil, wrapErr(ctx, "read audit index", err)
	}
	return out, nil
}
