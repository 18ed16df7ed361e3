package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// The audit trail lives in its own SQLite database file beside the main one
// (DB.AuditPath), with its own WAL and its own fsync stream: an audit commit
// never waits behind record writes, their token inserts or their WAL
// checkpoints, and appends have a dedicated writer connection instead of a
// place in the record writer's queue. Commits are as durable as the main
// file's (WAL, synchronous=FULL).
//
// Databases from before the split hold their entries in the main file
// (migrations 0004 and 0005). On first open the audit file is filled with
// a copy of them; the main file's audit tables are never written again.

// auditDB is the audit trail's database file.
type auditDB struct {
	path string
	wdb  *sql.DB // one connection: w
	rdb  *sql.DB // read-only connections

	mu    sync.Mutex // serializes writes on w and guards the fields below
	w     *sql.Conn
	stmts map[string]*sql.Stmt    // prepared statements by text
	ins   map[insertKey]*sql.Stmt // the multi-row inserts among stmts
	full  bool                    // w's synchronous setting is FULL, not NORMAL
	syncs int64                   // SyncAudit calls, written to audit_sync
}

// auditReadConns is the number of read-only connections on the audit file.
const auditReadConns = 2

// auditSchema is the audit file's schema, applied in order and recorded in
// its migrations table like the main file's. Append new steps; never edit
// one that has shipped.
var auditSchema = []struct{ name, sql string }{
	{"audit-0001", `
-- Entries (canonical JSON holding ids only, never PHI) by index, and the
-- stored hashes of their RFC 6962 Merkle tree, grouped by the entry whose
-- append stored them (one row instead of two on average: the insert is
-- most of an append's cost). Both are append-only: the triggers refuse UPDATE and DELETE, and the tree
-- and its signed checkpoints reveal any change made by someone who drops
-- them.
CREATE TABLE audit_entries (
	idx  INTEGER PRIMARY KEY,
	data BLOB    NOT NULL
);
CREATE TABLE audit_hashes (
	idx    INTEGER PRIMARY KEY, -- the entry whose append stored them
	hashes BLOB    NOT NULL     -- tlog.StoredHashesForRecordHash(idx): 32 bytes each, level 0 first
);
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit hashes are append-only'); END;
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'audit hashes are append-only'); END;
-- The audit index (derived from the entries, not covered by the tree): one
-- row per entry and patient compartment it touched (patient '' if none).
CREATE TABLE audit_index (
	idx     INTEGER NOT NULL,
	patient TEXT    NOT NULL,
	actor   TEXT    NOT NULL,
	action  TEXT    NOT NULL,
	time    INTEGER NOT NULL, -- Unix nanoseconds, UTC
	PRIMARY KEY (idx, patient)
) WITHOUT ROWID;
CREATE INDEX audit_index_patient ON audit_index (patient, idx);
CREATE INDEX audit_index_actor ON audit_index (actor, idx);
-- One row rewritten by SyncAudit: a commit with synchronous=FULL, whose
-- fsync of the WAL makes every earlier commit durable too.
CREATE TABLE audit_sync (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  INTEGER NOT NULL
);
`},
	{"audit-0002", `
-- The purposes of use of each indexed entry (auditlog.JoinPurposes: " BTG "),
-- for the AuditEvent search's purpose parameter. The index is derived:
-- emptied here, it is rebuilt from the entries by the next search.
ALTER TABLE audit_index ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
DELETE FROM audit_index;
`},
}

// DefaultAuditPath returns the audit file for the main database file path:
// "phivault.db" → "phivault.audit.db".
func DefaultAuditPath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + ".audit" + ext
}

func (db *DB) auditPath() string {
	if db.AuditPath != "" {
		return db.AuditPath
	}
	return DefaultAuditPath(db.Path)
}

// openAudit opens the audit file, applies its schema and, if it holds no
// entries yet, copies those of the main file.
func (db *DB) openAudit(ctx context.Context) (err error) {
	a := &auditDB{path: db.auditPath(), stmts: map[string]*sql.Stmt{}, ins: map[insertKey]*sql.Stmt{}, full: true}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	f, err := os.OpenFile(a.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: create audit file: %w", err)
	}
	f.Close()
	if a.wdb, err = sql.Open("sqlite", auditDSN(a.path, db.BusyTimeout, false)); err != nil {
		return fmt.Errorf("sqlite: open audit file: %v", err)
	}
	a.wdb.SetMaxOpenConns(1)
	a.wdb.SetConnMaxLifetime(0)
	a.wdb.SetConnMaxIdleTime(0)
	if a.w, err = a.wdb.Conn(ctx); err != nil {
		return fmt.Errorf("sqlite: open audit file: %v", err)
	}
	if err := a.migrate(ctx); err != nil {
		return err
	}
	if err := a.importLegacy(ctx, db.Path); err != nil {
		return err
	}
	if a.rdb, err = sql.Open("sqlite", auditDSN(a.path, db.BusyTimeout, true)); err != nil {
		return fmt.Errorf("sqlite: open audit file: %v", err)
	}
	a.rdb.SetMaxOpenConns(auditReadConns)
	a.rdb.SetMaxIdleConns(auditReadConns)
	a.rdb.SetConnMaxLifetime(0)
	a.rdb.SetConnMaxIdleTime(0)
	db.audit = a
	return nil
}

func auditDSN(path string, busy int, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", max(busy, 0)))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-16384)") // 16 MiB
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func (a *auditDB) migrate(ctx context.Context) error {
	c := a.w
	if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("sqlite: audit migrations table: %v", err)
	}
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: begin audit migration: %v", err)
	}
	for _, m := range auditSchema {
		var n int
		err := c.QueryRowContext(ctx, `SELECT count(*) FROM migrations WHERE name = ?`, m.name).Scan(&n)
		if err == nil && n == 0 {
			if _, err = c.ExecContext(ctx, m.sql); err == nil {
				_, err = c.ExecContext(ctx, `INSERT INTO migrations (name) VALUES (?)`, m.name)
			}
		}
		if err != nil {
			c.ExecContext(ctx, "ROLLBACK")
			return fmt.Errorf("sqlite: audit migration %s: %v", m.name, err)
		}
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite: commit audit migrations: %v", err)
	}
	return nil
}

// importLegacy copies the entries and tree hashes of a main file written
// before the audit file existed, if the audit file has none.
func (a *auditDB) importLegacy(ctx context.Context, mainPath string) error {
	c := a.w
	var n int64
	if err := c.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM audit_entries LIMIT 1)`).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: audit size: %v", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := c.ExecContext(ctx, `ATTACH DATABASE ? AS legacy`, "file:"+(&url.URL{Path: mainPath}).EscapedPath()+"?mode=ro"); err != nil {
		return fmt.Errorf("sqlite: attach main file: %v", err)
	}
	defer c.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE legacy`)
	var tables int
	if err := c.QueryRowContext(ctx, `SELECT count(*) FROM legacy.sqlite_master WHERE type = 'table' AND name IN ('audit_entries', 'audit_hashes')`).Scan(&tables); err != nil {
		return fmt.Errorf("sqlite: look for old audit tables: %v", err)
	}
	if tables != 2 {
		return nil
	}
	// The old file keeps one row per stored hash; group them by entry.
	src, err := sql.Open("sqlite", "file:"+(&url.URL{Path: mainPath}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("sqlite: open main file: %v", err)
	}
	defer src.Close()
	rows, err := src.QueryContext(ctx, `SELECT idx, hash FROM audit_hashes ORDER BY idx`)
	if err != nil {
		return fmt.Errorf("sqlite: read old audit hashes: %v", err)
	}
	defer rows.Close()
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: begin audit import: %v", err)
	}
	err = func() error {
		if _, err := c.ExecContext(ctx, `INSERT INTO audit_entries (idx, data) SELECT idx, data FROM legacy.audit_entries ORDER BY idx`); err != nil {
			return err
		}
		var (
			record int64
			blob   []byte
			next   int64 // stored-hash index expected next
		)
		for rows.Next() {
			var (
				idx int64
				h   []byte
			)
			if err := rows.Scan(&idx, &h); err != nil {
				return err
			}
			if idx != next { // a hole: the old log was damaged; keep what is whole
				break
			}
			next++
			blob = append(blob, h...)
			if len(blob) == tlog.HashSize*storedPerRecord(record) {
				if _, err := c.ExecContext(ctx, `INSERT INTO audit_hashes (idx, hashes) VALUES (?, ?)`, record, blob); err != nil {
					return err
				}
				record, blob = record+1, nil
			}
		}
		return rows.Err()
	}()
	if err != nil {
		c.ExecContext(ctx, "ROLLBACK")
		return fmt.Errorf("sqlite: copy old audit entries: %v", err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite: commit audit import: %v", err)
	}
	return nil
}

// storedPerRecord is how many stored hashes appending record n adds: its
// leaf and one per subtree it completes.
func storedPerRecord(n int64) int {
	return 1 + bits.TrailingZeros64(^uint64(n))
}

// stmt returns the prepared statement for q on the writer connection. The
// caller holds a.mu.
func (a *auditDB) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := a.stmts[q]; ok {
		return s, nil
	}
	s, err := a.w.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	a.stmts[q] = s
	return s, nil
}

// insertKey names a prepared multi-row insert: its table and row count.
type insertKey struct {
	table string
	rows  int
}

// insert returns the prepared statement inserting rows (idx, col) rows
// into table, without building its text again once prepared. The caller
// holds a.mu.
func (a *auditDB) insert(ctx context.Context, table, col string, rows int) (*sql.Stmt, error) {
	k := insertKey{table, rows}
	if s, ok := a.ins[k]; ok {
		return s, nil
	}
	s, err := a.stmt(ctx, "INSERT INTO "+table+" (idx, "+col+") VALUES (?, ?)"+strings.Repeat(", (?, ?)", rows-1))
	if err != nil {
		return nil, err
	}
	a.ins[k] = s
	return s, nil
}

// write runs fn in one IMMEDIATE transaction on the writer connection and
// commits; nil means the commit is durable.
func (a *auditDB) write(ctx context.Context, fn func(c *sql.Conn) error) error {
	return a.writeSync(ctx, true, fn)
}

// writeSync is write; if durable is false, the commit is not fsynced
// (synchronous=NORMAL: WAL order is kept, and the next durable commit or
// checkpoint makes it durable too).
func (a *auditDB) writeSync(ctx context.Context, durable bool, fn func(c *sql.Conn) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	// The statements never see the caller's context: an interrupted write
	// statement could roll back the transaction under us.
	bg := context.WithoutCancel(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	if durable != a.full {
		mode := "NORMAL"
		if durable {
			mode = "FULL"
		}
		if _, err := a.w.ExecContext(bg, "PRAGMA synchronous = "+mode); err != nil {
			return fmt.Errorf("set synchronous: %v", err)
		}
		a.full = durable
	}
	if _, err := a.w.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %v", err)
	}
	if err := fn(a.w); err != nil {
		a.w.ExecContext(bg, "ROLLBACK")
		return err
	}
	if _, err := a.w.ExecContext(bg, "COMMIT"); err != nil {
		a.w.ExecContext(bg, "ROLLBACK") // may fail if SQLite already rolled back
		return fmt.Errorf("commit: %v", err)
	}
	return nil
}

func (a *auditDB) close() error {
	var errs []error
	for _, s := range a.stmts {
		errs = append(errs, s.Close())
	}
	if a.w != nil {
		errs = append(errs, a.w.Close())
	}
	if a.wdb != nil {
		errs = append(errs, a.wdb.Close())
	}
	if a.rdb != nil {
		errs = append(errs, a.rdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close audit file: %v", err)
	}
	return nil
}
