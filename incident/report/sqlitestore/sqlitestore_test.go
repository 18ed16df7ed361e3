package sqlitestore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/phivault/phivault/incident/report"
	"github.com/phivault/phivault/incident/report/sqlitestore"
	"github.com/phivault/phivault/incident/report/storetest"
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
	storetest.Run(t, func(t *testing.T) report.Store {
		return open(t, filepath.Join(t.TempDir(), "reports.db"))
	})
}

// Reports outlive the process, and the file is the owner's only.
func TestStore_reopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reports.db")
	ctx := context.Background()
	s := open(t, path)
	r := storetest.Report(1)
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	got, err := s.Get(ctx, r.ID)
	if err != nil || got.Version != 1 || string(got.SealedReporter) != string(r.SealedReporter) {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
