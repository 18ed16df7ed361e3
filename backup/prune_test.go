package backup_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/backup"
)

// backupAt backs up v as of the time when, after writing files a.txt and
// b.txt with content of its own: each snapshot has two chunks no other
// has, and shares the rest (keyring.age, tls/key.pem, most of the
// database) with the others.
func (v *testVault) backupAt(t *testing.T, when time.Time) string {
	t.Helper()
	for _, name := range []string{"a.txt", "b.txt"} {
		if err := os.WriteFile(filepath.Join(v.dir, name), []byte(name+" as of "+when.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v.insert(t, 3, 500)
	res, err := backup.Backup(context.Background(), v.dir, v.target, backup.Options{Keys: v.keys, Signer: v.signer, Now: func() time.Time { return when }})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return res.Snapshot
}

// chunksOf returns the chunk ids the snapshot id names.
func (v *testVault) chunksOf(t *testing.T, id string) map[string]bool {
	t.Helper()
	m, err := backup.ReadManifest(context.Background(), v.target, v.keys, id, v.verifier)
	if err != nil {
		t.Fatalf("ReadManifest(%s) = %v", id, err)
	}
	out := map[string]bool{}
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			out[c.ID] = true
		}
	}
	return out
}

// exists reports whether the object name is in v's target.
func (v *testVault) exists(name string) bool {
	_, err := os.Stat(v.object(name))
	return err == nil
}

// age sets the write time of every object in v's target to d ago, except
// the objects in fresh, written now.
func (v *testVault) age(t *testing.T, d time.Duration, fresh ...string) {
	t.Helper()
	now := time.Now()
	err := filepath.WalkDir(v.target.Path, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(v.target.Path, p)
		when := now.Add(-d)
		if slices.Contains(fresh, filepath.ToSlash(rel)) {
			when = now
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mustVerify verifies the snapshot id and checks it restores.
func (v *testVault) mustRestoreAndVerify(t *testing.T, id string) {
	t.Helper()
	if _, err := backup.Verify(context.Background(), v.target, v.keys, id, backup.VerifyOptions{Verifier: v.verifier}); err != nil {
		t.Errorf("Verify(%s) = %v", id, err)
	}
	dest := filepath.Join(t.TempDir(), "restored")
	if _, err := v.restore(id, dest); err != nil {
		t.Errorf("Restore(%s) = %v", id, err)
		return
	}
	checkDB(t, filepath.Join(dest, "phivault.db"))
}

// minus returns the ids in a that none of others has.
func minus(a map[string]bool, others ...map[string]bool) []string {
	var out []string
	for id := range a {
		if !slices.ContainsFunc(others, func(o map[string]bool) bool { return o[id] }) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	v.insert(t, 50, 1000)
	v.target.Retention = 24 * time.Hour
	day := at("2026-12-01T09:00:00Z")
	var s []string
	for i := range 5 {
		s = append(s, v.backupAt(t, day.Add(time.Duration(i)*24*time.Hour)))
	}
	chunks := make([]map[string]bool, len(s))
	for i, id := range s {
		chunks[i] = v.chunksOf(t, id)
	}
	for _, id := range []string{s[0], s[1]} {
		if _, err := backup.Verify(ctx, v.target, v.keys, id, backup.VerifyOptions{Verifier: v.verifier}); err != nil {
			t.Fatal(err)
		}
	}
	only0 := minus(chunks[0], chunks[1], chunks[2], chunks[3], chunks[4])
	only2 := minus(chunks[2], chunks[0], chunks[1], chunks[3], chunks[4])
	if len(only0) < 2 || len(only2) < 2 {
		t.Fatalf("snapshots 0 and 2 have %d and %d chunks of their own, want 2 or more", len(only0), len(only2))
	}
	var shared []string // by the snapshot removed and one kept
	for id := range chunks[0] {
		if chunks[3][id] {
			shared = append(shared, id)
		}
	}
	if len(shared) == 0 {
		t.Fatal("snapshots 0 and 3 share no chunk")
	}
	// Everything is past the retention but snapshot 2's manifest and one
	// of snapshot 0's own chunks.
	retainedChunk := "chunks/" + only0[0]
	v.age(t, 48*time.Hour, "snapshots/"+s[2], retainedChunk)
	policy := backup.Policy{KeepLast: 2}
	wantPlan := []string{
		s[4] + ": last 1",
		s[3] + ": last 2",
		s[2] + ": remove",
		s[1] + ": newest verified",
		s[0] + ": remove",
	}

	t.Run("DryRun", func(t *testing.T) {
		before, _ := v.target.List(ctx, "chunks/")
		res, err := backup.Prune(ctx, v.target, v.keys, backup.PruneOptions{Policy: policy, Verifier: v.verifier, DryRun: true})
		if err != nil {
			t.Fatalf("Prune(dry run) = %v", err)
		}
		if got := verdicts(res.Plan); !slices.Equal(got, wantPlan) {
			t.Errorf("Prune(dry run) plan = %q, want %q", got, wantPlan)
		}
		// Snapshot 0's chunks but the one retained (and the marks) would
		// go; snapshot 2's stay with its manifest... in the dry run, the
		// plan drops snapshot 2 too.
		if want := len(only0) + len(only2) - 1; res.ChunksRemoved != want || res.ChunksYoung != 1 {
			t.Errorf("Prune(dry run) would remove %d chunks and leave %d young, want %d and 1", res.ChunksRemoved, res.ChunksYoung, want)
		}
		after, _ := v.target.List(ctx, "chunks/")
		if len(after) != len(before) || !v.exists("snapshots/"+s[0]) || len(res.Removed) != 0 {
			t.Errorf("a dry run removed something: %d chunks of %d, snapshot 0 there: %v, removed %v", len(after), len(before), v.exists("snapshots/"+s[0]), res.Removed)
		}
	})

	t.Run("OK", func(t *testing.T) {
		// Past the grace period, so that the retained chunk meets the
		// target's retention.
		later := func() time.Time { return time.Now().Add(2 * time.Hour) }
		res, err := backup.Prune(ctx, v.target, v.keys, backup.PruneOptions{Policy: policy, Verifier: v.verifier, Grace: time.Hour, Now: later})
		if err != nil {
			t.Fatalf("Prune = %v", err)
		}
		if got := verdicts(res.Plan); !slices.Equal(got, wantPlan) {
			t.Errorf("Prune plan = %q, want %q", got, wantPlan)
		}
		if !slices.Equal(res.Removed, []string{s[0]}) {
			t.Errorf("Prune removed %v, want snapshot 0 (%s) only", res.Removed, s[0])
		}
		if want := []string{retainedChunk, "snapshots/" + s[2]}; !slices.Equal(res.Retained, sorted(want)) {
			t.Errorf("Prune left %v under retention, want %v", res.Retained, sorted(want))
		}
		if res.MarksRemoved != 1 || v.exists("verified/"+s[0]) || !v.exists("verified/"+s[1]) {
			t.Errorf("Prune removed %d marks (snapshot 0's gone: %v, 1's kept: %v), want snapshot 0's only", res.MarksRemoved, !v.exists("verified/"+s[0]), v.exists("verified/"+s[1]))
		}
		if v.exists("snapshots/" + s[0]) {
			t.Errorf("snapshot 0's manifest is still there")
		}
		for _, id := range only0[1:] {
			if v.exists("chunks/" + id) {
				t.Errorf("chunk %s of the removed snapshot 0 only is still there", id)
			}
		}
		if res.ChunksRemoved != len(only0)-1 {
			t.Errorf("Prune removed %d chunks, want %d", res.ChunksRemoved, len(only0)-1)
		}
		if !v.exists(retainedChunk) {
			t.Errorf("the retained chunk %s was deleted", retainedChunk)
		}
		for _, id := range shared {
			if !v.exists("chunks/" + id) {
				t.Errorf("chunk %s, of the removed snapshot 0 and the kept 3, is gone", id)
			}
		}
		for i := 1; i < 5; i++ { // snapshot 2 stays: its manifest is retained
			for id := range chunks[i] {
				if !v.exists("chunks/" + id) {
					t.Errorf("chunk %s of snapshot %d is gone", id, i)
				}
			}
			v.mustRestoreAndVerify(t, s[i])
		}
	})

	t.Run("Later", func(t *testing.T) {
		// Once snapshot 2's manifest is past the retention, a prune
		// removes it and its own chunks; and snapshot 1 too, since 3 and 4
		// were verified since.
		v.age(t, 48*time.Hour)
		res, err := backup.Prune(ctx, v.target, v.keys, backup.PruneOptions{Policy: policy, Verifier: v.verifier})
		if err != nil {
			t.Fatalf("Prune = %v", err)
		}
		if !slices.Equal(res.Removed, []string{s[2], s[1]}) || len(res.Retained) != 0 {
			t.Errorf("Prune removed %v and left %v, want snapshots 2 and 1 (%s, %s) and nothing left", res.Removed, res.Retained, s[2], s[1])
		}
		if got := verdicts(res.Plan); got[0] != s[4]+": last 1, newest verified" {
			t.Errorf("Prune plan = %q, want snapshot 4 kept as the last and the newest verified", got)
		}
		for _, id := range append(only2, only0[0]) {
			if v.exists("chunks/" + id) {
				t.Errorf("unreferenced chunk %s is still there", id)
			}
		}
		for _, i := range []int{3, 4} {
			v.mustRestoreAndVerify(t, s[i])
		}
	})
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestPrune_refused: with no snapshot verified, a prune that would
// remove one deletes nothing, unless allowed; a manifest that does not
// verify stops the prune before anything is deleted.
func TestPrune_refused(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	v.insert(t, 20, 1000)
	day := at("2026-12-01T09:00:00Z")
	ids := []string{v.backupAt(t, day), v.backupAt(t, day.Add(24*time.Hour))}
	v.age(t, backup.DefaultRetention+48*time.Hour)
	count := func() int {
		n := 0
		for _, p := range []string{"chunks/", "snapshots/"} {
			names, _ := v.target.List(ctx, p)
			n += len(names)
		}
		return n
	}
	before := count()

	_, err := backup.Prune(ctx, v.target, v.keys, backup.PruneOptions{Policy: backup.Policy{KeepLast: 1}, Verifier: v.verifier})
	if !errors.Is(err, backup.ErrNothingVerified) {
		t.Errorf("Prune with nothing verified = %v, want %v", err, backup.ErrNothingVerified)
	}
	if count() != before {
		t.Errorf("a refused prune deleted objects")
	}

	// A manifest someone changed: nothing is deleted.
	if _, err := backup.Verify(ctx, v.target, v.keys, ids[1], backup.VerifyOptions{Verifier: v.verifier}); err != nil {
		t.Fatal(err)
	}
	v.rewrite(t, "snapshots/"+ids[0], func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	v.age(t, backup.DefaultRetention+48*time.Hour)
	if _, err := backup.Prune(ctx, v.target, v.keys, backup.PruneOptions{Policy: backup.Policy{KeepLast: 1}, Verifier: v.verifier}); !errors.Is(err, backup.ErrCorrupt) {
		t.Errorf("Prune with a changed manifest = %v, want %v", err, backup.ErrCorrupt)
	}
	if count() != before {
		t.Errorf("a prune that met a changed manifest deleted objects")
	}

	// Allowed explicitly, with nothing verified.
	v2 := mustTestVault(t)
	v2.insert(t, 20, 1000)
	first := v2.backupAt(t, day)
	second := v2.backupAt(t, day.Add(time.Hour))
	v2.age(t, backup.DefaultRetention+48*time.Hour)
	res, err := backup.Prune(ctx, v2.target, v2.keys, backup.PruneOptions{Policy: backup.Policy{KeepLast: 1, AllowUnverified: true}, Verifier: v2.verifier})
	if err != nil || !slices.Equal(res.Removed, []string{first}) {
		t.Fatalf("Prune(AllowUnverified) = %v, %v; want snapshot %s removed", res, err, first)
	}
	v2.mustRestoreAndVerify(t, second)
}

// crashingTarget is a Dir whose deletes of chunks fail, as if the prune
// were killed after deleting the manifests.
type crashingTarget struct{ *backup.Dir }

func (c crashingTarget) Delete(ctx context.Context, name string) error {
	if strings.HasPrefix(name, "chunks/") {
		return fmt.Errorf("killed before deleting %s", name)
	}
	return c.Dir.Delete(ctx, name)
}

func TestPrune_crash(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	v.insert(t, 30, 1000)
	day := at("2026-12-01T09:00:00Z")
	var s []string
	for i := range 4 {
		s = append(s, v.backupAt(t, day.Add(time.Duration(i)*time.Hour)))
	}
	if _, err := backup.Verify(ctx, v.target, v.keys, s[3], backup.VerifyOptions{Verifier: v.verifier}); err != nil {
		t.Fatal(err)
	}
	only0 := minus(v.chunksOf(t, s[0]), v.chunksOf(t, s[1]), v.chunksOf(t, s[2]), v.chunksOf(t, s[3]))
	v.age(t, backup.DefaultRetention+48*time.Hour)
	policy := backup.Policy{KeepLast: 2}
	if _, err := backup.Prune(ctx, crashingTarget{v.target}, v.keys, backup.PruneOptions{Policy: policy, Verifier: v.verifier}); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Prune on a target failing chunk deletes = %v, want its error", err)
	}
	for _, id := range s[:2] {
		if v.exists("snapshots/" + id) {
			t.Errorf("snapshot %s's manifest is still there; the manifests go first", id)
		}
	}
	for _, id := range s[2:] {
		v.mustRestoreAndVerify(t, id)
	}
	// The next prune finishes the sweep.
	res, err := backup.Prune(ctx, v.target, v.keys, backup.PruneOptions{Policy: policy, Verifier: v.verifier})
	if err != nil || len(res.Removed) != 0 || res.ChunksRemoved < len(only0) {
		t.Fatalf("Prune after the crash = %+v, %v; want the orphaned chunks (%d or more) removed", res, err, len(only0))
	}
	for _, id := range only0 {
		if v.exists("chunks/" + id) {
			t.Errorf("chunk %s of a removed snapshot is still there", id)
		}
	}
	for _, id := range s[2:] {
		v.mustRestoreAndVerify(t, id)
	}
}

// TestPrune_grace: unreferenced chunks younger than the grace period (a
// running backup's, maybe) are left, even where the target's retention
// would allow deleting them.
func TestPrune_grace(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	v.insert(t, 20, 1000)
	v.target.Retention = time.Nanosecond
	day := at("2026-12-01T09:00:00Z")
	first := v.backupAt(t, day)
	second := v.backupAt(t, day.Add(time.Hour))
	only1 := minus(v.chunksOf(t, first), v.chunksOf(t, second))
	if _, err := backup.Verify(ctx, v.target, v.keys, second, backup.VerifyOptions{Verifier: v.verifier}); err != nil {
		t.Fatal(err)
	}
	res, err := backup.Prune(ctx, v.target, v.keys, backup.PruneOptions{Policy: backup.Policy{KeepLast: 1}, Verifier: v.verifier})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Removed, []string{first}) || res.ChunksRemoved != 0 || res.ChunksYoung != len(only1) {
		t.Errorf("Prune = removed %v, %d chunks, %d young; want %s, none, %d young", res.Removed, res.ChunksRemoved, res.ChunksYoung, first, len(only1))
	}
	res, err = backup.Prune(ctx, v.target, v.keys, backup.PruneOptions{Policy: backup.Policy{KeepLast: 1}, Verifier: v.verifier, Now: func() time.Time { return time.Now().Add(backup.DefaultPruneGrace + time.Minute) }})
	if err != nil || res.ChunksRemoved != len(only1) {
		t.Errorf("Prune after the grace = %+v, %v; want %d chunks removed", res, err, len(only1))
	}
}

// racingTarget is a Dir that runs race once, just before its first
// delete of a chunk: a backup that finishes during the sweep.
type racingTarget struct {
	*backup.Dir
	race func()
}

func (r *racingTarget) Delete(ctx context.Context, name string) error {
	if strings.HasPrefix(name, "chunks/") && r.race != nil {
		r.race()
		r.race = nil
	}
	return r.Dir.Delete(ctx, name)
}

// TestPrune_concurrentBackup: a backup that reuses chunks only a removed
// snapshot named, and writes its manifest while the prune sweeps, is
// reported, not passed over in silence. (Prune and Backup must not run
// together; this is the net under that rule, not a lock.)
func TestPrune_concurrentBackup(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	v.insert(t, 20, 1000)
	day := at("2026-12-01T09:00:00Z")
	v.backupAt(t, day)
	second := v.backupAt(t, day.Add(time.Hour))
	if _, err := backup.Verify(ctx, v.target, v.keys, second, backup.VerifyOptions{Verifier: v.verifier}); err != nil {
		t.Fatal(err)
	}
	v.age(t, backup.DefaultRetention+48*time.Hour)
	var racer string
	rt := &racingTarget{Dir: v.target, race: func() {
		// The first snapshot's a.txt and b.txt again: their chunks are
		// there still, so the backup reuses them.
		racer = v.backupAt(t, day)
	}}
	_, err := backup.Prune(ctx, rt, v.keys, backup.PruneOptions{Policy: backup.Policy{KeepLast: 1}, Verifier: v.verifier})
	if !errors.Is(err, backup.ErrConcurrentBackup) || !strings.Contains(err.Error(), racer) {
		t.Errorf("Prune with a backup finishing during the sweep = %v, want %v naming snapshot %s", err, backup.ErrConcurrentBackup, racer)
	}
}

// TestPrune_keepsShreds: shred tombstones are never pruned.
func TestPrune_keepsShreds(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	v.insert(t, 10, 1000)
	day := at("2026-12-01T09:00:00Z")
	first := v.backupAt(t, day)
	second := v.backupAt(t, day.Add(time.Hour))
	if _, err := backup.Verify(ctx, v.target, v.keys, second, backup.VerifyOptions{Verifier: v.verifier}); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.RecordShreds(ctx, v.target, v.keys, rand.Reader, []backup.Shred{{Compartment: "Patient/p1", At: day}}); err != nil {
		t.Fatal(err)
	}
	v.age(t, backup.DefaultRetention+48*time.Hour)
	res, err := backup.Prune(ctx, v.target, v.keys, backup.PruneOptions{Policy: backup.Policy{KeepLast: 1}, Verifier: v.verifier})
	if err != nil || !slices.Equal(res.Removed, []string{first}) {
		t.Fatalf("Prune = %+v, %v; want snapshot %s removed", res, err, first)
	}
	if shreds, err := backup.Shreds(ctx, v.target, v.keys); err != nil || len(shreds) != 1 {
		t.Errorf("Shreds after Prune = %v, %v; want the one tombstone", shreds, err)
	}
}
