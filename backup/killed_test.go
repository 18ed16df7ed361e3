package backup_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault/backup"
	"golang.org/x/mod/sumdb/note"
)

// The environment of the child process TestBackup_killed runs: the data
// folder, the backup folder, and files of the key cache and signer key.
const killedChildEnv = "PHIVAULT_TEST_BACKUP_CHILD"

// TestBackup_killed kills a backup with SIGKILL part-way (a process that
// backs up in a loop, killed once it has written chunks), then checks
// that the next backup and a restore of it are whole, and that what the
// killed one left (a temporary copy in the data folder, temporary files in
// the backup folder, chunks no manifest names) is in no snapshot.
func TestBackup_killed(t *testing.T) {
	if os.Getenv(killedChildEnv) != "" {
		backupForever(t)
		return
	}
	ctx := context.Background()
	v := mustTestVault(t)
	v.insert(t, 300, 20000) // ~6 MB: the child is killed inside a backup
	cache := filepath.Join(t.TempDir(), "cache")
	os.WriteFile(cache, v.keys.MarshalCache(), 0o600)
	skey := filepath.Join(t.TempDir(), "signer")
	os.WriteFile(skey, []byte(v.signerKey), 0o600)

	cmd := exec.Command(os.Args[0], "-test.run=^TestBackup_killed$")
	cmd.Env = append(os.Environ(), killedChildEnv+"="+strings.Join([]string{v.dir, v.target.Path, cache, skey}, string(os.PathListSeparator)))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the first chunks, and then a little into the next backup.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if entries, _ := os.ReadDir(filepath.Join(v.target.Path, "chunks")); len(entries) > 10 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the child wrote no chunks in 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	v.insert(t, 20, 20000) // the killed backup is of a changed folder
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if left, _ := filepath.Glob(filepath.Join(v.dir, ".backup-*")); len(left) == 0 {
		t.Fatal("the killed backup left no temporary copy: it was not killed inside a backup, and the test shows nothing")
	}
	killedAt, _ := v.target.List(ctx, "snapshots/")

	res := v.backup(t)
	dest := filepath.Join(t.TempDir(), "restored")
	m, err := v.restore(res.Snapshot, dest)
	if err != nil {
		t.Fatalf("restore after a killed backup: %v", err)
	}
	if n := checkDB(t, filepath.Join(dest, "phivault.db")); n != 320 {
		t.Errorf("restored rows = %d, want 320", n)
	}
	for _, f := range m.Files {
		if strings.HasPrefix(filepath.Base(f.Name), ".") {
			t.Errorf("the snapshot holds %s, left by the killed backup", f.Name)
		}
	}
	// Every snapshot the killed process finished restores too.
	for _, name := range killedAt {
		if _, err := v.restore(strings.TrimPrefix(name, "snapshots/"), filepath.Join(t.TempDir(), "r")); err != nil {
			t.Errorf("restore of %s, written before the kill: %v", name, err)
		}
	}
	t.Logf("%d snapshots finished before the kill", len(killedAt))
}

// backupForever is the child of TestBackup_killed: it backs up in a loop
// until it is killed.
func backupForever(t *testing.T) {
	args := strings.Split(os.Getenv(killedChildEnv), string(os.PathListSeparator))
	ctx := context.Background()
	target := &backup.Dir{Path: args[1]}
	cache, _ := os.ReadFile(args[2])
	keys, err := backup.CachedKeys(ctx, target, cache)
	if err != nil {
		t.Fatal(err)
	}
	skey, _ := os.ReadFile(args[3])
	signer, err := note.NewSigner(string(skey))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := backup.Backup(ctx, args[0], target, backup.Options{Keys: keys, Signer: signer, Rand: rand.Reader}); err != nil {
			t.Fatal(err)
		}
	}
}

// failingTarget is a folder whose Put fails from the nth chunk on, as a
// full disk or a lost connection does.
type failingTarget struct {
	*backup.Dir
	mu sync.Mutex
	n  int
}

var errDiskFull = errors.New("disk full")

func (f *failingTarget) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "chunks/") {
		f.mu.Lock()
		f.n--
		fail := f.n < 0
		f.mu.Unlock()
		if fail {
			return errDiskFull
		}
	}
	return f.Dir.Put(ctx, name, data)
}

// TestBackup_putFails checks that a backup whose chunk writes fail part
// way (several in flight) returns the failure and writes no manifest: no
// snapshot names a chunk that is not stored. The next backup is whole.
func TestBackup_putFails(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	v.insert(t, 100, 20000)
	ft := &failingTarget{Dir: v.target, n: 10}
	_, err := backup.Backup(ctx, v.dir, ft, backup.Options{Keys: v.keys, Signer: v.signer})
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("Backup with failing writes = %v, want %v", err, errDiskFull)
	}
	if names, _ := v.target.List(ctx, "snapshots/"); len(names) != 0 {
		t.Fatalf("a failed backup wrote a manifest: %v", names)
	}
	res := v.backup(t)
	if _, err := v.restore(res.Snapshot, filepath.Join(t.TempDir(), "r")); err != nil {
		t.Errorf("restore after a failed backup: %v", err)
	}
}
