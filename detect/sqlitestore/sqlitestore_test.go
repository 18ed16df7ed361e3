package sqlitestore_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/sqlitestore"
	"github.com/phivault/phivault/detect/storetest"
)

func open(t testing.TB, path string) detect.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) detect.Store {
		return open(t, filepath.Join(t.TempDir(), "detect.db"))
	})
}

func TestStore_reopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T, path string) detect.Store { return open(t, path) })
}

// TestOpen_mode checks the file is readable by its owner only and in WAL
// mode, and that a second Open of the same file applies no migration
// twice.
func TestOpen_mode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "detect.db")
	s := open(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var mode string
	var migrations int
	if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q, %v; want wal", mode, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	if err := raw.QueryRow(`SELECT count(*) FROM migrations`).Scan(&migrations); err != nil || migrations != len(files) {
		t.Errorf("%d migrations recorded after two opens, %v; want %d, each once", migrations, err, len(files))
	}
	defer s.Close()
	if _, err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
}
