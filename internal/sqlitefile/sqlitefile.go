// Package sqlitefile opens the small SQLite files phivault keeps beside its
// main store (the detectors', the incidents'): created with mode 0600, in
// WAL mode with an fsync at every commit, written through one connection
// whose transactions take the write lock when they begin, read through a
// pool of query-only connections, and with the schema applied from
// embedded, numbered migrations recorded in a migrations table.
package sqlitefile

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

// BusyTimeout is how long a statement waits for a lock held by another
// connection or process, in milliseconds.
const BusyTimeout = 5000

// DB is an open file: W is its one writer connection, R its readers.
type DB struct {
	W *sql.DB
	R *sql.DB
}

// Open opens (creating if needed) the SQLite file at path, applies the
// migrations in dir of migrations ("NNNN_name.sql", in name order, each
// once) and opens readers query-only connections.
func Open(ctx context.Context, filePath string, migrations fs.FS, dir string, readers int) (db *DB, err error) {
	db = &DB{}
	defer func() {
		if err != nil {
			db.Close()
			db = nil
		}
	}()
	f, err := os.OpenFile(filePath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create file: %w", err)
	}
	f.Close()
	if db.W, err = sql.Open("sqlite", dsn(filePath, false)); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	pin(db.W, 1)
	if err := db.migrate(ctx, migrations, dir); err != nil {
		return nil, err
	}
	if db.R, err = sql.Open("sqlite", dsn(filePath, true)); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	pin(db.R, max(1, readers))
	return db, nil
}

// pin keeps n connections open for good.
func pin(db *sql.DB, n int) {
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
}

// dsn returns the data source name of the file at path: WAL, fsync on
// every commit, a busy timeout, and for readers query_only. Writers take
// the write lock when they begin (BEGIN IMMEDIATE), so a transaction never
// fails half-way for a lock another process holds.
func dsn(filePath string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-16384)") // 16 MiB
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: filePath}).EscapedPath() + "?" + q.Encode()
}

func (db *DB) migrate(ctx context.Context, migrations fs.FS, dir string) error {
	if _, err := db.W.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, path.Join(dir, "*.sql"))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
		name = strings.TrimSuffix(path.Base(name), ".sql")
		err = db.Write(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil || n > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO migrations (name) VALUES (?)`, name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// Write runs fn in a write transaction and commits it; an error of fn
// rolls it back.
func (db *DB) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close closes the connections.
func (db *DB) Close() error {
	var errs []error
	if db.R != nil {
		errs = append(errs, db.R.Close())
	}
	if db.W != nil {
		errs = append(errs, db.W.Close())
	}
	return errors.Join(errs...)
}

// GetJSON decodes the one JSON column that query selects from one row
// into a new T; no row is notFound.
func GetJSON[T any](ctx context.Context, db *DB, notFound error, query string, args ...any) (*T, error) {
	var data []byte
	switch err := db.R.QueryRowContext(ctx, query, args...).Scan(&data); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, notFound
	case err != nil:
		return nil, err
	}
	return decodeJSON[T](data)
}

// ListJSON decodes the one JSON column that query selects, row by row in
// its order, and returns the first limit that keep accepts.
func ListJSON[T any](ctx context.Context, db *DB, limit int, keep func(*T) bool, query string, args ...any) ([]*T, error) {
	rows, err := db.R.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() && len(out) < limit {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		v, err := decodeJSON[T](data)
		if err != nil {
			return nil, err
		}
		if keep(v) {
			out = append(out, v)
		}
	}
	return out, rows.Err()
}

func decodeJSON[T any](data []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return v, nil
}

// CreateJSON inserts, in tx, a row of table with columns id, version,
// orderColumn and data: data is the JSON of v, order the row's sort key.
// A row with this id already is exists. table and orderColumn are
// identifiers from the caller's code, never input.
func CreateJSON(ctx context.Context, tx *sql.Tx, table, orderColumn string, exists error, id string, version, order int64, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE id = ?`, id).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return exists
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO `+table+` (id, version, `+orderColumn+`, data) VALUES (?, ?, ?, ?)`,
		id, version, order, data)
	return err
}

// UpdateJSONVersion replaces, in tx, the data of row id of table with the
// JSON of v and its version with version, if the stored version is
// version-1 (a compare-and-swap): no such row is notFound, another stored
// version is changed. table is an identifier from the caller's code,
// never input.
func UpdateJSONVersion(ctx context.Context, tx *sql.Tx, table string, notFound, changed error, id string, version int64, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	var stored int64
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM `+table+` WHERE id = ?`, id).Scan(&stored); {
	case errors.Is(err, sql.ErrNoRows):
		return notFound
	case err != nil:
		return err
	case stored != version-1:
		return changed
	}
	_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET version = ?, data = ? WHERE id = ?`, version, data, id)
	return err
}
