// Package sqlitestore implements [incident.Store] on its own SQLite file
// (internal/sqlitefile: WAL, an fsync at every commit, mode 0600): each
// incident as the JSON of its stored form, and its timeline, one row an
// event. Titles and notes arrive sealed; the file holds ids, codes and
// times besides. A change is one transaction that checks the stored
// version, so two officers never overwrite each other.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"math"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/internal/sqlitefile"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is an incident.Store on a SQLite file. It is safe for concurrent
// use by multiple goroutines.
type Store struct {
	db *sqlitefile.DB
}

var _ incident.Store = (*Store)(nil)

// Open opens (creating if needed) the store at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitefile.Open(ctx, path, migrations, "migrations", 2)
	if err != nil {
		return nil, fmt.Errorf("incident sqlitestore: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

var (
	errNotFound = phivault.Errorf(phivault.ENOTFOUND, "No such incident.")
	errChanged  = phivault.Errorf(phivault.EPRECONDITION, "The incident changed meanwhile; read it again and retry.")
	errExists   = phivault.Errorf(phivault.ECONFLICT, "An incident with this id exists.")
)

// Create implements incident.Store.
func (s *Store) Create(ctx context.Context, in *incident.Incident, ev *incident.Event) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if err := sqlitefile.CreateJSON(ctx, tx, "incidents", "opened", errExists, in.ID, in.Version, in.Opened.UnixNano(), in); err != nil {
			return err
		}
		return appendEvents(ctx, tx, in.ID, 0, []*incident.Event{ev})
	})
}

// Update implements incident.Store.
func (s *Store) Update(ctx context.Context, in *incident.Incident, evs []*incident.Event) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if err := sqlitefile.UpdateJSONVersion(ctx, tx, "incidents", errNotFound, errChanged, in.ID, in.Version, in); err != nil {
			return err
		}
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM incident_events WHERE incident = ?`, in.ID).Scan(&last); err != nil {
			return err
		}
		return appendEvents(ctx, tx, in.ID, last, evs)
	})
}

func appendEvents(ctx context.Context, tx *sql.Tx, id string, last int64, evs []*incident.Event) error {
	for i, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO incident_events (incident, seq, data) VALUES (?, ?, ?)`, id, last+int64(i)+1, b); err != nil {
			return err
		}
	}
	return nil
}

// Get implements incident.Store.
func (s *Store) Get(ctx context.Context, id string) (*incident.Incident, error) {
	v, err := sqlitefile.GetJSON[incident.Incident](ctx, s.db, errNotFound, `SELECT data FROM incidents WHERE id = ?`, id)
	if err != nil && err != errNotFound {
		return nil, fmt.Errorf("incident sqlitestore: get: %w", err)
	}
	return v, err
}

// List implements incident.Store. It reads incidents newest first and
// filters them in memory: a site has hundreds of incidents, not millions.
func (s *Store) List(ctx context.Context, f incident.Filter) ([]*incident.Incident, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = incident.DefaultLimit
	}
	out, err := sqlitefile.ListJSON(ctx, s.db, limit, f.Match, `SELECT data FROM incidents ORDER BY opened DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("incident sqlitestore: list: %w", err)
	}
	return out, nil
}

// Timeline implements incident.Store.
func (s *Store) Timeline(ctx context.Context, id string) ([]*incident.Event, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	all := func(*incident.Event) bool { return true }
	out, err := sqlitefile.ListJSON(ctx, s.db, math.MaxInt, all, `SELECT data FROM incident_events WHERE incident = ? ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("incident sqlitestore: timeline: %w", err)
	}
	return out, nil
}
