package backup_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/phivault/phivault/backup"
	"golang.org/x/mod/sumdb/note"
)

// object returns the path of the object name in v's target.
func (v *testVault) object(name string) string {
	return filepath.Join(v.target.Path, filepath.FromSlash(name))
}

// chunks returns the target's chunk object names.
func (v *testVault) chunks(t *testing.T) []string {
	t.Helper()
	names, err := v.target.List(context.Background(), "chunks/")
	if err != nil || len(names) == 0 {
		t.Fatalf("List(chunks/) = %v, %v", names, err)
	}
	return names
}

// rewrite replaces the object name's file with fn of its bytes, as
// someone with write access to the backup folder can.
func (v *testVault) rewrite(t *testing.T, name string, fn func([]byte) []byte) {
	t.Helper()
	p := v.object(name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, fn(b), 0o400); err != nil {
		t.Fatal(err)
	}
}

// wantRefused restores id into a new folder and checks that Restore fails
// with want, its message holds each of words, and nothing is left: no
// destination and no temporary folder beside it.
func (v *testVault) wantRefused(t *testing.T, id string, want error, words ...string) {
	t.Helper()
	parent := t.TempDir()
	dest := filepath.Join(parent, "restored")
	_, err := v.restore(id, dest)
	if !errors.Is(err, want) {
		t.Fatalf("Restore = %v, want %v", err, want)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Restore error %q does not name %q", err, w)
		}
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("a refused restore left %v beside the destination, want nothing", entries)
	}
}

func TestRestore_refuses(t *testing.T) {
	flip := func(b []byte) []byte { b[len(b)/2] ^= 1; return b }
	half := func(b []byte) []byte { return b[:len(b)/2] }

	t.Run("CorruptChunk", func(t *testing.T) {
		v := mustTestVault(t)
		v.insert(t, 20, 1000)
		id := v.backup(t).Snapshot
		c := v.chunks(t)[0]
		v.rewrite(t, c, flip)
		v.wantRefused(t, id, backup.ErrCorrupt, c)
	})
	t.Run("DeletedChunk", func(t *testing.T) {
		v := mustTestVault(t)
		v.insert(t, 20, 1000)
		id := v.backup(t).Snapshot
		c := v.chunks(t)[0]
		if err := os.Remove(v.object(c)); err != nil {
			t.Fatal(err)
		}
		v.wantRefused(t, id, backup.ErrNotFound, c)
	})
	t.Run("TruncatedChunk", func(t *testing.T) {
		v := mustTestVault(t)
		v.insert(t, 20, 1000)
		id := v.backup(t).Snapshot
		c := v.chunks(t)[0]
		v.rewrite(t, c, half)
		v.wantRefused(t, id, backup.ErrCorrupt, c)
	})
	t.Run("SwappedChunks", func(t *testing.T) {
		v := mustTestVault(t)
		v.insert(t, 20, 1000)
		id := v.backup(t).Snapshot
		cs := v.chunks(t)
		other, _ := os.ReadFile(v.object(cs[1]))
		v.rewrite(t, cs[0], func([]byte) []byte { return other })
		v.wantRefused(t, id, backup.ErrCorrupt, cs[0])
	})
	t.Run("TruncatedManifest", func(t *testing.T) {
		v := mustTestVault(t)
		id := v.backup(t).Snapshot
		v.rewrite(t, "snapshots/"+id, half)
		v.wantRefused(t, id, backup.ErrCorrupt, id)
	})
	t.Run("ReplacedManifest", func(t *testing.T) {
		// Another snapshot's manifest under this one's name.
		v := mustTestVault(t)
		id := v.backup(t).Snapshot
		v.insert(t, 5, 100)
		other, _ := os.ReadFile(v.object("snapshots/" + v.backup(t).Snapshot))
		v.rewrite(t, "snapshots/"+id, func([]byte) []byte { return other })
		v.wantRefused(t, id, backup.ErrCorrupt, id)
	})
	t.Run("ManifestOfAnotherSigner", func(t *testing.T) {
		// Someone with the backup keys but not the audit signer key writes
		// a snapshot of their own: sealed right, signed wrong.
		v := mustTestVault(t)
		skey, vkey, _ := note.GenerateKey(rand.Reader, "phivault-audit-test")
		forger, _ := note.NewSigner(skey)
		keys := *v.keys
		keys.Verifier = vkey
		res, err := backup.Backup(context.Background(), v.dir, v.target, backup.Options{Keys: &keys, Signer: forger})
		if err != nil {
			t.Fatal(err)
		}
		v.wantRefused(t, res.Snapshot, backup.ErrSignature, res.Snapshot)
		// Also when the restorer trusts the verifier in the key set.
		_, err = backup.Restore(context.Background(), v.target, res.Snapshot, filepath.Join(t.TempDir(), "r"), backup.RestoreOptions{Identities: []age.Identity{v.identity}})
		if !errors.Is(err, backup.ErrSignature) {
			t.Errorf("Restore without a pinned verifier = %v, want %v", err, backup.ErrSignature)
		}
	})
	t.Run("WrongIdentity", func(t *testing.T) {
		v := mustTestVault(t)
		id := v.backup(t).Snapshot
		v.identity, _ = age.GenerateX25519Identity()
		v.wantRefused(t, id, backup.ErrWrongKey)
	})
	t.Run("MissingSnapshot", func(t *testing.T) {
		v := mustTestVault(t)
		v.backup(t)
		v.wantRefused(t, "00112233445566778899aabbccddeeff", backup.ErrNotFound, "00112233445566778899aabbccddeeff")
	})
}

func TestDir_writeOnce(t *testing.T) {
	ctx := context.Background()
	later := time.Now().Add(backup.DefaultRetention)
	d := &backup.Dir{Path: t.TempDir()}
	if err := d.Put(ctx, "chunks/ab", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "chunks/ab", []byte("two")); !errors.Is(err, backup.ErrExist) {
		t.Errorf("second Put = %v, want %v", err, backup.ErrExist)
	}
	if b, err := d.Get(ctx, "chunks/ab"); err != nil || string(b) != "one" {
		t.Errorf("Get = %q, %v; want the first write", b, err)
	}
	if err := d.Delete(ctx, "chunks/ab"); !errors.Is(err, backup.ErrRetained) {
		t.Errorf("Delete of a fresh object = %v, want %v", err, backup.ErrRetained)
	}
	d.Now = func() time.Time { return later.Add(time.Minute) }
	if err := d.Delete(ctx, "chunks/ab"); err != nil {
		t.Errorf("Delete after the retention = %v, want nil", err)
	}
	if err := d.Put(ctx, "chunks/ab", []byte("one")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../x", "chunks/../../x", "/etc/passwd", "Chunks/A", "chunks/"} {
		if err := d.Put(ctx, bad, nil); err == nil {
			t.Errorf("Put(%q) = nil, want refused", bad)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(d.Path, "chunks")); len(entries) != 1 {
		t.Errorf("chunks/ holds %v, want the one object and no temporary file", entries)
	}
}
