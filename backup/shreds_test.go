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
)

// TestShreds_surviveRestore checks the tombstones: recorded once however
// often they are given, listed back in order, handed to every restore
// (of a snapshot older than the shred too) with the restored folder
// before it is renamed, and a restore without a way to apply them refused
// with nothing left behind.
func TestShreds_surviveRestore(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	// Names long enough that random ciphertext cannot contain them by chance.
	const p1, p2 = "first-patient-5e1c9a", "second-patient-9b7d42"
	v.insert(t, 3, 100)
	old := v.backup(t).Snapshot

	t1 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	shreds := []backup.Shred{{Compartment: p2, At: t1.Add(time.Minute)}, {Compartment: p1, At: t1}}
	if n, err := backup.RecordShreds(ctx, v.target, v.keys, rand.Reader, shreds); err != nil || n != 2 {
		t.Fatalf("RecordShreds() = %d, %v; want 2, nil", n, err)
	}
	if n, err := backup.RecordShreds(ctx, v.target, v.keys, rand.Reader, append(shreds, backup.Shred{Compartment: p1, At: t1.Add(time.Hour)})); err != nil || n != 0 {
		t.Fatalf("RecordShreds() again = %d, %v; want 0, nil", n, err)
	}
	names, _ := v.target.List(ctx, "shreds/")
	for _, n := range names {
		b, _ := os.ReadFile(v.object(n))
		if strings.Contains(n, p1) || strings.Contains(string(b), p1) {
			t.Errorf("tombstone %s names the patient in the clear", n)
		}
	}

	var applied []backup.Shred
	var seen string
	dest := filepath.Join(t.TempDir(), "restored")
	_, err := backup.Restore(ctx, v.target, old, dest, backup.RestoreOptions{
		Identities: []age.Identity{v.identity}, Verifier: v.verifier,
		ApplyShreds: func(ctx context.Context, dir string, s []backup.Shred) error {
			applied, seen = s, dir
			if _, err := os.Stat(filepath.Join(dir, "phivault.db")); err != nil {
				t.Errorf("ApplyShreds got a folder without the restored store: %v", err)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Restore() = %v", err)
	}
	if len(applied) != 2 || applied[0].Compartment != p1 || !applied[0].At.Equal(t1) || applied[1].Compartment != p2 {
		t.Errorf("ApplyShreds got %v, want p1 then p2 at their first times", applied)
	}
	if seen == dest {
		t.Error("ApplyShreds ran on the destination, want the temporary folder before the rename")
	}

	// No way to apply them: refused, nothing left.
	parent := t.TempDir()
	if _, err := backup.Restore(ctx, v.target, old, filepath.Join(parent, "r"), backup.RestoreOptions{Identities: []age.Identity{v.identity}}); err == nil || !strings.Contains(err.Error(), "tombstones") {
		t.Errorf("Restore without ApplyShreds = %v, want a refusal naming the tombstones", err)
	}
	// Applying fails: refused, nothing left.
	fail := errors.New("disk full")
	_, err = backup.Restore(ctx, v.target, old, filepath.Join(parent, "r"), backup.RestoreOptions{Identities: []age.Identity{v.identity},
		ApplyShreds: func(context.Context, string, []backup.Shred) error { return fail }})
	if !errors.Is(err, fail) {
		t.Errorf("Restore with a failing ApplyShreds = %v, want %v", err, fail)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("refused restores left %v", entries)
	}
}

// TestShreds_refuseSwapped checks that a tombstone moved under another
// patient's name, or changed, stops the restore: skipping it would bring
// a shredded patient back.
func TestShreds_refuseSwapped(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	if _, err := backup.RecordShreds(ctx, v.target, v.keys, rand.Reader, []backup.Shred{{Compartment: "p1", At: time.Now()}, {Compartment: "p2", At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Shreds(ctx, v.target, v.keys); err != nil {
		t.Fatalf("Shreds() = %v", err)
	}
	names, _ := v.target.List(ctx, "shreds/")
	a, _ := os.ReadFile(v.object(names[0]))
	v.rewrite(t, names[1], func([]byte) []byte { return a })
	if _, err := backup.Shreds(ctx, v.target, v.keys); !errors.Is(err, backup.ErrCorrupt) {
		t.Errorf("Shreds() with a tombstone copied under another name = %v, want ErrCorrupt", err)
	}
}
