package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/drivermemo"
)

// errReadOnly is returned by writes inside View.
var errReadOnly = errors.New("postgres: write in a read-only transaction")

// Tx is a phivault.StoreTx on a DB. It is not safe for concurrent use.
type Tx struct {
	tx    pgx.Tx
	write bool
	drove drivermemo.Memo // the last driver choice, reused by Count after Find
	shred bool            // Shred ran: Update rewrites the key table after COMMIT

	// retoken is set once Retoken has locked the tokens table, which
	// stays locked until the transaction ends.
	retoken bool
}

var _ phivault.StoreTx = (*Tx)(nil)

// mapErr turns a unique violation into ECONFLICT and otherwise wraps err
// as wrapErr does.
func mapErr(what string, err error) error {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505": // unique_violation
		return phivault.Errorf(phivault.ECONFLICT, "A concurrent change won.")
	case errors.As(err, &pe) && pe.Code == "25006": // read_only_sql_transaction
		return errReadOnly
	}
	return wrapErr(what, err)
}

// wrapErr wraps a driver error with what. A context error stays in the
// chain (%w), so that callers can tell a cancelled request from a database
// failure (pgx reports a statement stopped by its context as the context's
// error); any other driver error's details stay out of it (%v).
func wrapErr(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	return fmt.Errorf("postgres: %s: %v", what, err)
}

const versionCols = `v.type, v.id, v.version, v.last_updated, v.compartment, v.deleted, v.key_id, v.ciphertext`

func scanResource(row pgx.Row) (*phivault.SealedResource, error) {
	var r phivault.SealedResource
	if err := row.Scan(&r.Type, &r.ID, &r.Version, &r.LastUpdated, &r.Compartment, &r.Deleted, &r.KeyID, &r.Ciphertext); err != nil {
		return nil, err
	}
	r.LastUpdated = r.LastUpdated.UTC()
	if r.Deleted {
		r.Ciphertext = nil
	}
	return &r, nil
}

func (t *Tx) one(ctx context.Context, what, q string, args ...any) (*phivault.SealedResource, error) {
	r, err := scanResource(t.tx.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, phivault.ErrNotFound
	} else if err != nil {
		return nil, mapErr(what, err)
	}
	return r, nil
}

func (t *Tx) many(ctx context.Context, what, q string, args ...any) ([]*phivault.SealedResource, error) {
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr(what, err)
	}
	defer rows.Close()
	var out []*phivault.SealedResource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, mapErr(what, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(what, err)
	}
	return out, nil
}

// Current returns the newest version of a resource, which may be a tombstone.
func (t *Tx) Current(ctx context.Context, typ, id string) (*phivault.SealedResource, error) {
	return t.one(ctx, "current", `SELECT `+versionCols+` FROM current c
		JOIN versions v ON v.type = c.type AND v.id = c.id AND v.version = c.version
		WHERE c.type = $1 AND c.id = $2`, typ, id)
}

// Version returns one version of a resource.
func (t *Tx) Version(ctx context.Context, typ, id string, version int64) (*phivault.SealedResource, error) {
	return t.one(ctx, "version", `SELECT `+versionCols+` FROM versions v
		WHERE v.type = $1 AND v.id = $2 AND v.version = $3`, typ, id, version)
}

// args collects query arguments and hands out their placeholders.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

func limitOffset(limit, offset int) string {
	s := ""
	if limit > 0 {
		s += fmt.Sprintf(" LIMIT %d", limit)
	}
	if offset > 0 {
		s += fmt.Sprintf(" OFFSET %d", offset)
	}
	return s
}

// History returns versions newest first: by version for one resource, by
// last update (then id, then version, all descending) for a whole type.
func (t *Tx) History(ctx context.Context, f phivault.HistoryFilter) ([]*phivault.SealedResource, int, error) {
	if f.Type == "" {
		return nil, 0, phivault.Errorf(phivault.EINVALID, "History needs a resource type.")
	}
	var a args
	where := []string{"v.type = " + a.add(f.Type)}
	order := "v.last_updated DESC, v.id DESC, v.version DESC"
	if f.ID != "" {
		where = append(where, "v.id = "+a.add(f.ID))
		order = "v.version DESC"
	}
	if !f.Since.IsZero() {
		where = append(where, "v.last_updated >= "+a.add(f.Since))
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := t.tx.QueryRow(ctx, `SELECT count(*) FROM versions v WHERE `+cond, a...).Scan(&total); err != nil {
		return nil, 0, mapErr("count history", err)
	}
	rs, err := t.many(ctx, "history", `SELECT `+versionCols+` FROM versions v WHERE `+cond+` ORDER BY `+order+limitOffset(f.Limit, f.Offset), a...)
	if err != nil {
		return nil, 0, err
	}
	return rs, total, nil
}

// putQuery does all of Put in one statement, so one round trip per resource:
//
//   - ins appends the version only if the current version is one less
//     (none counts as 0). The primary key on versions settles a race: the
//     loser waits for the winner's commit, then ON CONFLICT DO NOTHING
//     inserts nothing. Either way no row means ECONFLICT and, because every
//     other part depends on ins, nothing is written and the transaction
//     stays usable.
//   - cur points current at the new version.
//   - del and tok replace the tokens by difference (delete the ones not in
//     $9, insert the new ones), which touch disjoint rows as data-modifying
//     CTEs of one statement must. A tombstone passes no tokens.
const putQuery = `
WITH ins AS (
	INSERT INTO versions (type, id, version, last_updated, compartment, deleted, key_id, ciphertext)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8
	WHERE coalesce((SELECT version FROM current WHERE type = $1 AND id = $2), 0) = $3::bigint - 1
	ON CONFLICT DO NOTHING
	RETURNING 1
), cur AS (
	INSERT INTO current (type, id, version, last_updated, compartment, deleted)
	SELECT $1, $2, $3, $4, $5, $6 FROM ins
	ON CONFLICT (type, id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
		compartment = excluded.compartment, deleted = excluded.deleted
	WHERE current.version < excluded.version
), del AS (
	DELETE FROM tokens WHERE type = $1 AND id = $2 AND EXISTS (SELECT FROM ins) AND NOT (token = ANY ($9::bytea[]))
), tok AS (
	INSERT INTO tokens (token, type, id)
	SELECT DISTINCT t, $1, $2 FROM unnest($9::bytea[]) AS t WHERE EXISTS (SELECT FROM ins)
	ON CONFLICT DO NOTHING
)
SELECT count(*) FROM ins`

// Put appends a version, makes it current and replaces the resource's tokens.
func (t *Tx) Put(ctx context.Context, r *phivault.SealedResource, tokens []phivault.Token) error {
	if !t.write {
		return errReadOnly
	}
	if r == nil || r.Type == "" || r.ID == "" || r.Version < 1 {
		return phivault.Errorf(phivault.EINVALID, "A stored version needs a type, an id and a version of at least 1.")
	}
	ct := r.Ciphertext
	toks := make([][]byte, 0, len(tokens))
	if r.Deleted {
		ct = nil
	} else {
		if ct == nil {
			ct = []byte{}
		}
		for i := range tokens {
			toks = append(toks, tokens[i][:])
		}
	}
	var n int
	err := t.tx.QueryRow(ctx, putQuery, r.Type, r.ID, r.Version, r.LastUpdated.UTC().Truncate(time.Microsecond),
		r.Compartment, r.Deleted, r.KeyID, ct, toks).Scan(&n)
	if err != nil {
		return mapErr("put", err)
	}
	if n == 0 {
		return phivault.Errorf(phivault.ECONFLICT, "Version %d does not follow the current version.", r.Version)
	}
	return nil
}

// Find returns current, non-deleted versions matching f.
func (t *Tx) Find(ctx context.Context, f phivault.ResourceFilter) ([]*phivault.SealedResource, error) {
	if emptyGroup(f.Tokens) {
		return nil, nil
	}
	drive, err := t.driver(ctx, f)
	if err != nil {
		return nil, err
	}
	var a args
	cond := where(f, drive, &a)
	dir := " DESC"
	if f.Ascending {
		dir = " ASC"
	}
	order := ` ORDER BY c.last_updated` + dir + `, c.id` + dir + `, c.type` + dir
	// Filter, order and page the small current rows, then join versions
	// for the page only. Joined first, the plan read a version row, with
	// its ciphertext, for every match before sorting, and planning the
	// three-table join took longer (docs/PERFORMANCE.md).
	q := `SELECT ` + versionCols + ` FROM (SELECT c.type, c.id, c.version, c.last_updated FROM current c
		WHERE ` + cond + order + limitOffset(f.Limit, f.Offset) + `) c
		JOIN versions v ON v.type = c.type AND v.id = c.id AND v.version = c.version` + order
	return t.many(ctx, "find", q, a...)
}

// Count returns how many current, non-deleted versions match f.
func (t *Tx) Count(ctx context.Context, f phivault.ResourceFilter) (int, error) {
	if emptyGroup(f.Tokens) {
		return 0, nil
	}
	drive, err := t.driver(ctx, f)
	if err != nil {
		return 0, err
	}
	var a args
	var n int
	if err := t.tx.QueryRow(ctx, `SELECT count(*) FROM current c WHERE `+where(f, drive, &a), a...).Scan(&n); err != nil {
		return 0, mapErr("count", err)
	}
	return n, nil
}

// CountCompartments returns how many current, non-deleted versions
// matching f each compartment holds.
func (t *Tx) CountCompartments(ctx context.Context, f phivault.ResourceFilter) (map[string]int, error) {
	out := map[string]int{}
	if emptyGroup(f.Tokens) {
		return out, nil
	}
	drive, err := t.driver(ctx, f)
	if err != nil {
		return nil, err
	}
	var a args
	rows, err := t.tx.Query(ctx, `SELECT c.compartment, count(*) FROM current c WHERE `+where(f, drive, &a)+` GROUP BY c.compartment`, a...)
	if err != nil {
		return nil, mapErr("compartments", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c string
			n int
		)
		if err := rows.Scan(&c, &n); err != nil {
			return nil, mapErr("compartments", err)
		}
		out[c] = n
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("compartments", err)
	}
	return out, nil
}

func emptyGroup(groups [][]phivault.Token) bool {
	for _, g := range groups {
		if len(g) == 0 {
			return true
		}
	}
	return false
}

// sampleCap bounds the work of estimating a token group's selectivity.
const sampleCap = 1000

// driver picks the token group to drive a search from: the one matching the
// fewest rows, counting at most sampleCap rows per group, all groups in one
// round trip. It returns -1 when there are no token groups.
func (t *Tx) driver(ctx context.Context, f phivault.ResourceFilter) (int, error) {
	if len(f.Compartments) == 1 {
		// Bounded to one compartment (a patient's search): the
		// compartment drives, so that neither the cost nor the timing
		// depends on rows outside it. Bounded to several (a
		// clinician's), the most selective group still drives the probe
		// of the tokens index and the compartments filter what is read.
		return -1, nil
	}
	groups := f.Tokens
	return t.drove.Driver(groups, func() (int, error) { return t.pickDriver(ctx, groups) })
}

// pickDriver samples two or more token groups for driver.
func (t *Tx) pickDriver(ctx context.Context, groups [][]phivault.Token) (int, error) {
	var a args
	cols := make([]string, len(groups))
	for i, g := range groups {
		cols[i] = fmt.Sprintf("(SELECT count(*) FROM (SELECT FROM tokens WHERE token = ANY (%s::bytea[]) LIMIT %d) s)",
			a.add(tokenBytes(g)), sampleCap)
	}
	counts := make([]int64, len(groups))
	dst := make([]any, len(groups))
	for i := range counts {
		dst[i] = &counts[i]
	}
	if err := t.tx.QueryRow(ctx, "SELECT "+strings.Join(cols, ", "), a...).Scan(dst...); err != nil {
		return 0, mapErr("find", err)
	}
	best := 0
	for i, n := range counts {
		if n < counts[best] {
			best = i
		}
	}
	return best, nil
}

func tokenBytes(g []phivault.Token) [][]byte {
	out := make([][]byte, len(g))
	for i := range g {
		out[i] = g[i][:]
	}
	return out
}

// where builds the search condition on current c. Lists go in as arrays, so
// the statement text (and pgx's prepared-statement cache entry) depends only
// on which filters are set.
//
// With tokens, the most selective group (drive) is an IN subquery on the
// tokens primary key that also carries the type filter, so the plan probes
// tokens, then current by primary key. That holds even before ANALYZE has
// run on freshly loaded tables: a type filter on current itself would make
// the planner guess (by default selectivity) that few rows have that type
// and scan them all instead. The other groups are EXISTS probes on the
// driving group's token rows, as in the sqlite store, so that current is
// read only for resources that match every group: probed on current
// instead, they made the plan read current for every match of the driving
// group (every Observation of a patient, to keep the few with one code).
// Without a driving group (a search bounded to one compartment), every
// group is probed on the compartment's rows.
func where(f phivault.ResourceFilter, drive int, a *args) string {
	w := []string{"NOT c.deleted"}
	if drive >= 0 {
		sub := "(c.type, c.id) IN (SELECT t.type, t.id FROM tokens t WHERE t.token = ANY (" + a.add(tokenBytes(f.Tokens[drive])) + "::bytea[])"
		if len(f.Types) > 0 {
			sub += " AND t.type = ANY (" + a.add(f.Types) + "::text[])"
		}
		for i, g := range f.Tokens {
			if i != drive {
				sub += " AND EXISTS (SELECT FROM tokens u WHERE u.token = ANY (" + a.add(tokenBytes(g)) + "::bytea[]) AND u.type = t.type AND u.id = t.id)"
			}
		}
		w = append(w, sub+")")
	} else if len(f.Types) > 0 {
		w = append(w, "c.type = ANY ("+a.add(f.Types)+"::text[])")
	}
	if len(f.IDs) > 0 {
		w = append(w, "c.id = ANY ("+a.add(f.IDs)+"::text[])")
	}
	if len(f.Compartments) > 0 {
		w = append(w, "c.compartment = ANY ("+a.add(f.Compartments)+"::text[])")
	}
	if !f.From.IsZero() {
		w = append(w, "c.last_updated >= "+a.add(f.From))
	}
	if !f.To.IsZero() {
		w = append(w, "c.last_updated < "+a.add(f.To))
	}
	if drive < 0 {
		for _, g := range f.Tokens {
			w = append(w, "EXISTS (SELECT FROM tokens t WHERE t.token = ANY ("+a.add(tokenBytes(g))+"::bytea[]) AND t.type = c.type AND t.id = c.id)")
		}
	}
	return strings.Join(w, " AND ")
}

// Key returns a wrapped key.
func (t *Tx) Key(ctx context.Context, id string) (*phivault.WrappedKey, error) {
	var k phivault.WrappedKey
	err := t.tx.QueryRow(ctx, `SELECT id, kek_id, wrapped, created, bound FROM keys WHERE id = $1`, id).
		Scan(&k.ID, &k.KEKID, &k.Wrapped, &k.Created, &k.Bound)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, phivault.ErrNotFound
	} else if err != nil {
		return nil, mapErr("key", err)
	}
	k.Created = k.Created.UTC()
	return &k, nil
}

// PutKey stores k unless a key with its id exists, and returns the stored key.
// A concurrent PutKey of the same id waits for the first to commit, then
// returns the first writer's key.
func (t *Tx) PutKey(ctx context.Context, k *phivault.WrappedKey) (*phivault.WrappedKey, error) {
	if !t.write {
		return nil, errReadOnly
	}
	if k == nil || k.ID == "" {
		return nil, phivault.Errorf(phivault.EINVALID, "A key needs an id.")
	}
	wrapped := k.Wrapped
	if wrapped == nil {
		wrapped = []byte{}
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO keys (id, kek_id, wrapped, created, bound) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO NOTHING`, k.ID, string(k.KEKID), wrapped, k.Created.UTC(), k.Bound); err != nil {
		return nil, mapErr("put key", err)
	}
	return t.Key(ctx, k.ID)
}

// ReplaceKey replaces old with k if the stored key is still old.
func (t *Tx) ReplaceKey(ctx context.Context, old, k *phivault.WrappedKey) error {
	if !t.write {
		return errReadOnly
	}
	if old == nil || k == nil || k.ID != old.ID || k.ID == "" {
		return phivault.Errorf(phivault.EINVALID, "A replaced key keeps its id.")
	}
	tag, err := t.tx.Exec(ctx, `UPDATE keys SET kek_id = $1, wrapped = $2, created = $3, bound = $4
		WHERE id = $5 AND kek_id = $6 AND wrapped = $7 AND bound = $8`,
		string(k.KEKID), k.Wrapped, k.Created.UTC(), k.Bound, old.ID, string(old.KEKID), old.Wrapped, old.Bound)
	if err != nil {
		return mapErr("replace key", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	if _, err := t.Key(ctx, old.ID); err != nil {
		return err
	}
	return phivault.Errorf(phivault.ECONFLICT, "The key changed since it was read.")
}

// Keys returns wrapped keys in id order.
func (t *Tx) Keys(ctx context.Context, f phivault.KeyFilter) ([]*phivault.WrappedKey, error) {
	var a args
	q := `SELECT id, kek_id, wrapped, created, bound FROM keys WHERE id > ` + a.add(f.After)
	if f.ExceptKEK != "" {
		q += ` AND kek_id <> ` + a.add(string(f.ExceptKEK))
	}
	if f.KEK != "" {
		q += ` AND kek_id = ` + a.add(string(f.KEK))
	}
	if f.Unbound {
		q += ` AND NOT bound`
	}
	q += ` ORDER BY id` + limitOffset(f.Limit, 0)
	rows, err := t.tx.Query(ctx, q, a...)
	if err != nil {
		return nil, mapErr("keys", err)
	}
	defer rows.Close()
	var out []*phivault.WrappedKey
	for rows.Next() {
		var k phivault.WrappedKey
		if err := rows.Scan(&k.ID, &k.KEKID, &k.Wrapped, &k.Created, &k.Bound); err != nil {
			return nil, mapErr("keys", err)
		}
		k.Created = k.Created.UTC()
		out = append(out, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("keys", err)
	}
	return out, nil
}

// KeyCounts returns how many keys each key-encryption key wraps.
func (t *Tx) KeyCounts(ctx context.Context) (map[phivault.KeyID]int, error) {
	rows, err := t.tx.Query(ctx, `SELECT kek_id, count(*) FROM keys GROUP BY kek_id`)
	if err != nil {
		return nil, mapErr("key counts", err)
	}
	defer rows.Close()
	out := make(map[phivault.KeyID]int)
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, mapErr("key counts", err)
		}
		out[phivault.KeyID(id)] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("key counts", err)
	}
	return out, nil
}

// Shred deletes the compartment's key and tokens, takes its resources out of
// search and records the shred.
func (t *Tx) Shred(ctx context.Context, compartment string, at time.Time) error {
	if !t.write {
		return errReadOnly
	}
	if compartment == "" {
		return phivault.Errorf(phivault.EINVALID, "Only a patient compartment can be shredded.")
	}
	for _, s := range []struct {
		q    string
		args []any
	}{
		{`DELETE FROM tokens t USING current c
			WHERE c.compartment = $1 AND t.type = c.type AND t.id = c.id`, []any{compartment}},
		{`UPDATE current SET deleted = true WHERE compartment = $1`, []any{compartment}},
		// The key and its later versions ("patient/<id>#n").
		{`DELETE FROM keys WHERE id = $1 OR (id > $2 AND id < $3)`,
			[]any{"patient/" + compartment, "patient/" + compartment + "#", "patient/" + compartment + "$"}},
		{`INSERT INTO shredded (compartment, at) VALUES ($1, $2) ON CONFLICT (compartment) DO NOTHING`,
			[]any{compartment, at.UTC().Truncate(time.Microsecond)}},
	} {
		if _, err := t.tx.Exec(ctx, s.q, s.args...); err != nil {
			return mapErr("shred", err)
		}
	}
	t.shred = true
	return nil
}

// Shredded reports whether compartment was shredded, and when.
func (t *Tx) Shredded(ctx context.Context, compartment string) (time.Time, bool, error) {
	var at time.Time
	err := t.tx.QueryRow(ctx, `SELECT at FROM shredded WHERE compartment = $1`, compartment).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, mapErr("shredded", err)
	}
	return at.UTC(), true, nil
}
