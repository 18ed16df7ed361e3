package sqlitestore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/sqlitestore"
	"github.com/phivault/phivault/incident/storetest"
)

func open(t *testing.T, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) incident.Store {
		return open(t, filepath.Join(t.TempDir(), "incidents.db"))
	})
}

// Incidents outlive the process, and the file is the owner's only.
func TestStore_reopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "incidents.db")
	ctx := context.Background()
	s := open(t, path)
	in := storetest.Incident(1)
	if err := s.Create(ctx, in, &incident.Event{At: in.Opened, Kind: incident.EventOpened, Request: "r"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	got, err := s.Get(ctx, in.ID)
	if err != nil || got.Version != 1 || string(got.Title) != string(in.Title) {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
