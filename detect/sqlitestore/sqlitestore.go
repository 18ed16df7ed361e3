// Package sqlitestore implements [detect.Store] on its own SQLite file
// (opened by internal/sqlitefile, as the incidents' store is): the
// detector's cursors, snapshot, alerts, triage decisions, ingest stream
// and ingested directory entries, durably.
//
// # Durability
//
// The file is in WAL mode with synchronous=FULL: Commit and Ingest return
// once their transaction is fsynced. Each is one transaction, so a kill -9
// leaves either all of a commit (alerts, directory entries, cursor and
// snapshot) or none of it. Writes go through one connection; reads use a
// small pool of query-only connections, which WAL lets run beside a write.
//
// # Contents
//
// Alerts, records, directory entries and triage decisions are stored as
// the JSON of the detect package's types, with the columns the alert
// filters need beside them (patients in the side table alert_patients).
// They hold ids and blind-index tokens only; triage notes are sealed by
// the caller. The file is created with mode 0600.
//
// The schema is applied by embedded, numbered migrations recorded in the
// migrations table.
package sqlitestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/internal/sqlitefile"
	"github.com/phivault/phivault/internal/tail"
)

// ReadConns is the number of query-only connections.
const ReadConns = 4

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a detect.Store on a SQLite file. It is safe for concurrent use
// by multiple goroutines.
type Store struct {
	path string
	db   *sqlitefile.DB
	wdb  *sql.DB // db.W: one connection, every write
	rdb  *sql.DB // db.R: query-only connections

	insIngest      *sql.Stmt // one record
	insIngestChunk *sql.Stmt // ingestChunk records
	// ingested is the last ingest sequence committed, so IngestSize (asked
	// at every pipeline step) costs no query: one process owns the file.
	ingested atomic.Int64
	tailMu   sync.Mutex // orders updates of ingested and recent
	// recent holds the latest records ingested, so the pipeline reading
	// right behind Ingest takes them without decoding them again.
	recent *tail.Tail[detect.Record]

	watchMu  sync.Mutex
	watchers []func(alert string) // WatchTriage
}

// ingestChunk is how many records one INSERT of Ingest stores (SQLite
// allows 32,766 parameters a statement).
const ingestChunk = 128

// RecentRecords is how many of the latest ingested records a Store keeps
// in memory for ReadIngest: two requests of the most lines an ingest
// takes by default and one pipeline step besides, so that a pipeline up
// to a request behind (requests sent back to back, parsed on every core
// while it runs) reads the next from memory instead of decoding it from
// the file: that decoding made it fall further behind.
const RecentRecords = 2*detect.DefaultIngestMaxLines + detect.DefaultBatch

var (
	_ detect.Store         = (*Store)(nil)
	_ detect.TriageWatcher = (*Store)(nil)
)

// Open opens the store in the SQLite file at path, creating it (mode
// 0600) and applying migrations as needed.
func Open(ctx context.Context, path string) (s *Store, err error) {
	s = &Store{path: path, recent: tail.New[detect.Record](RecentRecords)}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if s.db, err = sqlitefile.Open(ctx, path, migrations, "migrations", ReadConns); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	s.wdb, s.rdb = s.db.W, s.db.R
	if s.insIngest, err = s.wdb.PrepareContext(ctx, `INSERT INTO ingest (seq, data) VALUES (?, ?)`); err != nil {
		return nil, fmt.Errorf("sqlitestore: prepare: %w", err)
	}
	chunk := `INSERT INTO ingest (seq, data) VALUES (?, ?)` + strings.Repeat(`, (?, ?)`, ingestChunk-1)
	if s.insIngestChunk, err = s.wdb.PrepareContext(ctx, chunk); err != nil {
		return nil, fmt.Errorf("sqlitestore: prepare: %w", err)
	}
	if err := s.loadIngestSize(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// write runs fn in a write transaction and commits it.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.db.Write(ctx, fn)
}

// read runs fn in a read transaction, which sees one snapshot of the file.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// Load implements detect.Store.
func (s *Store) Load(ctx context.Context) (*detect.Saved, error) {
	var saved detect.Saved
	err := s.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT trail, ingest, snapshot, snap_trail, snap_ingest FROM state WHERE id = 1`).Scan(
			&saved.Cursor.Trail, &saved.Cursor.Ingest, &saved.Snapshot, &saved.SnapshotAt.Trail, &saved.SnapshotAt.Ingest)
		if err != nil {
			return err
		}
		if err := loadJSON(ctx, tx, `SELECT data FROM dir_users ORDER BY seq`, &saved.Users); err != nil {
			return err
		}
		if err := loadJSON(ctx, tx, `SELECT data FROM dir_patients ORDER BY seq`, &saved.Patients); err != nil {
			return err
		}
		if err := loadJSON(ctx, tx, `SELECT data FROM dir_relationships ORDER BY seq`, &saved.Relationships); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT patient FROM dir_honeytokens ORDER BY seq`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				return err
			}
			saved.Honeytokens = append(saved.Honeytokens, h)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: load: %w", err)
	}
	return &saved, nil
}

// loadJSON appends to *out the JSON values in the only column of query's
// rows.
func loadJSON[T any](ctx context.Context, tx *sql.Tx, query string, out *[]T, args ...any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return err
		}
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return rows.Err()
}

// Commit implements detect.Store: one transaction, durable when it
// returns nil.
func (s *Store) Commit(ctx context.Context, c *detect.Commit) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := putAlerts(ctx, tx, c.Alerts); err != nil {
			return err
		}
		for _, u := range c.Users {
			if err := putEntry(ctx, tx, "dir_users", u.ID, u); err != nil {
				return err
			}
		}
		for _, p := range c.Patients {
			if err := putEntry(ctx, tx, "dir_patients", p.ID, p); err != nil {
				return err
			}
		}
		for _, r := range c.Relationships {
			data, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO dir_relationships (data) VALUES (?)`, data); err != nil {
				return err
			}
		}
		for _, h := range c.Honeytokens {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO dir_honeytokens (patient) VALUES (?)`, h); err != nil {
				return err
			}
		}
		if c.Snapshot != nil {
			_, err := tx.ExecContext(ctx, `UPDATE state SET trail = ?, ingest = ?, snapshot = ?, snap_trail = ?, snap_ingest = ? WHERE id = 1`,
				c.Cursor.Trail, c.Cursor.Ingest, c.Snapshot, c.SnapshotAt.Trail, c.SnapshotAt.Ingest)
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE state SET trail = ?, ingest = ? WHERE id = 1`, c.Cursor.Trail, c.Cursor.Ingest)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	return nil
}

// putEntry stores v as the directory entry id of table, last in order.
func putEntry(ctx context.Context, tx *sql.Tx, table, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ?`, id); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO `+table+` (id, data) VALUES (?, ?)`, id, data)
	return err
}

// putAlerts replaces the stored alerts with the ids of alerts, keeping
// their state.
func putAlerts(ctx context.Context, tx *sql.Tx, alerts []*detect.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	up, err := tx.PrepareContext(ctx, `INSERT INTO alerts (id, rule, user, state, score, detected_s, detected_ns, data, patients_n, patients_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET rule = excluded.rule, user = excluded.user, state = excluded.state, score = excluded.score,
			detected_s = excluded.detected_s, detected_ns = excluded.detected_ns, data = excluded.data,
			patients_n = excluded.patients_n, patients_digest = excluded.patients_digest`)
	if err != nil {
		return err
	}
	defer up.Close()
	del, err := tx.PrepareContext(ctx, `DELETE FROM alert_patients WHERE alert = ?`)
	if err != nil {
		return err
	}
	defer del.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO alert_patients (patient, alert) VALUES (?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	stored, err := tx.PrepareContext(ctx, `SELECT state, patients_n, patients_digest FROM alerts WHERE id = ?`)
	if err != nil {
		return err
	}
	defer stored.Close()
	for _, a := range alerts {
		// Only Triage changes a stored alert's state; the caller learns
		// it (see detect.Store.Commit).
		var (
			old    string
			n      int
			digest []byte
		)
		switch err := stored.QueryRowContext(ctx, a.ID).Scan(&old, &n, &digest); {
		case errors.Is(err, sql.ErrNoRows):
			n = 0
		case err != nil:
			return err
		default:
			a.State = old
		}
		data, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if _, err := up.ExecContext(ctx, a.ID, a.Rule, a.User, a.State, a.Score, a.Detected.Unix(), a.Detected.Nanosecond(), data,
			len(a.Patients), patientsDigest(a.Patients)); err != nil {
			return err
		}
		// The patients stored are usually the start of a's (findings
		// add patients at the end): then only the rest is new.
		if n < 0 || n > len(a.Patients) || n > 0 && !bytes.Equal(digest, patientsDigest(a.Patients[:n])) {
			if _, err := del.ExecContext(ctx, a.ID); err != nil {
				return err
			}
			n = 0
		}
		for _, p := range a.Patients[n:] {
			if _, err := ins.ExecContext(ctx, p, a.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// patientsDigest is what the alerts table records of an alert's patients
// in alert_patients: a SHA-256 of their ids in order, each followed by a
// zero byte (ids hold none).
func patientsDigest(patients []string) []byte {
	h := sha256.New()
	for _, p := range patients {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// Alert implements detect.Store.
func (s *Store) Alert(ctx context.Context, id string) (*detect.Alert, error) {
	a, err := alertByID(ctx, s.rdb, id)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: alert: %w", err)
	}
	if a == nil {
		return nil, fmt.Errorf("alert %s: %w", id, phivault.ErrNotFound)
	}
	return a, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// alertByID returns the alert id, or nil if there is none.
func alertByID(ctx context.Context, q queryer, id string) (*detect.Alert, error) {
	var data []byte
	err := q.QueryRowContext(ctx, `SELECT data FROM alerts WHERE id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a detect.Alert
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Alerts implements detect.Store: the alerts matching f, newest detection
// first, then by id (detect.SortAlerts), after f.After if set. As in
// detect.MemStore, an After that names no alert matching f yields none.
func (s *Store) Alerts(ctx context.Context, f detect.AlertFilter) ([]*detect.Alert, error) {
	var out []*detect.Alert
	err := s.read(ctx, func(tx *sql.Tx) error {
		var (
			where []string
			args  []any
			from  = `alerts a`
		)
		if f.Patient != "" {
			from += ` JOIN alert_patients p ON p.alert = a.id AND p.patient = ?`
			args = append(args, f.Patient)
		}
		if !f.Since.IsZero() {
			where = append(where, `(a.detected_s > ? OR (a.detected_s = ? AND a.detected_ns >= ?))`)
			sec, ns := f.Since.Unix(), f.Since.Nanosecond()
			args = append(args, sec, sec, ns)
		}
		if f.Rule != "" {
			where, args = append(where, `a.rule = ?`), append(args, f.Rule)
		}
		if f.User != "" {
			where, args = append(where, `a.user = ?`), append(args, f.User)
		}
		if f.State != "" {
			where, args = append(where, `a.state = ?`), append(args, f.State)
		}
		where, args = append(where, `a.score >= ?`), append(args, f.MinScore)
		if f.After != "" {
			after, err := alertByID(ctx, tx, f.After)
			if err != nil {
				return err
			}
			if after == nil || !f.Match(after) {
				return nil
			}
			sec, ns := after.Detected.Unix(), after.Detected.Nanosecond()
			where = append(where, `(a.detected_s < ? OR (a.detected_s = ? AND (a.detected_ns < ? OR (a.detected_ns = ? AND a.id > ?))))`)
			args = append(args, sec, sec, ns, ns, after.ID)
		}
		q := `SELECT a.data FROM ` + from + ` WHERE ` + strings.Join(where, ` AND `) + ` ORDER BY a.detected_s DESC, a.detected_ns DESC, a.id`
		if f.Limit > 0 {
			q += ` LIMIT ?`
			args = append(args, f.Limit)
		}
		return loadJSON(ctx, tx, q, &out, args...)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: alerts: %w", err)
	}
	return out, nil
}

// Ingest implements detect.Store: one transaction, durable when it
// returns nil.
func (s *Store) Ingest(ctx context.Context, recs []detect.Record) (int64, error) {
	var last int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM ingest`).Scan(&last); err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		// Full chunks go in one multi-row INSERT each: a statement's
		// execution costs as much as several rows' data. Another
		// goroutine encodes the chunks ahead of the inserts.
		ins, chunk := tx.StmtContext(ctx, s.insIngest), tx.StmtContext(ctx, s.insIngestChunk)
		done := make(chan struct{})
		defer close(done)
		for c := range encodeChunks(recs, last+1, done) {
			if c.err != nil {
				return c.err
			}
			stmt := ins
			if len(c.args) == 2*ingestChunk {
				stmt = chunk
			}
			if _, err := stmt.ExecContext(ctx, c.args...); err != nil {
				return err
			}
		}
		last += int64(len(recs))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: ingest: %w", err)
	}
	first := last - int64(len(recs)) + 1
	stored := make([]detect.Record, len(recs))
	for i, r := range recs {
		r.Seq = first + int64(i)
		stored[i] = r
	}
	// Two Ingests commit in turn but may get here in either order: the
	// size only grows, and the tail restarts on a gap.
	s.tailMu.Lock()
	if last > s.ingested.Load() {
		s.ingested.Store(last)
	}
	s.recent.Add(first, stored)
	s.tailMu.Unlock()
	return last, nil
}

// encodedChunk is the arguments of one INSERT of Ingest: the sequence
// and JSON of each record in turn, or why they could not be encoded.
type encodedChunk struct {
	args []any
	err  error
}

// encodeChunks encodes recs, numbered from first, on a goroutine of its
// own, and sends them in order: full chunks of ingestChunk records, then
// the rest one by one. It stops early, closing the channel, once done is
// closed.
func encodeChunks(recs []detect.Record, first int64, done <-chan struct{}) <-chan encodedChunk {
	out := make(chan encodedChunk, 16)
	go func() {
		defer close(out)
		var (
			buf bytes.Buffer
			enc = json.NewEncoder(&buf)
			seq = first
		)
		for rest := recs; len(rest) > 0; {
			n := 1
			if len(rest) >= ingestChunk {
				n = ingestChunk
			}
			c := encodedChunk{args: make([]any, 0, 2*n)}
			buf.Reset()
			ends := make([]int, 0, n)
			for _, r := range rest[:n] {
				r.Seq = seq
				if c.err = enc.Encode(&r); c.err != nil {
					break
				}
				ends = append(ends, buf.Len()-1) // without Encode's "\n"
				seq++
			}
			if c.err == nil {
				// One allocation for the chunk's JSON.
				data, start := bytes.Clone(buf.Bytes()), 0
				for i, end := range ends {
					c.args = append(c.args, seq-int64(n-i), data[start:end:end])
					start = end + 1
				}
			}
			select {
			case out <- c:
			case <-done:
				return
			}
			if c.err != nil {
				return
			}
			rest = rest[n:]
		}
	}()
	return out
}

// ReadIngest implements detect.Store.
func (s *Store) ReadIngest(ctx context.Context, after int64, limit int) ([]detect.Record, error) {
	if after < 0 {
		return nil, nil
	}
	if limit <= 0 {
		limit = -1 // no limit
	}
	if last := s.ingested.Load(); after < last {
		end := last + 1
		if limit > 0 {
			end = min(end, after+1+int64(limit))
		}
		if recs, ok := s.recent.Get(after+1, end); ok {
			return recs, nil
		}
	}
	var out []detect.Record
	err := s.read(ctx, func(tx *sql.Tx) error {
		return loadJSON(ctx, tx, `SELECT data FROM ingest WHERE seq > ? ORDER BY seq LIMIT ?`, &out, after, limit)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: read ingest: %w", err)
	}
	return out, nil
}

// IngestSize implements detect.Store.
func (s *Store) IngestSize(ctx context.Context) (int64, error) {
	return s.ingested.Load(), nil
}

// loadIngestSize reads the last ingest sequence, at Open.
func (s *Store) loadIngestSize(ctx context.Context) error {
	var n int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM ingest`).Scan(&n); err != nil {
		return fmt.Errorf("sqlitestore: ingest size: %w", err)
	}
	s.ingested.Store(n)
	return nil
}

// Triage implements detect.Store: the decision and the alert's new state
// in one transaction.
func (s *Store) Triage(ctx context.Context, t *detect.Triage) error {
	var missing bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		a, err := alertByID(ctx, tx, t.Alert)
		if err != nil || a == nil {
			missing = a == nil
			return err
		}
		a.State = t.Decision
		data, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE alerts SET state = ?, data = ? WHERE id = ?`, a.State, data, a.ID); err != nil {
			return err
		}
		if data, err = json.Marshal(t); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO triages (alert, data) VALUES (?, ?)`, t.Alert, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: triage: %w", err)
	}
	if missing {
		return fmt.Errorf("alert %s: %w", t.Alert, phivault.ErrNotFound)
	}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for _, fn := range s.watchers {
		fn(t.Alert)
	}
	return nil
}

// WatchTriage implements detect.TriageWatcher.
func (s *Store) WatchTriage(fn func(alert string)) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	s.watchers = append(s.watchers, fn)
}

// Triages implements detect.Store.
func (s *Store) Triages(ctx context.Context, alert string) ([]*detect.Triage, error) {
	var out []*detect.Triage
	err := s.read(ctx, func(tx *sql.Tx) error {
		if alert == "" {
			return loadJSON(ctx, tx, `SELECT data FROM triages ORDER BY seq`, &out)
		}
		return loadJSON(ctx, tx, `SELECT data FROM triages WHERE alert = ? ORDER BY seq`, &out, alert)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: triages: %w", err)
	}
	return out, nil
}

// Close implements detect.Store.
func (s *Store) Close() error {
	var errs []error
	if s.insIngestChunk != nil {
		errs = append(errs, s.insIngestChunk.Close())
	}
	if s.insIngest != nil {
		errs = append(errs, s.insIngest.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}
