package postgres

import (
	"context"
	"strconv"
	"strings"

	"github.com/phivault/phivault/auditlog"
)

// The audit index: DB implements auditlog.IndexStorage.

var _ auditlog.IndexStorage = (*DB)(nil)

// AuditIndexSize returns one more than the highest indexed entry, or 0.
func (db *DB) AuditIndexSize(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_index`).Scan(&n); err != nil {
		return 0, wrapErr("audit index size", ctxErr(ctx, err))
	}
	return n, nil
}

// IndexAudit stores index rows, ignoring rows already stored.
func (db *DB) IndexAudit(ctx context.Context, rows []auditlog.IndexRow) error {
	if len(rows) == 0 {
		return nil
	}
	var (
		idx                    = make([]int64, len(rows))
		patient, actor, action = make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
		times                  = make([]int64, len(rows))
		purpose                = make([]string, len(rows))
	)
	for i, r := range rows {
		idx[i], patient[i], actor[i], action[i], times[i] = r.Index, r.Patient, r.Actor, r.Action, r.Time.UnixNano()
		purpose[i] = auditlog.JoinPurposes(r.Purposes)
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO audit_index (idx, patient, actor, action, time, purpose)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
		ON CONFLICT DO NOTHING`, idx, patient, actor, action, times, purpose)
	if err != nil {
		return wrapErr("index audit entries", ctxErr(ctx, err))
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
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Patient != "" {
		where = append(where, "patient = "+arg(q.Patient))
	}
	if q.Actor != "" {
		where = append(where, "actor = "+arg(q.Actor))
	}
	if len(q.Actions) > 0 {
		where = append(where, "action = ANY("+arg(q.Actions)+"::text[])")
	}
	if len(q.Purposes) > 0 {
		var or []string
		for _, p := range q.Purposes {
			or = append(or, "strpos(purpose, "+arg(auditlog.JoinPurposes([]string{p}))+") > 0")
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= "+arg(q.Since.UnixNano()))
	}
	if !q.Before.IsZero() {
		where = append(where, "time < "+arg(q.Before.UnixNano()))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	// Unfiltered, every entry is counted: each has at least one row,
	// indexed in order from 0, so the count is the highest index plus one.
	count := `SELECT COUNT(DISTINCT idx) FROM audit_index` + cond
	if cond == "" {
		count = `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_index`
	}
	var total int64
	if err := db.pool.QueryRow(ctx, count, args...).Scan(&total); err != nil {
		return nil, 0, wrapErr("search audit index", ctxErr(ctx, err))
	}
	if q.Limit <= 0 {
		return nil, total, nil
	}
	if cond == "" { // every index from 0 to total-1 is there: the page is a range
		var out []int64
		for idx := int64(max(q.Offset, 0)); idx < total && len(out) < q.Limit; idx++ {
			out = append(out, idx)
		}
		return out, total, nil
	}
	sql := `SELECT DISTINCT idx FROM audit_index` + cond + ` ORDER BY idx LIMIT ` + arg(q.Limit) + ` OFFSET ` + arg(max(q.Offset, 0))
	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, 0, wrapErr("search audit index", ctxErr(ctx, err))
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var idx int64
		if err := rows.Scan(&idx); err != nil {
			return nil, 0, wrapErr("search audit index", err)
		}
		out = append(out, idx)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, wrapErr("search audit index", ctxErr(ctx, err))
	}
	return out, total, nil
}

// ReadAuditIndex returns the index rows of the entries with indexes in
// [start, end).
func (db *DB) ReadAuditIndex(ctx context.Context, start, end int64) ([]auditlog.IndexRow, error) {
	rows, err := db.pool.Query(ctx, `SELECT idx, patient, actor, action, time, purpose FROM audit_index WHERE idx >= $1 AND idx < $2 ORDER BY idx, patient`, start, end)
	if err != nil {
		return nil, wrapErr("read audit index", ctxErr(ctx, err))
	}
	defer rows.Close()
	out, err := auditlog.ScanIndexRows(rows)
	if err != nil {
		return nil, wrapErr("read audit index", ctxErr(ctx, err))
	}
	return out, nil
}
