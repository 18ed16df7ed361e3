package backup_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/phivault/phivault/backup"
)

func TestVerify(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		v := mustTestVault(t)
		v.insert(t, 20, 1000)
		first := v.backup(t).Snapshot
		v.insert(t, 5, 1000)
		latest := v.backup(t)
		when := at("2026-12-06T10:00:00Z")
		opt := backup.VerifyOptions{Verifier: v.verifier, MarkOptions: backup.MarkOptions{By: "test", Now: func() time.Time { return when }}}
		mk, err := backup.Verify(ctx, v.target, v.keys, "", opt)
		if err != nil {
			t.Fatalf("Verify(latest) = %v", err)
		}
		want := backup.Mark{Snapshot: latest.Snapshot, Time: when, Method: backup.MarkVerify, By: "test", Files: latest.Files, Chunks: latest.Chunks, Bytes: latest.Size}
		if *mk != want {
			t.Errorf("Verify(latest) = %+v, want %+v", *mk, want)
		}
		if got, err := backup.ReadMark(ctx, v.target, v.keys, latest.Snapshot); err != nil || *got != want {
			t.Errorf("ReadMark = %+v, %v; want %+v", got, err, want)
		}
		// Write-once: a second verification keeps the first on record.
		opt.Now = func() time.Time { return when.Add(time.Hour) }
		if mk, err := backup.Verify(ctx, v.target, v.keys, latest.Snapshot, opt); err != nil || !mk.Time.Equal(when) {
			t.Errorf("second Verify = %+v, %v; want the first mark, of %v", mk, err, when)
		}
		if _, err := backup.ReadMark(ctx, v.target, v.keys, first); !errors.Is(err, backup.ErrNotFound) {
			t.Errorf("ReadMark of a snapshot never verified = %v, want %v", err, backup.ErrNotFound)
		}
		// Nothing but the mark was written.
		if entries, _ := os.ReadDir(filepath.Dir(v.target.Path)); len(entries) != 2 {
			t.Errorf("Verify wrote beside the target: %v", entries)
		}
	})

	t.Run("CorruptChunk", func(t *testing.T) {
		v := mustTestVault(t)
		v.insert(t, 20, 1000)
		id := v.backup(t).Snapshot
		c := v.chunks(t)[0]
		v.rewrite(t, c, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
		_, err := backup.Verify(ctx, v.target, v.keys, id, backup.VerifyOptions{Verifier: v.verifier})
		if !errors.Is(err, backup.ErrCorrupt) || !strings.Contains(err.Error(), c) {
			t.Errorf("Verify of a snapshot with a changed chunk = %v, want %v naming %s", err, backup.ErrCorrupt, c)
		}
		if v.exists("verified/" + id) {
			t.Errorf("a failed Verify left a mark")
		}
	})

	t.Run("MissingChunk", func(t *testing.T) {
		v := mustTestVault(t)
		v.insert(t, 20, 1000)
		id := v.backup(t).Snapshot
		c := v.chunks(t)[0]
		os.Remove(v.object(c))
		if _, err := backup.Verify(ctx, v.target, v.keys, id, backup.VerifyOptions{Verifier: v.verifier}); !errors.Is(err, backup.ErrNotFound) {
			t.Errorf("Verify of a snapshot with a missing chunk = %v, want %v", err, backup.ErrNotFound)
		}
		if v.exists("verified/" + id) {
			t.Errorf("a failed Verify left a mark")
		}
	})

	t.Run("SwappedMark", func(t *testing.T) {
		// One snapshot's mark copied under another's name does not open.
		v := mustTestVault(t)
		a := v.backup(t).Snapshot
		v.insert(t, 5, 100)
		b := v.backup(t).Snapshot
		if _, err := backup.Verify(ctx, v.target, v.keys, a, backup.VerifyOptions{Verifier: v.verifier}); err != nil {
			t.Fatal(err)
		}
		obj, _ := os.ReadFile(v.object("verified/" + a))
		if err := v.target.Put(ctx, "verified/"+b, obj); err != nil {
			t.Fatal(err)
		}
		if _, err := backup.ReadMark(ctx, v.target, v.keys, b); !errors.Is(err, backup.ErrCorrupt) {
			t.Errorf("ReadMark of a copied mark = %v, want %v", err, backup.ErrCorrupt)
		}
		if _, err := backup.Marks(ctx, v.target, v.keys); !errors.Is(err, backup.ErrCorrupt) {
			t.Errorf("Marks with a copied mark = %v, want %v", err, backup.ErrCorrupt)
		}
	})
}

func TestRestore_mark(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	v.insert(t, 20, 1000)
	id := v.backup(t).Snapshot
	opt := backup.RestoreOptions{Identities: []age.Identity{v.identity}, Verifier: v.verifier}
	if _, err := backup.Restore(ctx, v.target, id, filepath.Join(t.TempDir(), "r1"), opt); err != nil {
		t.Fatal(err)
	}
	if v.exists("verified/" + id) {
		t.Errorf("a restore without Mark wrote a mark")
	}
	opt.Mark = &backup.MarkOptions{By: "drill"}
	if _, err := backup.Restore(ctx, v.target, id, filepath.Join(t.TempDir(), "r2"), opt); err != nil {
		t.Fatal(err)
	}
	if mk, err := backup.ReadMark(ctx, v.target, v.keys, id); err != nil || mk.Method != backup.MarkRestore || mk.By != "drill" {
		t.Errorf("ReadMark after a restore with Mark = %+v, %v; want a restore mark by drill", mk, err)
	}
}

// benchVault is a vault of some 8 MB backed up once.
func benchVault(b *testing.B) (*testVault, string) {
	v := mustTestVault(b)
	v.insert(b, 2000, 4000)
	res, err := backup.Backup(context.Background(), v.dir, v.target, backup.Options{Keys: v.keys, Signer: v.signer})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(res.Size)
	return v, res.Snapshot
}

// BenchmarkVerify reads an 8 MB snapshot through every check, writing
// nothing; compare with BenchmarkRestore.
func BenchmarkVerify(b *testing.B) {
	v, id := benchVault(b)
	for b.Loop() {
		// A mark is write-once: after the first, Verify reads it back.
		if _, err := backup.Verify(context.Background(), v.target, v.keys, id, backup.VerifyOptions{Verifier: v.verifier}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRestore restores the same snapshot into a new folder.
func BenchmarkRestore(b *testing.B) {
	v, id := benchVault(b)
	root := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		if _, err := v.restore(id, filepath.Join(root, strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBackup backs the 8 MB folder up into a new, empty backup
// folder each time: every chunk is new, so it measures the writes (a
// folder target fsyncs each object and its folder).
func BenchmarkBackup(b *testing.B) {
	v, _ := benchVault(b)
	root := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		t := &backup.Dir{Path: filepath.Join(root, strconv.Itoa(i))}
		keys, err := backup.Init(context.Background(), t, rand.Reader, v.keys.Verifier, v.identity.Recipient())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := backup.Backup(context.Background(), v.dir, t, backup.Options{Keys: keys, Signer: v.signer}); err != nil {
			b.Fatal(err)
		}
	}
}
