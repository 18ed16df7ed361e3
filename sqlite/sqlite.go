// Package sqlite implements [phivault.Store] on an embedded SQLite database,
// the default storage of phivault.
//
// It uses the pure-Go driver modernc.org/sqlite in WAL mode with
// synchronous=FULL, so a nil from [DB.Update] means the transaction survives
// a power loss. A single writer connection serves all updates: one goroutine
// runs each caller's function inside its own SAVEPOINT and commits every
// waiting caller's work with one COMMIT (group commit), so throughput comes
// from batching fsyncs, not from skipping them. Reads run on a small pool of
// read-only connections and never wait for the writer.
//
// The store sees ciphertext, ids, times and blind-index tokens only.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/phivault/phivault"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Defaults for the fields of DB.
const (
	DefaultReadConns   = 4
	DefaultMaxBatch    = 256
	DefaultBusyTimeout = 5000 // milliseconds
	DefaultQueueSize   = 256
	// DefaultCacheMiB is the page cache of the writer and the read
	// connections together; SQLite's pages beyond it come from the OS page
	// cache, which the kernel can reclaim.
	DefaultCacheMiB = 128
	// DefaultWALLimit bounds the write-ahead log file: 64 MiB.
	DefaultWALLimit = 64 << 20
	// walCheckpointWaitMillis is how long the writer waits for readers to
	// leave the WAL when it truncates it; writes queue meanwhile.
	walCheckpointWaitMillis = 100
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// errClosed is returned by Update and View after Close.
var errClosed = phivault.Errorf(phivault.EUNAVAILABLE, "The database is closed.")

// DB is a phivault.Store on one SQLite database file.
//
// Create it with New, set fields, then call Open. DB is safe for concurrent
// use by multiple goroutines once open.
type DB struct {
	// Path is the database file. It is created if it does not exist.
	Path string
	// ReadConns is the number of read-only connections serving View.
	// Default DefaultReadConns; values below 1 mean 1.
	ReadConns int
	// MaxBatch bounds how many Update calls one COMMIT carries.
	// Default DefaultMaxBatch; values below 1 mean 1 (no group commit).
	MaxBatch int
	// BusyTimeout is SQLite's busy timeout in milliseconds, which matters only
	// when another process opens the same file. Default DefaultBusyTimeout.
	BusyTimeout int
	// CacheMiB bounds the page cache of the writer and the read connections
	// together, in MiB; each connection gets an equal share (at least 1
	// MiB). Default DefaultCacheMiB; values below 1 mean the default.
	CacheMiB int
	// WALLimit bounds the write-ahead log file, in bytes. After a commit
	// that leaves the WAL larger, the writer checkpoints it with TRUNCATE
	// (waiting at most 100 ms for readers still using it; if they do not
	// leave, it tries again once the WAL has grown by another quarter of
	// the limit), and journal_size_limit cuts the file back to WALLimit
	// whenever the log restarts. So the WAL stays near WALLimit while
	// serving, not only after a clean stop. Default DefaultWALLimit;
	// values below 1 mean the default.
	WALLimit int64
	// ShredEraseWaitMillis bounds how long the truncation of the WAL after
	// a shred waits for readers on an older snapshot, in milliseconds.
	// Default (0) shredWALWaits busy timeouts. A process that keeps a read
	// transaction open for good (continuous backup streaming) makes every
	// shred wait the whole bound with writes held: set it short there, and
	// the erasure stays pending (phivault.ErrErasePending) until a later
	// shred or start finds the WAL free.
	ShredEraseWaitMillis int
	// AuditPath is the audit trail's own database file (see audit_db.go).
	// Default DefaultAuditPath(Path).
	AuditPath string

	audit *auditDB // the audit file; see audit_db.go

	wdb   *sql.DB   // one connection, owned by the writer goroutine
	wconn *sql.Conn // that connection
	wst   *stmts    // statements prepared on wconn
	rdb   *sql.DB   // read-only connections
	rpool chan *readConn
	nread int // read connections created, all owned by rpool when idle

	reqs    chan *request
	done    chan struct{} // closed when the writer goroutine exits
	commits atomic.Int64  // successful COMMITs, for tests
	// walRetry is the WAL size at which the writer next tries to truncate
	// the WAL after a try that readers kept from completing; 0 if none.
	walRetry int64

	// The checkpointer copies committed WAL pages into the database on its
	// own connection, so that the writer never pays for it after a COMMIT.
	cdb      *sql.DB
	ckpt     chan struct{} // a commit happened; capacity 1
	ckptDone chan struct{} // closed when the checkpointer exits
	// ckptMu is held by each checkpoint, the checkpointer's PASSIVE ones and
	// the writer's TRUNCATE ones, so that they never make each other fail.
	ckptMu sync.Mutex

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
}

var _ phivault.Store = (*DB)(nil)

// New returns a DB for the file at path with default settings. Call Open
// before use.
func New(path string) *DB {
	return &DB{
		Path:        path,
		ReadConns:   DefaultReadConns,
		MaxBatch:    DefaultMaxBatch,
		BusyTimeout: DefaultBusyTimeout,
		CacheMiB:    DefaultCacheMiB,
		WALLimit:    DefaultWALLimit,
	}
}

// Open is New followed by DB.Open.
func Open(ctx context.Context, path string) (*DB, error) {
	db := New(path)
	if err := db.Open(ctx); err != nil {
		return nil, err
	}
	return db, nil
}

type readConn struct {
	conn *sql.Conn
	st   *stmts
}

// Open opens the database file, applies pending migrations and starts the
// writer.
func (db *DB) Open(ctx context.Context) (err error) {
	if db.Path == "" {
		return errors.New("sqlite: path required")
	}
	// Create the file owner-only before SQLite does: SQLite gives the -wal
	// and -shm files the database file's mode.
	f, err := os.OpenFile(db.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: create: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			db.closeConns()
		}
	}()
	if db.wdb, err = sql.Open("sqlite", db.dsn(false)); err != nil {
		return fmt.Errorf("sqlite: open: %v", err)
	}
	db.wdb.SetMaxOpenConns(1)
	db.wdb.SetConnMaxLifetime(0)
	db.wdb.SetConnMaxIdleTime(0)
	if db.wconn, err = db.wdb.Conn(ctx); err != nil {
		return fmt.Errorf("sqlite: open: %v", err)
	}
	if err := migrate(ctx, db.wconn); err != nil {
		return err
	}
	if db.wst, err = prepare(ctx, db.wconn); err != nil {
		return err
	}
	if err := db.openAudit(ctx); err != nil {
		return err
	}

	n := max(db.ReadConns, 1)
	if db.rdb, err = sql.Open("sqlite", db.dsn(true)); err != nil {
		return fmt.Errorf("sqlite: open: %v", err)
	}
	db.rdb.SetMaxOpenConns(n)
	db.rdb.SetMaxIdleConns(n)
	db.rdb.SetConnMaxLifetime(0)
	db.rdb.SetConnMaxIdleTime(0)
	db.rpool = make(chan *readConn, n)
	for range n {
		c, err := db.rdb.Conn(ctx)
		if err != nil {
			return fmt.Errorf("sqlite: open reader: %v", err)
		}
		st, err := prepare(ctx, c)
		if err != nil {
			c.Close()
			return err
		}
		db.rpool <- &readConn{conn: c, st: st}
		db.nread++
	}

	if db.cdb, err = sql.Open("sqlite", db.dsn(false)); err != nil {
		return fmt.Errorf("sqlite: open checkpointer: %v", err)
	}
	db.cdb.SetMaxOpenConns(1)
	db.ckpt = make(chan struct{}, 1)
	db.ckptDone = make(chan struct{})
	go db.checkpointer()

	db.reqs = make(chan *request, DefaultQueueSize)
	db.done = make(chan struct{})
	go db.writer()
	return nil
}

// dsn returns the driver's data source name. Readers are query_only, so a
// write inside View fails even if it slipped past the Tx checks.
func (db *DB) dsn(readOnly bool) string {
	// modernc.org/sqlite takes pragmas as _pragma=name(value); it ignores
	// mattn-style keys such as _journal_mode.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", max(db.BusyTimeout, 0)))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", fmt.Sprintf("cache_size(%d)", -db.cacheKiBPerConn()))
	q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", db.walLimit()))
	// Savepoint and statement journals stay in memory: they hold only
	// ciphertext and tokens, and writing them to temp files doubled the I/O.
	q.Add("_pragma", "temp_store(MEMORY)")
	// Deleted content is overwritten with zeros, in b-tree pages and in
	// pages put on the free list, so a deleted row (a shredded patient's
	// wrapped key, a key rewrapped under a new KEK) leaves no copy in the
	// database file. See docs/crypto.md, "Crypto-shredding".
	q.Add("_pragma", "secure_delete(1)")
	if !readOnly {
		// The checkpointer goroutine does this work instead of the writer.
		q.Add("_pragma", "wal_autocheckpoint(0)")
	}
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	return "file:" + (&url.URL{Path: db.Path}).EscapedPath() + "?" + q.Encode()
}

// cacheKiBPerConn is each connection's share of CacheMiB, in KiB: the
// writer and the readers share it (the checkpointer reads little and gets
// a share too, which keeps the total an upper bound).
func (db *DB) cacheKiBPerConn() int {
	total := db.CacheMiB
	if total < 1 {
		total = DefaultCacheMiB
	}
	return max(total<<10/(max(db.ReadConns, 1)+2), 1<<10)
}

func (db *DB) walLimit() int64 {
	if db.WALLimit < 1 {
		return DefaultWALLimit
	}
	return db.WALLimit
}

// boundWAL truncates the WAL when it has outgrown WALLimit. It runs on the
// writer goroutine between batches, so no write competes with it; it waits
// at most walCheckpointWaitMillis for readers of older snapshots, and if
// they keep it from finishing, it tries again only once the WAL has grown
// by another quarter of the limit, so a long read cannot stall every commit.
// A failure only leaves the WAL longer: it tries again after the next
// commit.
func (db *DB) boundWAL(ctx context.Context) {
	fi, err := os.Stat(db.Path + "-wal")
	if err != nil || fi.Size() <= db.walLimit() || fi.Size() < db.walRetry {
		return
	}
	done, err := db.truncateWAL(ctx, walCheckpointWaitMillis)
	if err == nil && !done {
		db.walRetry = fi.Size() + db.walLimit()/4
		return
	}
	db.walRetry = 0 // done, or failed: try again after the next commit
}

// Close waits for queued updates to finish, then closes the database.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	if db.reqs != nil {
		close(db.reqs)
	}
	db.mu.Unlock()
	if db.done != nil {
		<-db.done
		close(db.ckpt)
		<-db.ckptDone
		// Let SQLite refresh its planner statistics where they are stale;
		// cheap, and recommended before closing a connection.
		db.wconn.ExecContext(context.Background(), "PRAGMA optimize")
	}
	return db.closeConns()
}

func (db *DB) closeConns() error {
	var errs []error
	if db.rpool != nil {
		// Wait for Views in progress to hand their connections back.
		for range db.nread {
			rc := <-db.rpool
			errs = append(errs, rc.st.close(), rc.conn.Close())
		}
		close(db.rpool) // later Views see a closed pool
	}
	if db.rdb != nil {
		errs = append(errs, db.rdb.Close())
	}
	if db.wst != nil {
		errs = append(errs, db.wst.close())
	}
	if db.wconn != nil {
		errs = append(errs, db.wconn.Close())
	}
	if db.wdb != nil {
		errs = append(errs, db.wdb.Close())
	}
	if db.cdb != nil {
		errs = append(errs, db.cdb.Close())
	}
	if db.audit != nil {
		errs = append(errs, db.audit.close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %v", err)
	}
	return nil
}

// View runs fn in a read-only transaction on one of the read connections.
// It sees a consistent snapshot of committed data.
func (db *DB) View(ctx context.Context, fn func(phivault.StoreTx) error) error {
	var rc *readConn
	select {
	case c, ok := <-db.rpool:
		if !ok {
			return errClosed
		}
		rc = c
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { db.rpool <- rc }()

	// BEGIN is deferred: the snapshot starts with the first read.
	if _, err := rc.conn.ExecContext(ctx, "BEGIN"); err != nil {
		return wrapErr(ctx, "begin", err)
	}
	defer func() {
		// A read-only transaction has nothing to commit; ROLLBACK ends it.
		// Use a fresh context so a cancelled ctx cannot leave it open.
		rc.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	}()
	return fn(&Tx{conn: rc.conn, st: rc.st})
}

// Update runs fn in a read-write transaction. Calls are queued to the single
// writer, which runs each fn in its own savepoint and commits a batch of them
// together; Update returns nil only once that COMMIT is durable. If fn returns
// an error or panics, its writes are rolled back and other callers in the
// batch are unaffected. If the COMMIT fails, every caller in the batch gets
// an error. A caller whose fn shredded gets an error wrapping
// phivault.ErrErasePending, after a COMMIT that succeeded, if the WAL still
// holds the destroyed key (see eraseWAL).
//
// fn runs on the writer goroutine and blocks every other writer while it
// runs: it must be short and MUST NOT call Update on the same DB. It may
// call View (the access layer's write guard reads patient contexts that
// way): readers use their own connections and never wait for the writer,
// but what fn reads through View does not see fn's own writes.
func (db *DB) Update(ctx context.Context, fn func(phivault.StoreTx) error) error {
	req := &request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	db.mu.RLock()
	if db.closed || db.reqs == nil {
		db.mu.RUnlock()
		return errClosed
	}
	select {
	case db.reqs <- req:
	case <-ctx.Done():
		db.mu.RUnlock()
		return ctx.Err()
	}
	db.mu.RUnlock()
	// Once queued, wait for the answer whatever ctx does: the writer skips a
	// request whose ctx is done before it starts, and an fn that started
	// may already be part of a batch on its way to disk.
	return <-req.done
}

// request is one Update call waiting for the writer.
type request struct {
	ctx   context.Context
	fn    func(phivault.StoreTx) error
	done  chan error
	shred bool // fn shredded a compartment: truncate the WAL after COMMIT
}

// writer is the single goroutine that runs updates. It takes the first
// waiting request, opens a transaction, then keeps taking requests that are
// already waiting (up to MaxBatch), each in its own savepoint, and commits
// once when the queue is empty.
func (db *DB) writer() {
	defer close(db.done)
	maxBatch := max(db.MaxBatch, 1)
	for req := range db.reqs {
		db.batch(req, maxBatch)
	}
}

func (db *DB) batch(first *request, maxBatch int) {
	reqs := []*request{first}
	for req := db.next(1, maxBatch); req != nil; req = db.next(len(reqs), maxBatch) {
		reqs = append(reqs, req)
	}
	// Optimistically run the whole batch without savepoints: savepoints
	// journal every page they touch, which cost a quarter of the write path
	// for large transactions. If a function fails, roll everything back,
	// answer that caller, and run the others again, each in a savepoint.
	failed, retry := db.runBatch(reqs, false)
	if failed != nil {
		db.runBatch(retry, true)
	}
}

// runBatch runs reqs in one transaction and commits. With savepoints, a
// failing function is rolled back alone. Without, the first failure rolls
// back the transaction: runBatch answers the failed request and returns it
// with the requests to run again (every other one not yet answered).
func (db *DB) runBatch(reqs []*request, savepoints bool) (failed *request, retry []*request) {
	ctx := context.Background() // the writer's statements outlive callers' contexts
	if _, err := db.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		for _, req := range reqs {
			req.done <- fmt.Errorf("sqlite: begin: %v", err)
		}
		return nil, nil
	}
	var (
		pending []*request // succeeded, waiting for COMMIT
		broken  error      // the transaction was lost or rolled back; fail the batch
		shred   bool       // a pending request shredded a compartment
	)
	for i, req := range reqs {
		if broken != nil {
			req.done <- broken
			continue
		}
		if err := req.ctx.Err(); err != nil {
			req.done <- err
			continue
		}
		err, lost := db.runOne(ctx, req, savepoints)
		switch {
		case lost != nil:
			broken = lost
			req.done <- lost
		case err != nil && !savepoints:
			db.wconn.ExecContext(ctx, "ROLLBACK")
			req.done <- err
			return req, append(pending, reqs[i+1:]...)
		case err != nil:
			req.done <- err // its savepoint was rolled back; never committed
		default:
			pending = append(pending, req)
			shred = shred || req.shred
		}
	}
	var erase error // answers the shredding requests if the WAL stays
	if broken == nil {
		if _, err := db.wconn.ExecContext(ctx, "COMMIT"); err != nil {
			broken = fmt.Errorf("sqlite: commit: %v", err)
		} else {
			db.commits.Add(1)
			if shred {
				erase = db.eraseWAL(ctx)
			} else {
				db.boundWAL(ctx)
			}
			select {
			case db.ckpt <- struct{}{}:
			default: // a checkpoint is already due
			}
		}
	}
	if broken != nil {
		db.wconn.ExecContext(ctx, "ROLLBACK") // may fail if SQLite already rolled back
	}
	for _, req := range pending {
		if req.shred && broken == nil {
			req.done <- erase
			continue
		}
		req.done <- broken
	}
	return nil, nil
}

// shredWALWaits is how many busy timeouts (BusyTimeout) the truncation of
// the WAL after a shred waits for readers on an older snapshot to finish.
const shredWALWaits = 5

// eraseWAL truncates the WAL after the commit of a shred. It removes the
// frames that held the destroyed wrapped keys before the deletion
// (secure_delete has zeroed them in the pages now in the database file),
// those of this shred and of any earlier one whose erasure is pending. The
// erased bytes may survive in the file system's free blocks, which SQLite
// cannot reach. If it cannot truncate, the error wraps
// phivault.ErrErasePending: the shred is committed.
func (db *DB) eraseWAL(ctx context.Context) error {
	wait := shredWALWaits * max(db.BusyTimeout, 0)
	if db.ShredEraseWaitMillis > 0 {
		wait = db.ShredEraseWaitMillis
	}
	done, err := db.truncateWAL(ctx, wait)
	switch {
	case err != nil:
		return fmt.Errorf("%v: %w", err, phivault.ErrErasePending)
	case !done:
		return fmt.Errorf("sqlite: readers kept the write-ahead log busy: %w", phivault.ErrErasePending)
	}
	return nil
}

// EraseShredded erases the old bytes of keys destroyed by earlier shreds
// from the write-ahead log, as the commit of every shred does (see
// phivault.ErrErasePending): the server calls it at start, to finish an
// erasure that readers kept busy before the process stopped. It commits an
// empty transaction through the writer, so that no write competes with the
// truncation, and returns an error wrapping phivault.ErrErasePending if
// readers keep the WAL busy.
func (db *DB) EraseShredded(ctx context.Context) error {
	return db.Update(ctx, func(tx phivault.StoreTx) error {
		tx.(*Tx).shred = true // erase after COMMIT, as after a shred
		return nil
	})
}

// truncateWAL copies every committed page into the database file and
// truncates the WAL to zero bytes, waiting at most waitMillis for readers
// that still use older pages. It reports whether it did: false if readers
// kept the WAL busy. It runs on the writer goroutine between batches, so
// no write competes with it, but on the checkpointer's connection, under
// ckptMu: the wait is that connection's busy timeout, which serves only
// checkpoints (PASSIVE ones never wait), so the writer's own busy timeout
// is never changed.
func (db *DB) truncateWAL(ctx context.Context, waitMillis int) (bool, error) {
	db.ckptMu.Lock()
	defer db.ckptMu.Unlock()
	conn, err := db.cdb.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("sqlite: truncate WAL: %v", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", waitMillis)); err != nil {
		return false, fmt.Errorf("sqlite: truncate WAL: set busy timeout: %v", err)
	}
	var busy, log, done int64
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done); err != nil {
		return false, fmt.Errorf("sqlite: truncate WAL: %v", err)
	}
	return busy == 0, nil
}

// checkpointer runs a PASSIVE checkpoint after commits; commits that happen
// during a checkpoint are covered by the next one. PASSIVE never waits
// for the writer or readers; pages it cannot copy yet are copied next time.
// Errors are ignored: a failed checkpoint only leaves the WAL longer, and
// SQLite checkpoints again when the last connection closes.
func (db *DB) checkpointer() {
	defer close(db.ckptDone)
	for range db.ckpt {
		db.ckptMu.Lock()
		db.cdb.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		db.ckptMu.Unlock()
	}
}

// next returns a request that is already waiting, or nil if none is or the
// batch is full.
func (db *DB) next(n, maxBatch int) *request {
	if n >= maxBatch {
		return nil
	}
	select {
	case req, ok := <-db.reqs:
		if !ok {
			return nil
		}
		return req
	default:
		return nil
	}
}

// runOne runs req.fn, inside a savepoint if savepoint is set. err is fn's
// error (its writes are rolled back, by the savepoint or by the caller
// rolling back the whole transaction); lost is set when the enclosing
// transaction itself was lost, which SQLite does on some I/O errors: the
// savepoint no longer exists.
func (db *DB) runOne(ctx context.Context, req *request, savepoint bool) (err, lost error) {
	tx := &Tx{conn: db.wconn, st: db.wst, write: true}
	defer func() { req.shred = err == nil && lost == nil && tx.shred }()
	if !savepoint {
		err = callFn(req.ctx, tx, req.fn)
		if err == nil && tx.err != nil {
			err = tx.err
		}
		return err, nil
	}
	if _, err := db.wconn.ExecContext(ctx, "SAVEPOINT req"); err != nil {
		return nil, fmt.Errorf("sqlite: savepoint: %v", err)
	}
	err = callFn(req.ctx, tx, req.fn)
	if err == nil && tx.err != nil {
		err = tx.err // fn ignored a failed statement; do not commit its half
	}
	if err != nil {
		if _, e := db.wconn.ExecContext(ctx, "ROLLBACK TO req"); e != nil {
			return err, fmt.Errorf("sqlite: rollback to savepoint: %v", e)
		}
	}
	if _, e := db.wconn.ExecContext(ctx, "RELEASE req"); e != nil {
		return err, fmt.Errorf("sqlite: release savepoint: %v", e)
	}
	return err, nil
}

// callFn calls fn and turns a panic into an error, so one caller's bug
// cannot take down the writer and every other caller's batch.
func callFn(ctx context.Context, tx *Tx, fn func(phivault.StoreTx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlite: update function panicked: %v", r)
		}
	}()
	tx.ctx = ctx
	return fn(tx)
}

// migrate applies the embedded migrations that the database has not seen, in
// name order, in one transaction, recording each name in migrations.
func migrate(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("sqlite: create migrations table: %v", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: list migrations: %v", err)
	}
	sort.Strings(names)
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: begin migration: %v", err)
	}
	for _, name := range names {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
			return fmt.Errorf("sqlite: migration %s: %v", name, err)
		} else if n > 0 {
			continue
		}
		b, err := fs.ReadFile(migrationFS, name)
		if err == nil {
			_, err = conn.ExecContext(ctx, string(b))
		}
		if err == nil {
			_, err = conn.ExecContext(ctx, `INSERT INTO migrations (name) VALUES (?)`, name)
		}
		if err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
			return fmt.Errorf("sqlite: migration %s: %v", name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite: commit migrations: %v", err)
	}
	return nil
}
