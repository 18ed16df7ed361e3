package sqlite_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/sqlite"
)

// TestApplyShreds checks the offline shred a restore applies: the
// compartments the tombstones name lose their keys (every byte of them,
// in every file), one already shredded keeps its first time, one the
// tombstones do not name keeps its key, and ReadShredded, run on the
// closed file, lists them all.
func TestApplyShreds(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "phivault.db")
	db := sqlite.New(path)
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	wrapped := map[string][]byte{}
	err := db.Update(ctx, func(tx phivault.StoreTx) error {
		for _, p := range []string{"p1", "p2", "p3"} {
			wrapped[p] = []byte("wrapped-key-of-" + p + "-0123456789abcdef0123456789abcdef")
			if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: "patient/" + p, KEKID: "file:1", Wrapped: wrapped[p], Created: t0, Bound: true}); err != nil {
				return err
			}
		}
		return tx.Shred(ctx, "p3", t0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	later := t0.Add(time.Hour)
	done, err := sqlite.ApplyShreds(ctx, path, map[string]time.Time{"p1": later, "p3": later})
	if err != nil {
		t.Fatalf("ApplyShreds() = %v", err)
	}
	if !slices.Equal(done, []string{"p1"}) {
		t.Errorf("ApplyShreds shredded %v, want [p1] (p3 was shredded already)", done)
	}
	got, err := sqlite.ReadShredded(ctx, path)
	if err != nil {
		t.Fatalf("ReadShredded() = %v", err)
	}
	want := map[string]time.Time{"p1": later, "p3": t0}
	if len(got) != len(want) {
		t.Errorf("ReadShredded() = %v, want %v", got, want)
	}
	for c, at := range want {
		if !got[c].Equal(at) {
			t.Errorf("ReadShredded()[%s] = %v, want %v", c, got[c], at)
		}
	}
	var files []byte
	for _, name := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		files = append(files, b...)
	}
	if bytes.Contains(files, wrapped["p1"]) {
		t.Error("the store's files still hold p1's wrapped key after ApplyShreds")
	}
	if !bytes.Contains(files, wrapped["p2"]) {
		t.Fatal("p2's wrapped key is not in the files: the search above shows nothing")
	}
}

// TestReadShredded_missing checks that a file without the store's schema
// is an error, not an empty list: a backup must not record "no shreds"
// because it read the wrong file.
func TestReadShredded_missing(t *testing.T) {
	if _, err := sqlite.ReadShredded(context.Background(), filepath.Join(t.TempDir(), "none.db")); err == nil {
		t.Error("ReadShredded of a missing file succeeded")
	}
}
