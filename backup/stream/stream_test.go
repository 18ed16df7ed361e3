package stream_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/stream"
	"golang.org/x/mod/sumdb/note"
)

// testSyncInterval is the tests' sync interval, shorter than the default
// so the tests run quickly.
const testSyncInterval = 200 * time.Millisecond

// testVault is a data folder with a live WAL-mode SQLite database and a
// small file, with one snapshot in a Dir target.
type testVault struct {
	dir      string
	db       *sql.DB
	target   *backup.Dir   // the folder target, nil on another target
	tg       backup.Target // the target backups and streams go to
	identity *age.X25519Identity
	keys     *backup.KeySet
	signer   note.Signer
}

func mustTestVault(t testing.TB) *testVault {
	t.Helper()
	target := &backup.Dir{Path: filepath.Join(t.TempDir(), "backups")}
	v := newTestVault(t, target)
	v.target = target
	return v
}

// newTestVault is mustTestVault on the target tg.
func newTestVault(t testing.TB, tg backup.Target) *testVault {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	v := &testVault{dir: filepath.Join(root, "data"), tg: tg}
	if err := os.MkdirAll(v.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, "keyring.age"), []byte("wrapped keys"), 0o600); err != nil {
		t.Fatal(err)
	}
	v.db = mustOpenDB(t, filepath.Join(v.dir, "phivault.db"))
	if _, err := v.db.Exec("CREATE TABLE r (id INTEGER PRIMARY KEY, data BLOB)"); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "phivault-audit-test")
	if err != nil {
		t.Fatal(err)
	}
	if v.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if v.identity, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	if v.keys, err = backup.Init(ctx, v.tg, rand.Reader, vkey, v.identity.Recipient()); err != nil {
		t.Fatal(err)
	}
	v.mustBackup(t)
	return v
}

func (v *testVault) mustBackup(t testing.TB) {
	t.Helper()
	if _, err := backup.Backup(context.Background(), v.dir, v.tg, backup.Options{Keys: v.keys, Signer: v.signer}); err != nil {
		t.Fatalf("Backup: %v", err)
	}
}

// mustOpenDB opens a WAL-mode database as phivault's store does.
func mustOpenDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// mustStream starts a Streamer of v's folder.
func (v *testVault) mustStream(t testing.TB) *stream.Streamer {
	t.Helper()
	s := stream.New(v.dir, v.tg, v.keys)
	s.SyncInterval = testSyncInterval
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Streamer.Open: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// A write is a row written: when its insert started and when it was
// acknowledged (its COMMIT returned).
type write struct {
	id         int64
	start, ack time.Time
}

// writeFor inserts rows one transaction each until stop is closed.
func (v *testVault) writeFor(t testing.TB, stop <-chan struct{}) []write {
	t.Helper()
	var ws []write
	payload := make([]byte, 200)
	for i := int64(1); ; i++ {
		select {
		case <-stop:
			return ws
		default:
		}
		start := time.Now()
		if _, err := v.db.Exec("INSERT INTO r (id, data) VALUES (?, ?)", i, payload); err != nil {
			t.Errorf("insert %d: %v", i, err)
			return ws
		}
		ws = append(ws, write{id: i, start: start, ack: time.Now()})
		time.Sleep(2 * time.Millisecond)
	}
}

// mustRows returns the ids in the restored folder's database.
func mustRows(t testing.TB, dir string) []int64 {
	t.Helper()
	db := mustOpenDB(t, filepath.Join(dir, "phivault.db"))
	rows, err := db.Query("SELECT id FROM r ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkPrefix checks that ids is 1..k for some k: a consistent state of
// the sequential writes.
func checkPrefix(t testing.TB, ids []int64) {
	t.Helper()
	for i, id := range ids {
		if id != int64(i+1) {
			t.Fatalf("restored ids are not a prefix of the writes: id %d at position %d", id, i)
		}
	}
}

func (v *testVault) restoreOptions(at time.Time) stream.RestoreOptions {
	return stream.RestoreOptions{RestoreOptions: backup.RestoreOptions{Identities: []age.Identity{v.identity}}, At: at}
}

// TestRestore_pointInTime writes rows continuously while streaming,
// restores the latest state and a point in the middle, and compares the
// row sets: the latest holds every acknowledged write; the point holds
// every write acknowledged well before it (the sync interval) and none
// started after it.
func TestRestore_pointInTime(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	s := v.mustStream(t)
	if got := s.Databases(); !slices.Equal(got, []string{"phivault.db"}) {
		t.Fatalf("Databases() = %v, want [phivault.db]", got)
	}
	stop := make(chan struct{})
	var ws []write
	var wg sync.WaitGroup
	wg.Go(func() { ws = v.writeFor(t, stop) })
	time.Sleep(2 * time.Second)
	mid := time.Now()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	t.Run("Latest", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "restored")
		res, err := stream.Restore(ctx, v.target, dest, v.restoreOptions(time.Time{}))
		if err != nil {
			t.Fatalf("Restore(latest) = %v", err)
		}
		if len(res.Databases) != 1 || res.Databases[0].TXID == 0 {
			t.Fatalf("Restore(latest) restored %+v, want phivault.db from its stream", res.Databases)
		}
		ids := mustRows(t, dest)
		checkPrefix(t, ids)
		if len(ids) != len(ws) {
			t.Errorf("Restore(latest) has %d rows, want all %d acknowledged", len(ids), len(ws))
		}
		if b, err := os.ReadFile(filepath.Join(dest, "keyring.age")); err != nil || string(b) != "wrapped keys" {
			t.Errorf("keyring.age = %q, %v; want the snapshot's", b, err)
		}
	})

	t.Run("Middle", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "restored")
		if _, err := stream.Restore(ctx, v.target, dest, v.restoreOptions(mid)); err != nil {
			t.Fatalf("Restore(at middle) = %v", err)
		}
		ids := mustRows(t, dest)
		checkPrefix(t, ids)
		var mustHave, mayHave int64
		for _, w := range ws {
			if w.ack.Before(mid.Add(-5 * testSyncInterval)) {
				mustHave = w.id
			}
			if !w.start.After(mid) {
				mayHave = w.id
			}
		}
		k := int64(len(ids))
		if k < mustHave || k > mayHave {
			t.Errorf("Restore(at middle) has rows 1..%d, want at least 1..%d (acknowledged %v before) and at most 1..%d (started by then)",
				k, mustHave, 5*testSyncInterval, mayHave)
		}
		t.Logf("point in time: restored %d rows; %d acknowledged %v before, %d started by then, %d in all",
			k, mustHave, 5*testSyncInterval, mayHave, len(ws))
	})

	t.Run("BeforeStream", func(t *testing.T) {
		// Before the first snapshot there is nothing to restore.
		dest := filepath.Join(t.TempDir(), "restored")
		_, err := stream.Restore(ctx, v.target, dest, v.restoreOptions(time.Now().Add(-time.Hour)))
		if !errors.Is(err, backup.ErrNotFound) {
			t.Errorf("Restore(an hour ago) = %v, want ErrNotFound", err)
		}
	})

	t.Run("ShredsSeeTheStream", func(t *testing.T) {
		// The tombstones and the caller's Prepare run on the folder as it
		// will be: its database the stream's, not the snapshot's (which
		// holds no rows), so a shred is not undone by the stream.
		if _, err := backup.RecordShreds(ctx, v.target, v.keys, rand.Reader, []backup.Shred{{Compartment: "p1", At: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Restore(ctx, v.target, filepath.Join(t.TempDir(), "r"), v.restoreOptions(time.Time{})); err == nil || !strings.Contains(err.Error(), "tombstones") {
			t.Errorf("Restore with tombstones and no ApplyShreds = %v, want a refusal", err)
		}
		opt := v.restoreOptions(time.Time{})
		var atShred, atPrepare int
		opt.ApplyShreds = func(_ context.Context, dir string, shreds []backup.Shred) error {
			atShred = len(mustRows(t, dir))
			if len(shreds) != 1 || shreds[0].Compartment != "p1" {
				t.Errorf("ApplyShreds got %v, want p1", shreds)
			}
			return nil
		}
		opt.Prepare = func(_ context.Context, dir string, _ *backup.Manifest) error {
			atPrepare = len(mustRows(t, dir))
			return nil
		}
		if _, err := stream.Restore(ctx, v.target, filepath.Join(t.TempDir(), "restored"), opt); err != nil {
			t.Fatalf("Restore = %v", err)
		}
		if atShred != len(ws) || atPrepare != len(ws) {
			t.Errorf("ApplyShreds saw %d rows and Prepare %d, want the stream's %d", atShred, atPrepare, len(ws))
		}
	})
}

// streamObjects returns the LTX objects in v's target: level → names.
func (v *testVault) streamObjects(t testing.TB) map[int][]string {
	t.Helper()
	ids, err := os.ReadDir(filepath.Join(v.target.Path, "stream"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][]string{}
	for _, id := range ids {
		if id.Name() == "dbs" {
			continue
		}
		levels, _ := os.ReadDir(filepath.Join(v.target.Path, "stream", id.Name()))
		for _, l := range levels {
			level, _ := strconv.Atoi(l.Name())
			names, _ := v.target.List(context.Background(), "stream/"+id.Name()+"/"+l.Name()+"/")
			out[level] = append(out[level], names...)
		}
	}
	return out
}

// txids parses the TXIDs of a stream object's name.
func txids(name string) (lo, hi uint64) {
	parts := strings.Split(name[strings.LastIndex(name, "/")+1:], "-")
	lo, _ = strconv.ParseUint(parts[0], 16, 64)
	hi, _ = strconv.ParseUint(parts[1], 16, 64)
	return lo, hi
}

// TestRestore_refusesDamagedStream checks that a changed, truncated or
// deleted stream object is refused, and that nothing is left behind.
func TestRestore_refusesDamagedStream(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t)
	s := v.mustStream(t)
	for i := range 30 {
		if _, err := v.db.Exec("INSERT INTO r (id, data) VALUES (?, ?)", i+1, []byte("row")); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := s.Sync(ctx); err != nil {
				t.Fatalf("Sync: %v", err)
			}
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	objs := v.streamObjects(t)
	var maxTXID uint64
	for _, names := range objs {
		for _, n := range names {
			_, hi := txids(n)
			maxTXID = max(maxTXID, hi)
		}
	}
	// last: the objects of files that end at the last transaction, which
	// every restore of the latest state reads one of.
	var last []string
	for _, names := range objs {
		for _, n := range names {
			if _, hi := txids(n); hi == maxTXID {
				last = append(last, n)
			}
		}
	}
	// gap: an L0 file before the last that no other file covers.
	var gap string
	for _, n := range objs[0] {
		lo, hi := txids(n)
		if hi == maxTXID {
			continue
		}
		covered := false
		for _, names := range objs {
			for _, o := range names {
				olo, ohi := txids(o)
				covered = covered || o != n && olo <= lo && ohi >= hi
			}
		}
		if !covered {
			gap = n
		}
	}
	if gap == "" {
		t.Fatalf("no L0 object that no other covers among %v", objs)
	}

	damage := func(t *testing.T, names []string, f func(path string)) {
		t.Helper()
		saved := map[string][]byte{}
		for _, n := range names {
			p := filepath.Join(v.target.Path, filepath.FromSlash(n))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			saved[p] = b
			if err := os.Chmod(p, 0o600); err != nil {
				t.Fatal(err)
			}
			f(p)
		}
		t.Cleanup(func() {
			for p, b := range saved {
				os.Remove(p)
				os.WriteFile(p, b, 0o400)
			}
		})
	}
	tests := []struct {
		name   string
		damage func(t *testing.T)
	}{
		{"Changed", func(t *testing.T) {
			damage(t, last, func(p string) {
				b, _ := os.ReadFile(p)
				b[len(b)/2] ^= 1
				os.WriteFile(p, b, 0o600)
			})
		}},
		{"Truncated", func(t *testing.T) {
			damage(t, last, func(p string) {
				b, _ := os.ReadFile(p)
				os.WriteFile(p, b[:len(b)-1], 0o600)
			})
		}},
		{"Deleted", func(t *testing.T) {
			damage(t, []string{gap}, func(p string) { os.Remove(p) })
		}},
		{"Swapped", func(t *testing.T) {
			other, _ := os.ReadFile(filepath.Join(v.target.Path, filepath.FromSlash(gap)))
			damage(t, last, func(p string) { os.WriteFile(p, other, 0o600) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.damage(t)
			parent := t.TempDir()
			dest := filepath.Join(parent, "restored")
			_, err := stream.Restore(ctx, v.target, dest, v.restoreOptions(time.Time{}))
			if !errors.Is(err, backup.ErrCorrupt) {
				t.Errorf("Restore with a %s object = %v, want ErrCorrupt", strings.ToLower(tt.name), err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("Restore left %v in %s", entries, parent)
			}
		})
	}

	t.Run("Intact", func(t *testing.T) { // the near miss: the same stream, undamaged
		dest := filepath.Join(t.TempDir(), "restored")
		if _, err := stream.Restore(ctx, v.target, dest, v.restoreOptions(time.Time{})); err != nil {
			t.Fatalf("Restore = %v", err)
		}
		if ids := mustRows(t, dest); len(ids) != 30 {
			t.Errorf("Restore has %d rows, want 30", len(ids))
		}
	})
}

// TestStreamer_names checks that the target learns no database name.
func TestStreamer_names(t *testing.T) {
	v := mustTestVault(t)
	s := v.mustStream(t)
	if _, err := v.db.Exec("INSERT INTO r (id, data) VALUES (1, 'x')"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(v.target.Path, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(v.target.Path, p)
		if strings.Contains(rel, "phivault") {
			return fmt.Errorf("object %s names the database", p)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}

// TestRestore_picksSnapshot checks how a restore chooses between a
// database's stream and a snapshot's copy: a stream that stopped before
// the latest snapshot is older than the snapshot's copy, which wins; at a
// time before that snapshot, the earlier snapshot and the stream give the
// state.
func TestRestore_picksSnapshot(t *testing.T) {
	ctx := context.Background()
	v := mustTestVault(t) // snapshot 1: no rows
	s := v.mustStream(t)
	insert := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := v.db.Exec("INSERT INTO r (id, data) VALUES (?, 'x')", i); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(1, 10)
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	between := time.Now()
	time.Sleep(10 * time.Millisecond)
	insert(11, 20)  // not streamed
	v.mustBackup(t) // snapshot 2: 20 rows

	t.Run("Latest", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "restored")
		res, err := stream.Restore(ctx, v.target, dest, v.restoreOptions(time.Time{}))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(mustRows(t, dest)); n != 20 || res.Databases[0].TXID != 0 {
			t.Errorf("Restore(latest) = %d rows from TXID %d, want the newer snapshot's 20 rows (TXID 0)", n, res.Databases[0].TXID)
		}
	})
	t.Run("BeforeSnapshot", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "restored")
		res, err := stream.Restore(ctx, v.target, dest, v.restoreOptions(between))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(mustRows(t, dest)); n != 10 || res.Databases[0].TXID == 0 {
			t.Errorf("Restore(before snapshot 2) = %d rows from TXID %d, want the stream's 10 rows", n, res.Databases[0].TXID)
		}
	})
}
