// Package sqlitestore implements [report.Store] on its own SQLite file
// (internal/sqlitefile: WAL, an fsync at every commit, mode 0600), each
// report as the JSON of its stored form. Descriptions, notes, reasons and
// anonymous reporters arrive sealed; receipts arrive hashed; the file
// holds ids, codes and times besides. A change is one transaction that
// checks the stored version.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident/report"
	"github.com/phivault/phivault/internal/sqlitefile"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a report.Store on a SQLite file. It is safe for concurrent use
// by multiple goroutines.
type Store struct {
	db *sqlitefile.DB
}

var _ report.Store = (*Store)(nil)

// Open opens (creating if needed) the store at path.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitefile.Open(ctx, path, migrations, "migrations", 2)
	if err != nil {
		return nil, fmt.Errorf("report sqlitestore: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

var (
	errNotFound = phivault.Errorf(phivault.ENOTFOUND, "No such report.")
	errChanged  = phivault.Errorf(phivault.EPRECONDITION, "The report changed meanwhile; read it again and retry.")
	errExists   = phivault.Errorf(phivault.ECONFLICT, "A report with this id exists.")
)

// Create implements report.Store.
func (s *Store) Create(ctx context.Context, r *report.Report) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		return sqlitefile.CreateJSON(ctx, tx, "reports", "submitted", errExists, r.ID, r.Version, r.Submitted.UnixNano(), r)
	})
}

// Update implements report.Store.
func (s *Store) Update(ctx context.Context, r *report.Report) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		return sqlitefile.UpdateJSONVersion(ctx, tx, "reports", errNotFound, errChanged, r.ID, r.Version, r)
	})
}

// Get implements report.Store.
func (s *Store) Get(ctx context.Context, id string) (*report.Report, error) {
	v, err := sqlitefile.GetJSON[report.Report](ctx, s.db, errNotFound, `SELECT data FROM reports WHERE id = ?`, id)
	if err != nil && err != errNotFound {
		return nil, fmt.Errorf("report sqlitestore: get: %w", err)
	}
	return v, err
}

// List implements report.Store. It reads reports newest first and
// filters them in memory: a site has hundreds of reports, not millions.
func (s *Store) List(ctx context.Context, f report.Filter) ([]*report.Report, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = report.DefaultLimit
	}
	out, err := sqlitefile.ListJSON(ctx, s.db, limit, f.Match, `SELECT data FROM reports ORDER BY submitted DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("report sqlitestore: list: %w", err)
	}
	return out, nil
}
