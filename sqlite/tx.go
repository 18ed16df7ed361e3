package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/drivermemo"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// errReadOnly is returned by writes inside View.
var errReadOnly = errors.New("sqlite: write in a read-only transaction")

// Tx is a phivault.StoreTx on a DB. It is not safe for concurrent use.
type Tx struct {
	conn  *sql.Conn
	st    *stmts
	write bool
	ctx   context.Context // the Update caller's context (write only)
	err   error           // first failed statement of a write Tx
	drove drivermemo.Memo // the last driver choice, reused by Count after Find
	shred bool            // Shred ran: the writer truncates the WAL after COMMIT
}

var _ phivault.StoreTx = (*Tx)(nil)

// stmts are the hot-path statements, prepared once per connection, and a
// bounded cache of the search statements, whose text depends only on the
// filter's shape. A connection is used by one goroutine at a time (the writer,
// or the View holding it), so stmts needs no lock.
type stmts struct {
	current, version, curVersion, insertVersion, upsertCurrent,
	key, putKey *sql.Stmt

	dynamic map[string]*sql.Stmt
}

// maxDynamic bounds the per-connection cache of search statements.
const maxDynamic = 64

const versionCols = `v.type, v.id, v.version, v.last_updated, v.compartment, v.deleted, v.key_id, v.ciphertext`

func prepare(ctx context.Context, conn *sql.Conn) (*stmts, error) {
	st := &stmts{dynamic: make(map[string]*sql.Stmt)}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&st.current, `SELECT ` + versionCols + ` FROM current c
			JOIN versions v ON v.type = c.type AND v.id = c.id AND v.version = c.version
			WHERE c.type = ? AND c.id = ?`},
		{&st.version, `SELECT ` + versionCols + ` FROM versions v WHERE v.type = ? AND v.id = ? AND v.version = ?`},
		{&st.curVersion, `SELECT version, tokens FROM current WHERE type = ? AND id = ?`},
		{&st.insertVersion, `INSERT INTO versions (type, id, version, last_updated, compartment, deleted, key_id, ciphertext)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&st.upsertCurrent, `INSERT INTO current (type, id, version, last_updated, compartment, deleted, tokens)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (type, id) DO UPDATE SET version = excluded.version,
				last_updated = excluded.last_updated, compartment = excluded.compartment,
				deleted = excluded.deleted, tokens = excluded.tokens`},
		{&st.key, `SELECT id, kek_id, wrapped, created, bound FROM keys WHERE id = ?`},
		{&st.putKey, `INSERT INTO keys (id, kek_id, wrapped, created, bound) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`},
	} {
		s, err := conn.PrepareContext(ctx, p.query)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("sqlite: prepare: %v", err)
		}
		*p.dst = s
	}
	return st, nil
}

func (st *stmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.current, st.version, st.curVersion, st.insertVersion,
		st.upsertCurrent, st.key, st.putKey} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	for _, s := range st.dynamic {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// begin checks the caller's context and returns the one to run statements
// under. The writer's statements never see a caller's context: SQLite
// interrupting a write statement may roll back the whole transaction, which
// holds other callers' work too.
func (t *Tx) begin(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !t.write {
		return ctx, nil
	}
	if t.err != nil {
		return nil, t.err
	}
	if err := t.ctx.Err(); err != nil {
		return nil, err
	}
	return context.Background(), nil
}

// fail records a statement error in a write Tx, after which the Tx refuses
// further statements: if SQLite rolled back the transaction, later statements
// would otherwise run in autocommit mode. ctx is the caller's context.
func (t *Tx) fail(ctx context.Context, what string, err error) error {
	err = wrapErr(ctx, what, err)
	if t.write && t.err == nil {
		t.err = err
	}
	return err
}

func scanResource(row interface{ Scan(...any) error }) (*phivault.SealedResource, error) {
	var (
		r       phivault.SealedResource
		lu      int64
		deleted int64
	)
	if err := row.Scan(&r.Type, &r.ID, &r.Version, &lu, &r.Compartment, &deleted, &r.KeyID, &r.Ciphertext); err != nil {
		return nil, err
	}
	r.LastUpdated = fromMicros(lu)
	r.Deleted = deleted != 0
	if r.Deleted {
		r.Ciphertext = nil
	}
	return &r, nil
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// Current returns the newest version of a resource, which may be a tombstone.
func (t *Tx) Current(ctx context.Context, typ, id string) (*phivault.SealedResource, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	r, err := scanResource(t.st.current.QueryRowContext(qctx, typ, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, phivault.ErrNotFound
	} else if err != nil {
		return nil, t.fail(ctx, "current", err)
	}
	return r, nil
}

// Version returns one version of a resource.
func (t *Tx) Version(ctx context.Context, typ, id string, version int64) (*phivault.SealedResource, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	r, err := scanResource(t.st.version.QueryRowContext(qctx, typ, id, version))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, phivault.ErrNotFound
	} else if err != nil {
		return nil, t.fail(ctx, "version", err)
	}
	return r, nil
}

// History returns versions newest first: by version for one resource, by
// last update (then id, then version, all descending) for a whole type.
func (t *Tx) History(ctx context.Context, f phivault.HistoryFilter) ([]*phivault.SealedResource, int, error) {
	if f.Type == "" {
		return nil, 0, phivault.Errorf(phivault.EINVALID, "History needs a resource type.")
	}
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, 0, err
	}
	where := []string{"v.type = ?"}
	args := []any{f.Type}
	order := "v.last_updated DESC, v.id DESC, v.version DESC"
	if f.ID != "" {
		where = append(where, "v.id = ?")
		args = append(args, f.ID)
		order = "v.version DESC"
	}
	if !f.Since.IsZero() {
		where = append(where, "v.last_updated >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	cond := strings.Join(where, " AND ")

	var total int
	if err := t.queryRow(qctx, "count history", `SELECT count(*) FROM versions v WHERE `+cond, args, &total); err != nil {
		return nil, 0, err
	}
	q := `SELECT ` + versionCols + ` FROM versions v WHERE ` + cond + ` ORDER BY ` + order + limitOffset(f.Limit, f.Offset)
	rs, err := t.query(qctx, "history", q, args)
	if err != nil {
		return nil, 0, err
	}
	return rs, total, nil
}

func limitOffset(limit, offset int) string {
	switch {
	case limit > 0 && offset > 0:
		return fmt.Sprintf(" LIMIT %d OFFSET %d", limit, offset)
	case limit > 0:
		return fmt.Sprintf(" LIMIT %d", limit)
	case offset > 0:
		return fmt.Sprintf(" LIMIT -1 OFFSET %d", offset)
	}
	return ""
}

// stmt returns a prepared statement for q from the connection's cache,
// preparing it if needed. Parsing and planning a search costs about as much
// as running it.
func (t *Tx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := t.st.dynamic[q]; ok {
		return s, nil
	}
	if len(t.st.dynamic) >= maxDynamic {
		for k, s := range t.st.dynamic { // evict one at random
			s.Close()
			delete(t.st.dynamic, k)
			break
		}
	}
	s, err := t.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	t.st.dynamic[q] = s
	return s, nil
}

func (t *Tx) queryRow(ctx context.Context, what, q string, args []any, dst ...any) error {
	s, err := t.stmt(ctx, q)
	if err == nil {
		err = s.QueryRowContext(ctx, args...).Scan(dst...)
	}
	if err != nil {
		return t.fail(ctx, what, err)
	}
	return nil
}

func (t *Tx) query(ctx context.Context, what, q string, args []any) ([]*phivault.SealedResource, error) {
	s, err := t.stmt(ctx, q)
	if err != nil {
		return nil, t.fail(ctx, what, err)
	}
	rows, err := s.QueryContext(ctx, args...)
	if err != nil {
		return nil, t.fail(ctx, what, err)
	}
	defer rows.Close()
	var out []*phivault.SealedResource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, t.fail(ctx, what, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail(ctx, what, err)
	}
	return out, nil
}

// Put appends a version, makes it current and replaces the resource's tokens.
func (t *Tx) Put(ctx context.Context, r *phivault.SealedResource, tokens []phivault.Token) error {
	if !t.write {
		return errReadOnly
	}
	if r == nil || r.Type == "" || r.ID == "" || r.Version < 1 {
		return phivault.Errorf(phivault.EINVALID, "A stored version needs a type, an id and a version of at least 1.")
	}
	qctx, err := t.begin(ctx)
	if err != nil {
		return err
	}
	var cur int64
	var old []byte // the current version's tokens, 16 bytes each
	err = t.st.curVersion.QueryRowContext(qctx, r.Type, r.ID).Scan(&cur, &old)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return t.fail(ctx, "put", err)
	}
	if r.Version != cur+1 {
		return conflict(r.Version, cur)
	}
	ct := r.Ciphertext
	if r.Deleted {
		ct = nil
	} else if ct == nil {
		ct = []byte{}
	}
	lu := r.LastUpdated.UnixMicro()
	if _, err := t.st.insertVersion.ExecContext(qctx,
		r.Type, r.ID, r.Version, lu, r.Compartment, r.Deleted, r.KeyID, ct); err != nil {
		if isUniqueViolation(err) {
			return conflict(r.Version, cur)
		}
		return t.fail(ctx, "put version", err)
	}
	if r.Deleted {
		tokens = nil // a tombstone has no tokens
	}
	list := make([]byte, 0, len(tokens)*len(phivault.Token{}))
	for _, tok := range tokens {
		list = append(list, tok[:]...)
	}
	if _, err := t.st.upsertCurrent.ExecContext(qctx,
		r.Type, r.ID, r.Version, lu, r.Compartment, r.Deleted, list); err != nil {
		return t.fail(ctx, "put current", err)
	}
	if err := t.deleteTokens(qctx, r.Type, r.ID, old); err != nil {
		return err
	}
	return t.insertTokens(qctx, r.Type, r.ID, tokens)
}

// deleteTokens deletes a resource's tokens, listed 16 bytes each, by
// primary key.
func (t *Tx) deleteTokens(ctx context.Context, typ, id string, list []byte) error {
	const size = len(phivault.Token{})
	args := make([]any, 0, 2+min(len(list)/size, tokensPerInsert))
	for len(list) >= size {
		n := min(len(list)/size, tokensPerInsert)
		args = append(args[:0], typ, id)
		for i := range n {
			args = append(args, list[i*size:(i+1)*size])
		}
		q := `DELETE FROM tokens WHERE type = ? AND id = ? AND token IN (?` + strings.Repeat(`, ?`, n-1) + `)`
		s, err := t.stmt(ctx, q)
		if err == nil {
			_, err = s.ExecContext(ctx, args...)
		}
		if err != nil {
			return t.fail(ctx, "put tokens", err)
		}
		list = list[n*size:]
	}
	return nil
}

// tokensPerInsert is how many token rows one INSERT statement carries: a
// resource has about a dozen, and one statement per row cost more in driver
// overhead than the B-tree work itself.
const tokensPerInsert = 16

// insertTokens inserts tokens in multi-row statements.
func (t *Tx) insertTokens(ctx context.Context, typ, id string, tokens []phivault.Token) error {
	args := make([]any, 0, 3*min(len(tokens), tokensPerInsert))
	for len(tokens) > 0 {
		n := min(len(tokens), tokensPerInsert)
		args = args[:0]
		for i := range n {
			args = append(args, tokens[i][:], typ, id)
		}
		s, err := t.stmt(ctx, tokenInsert(n))
		if err == nil {
			_, err = s.ExecContext(ctx, args...)
		}
		if err != nil {
			return t.fail(ctx, "put tokens", err)
		}
		tokens = tokens[n:]
	}
	return nil
}

// tokenInsert returns the INSERT statement for n token rows.
func tokenInsert(n int) string {
	return `INSERT OR IGNORE INTO tokens (token, type, id) VALUES (?, ?, ?)` + strings.Repeat(`, (?, ?, ?)`, n-1)
}

func conflict(got, cur int64) *phivault.Error {
	return phivault.Errorf(phivault.ECONFLICT, "Version %d cannot follow version %d.", got, cur)
}

// wrapErr wraps a driver error with what. A statement that stopped because
// ctx was done keeps ctx's error in the chain (%w), so that callers can tell
// a cancelled request from a database failure: the driver reports it as the
// context's error, or, when it interrupted SQLite, as SQLITE_INTERRUPT.
// Any other driver error's details stay out of the chain (%v).
func wrapErr(ctx context.Context, what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_INTERRUPT && ctx.Err() != nil {
		return fmt.Errorf("sqlite: %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("sqlite: %s: %v", what, err)
}

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// Find returns current, non-deleted versions matching f.
func (t *Tx) Find(ctx context.Context, f phivault.ResourceFilter) ([]*phivault.SealedResource, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	if emptyGroup(f.Tokens) {
		return nil, nil
	}
	drive, err := t.driver(qctx, f)
	if err != nil {
		return nil, err
	}
	q, args := findQuery(f, drive, selectRows)
	return t.query(qctx, "find", q, args)
}

// Count returns how many current, non-deleted versions match f.
func (t *Tx) Count(ctx context.Context, f phivault.ResourceFilter) (int, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return 0, err
	}
	if emptyGroup(f.Tokens) {
		return 0, nil
	}
	drive, err := t.driver(qctx, f)
	if err != nil {
		return 0, err
	}
	q, args := findQuery(f, drive, selectCount)
	var n int
	if err := t.queryRow(qctx, "count", q, args, &n); err != nil {
		return 0, err
	}
	return n, nil
}

// CountCompartments returns how many current, non-deleted versions
// matching f each compartment holds.
func (t *Tx) CountCompartments(ctx context.Context, f phivault.ResourceFilter) (map[string]int, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	if emptyGroup(f.Tokens) {
		return out, nil
	}
	drive, err := t.driver(qctx, f)
	if err != nil {
		return nil, err
	}
	q, args := findQuery(f, drive, selectCompartments)
	st, err := t.stmt(qctx, q)
	if err != nil {
		return nil, t.fail(ctx, "compartments", err)
	}
	rows, err := st.QueryContext(qctx, args...)
	if err != nil {
		return nil, t.fail(ctx, "compartments", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c string
			n int
		)
		if err := rows.Scan(&c, &n); err != nil {
			return nil, t.fail(ctx, "compartments", err)
		}
		out[c] = n
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail(ctx, "compartments", err)
	}
	return out, nil
}

// emptyGroup reports whether some OR group has no tokens, which no resource
// can match.
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
// fewest rows. It counts the first group up to sampleCap rows and each later
// group only up to the best count so far, so callers should put the group
// they expect to be most selective first. It returns -1 when there are no
// token groups, and when f is bounded to one compartment (a patient's
// search): then the compartment drives, so that neither the cost nor the
// timing of the search depends on rows outside it. Bounded to several
// compartments (a clinician's), the most selective group still drives the
// probe of the tokens index and the compartments filter what is read.
func (t *Tx) driver(ctx context.Context, f phivault.ResourceFilter) (int, error) {
	if len(f.Compartments) == 1 {
		return -1, nil
	}
	groups := f.Tokens
	return t.drove.Driver(groups, func() (int, error) { return t.pickDriver(ctx, groups) })
}

// pickDriver samples two or more token groups for driver.
func (t *Tx) pickDriver(ctx context.Context, groups [][]phivault.Token) (int, error) {
	best, limit := 0, sampleCap
	for i, g := range groups {
		args := tokenArgs(nil, g)
		var n int
		q := `SELECT count(*) FROM (SELECT 1 FROM tokens WHERE token IN (` + marks(len(g)) + `) LIMIT ` + fmt.Sprint(limit) + `)`
		if err := t.queryRow(ctx, "find", q, args, &n); err != nil {
			return 0, err
		}
		if n < limit {
			best, limit = i, n
		}
		if limit == 0 {
			break
		}
	}
	return best, nil
}

func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func tokenArgs(args []any, g []phivault.Token) []any {
	for _, tok := range g {
		args = append(args, tok[:])
	}
	return args
}

// What findQuery selects: the page's rows, their count, or their
// compartments.
const (
	selectRows         = "c.type, c.id, c.version, c.last_updated"
	selectCount        = "count(*)"
	selectCompartments = "c.compartment, count(*)"
)

// findQuery builds the search. With token groups, the most selective one
// (drive) is the outer loop: a CROSS JOIN makes SQLite's planner keep the
// token subquery first, so the search probes the tokens primary key, then
// current by primary key, and never scans current or versions. The other
// groups are EXISTS probes on the tokens primary key inside that subquery,
// so current is read only for resources that match every group. Without
// tokens, the (type, deleted, last_updated, id) and (compartment, type,
// deleted, last_updated) indexes serve the filters and the order.
func findQuery(f phivault.ResourceFilter, drive int, sel string) (string, []any) {
	var (
		b     strings.Builder
		args  []any
		where = []string{"c.deleted = 0"}
	)
	b.WriteString("SELECT " + sel + " FROM ")
	if drive >= 0 {
		b.WriteString("(SELECT DISTINCT type, id FROM tokens WHERE token IN (" + marks(len(f.Tokens[drive])) + ")")
		args = tokenArgs(args, f.Tokens[drive])
		if len(f.Types) > 0 {
			b.WriteString(" AND type IN (" + marks(len(f.Types)) + ")")
			for _, typ := range f.Types {
				args = append(args, typ)
			}
		}
		// The other groups are probed here, on the token rows, so that
		// only resources matching every group are looked up in current.
		for i, g := range f.Tokens {
			if i != drive {
				b.WriteString(" AND EXISTS (SELECT 1 FROM tokens t WHERE t.token IN (" + marks(len(g)) + ") AND t.type = tokens.type AND t.id = tokens.id)")
				args = tokenArgs(args, g)
			}
		}
		b.WriteString(") d CROSS JOIN current c ON c.type = d.type AND c.id = d.id")
	} else {
		// Without a driving group (a search bounded to one compartment),
		// every group is probed on the compartment's rows.
		b.WriteString("current c")
		if len(f.Compartments) > 0 {
			// Several compartments make the planner guess that reading
			// the whole type costs less; it never does.
			b.WriteString(" INDEXED BY current_compartment")
		}
		for _, g := range f.Tokens {
			where = append(where, "EXISTS (SELECT 1 FROM tokens t WHERE t.token IN ("+marks(len(g))+") AND t.type = c.type AND t.id = c.id)")
			args = tokenArgs(args, g)
		}
	}
	if len(f.Types) > 0 {
		where = append(where, "c.type IN ("+marks(len(f.Types))+")")
		for _, typ := range f.Types {
			args = append(args, typ)
		}
	}
	if len(f.IDs) > 0 {
		where = append(where, "c.id IN ("+marks(len(f.IDs))+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if len(f.Compartments) > 0 {
		where = append(where, "c.compartment IN ("+marks(len(f.Compartments))+")")
		for _, c := range f.Compartments {
			args = append(args, c)
		}
	}
	if !f.From.IsZero() {
		where = append(where, "c.last_updated >= ?")
		args = append(args, f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		where = append(where, "c.last_updated < ?")
		args = append(args, f.To.UnixMicro())
	}
	b.WriteString(" WHERE " + strings.Join(where, " AND "))
	if sel == selectCompartments {
		b.WriteString(" GROUP BY c.compartment")
	}
	if sel == selectRows {
		dir := " DESC"
		if f.Ascending {
			dir = " ASC"
		}
		order := " ORDER BY c.last_updated" + dir + ", c.id" + dir + ", c.type" + dir
		b.WriteString(order)
		b.WriteString(limitOffset(f.Limit, f.Offset))
		// Read ciphertexts only for the page: filter and order on the
		// small current rows first, then join versions.
		return "SELECT " + versionCols + " FROM (" + b.String() + ") p" +
			" JOIN versions v ON v.type = p.type AND v.id = p.id AND v.version = p.version" +
			strings.ReplaceAll(order, "c.", "p."), args
	}
	return b.String(), args
}

// Key returns a wrapped key.
func (t *Tx) Key(ctx context.Context, id string) (*phivault.WrappedKey, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	var (
		k       phivault.WrappedKey
		created int64
	)
	err = t.st.key.QueryRowContext(qctx, id).Scan(&k.ID, &k.KEKID, &k.Wrapped, &created, &k.Bound)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, phivault.ErrNotFound
	} else if err != nil {
		return nil, t.fail(ctx, "key", err)
	}
	k.Created = fromMicros(created)
	return &k, nil
}

// PutKey stores k unless a key with its id exists, and returns the stored key.
func (t *Tx) PutKey(ctx context.Context, k *phivault.WrappedKey) (*phivault.WrappedKey, error) {
	if !t.write {
		return nil, errReadOnly
	}
	if k == nil || k.ID == "" {
		return nil, phivault.Errorf(phivault.EINVALID, "A key needs an id.")
	}
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := t.st.putKey.ExecContext(qctx,
		k.ID, string(k.KEKID), k.Wrapped, k.Created.UnixMicro(), k.Bound); err != nil {
		return nil, t.fail(ctx, "put key", err)
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
	qctx, err := t.begin(ctx)
	if err != nil {
		return err
	}
	res, err := t.conn.ExecContext(qctx, `UPDATE keys SET kek_id = ?, wrapped = ?, created = ?, bound = ?
		WHERE id = ? AND kek_id = ? AND wrapped = ? AND bound = ?`,
		string(k.KEKID), k.Wrapped, k.Created.UnixMicro(), k.Bound, old.ID, string(old.KEKID), old.Wrapped, old.Bound)
	if err != nil {
		return t.fail(ctx, "replace key", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.fail(ctx, "replace key", err)
	} else if n == 1 {
		return nil
	}
	if _, err := t.Key(ctx, old.ID); err != nil {
		return err
	}
	return phivault.Errorf(phivault.ECONFLICT, "The key changed since it was read.")
}

// Keys returns wrapped keys in id order.
func (t *Tx) Keys(ctx context.Context, f phivault.KeyFilter) ([]*phivault.WrappedKey, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	q := `SELECT id, kek_id, wrapped, created, bound FROM keys WHERE id > ?`
	args := []any{f.After}
	if f.ExceptKEK != "" {
		q += ` AND kek_id <> ?`
		args = append(args, string(f.ExceptKEK))
	}
	if f.KEK != "" {
		q += ` AND kek_id = ?`
		args = append(args, string(f.KEK))
	}
	if f.Unbound {
		q += ` AND bound = 0`
	}
	q += ` ORDER BY id` + limitOffset(f.Limit, 0)
	rows, err := t.conn.QueryContext(qctx, q, args...)
	if err != nil {
		return nil, t.fail(ctx, "keys", err)
	}
	defer rows.Close()
	var out []*phivault.WrappedKey
	for rows.Next() {
		var k phivault.WrappedKey
		var created int64
		if err := rows.Scan(&k.ID, &k.KEKID, &k.Wrapped, &created, &k.Bound); err != nil {
			return nil, t.fail(ctx, "keys", err)
		}
		k.Created = fromMicros(created)
		out = append(out, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail(ctx, "keys", err)
	}
	return out, nil
}

// KeyCounts returns how many keys each key-encryption key wraps.
func (t *Tx) KeyCounts(ctx context.Context) (map[phivault.KeyID]int, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := t.conn.QueryContext(qctx, `SELECT kek_id, count(*) FROM keys GROUP BY kek_id`)
	if err != nil {
		return nil, t.fail(ctx, "key counts", err)
	}
	defer rows.Close()
	out := make(map[phivault.KeyID]int)
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, t.fail(ctx, "key counts", err)
		}
		out[phivault.KeyID(id)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail(ctx, "key counts", err)
	}
	return out, nil
}

// erased is current.deleted for a resource of a shredded compartment.
const erased = 2

// Shred deletes the compartment's key and tokens, takes its resources out of
// search and records the shred.
func (t *Tx) Shred(ctx context.Context, compartment string, at time.Time) error {
	if !t.write {
		return errReadOnly
	}
	if compartment == "" {
		return phivault.Errorf(phivault.EINVALID, "Only a patient compartment can be shredded.")
	}
	qctx, err := t.begin(ctx)
	if err != nil {
		return err
	}
	type row struct {
		typ, id string
		tokens  []byte
	}
	var rs []row
	rows, err := t.conn.QueryContext(qctx, `SELECT type, id, tokens FROM current WHERE compartment = ?`, compartment)
	if err != nil {
		return t.fail(ctx, "shred", err)
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.typ, &r.id, &r.tokens); err != nil {
			rows.Close()
			return t.fail(ctx, "shred", err)
		}
		rs = append(rs, r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return t.fail(ctx, "shred", err)
	}
	for _, r := range rs {
		if err := t.deleteTokens(qctx, r.typ, r.id, r.tokens); err != nil {
			return err
		}
	}
	for _, s := range []struct {
		q    string
		args []any
	}{
		{`UPDATE current SET deleted = ?, tokens = x'' WHERE compartment = ?`, []any{erased, compartment}},
		// The key and its later versions ("patient/<id>#n").
		{`DELETE FROM keys WHERE id = ? OR (id > ? AND id < ?)`, []any{"patient/" + compartment, "patient/" + compartment + "#", "patient/" + compartment + "$"}},
		{`INSERT INTO shredded (compartment, at) VALUES (?, ?) ON CONFLICT (compartment) DO NOTHING`, []any{compartment, at.UnixMicro()}},
	} {
		if _, err := t.conn.ExecContext(qctx, s.q, s.args...); err != nil {
			return t.fail(ctx, "shred", err)
		}
	}
	t.shred = true
	return nil
}

// Shredded reports whether compartment was shredded, and when.
func (t *Tx) Shredded(ctx context.Context, compartment string) (time.Time, bool, error) {
	qctx, err := t.begin(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	var at int64
	st, err := t.stmt(qctx, `SELECT at FROM shredded WHERE compartment = ?`)
	if err == nil {
		err = st.QueryRowContext(qctx, compartment).Scan(&at)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, t.fail(ctx, "shredded", err)
	}
	return fromMicros(at), true, nil
}
