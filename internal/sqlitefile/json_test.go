package sqlitefile_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/sqlitefile"
)

type thing struct {
	Name    string
	Version int64
}

var (
	errNotFound = phivault.Errorf(phivault.ENOTFOUND, "No such thing.")
	errChanged  = phivault.Errorf(phivault.EPRECONDITION, "The thing changed.")
	errExists   = phivault.Errorf(phivault.ECONFLICT, "The thing exists.")
)

func open(t *testing.T) *sqlitefile.DB {
	t.Helper()
	db, err := sqlitefile.Open(context.Background(), filepath.Join(t.TempDir(), "things.db"), os.DirFS("testdata"), "migrations", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func create(ctx context.Context, db *sqlitefile.DB, id string, v *thing) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		return sqlitefile.CreateJSON(ctx, tx, "things", "made", errExists, id, v.Version, 1, v)
	})
}

func update(ctx context.Context, db *sqlitefile.DB, id string, v *thing) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		return sqlitefile.UpdateJSONVersion(ctx, tx, "things", errNotFound, errChanged, id, v.Version, v)
	})
}

func get(t *testing.T, db *sqlitefile.DB, id string) *thing {
	t.Helper()
	v, err := sqlitefile.GetJSON[thing](context.Background(), db, errNotFound, `SELECT data FROM things WHERE id = ?`, id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCreateJSON(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := create(ctx, db, "a", &thing{Name: "first", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, db, "a"); *got != (thing{Name: "first", Version: 1}) {
		t.Fatalf("got %+v", got)
	}
	// Near miss: the same id again is refused and the row stays as it was.
	if err := create(ctx, db, "a", &thing{Name: "second", Version: 1}); !errors.Is(err, errExists) {
		t.Fatalf("second create = %v, want %v", err, errExists)
	}
	if got := get(t, db, "a"); got.Name != "first" {
		t.Fatalf("after refused create: %+v", got)
	}
}

func TestUpdateJSONVersion(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := create(ctx, db, "a", &thing{Name: "v1", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := update(ctx, db, "a", &thing{Name: "v2", Version: 2}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, db, "a"); *got != (thing{Name: "v2", Version: 2}) {
		t.Fatalf("got %+v", got)
	}
	// Near miss: a change made from the stale version 1 is refused.
	err := update(ctx, db, "a", &thing{Name: "stale", Version: 2})
	if phivault.ErrorCode(err) != phivault.EPRECONDITION {
		t.Fatalf("stale update = %v, want EPRECONDITION", err)
	}
	if got := get(t, db, "a"); got.Name != "v2" {
		t.Fatalf("after stale update: %+v", got)
	}
	if err := update(ctx, db, "b", &thing{Name: "x", Version: 2}); phivault.ErrorCode(err) != phivault.ENOTFOUND {
		t.Fatalf("update of a missing row = %v, want ENOTFOUND", err)
	}
}
