package auditlog_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// openJournaled opens a Log with a journal on store.
func openJournaled(t *testing.T, store auditlog.Storage, signer note.Signer, segment int64) *auditlog.Log {
	t.Helper()
	l := auditlog.New(store, "phivault-test/audit", signer)
	l.CheckpointInterval = -1
	l.JournalSegment = segment
	if err := l.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// journalMem returns an empty MemAudit that keeps a journal.
func journalMem(t *testing.T) *storetest.MemAudit {
	t.Helper()
	mem := storetest.NewMemAudit()
	mem.Journal = filepath.Join(t.TempDir(), "journal")
	return mem
}

// appendAcked appends entries first… first+n-1 from 8 goroutines and fails the
// test on any error: each returned Append is an acknowledged entry.
func appendAcked(t *testing.T, l *auditlog.Log, first, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := first + w; i < first+n; i += 8 {
				if err := l.Append(context.Background(), storetest.Entry(i)); err != nil {
					t.Errorf("Append(%d) = %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// segments returns the journal's segment files.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "journal-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJournal_crashRecovery acknowledges entries from the journal, then
// loses every storage commit not yet made durable (a power loss), and
// opens the log again: the journal's entries are appended again, at the
// same indexes, and the log verifies against the checkpoint signed before
// the crash.
func TestJournal_crashRecovery(t *testing.T) {
	ctx := context.Background()
	mem := journalMem(t)
	signer, verifier := storetest.NewSigner(t)
	l := openJournaled(t, mem, signer, 0)
	appendAcked(t, l, 0, 300)
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := mem.ReadAuditEntries(ctx, 0, 300)
	if lost := mem.Crash(); lost != 300 {
		t.Fatalf("Crash() dropped %d entries, want all 300 (no durable storage commit yet)", lost)
	}
	// The crashed Log is abandoned, as by kill -9; only its files remain.

	l2 := openJournaled(t, mem, signer, 0)
	if n := l2.Tree().N; n != 300 {
		t.Fatalf("after recovery the tree has %d entries, want 300", n)
	}
	got, _ := mem.ReadAuditEntries(ctx, 0, 300)
	for i := range want {
		if string(got[i]) != string(want[i]) {
			t.Fatalf("entry %d changed in recovery", i)
		}
	}
	appendAcked(t, l2, 300, 20)
	cp2, err := l2.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if tree, err := auditlog.Verify(ctx, mem, verifier, "", [][]byte{cp, cp2}); err != nil || tree.N != 320 {
		t.Fatalf("Verify() after recovery = %v, %v, want 320 entries", tree, err)
	}
	if s := segments(t, mem.Journal); len(s) != 0 {
		t.Errorf("Close left journal segments %v; the storage is durable, they should be gone", s)
	}
}

// TestJournal_truncated cuts the journal at every kind of place a torn
// write can leave it (inside a header, inside an entry, after a damaged
// byte) and checks that recovery keeps exactly the whole records before
// the cut, and that the log verifies.
func TestJournal_truncated(t *testing.T) {
	ctx := context.Background()
	signer, verifier := storetest.NewSigner(t)
	for _, cut := range []struct {
		name   string
		damage func(b []byte, recEnd []int) []byte
		keep   int // whole records kept
	}{
		{"inside-header", func(b []byte, e []int) []byte { return b[:e[9]+7] }, 10},
		{"inside-entry", func(b []byte, e []int) []byte { return b[:e[19]+30] }, 20},
		{"at-record-end", func(b []byte, e []int) []byte { return b[:e[29]] }, 30},
		{"flipped-byte", func(b []byte, e []int) []byte { b[e[4]+40] ^= 1; return b }, 5},
		{"zeroed-length", func(b []byte, e []int) []byte { copy(b[e[14]:], []byte{0, 0, 0, 0}); return b }, 15},
	} {
		t.Run(cut.name, func(t *testing.T) {
			mem := journalMem(t)
			l := openJournaled(t, mem, signer, 0)
			for i := range 40 { // one at a time: one record per Append
				if err := l.Append(ctx, storetest.Entry(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			entries, _ := mem.ReadAuditEntries(ctx, 0, 40)
			mem.Crash()
			segs := segments(t, mem.Journal)
			if len(segs) != 1 {
				t.Fatalf("journal has %d segments, want 1", len(segs))
			}
			b, err := os.ReadFile(segs[0])
			if err != nil {
				t.Fatal(err)
			}
			var recEnd []int // offset after each record
			off := 0
			for _, e := range entries {
				off += 16 + len(e)
				recEnd = append(recEnd, off)
			}
			if err := os.WriteFile(segs[0], cut.damage(b, recEnd), 0o600); err != nil {
				t.Fatal(err)
			}

			l2 := openJournaled(t, mem, signer, 0)
			if n := l2.Tree().N; n != int64(cut.keep) {
				t.Fatalf("recovered %d entries, want %d", n, cut.keep)
			}
			appendAcked(t, l2, 100, 3)
			cp, err := l2.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			l2.Close()
			if tree, err := auditlog.Verify(ctx, mem, verifier, "", [][]byte{cp}); err != nil || tree.N != int64(cut.keep+3) {
				t.Fatalf("Verify() = %v, %v, want %d entries", tree, err, cut.keep+3)
			}
		})
	}
}

// TestJournal_gap refuses to open a log whose journal starts after the end
// of the storage: acknowledged entries would be missing.
func TestJournal_gap(t *testing.T) {
	ctx := context.Background()
	signer, _ := storetest.NewSigner(t)
	mem := journalMem(t)
	l := openJournaled(t, mem, signer, 0)
	appendAcked(t, l, 0, 10)
	l.Close() // durable, journal removed
	l = openJournaled(t, mem, signer, 0)
	appendAcked(t, l, 10, 10)
	// Lose more than the deferred commits: the storage goes back to 5.
	mem.Crash()
	for i := int64(5); i < 10; i++ {
		delete(mem.Entries, i)
	}
	l2 := auditlog.New(mem, "phivault-test/audit", signer)
	if err := l2.Open(ctx); err == nil {
		l2.Close()
		t.Fatal("Open() with a journal starting after the storage's end = nil error")
	}
}

// TestJournal_rotation writes many small segments: old ones are removed
// once the storage is durable, a crash in the middle still recovers every
// acknowledged entry, and Close leaves no journal behind.
func TestJournal_rotation(t *testing.T) {
	ctx := context.Background()
	signer, verifier := storetest.NewSigner(t)
	mem := journalMem(t)
	l := openJournaled(t, mem, signer, 4096) // about 12 entries a segment
	appendAcked(t, l, 0, 500)
	if s := segments(t, mem.Journal); len(s) > 2 {
		t.Errorf("journal keeps %d segments, want at most 2", len(s))
	}
	if mem.Syncs == 0 {
		t.Error("no SyncAudit before segments were removed")
	}
	mem.Crash()
	l2 := openJournaled(t, mem, signer, 4096)
	if n := l2.Tree().N; n != 500 {
		t.Fatalf("recovered %d entries, want 500", n)
	}
	cp, _ := l2.Checkpoint(ctx)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.Verify(ctx, mem, verifier, "", [][]byte{cp}); err != nil {
		t.Fatal(err)
	}
	if s := segments(t, mem.Journal); len(s) != 0 {
		t.Errorf("Close left journal segments %v", s)
	}
}

// TestJournal_storageFails checks what happens while the storage refuses
// commits: entries already acknowledged (durable in the journal) wait for
// it and are never dropped, new appends are refused (fail closed), views
// that Flush fail, and once the storage works again everything lands and
// verifies.
func TestJournal_storageFails(t *testing.T) {
	ctx := context.Background()
	signer, verifier := storetest.NewSigner(t)
	mem := journalMem(t)
	l := openJournaled(t, mem, signer, 0)
	appendAcked(t, l, 0, 5)
	mem.SetFail(os.ErrPermission)
	acked := 5
	var refused error
	for i := 5; i < 1000 && refused == nil; i++ {
		if refused = l.Append(ctx, storetest.Entry(i)); refused == nil {
			acked++
		}
		time.Sleep(time.Millisecond)
	}
	if refused == nil {
		t.Fatal("Append() kept succeeding with a failing storage, want an error")
	}
	if err := l.Flush(ctx); err == nil {
		t.Error("Flush() with a failing storage = nil, want an error")
	}
	if n, _ := mem.AuditSize(ctx); n != 5 {
		t.Errorf("the failing storage holds %d entries, want 5", n)
	}
	mem.SetFail(nil)
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for l.Flush(fctx) != nil { // retried with backoff
		if fctx.Err() != nil {
			t.Fatal("the acknowledged entries never reached the storage once it worked")
		}
		time.Sleep(time.Millisecond)
	}
	appendAcked(t, l, acked, 4)
	if n := l.Tree().N; n != int64(acked+4) {
		t.Errorf("tree has %d entries, want %d", n, acked+4)
	}
	cp, _ := l.Checkpoint(ctx)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if tree, err := auditlog.Verify(ctx, mem, verifier, "", [][]byte{cp}); err != nil || tree.N != int64(acked+4) {
		t.Fatalf("Verify() = %v, %v", tree, err)
	}
}

// TestJournal_closedWhileFailing closes a Log whose storage fails with
// acknowledged entries still waiting: the journal keeps them and the next
// Open appends them.
func TestJournal_closedWhileFailing(t *testing.T) {
	ctx := context.Background()
	signer, verifier := storetest.NewSigner(t)
	mem := journalMem(t)
	l := openJournaled(t, mem, signer, 0)
	mem.SetFail(os.ErrPermission)
	if err := l.Append(ctx, storetest.Entry(0)); err != nil {
		t.Fatal(err) // the first is acknowledged before the applier meets the failure
	}
	l.Close()
	if n, _ := mem.AuditSize(ctx); n != 0 {
		t.Fatalf("the failing storage holds %d entries", n)
	}
	if s := segments(t, mem.Journal); len(s) == 0 {
		t.Fatal("Close removed the journal holding an entry the storage lacks")
	}
	mem.SetFail(nil)
	l2 := openJournaled(t, mem, signer, 0)
	if n := l2.Tree().N; n != 1 {
		t.Fatalf("after reopening the tree has %d entries, want 1", n)
	}
	cp, _ := l2.Checkpoint(ctx)
	l2.Close()
	if _, err := auditlog.Verify(ctx, mem, verifier, "", [][]byte{cp}); err != nil {
		t.Fatal(err)
	}
}

// TestJournal_canceled: an Append whose caller has gone before its group
// is committed is not written, and says so.
func TestJournal_canceled(t *testing.T) {
	signer, _ := storetest.NewSigner(t)
	mem := journalMem(t)
	l := openJournaled(t, mem, signer, 0)
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Append(ctx, storetest.Entry(1)); err == nil {
		t.Fatal("Append(cancelled context) = nil, want an error")
	}
	if n := l.Tree().N; n != 0 {
		t.Errorf("tree has %d entries after a cancelled Append, want 0", n)
	}
}

// slowStorage holds every deferred commit until gate is closed.
type slowStorage struct {
	*storetest.MemAudit
	gate chan struct{}
}

func (s *slowStorage) AppendAuditDeferred(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error {
	<-s.gate
	return s.MemAudit.AppendAuditDeferred(ctx, start, data, hashes)
}

// TestJournal_backpressure: while the storage is slow, acknowledged
// entries wait in memory only up to a bound (16 × MaxBatch), after which
// appends wait too; once it catches up, every acknowledged entry is stored
// and the log verifies.
func TestJournal_backpressure(t *testing.T) {
	ctx := context.Background()
	signer, verifier := storetest.NewSigner(t)
	mem := journalMem(t)
	slow := &slowStorage{MemAudit: mem, gate: make(chan struct{})}
	l := auditlog.New(slow, "phivault-test/audit", signer)
	l.CheckpointInterval, l.MaxBatch = -1, 4
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var acked atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < 400; i += 8 {
				if err := l.Append(ctx, storetest.Entry(i)); err != nil {
					t.Errorf("Append(%d) = %v", i, err)
					return
				}
				acked.Add(1)
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for prev := int64(-1); ; time.Sleep(20 * time.Millisecond) {
		n := acked.Load()
		if n == prev || time.Now().After(deadline) {
			break // appends have stopped: the queue is full
		}
		prev = n
	}
	// 16 × MaxBatch queued, one commit of up to MaxBatch held at the gate,
	// and one group per appender journaled before it found the queue full.
	if n := acked.Load(); n > 16*4+4+8 || n == 400 {
		t.Errorf("%d of 400 appends acknowledged while the storage held every commit, want at most %d", n, 16*4+4+8)
	}
	close(slow.gate)
	wg.Wait()
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if tree, err := auditlog.Verify(ctx, mem, verifier, "", [][]byte{cp}); err != nil || tree.N != 400 {
		t.Fatalf("Verify() = %v, %v, want 400 entries", tree, err)
	}
}
