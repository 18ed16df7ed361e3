// Package postgres implements [phivault.Store] on PostgreSQL, for running
// several stateless phivault nodes against one database.
//
// It uses pgx through a connection pool. Each Update is one transaction;
// concurrency comes from the pool, and the primary key on (type, id, version)
// turns a lost race between two writers of the same resource into ECONFLICT.
// Migrations are embedded and applied on Open under an advisory lock, so
// nodes starting together do not race.
//
// The store sees ciphertext, ids, times and blind-index tokens only.
package postgres

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/phivault/phivault"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the pg_advisory_xact_lock key that serializes migrations.
const migrationLock = 0x70686976 // "phiv"

// DB is a phivault.Store on a PostgreSQL database.
//
// Create it with New, set fields, then call Open. DB is safe for concurrent
// use by multiple goroutines once open.
type DB struct {
	// URL is the connection string, e.g.
	// postgres://user@host:5432/db?sslmode=verify-full. It may carry a
	// password: DB never logs it.
	URL string
	// Schema, if set, holds phivault's tables: Open creates it if needed and
	// sets it as every connection's search_path. Default "" uses the
	// server's search_path.
	Schema string
	// MaxConns bounds the pool. Default 0 uses pgxpool's default
	// (the larger of 4 and the number of CPUs). It must be at least 2:
	// one connection is kept for reads (see Update).
	MaxConns int32
	// InsecurePlaintext allows connections to a database on another
	// machine without TLS, or with TLS that does not verify both the
	// server's certificate and that it names the host (any sslmode but
	// verify-full: disable, allow, prefer, require, verify-ca). Default
	// false: Open refuses such a URL, because ciphertext, blind-index
	// tokens and the audit trail would cross the network readable or to an
	// impostor (with verify-ca, any server holding a certificate from the
	// same CA). A loopback address or a Unix socket never needs TLS.
	InsecurePlaintext bool

	// eraseWait bounds each wait of eraseKeys for the key table's lock;
	// 0 means eraseLockTimeout (tests shorten it).
	eraseWait time.Duration

	pool    *pgxpool.Pool
	writers chan struct{} // one token per connection an Update may hold
}

var _ phivault.Store = (*DB)(nil)

// New returns a DB for the database at url. Call Open before use.
func New(url string) *DB { return &DB{URL: url} }

// Open is New followed by DB.Open.
func Open(ctx context.Context, url string) (*DB, error) {
	db := New(url)
	if err := db.Open(ctx); err != nil {
		return nil, err
	}
	return db, nil
}

// Open connects, creates Schema if set, and applies pending migrations.
func (db *DB) Open(ctx context.Context) error {
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		// The parse error may quote the URL, password included.
		return errors.New("postgres: invalid connection URL")
	}
	if !db.InsecurePlaintext {
		if err := checkTLS(&cfg.ConnConfig.Config); err != nil {
			return err
		}
	}
	if db.MaxConns > 0 {
		cfg.MaxConns = db.MaxConns
	}
	if cfg.MaxConns < 2 {
		return errors.New("postgres: the pool needs at least 2 connections")
	}
	db.writers = make(chan struct{}, cfg.MaxConns-1)
	if db.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = db.Schema
	}
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		// Every search's best plan depends on how many rows its tokens
		// match. After five runs of a prepared statement PostgreSQL may
		// switch to one generic plan, which for the token probes is a
		// sequential scan of the tokens table (docs/PERFORMANCE.md).
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("postgres: connect: %v", err)
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return err
	}
	return nil
}

// ErrPlaintext is returned by Open for a URL that would reach a database on
// another machine without TLS that verifies the server's certificate and
// host name (sslmode=verify-full).
var ErrPlaintext = errors.New("postgres: the connection URL allows a database on another machine without TLS that verifies its certificate and host name; " +
	"use sslmode=verify-full (with sslrootcert=CA.pem unless the system roots sign the server's certificate)")

// errHostUnverified is ErrPlaintext for sslmode=verify-ca, or require with
// sslrootcert (which libpq and pgx treat as verify-ca).
var errHostUnverified = fmt.Errorf("%w: sslmode=verify-ca, like require with sslrootcert, checks the certificate's chain "+
	"but not that it names the host, so any server with a certificate from the same CA could pose as the database", ErrPlaintext)

// checkTLS returns ErrPlaintext unless every host cfg may connect to, first
// or fallback, is local (loopback or a Unix socket) or is reached only
// over TLS that verifies the server's certificate chain and host name
// (sslmode=verify-full).
func checkTLS(cfg *pgconn.Config) error {
	check := func(host string, tc *tls.Config) error {
		switch {
		case isLocal(host):
			return nil
		case tc == nil:
			return ErrPlaintext
		case tc.InsecureSkipVerify && tc.VerifyPeerCertificate != nil:
			// pgx's verify-ca: the chain is checked by hand, the
			// host name not at all.
			return errHostUnverified
		case tc.InsecureSkipVerify:
			return ErrPlaintext
		}
		return nil
	}
	if err := check(cfg.Host, cfg.TLSConfig); err != nil {
		return err
	}
	for _, fb := range cfg.Fallbacks {
		if err := check(fb.Host, fb.TLSConfig); err != nil {
			return err
		}
	}
	return nil
}

// isLocal reports whether host is a Unix socket directory, localhost or a
// loopback address.
func isLocal(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close closes every connection.
func (db *DB) Close() error {
	if db.pool != nil {
		db.pool.Close()
	}
	return nil
}

// migrate applies the embedded migrations the database has not seen, in name
// order, in one transaction, recording each name in migrations.
func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("postgres: list migrations: %v", err)
	}
	sort.Strings(names)
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin migration: %v", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if db.Schema != "" {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{db.Schema}.Sanitize()); err != nil {
			return fmt.Errorf("postgres: create schema: %v", err)
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("postgres: lock migrations: %v", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS migrations (name text PRIMARY KEY)`); err != nil {
		return fmt.Errorf("postgres: create migrations table: %v", err)
	}
	for _, name := range names {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM migrations WHERE name = $1`, name).Scan(&n); err != nil {
			return fmt.Errorf("postgres: migration %s: %v", name, err)
		} else if n > 0 {
			continue
		}
		b, err := fs.ReadFile(migrationFS, name)
		if err == nil {
			_, err = tx.Exec(ctx, string(b))
		}
		if err == nil {
			_, err = tx.Exec(ctx, `INSERT INTO migrations (name) VALUES ($1)`, name)
		}
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %v", name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit migrations: %v", err)
	}
	return nil
}

// Update runs fn in one read-write transaction and commits it. PostgreSQL's
// synchronous commit makes a nil return durable. If fn returns an error or
// panics, the transaction is rolled back. If fn shredded, Update rewrites
// the key table after the commit (see eraseKeys) and returns an error
// wrapping phivault.ErrErasePending if that fails.
//
// Updates hold at most all but one of the pool's connections, so that a
// View made while an Update runs (the access layer's write guard reads
// patient contexts inside every write) always gets a connection: without
// the reserve, as many concurrent writes as connections would each wait for
// a second connection for ever.
func (db *DB) Update(ctx context.Context, fn func(phivault.StoreTx) error) error {
	select {
	case db.writers <- struct{}{}:
		defer func() { <-db.writers }()
	case <-ctx.Done():
		return mapErr("begin", ctx.Err())
	}
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return mapErr("begin", ctxErr(ctx, err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	t := &Tx{tx: tx, write: true}
	if err := fn(t); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return mapErr("commit", err)
	}
	if t.shred {
		return db.eraseKeys(ctx)
	}
	return nil
}

// Limits of eraseKeys.
const (
	// eraseLockTimeout bounds each wait for the key table's exclusive
	// lock, during which new reads of the table queue behind it.
	eraseLockTimeout = 2 * time.Second
	// eraseTries is how many times eraseKeys tries to take that lock.
	eraseTries = 5
)

// eraseKeys rewrites the key table (VACUUM FULL) after a shred. A DELETE
// leaves the deleted row's bytes in its page, and a plain VACUUM may leave
// them in the page's free space; the rewrite copies only live rows into a
// new file and removes the old one. The table holds one small row per key,
// so this takes moments, but it locks the table meanwhile. The erased
// bytes remain in the write-ahead log until PostgreSQL recycles it, and in
// WAL archives, replicas' files and base backups (see docs/crypto.md).
//
// The rewrite erases the keys of every shred committed before it starts,
// and marks those shreds erased. If it fails, the error wraps
// phivault.ErrErasePending and the shreds stay marked pending, for the
// next shred's rewrite or EraseShredded.
func (db *DB) eraseKeys(ctx context.Context) error {
	if err := db.rewriteKeys(ctx); err != nil {
		return fmt.Errorf("postgres: erase keys: %v: %w", err, phivault.ErrErasePending)
	}
	return nil
}

func (db *DB) rewriteKeys(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return ctxErr(ctx, err)
	}
	defer conn.Release()
	// The shreds this rewrite covers. One that commits after this read
	// rewrites the table again after its own commit.
	rows, _ := conn.Query(ctx, `SELECT compartment FROM shredded WHERE NOT erased`)
	pending, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	wait := db.eraseWait
	if wait <= 0 {
		wait = eraseLockTimeout
	}
	if err := waitOldSnapshots(ctx, conn, wait); err != nil {
		return err
	}
	var before, after int64
	if err := conn.QueryRow(ctx, `SELECT pg_relation_filenode('keys')::bigint`).Scan(&before); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`SET lock_timeout = %d`, wait.Milliseconds())); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `RESET lock_timeout`)
	for try := 1; ; try++ {
		_, err = conn.Exec(ctx, `VACUUM (FULL) keys`)
		if err == nil || try == eraseTries || !transient(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	if err := conn.QueryRow(ctx, `SELECT pg_relation_filenode('keys')::bigint`).Scan(&after); err != nil {
		return err
	}
	if after == before {
		// VACUUM skips, with only a warning, a table its role may not
		// vacuum.
		return errors.New("VACUUM (FULL) keys did not rewrite the table: the database role phivault connects as must own the table keys")
	}
	if len(pending) > 0 {
		if _, err := conn.Exec(ctx, `UPDATE shredded SET erased = true WHERE compartment = ANY ($1) AND NOT erased`, pending); err != nil {
			return err
		}
	}
	return nil
}

// waitOldSnapshots waits, up to 20 times wait, until no other
// session of this database holds a snapshot from a transaction that began
// before now: such a snapshot (a REPEATABLE READ transaction, a long
// report, a pg_dump) can still see the key rows a shred deleted, and
// VACUUM (FULL) copies every row a snapshot can see into the new file.
// If they outlast the wait, the erasure stays pending (the next shred or
// start tries again). Sessions of other roles are visible to it only if
// the role may read all statistics (pg_read_all_stats), and a standby's
// feedback is not seen: docs/crypto.md says so.
func waitOldSnapshots(ctx context.Context, conn *pgxpool.Conn, wait time.Duration) error {
	var start time.Time
	if err := conn.QueryRow(ctx, `SELECT statement_timestamp()`).Scan(&start); err != nil {
		return err
	}
	const pauses = 80 // 20 × wait in all: long enough for the ordinary requests of other sessions
	pause := wait / 4
	for try := 1; ; try++ {
		var old int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()
			AND backend_xmin IS NOT NULL AND xact_start < $1`, start).Scan(&old)
		if err != nil {
			return err
		}
		if old == 0 {
			return nil
		}
		if try == pauses {
			return fmt.Errorf("%d transactions older than the shred still hold snapshots that can see its keys", old)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// transient reports whether err is a conflict with other transactions that
// a later try may not meet: lock_not_available (lock_timeout),
// deadlock_detected or serialization_failure.
func transient(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "55P03" || pe.Code == "40P01" || pe.Code == "40001")
}

// EraseShredded rewrites the key table if a shred's erasure is pending
// (see eraseKeys and phivault.ErrErasePending): the server calls it at
// start, to finish an erasure that failed or was cut short. It returns nil
// at once if none is pending, and an error wrapping
// phivault.ErrErasePending if the rewrite fails.
func (db *DB) EraseShredded(ctx context.Context) error {
	var pending bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM shredded WHERE NOT erased)`).Scan(&pending); err != nil {
		return wrapErr("erase keys", ctxErr(ctx, err))
	}
	if !pending {
		return nil
	}
	return db.eraseKeys(ctx)
}

// View runs fn in a read-only transaction with one snapshot for all its
// statements (REPEATABLE READ), so a page and its total agree.
func (db *DB) View(ctx context.Context, fn func(phivault.StoreTx) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return mapErr("begin", ctxErr(ctx, err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(&Tx{tx: tx})
}

// ctxErr returns ctx's error if it is done, so callers can tell a cancelled
// request from a database failure, and err otherwise.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
