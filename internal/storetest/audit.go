package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// MemAudit is an in-memory auditlog.Storage for tests. Fail, if set, makes
// AppendAudit fail.
//
// With Journal set, it is an auditlog.DeferredStorage whose deferred appends
// are lost by Crash until SyncAudit, like a database file whose last
// commits were not fsynced when the power went.
type MemAudit struct {
	mu       sync.Mutex
	Entries  map[int64][]byte
	Hashes   map[int64]tlog.Hash
	Fail     error
	Appends  int    // successful AppendAudit calls
	Journal  string // the journal directory AuditJournal returns
	Syncs    int    // SyncAudit calls
	volatile int64  // entries from this index on are not durable; -1 if all are
}

// NewMemAudit returns an empty MemAudit.
func NewMemAudit() *MemAudit {
	return &MemAudit{Entries: map[int64][]byte{}, Hashes: map[int64]tlog.Hash{}, volatile: -1}
}

func (m *MemAudit) size() int64 {
	var n int64
	for idx := range m.Entries {
		n = max(n, idx+1)
	}
	return n
}

func (m *MemAudit) AuditSize(ctx context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size(), nil
}

func (m *MemAudit) AppendAudit(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	if n := m.size(); n != start {
		return phivault.Errorf(phivault.ECONFLICT, "The audit log holds %d entries, not %d.", n, start)
	}
	for i, d := range data {
		m.Entries[start+int64(i)] = d
	}
	first := tlog.StoredHashIndex(0, start)
	for i, h := range hashes {
		m.Hashes[first+int64(i)] = h
	}
	m.Appends++
	m.volatile = -1 // a durable commit makes the earlier ones durable too
	return nil
}

// AppendAuditDeferred is AppendAudit, but the entries are lost by Crash
// until the next SyncAudit.
func (m *MemAudit) AppendAuditDeferred(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error {
	m.mu.Lock()
	prev := m.volatile
	m.mu.Unlock()
	if err := m.AppendAudit(ctx, start, data, hashes); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.volatile = start
	if prev >= 0 {
		m.volatile = prev
	}
	return nil
}

// SyncAudit makes every append durable.
func (m *MemAudit) SyncAudit(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	m.volatile = -1
	m.Syncs++
	return nil
}

// SetFail makes every AppendAudit, AppendAuditDeferred and SyncAudit fail
// with err from now on, or work again if err is nil. Unlike setting Fail,
// it is safe while a Log uses m.
func (m *MemAudit) SetFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Fail = err
}

// AuditJournal returns m.Journal.
func (m *MemAudit) AuditJournal() string { return m.Journal }

// Crash drops the entries and hashes appended deferred since the last
// SyncAudit, and returns how many it dropped.
func (m *MemAudit) Crash() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.volatile < 0 {
		return 0
	}
	n := m.size()
	for i := m.volatile; i < n; i++ {
		delete(m.Entries, i)
	}
	for x := range m.Hashes {
		if x >= tlog.StoredHashIndex(0, m.volatile) {
			delete(m.Hashes, x)
		}
	}
	dropped := n - m.volatile
	m.volatile = -1
	return dropped
}

func (m *MemAudit) ReadAuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := m.Hashes[x]
		if !ok {
			return nil, fmt.Errorf("audit hash %d not found", x)
		}
		out[i] = h
	}
	return out, nil
}

func (m *MemAudit) ReadAuditEntries(ctx context.Context, start, end int64) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	for i := start; i < end; i++ {
		out = append(out, m.Entries[i])
	}
	return out, nil
}

// NewSigner returns a fresh checkpoint signer and its verifier.
func NewSigner(tb testing.TB) (note.Signer, note.Verifier) {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "phivault-test-audit")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, v
}

// Entry returns an audit entry for tests, holding ids only.
func Entry(i int) *phivault.AuditEntry {
	return &phivault.AuditEntry{
		Time:          t0.Add(time.Duration(i) * time.Millisecond),
		RequestID:     fmt.Sprintf("req%04d", i),
		Actor:         "admin",
		Action:        phivault.ActionRead,
		TargetType:    "Observation",
		TargetID:      fmt.Sprintf("obs-%d", i),
		TargetVersion: 1,
		Compartments:  []string{fmt.Sprintf("pat-%d", i%7)},
		Returned:      []string{fmt.Sprintf("Observation/obs-%d/_history/1", i)},
		Outcome:       "ok",
	}
}

// RunAudit runs the conformance suite for auditlog.Storage against the
// storage returned by open, which must be new and empty each time.
func RunAudit(t *testing.T, open func(t *testing.T) auditlog.Storage) {
	ctx := context.Background()
	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		if n, err := s.AuditSize(ctx); err != nil || n != 0 {
			t.Fatalf("AuditSize() = %d, %v, want 0", n, err)
		}
		if _, err := s.ReadAuditHashes(ctx, []int64{0}); err == nil {
			t.Errorf("ReadAuditHashes([0]) on an empty log = nil error")
		}
	})
	t.Run("AppendAudit/ErrConflict", func(t *testing.T) {
		s := open(t)
		if err := s.AppendAudit(ctx, 1, [][]byte{[]byte("x")}, []tlog.Hash{{}}); err == nil {
			t.Fatalf("AppendAudit(start 1) on an empty log = nil, want an error")
		}
		if n, _ := s.AuditSize(ctx); n != 0 {
			t.Errorf("AuditSize() = %d after a refused append, want 0", n)
		}
	})
	// A read stopped by its context keeps the context's error in the chain,
	// so that the API tells a client that went away from a failure of the
	// store. MemAudit does no I/O that a context could stop.
	if _, mem := open(t).(*MemAudit); !mem {
		t.Run("Canceled", func(t *testing.T) { runCanceled(t, open(t)) })
	}
	if _, ok := open(t).(auditlog.DeferredStorage); ok {
		t.Run("Deferred", func(t *testing.T) { runDeferred(t, open(t).(auditlog.DeferredStorage)) })
	}
	t.Run("Log", func(t *testing.T) {
		s := open(t)
		signer, verifier := NewSigner(t)
		l := auditlog.New(s, "phivault-test/audit", signer)
		l.CheckpointInterval = -1
		if err := l.Open(ctx); err != nil {
			t.Fatal(err)
		}
		var cps [][]byte
		var wg sync.WaitGroup
		for round := range 3 {
			for i := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := l.Append(ctx, Entry(round*100+i), Entry(round*100+i+50)); err != nil {
						t.Errorf("Append() = %v", err)
					}
				}()
			}
			wg.Wait()
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cps = append(cps, cp)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		tree, err := auditlog.Verify(ctx, s, verifier, "phivault-test/audit", cps)
		if err != nil {
			t.Fatalf("Verify() = %v", err)
		}
		if tree.N != 300 {
			t.Errorf("Verify() tree size %d, want 300", tree.N)
		}
		data, err := s.ReadAuditEntries(ctx, 299, 301)
		if err != nil || len(data) != 2 || data[0] == nil || data[1] != nil {
			t.Errorf("ReadAuditEntries(299, 301) = %d entries, %v; want [entry, nil]", len(data), err)
		}

		// Reopen: the log continues where it stopped.
		l2 := auditlog.New(s, "phivault-test/audit", signer)
		l2.CheckpointInterval = -1
		if err := l2.Open(ctx); err != nil {
			t.Fatal(err)
		}
		if got := l2.Tree(); got != tree {
			t.Errorf("reopened Tree() = %v, want %v", got, tree)
		}
		if err := l2.Append(ctx, Entry(1000)); err != nil {
			t.Fatal(err)
		}
		cp, err := l2.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		l2.Close()
		if _, err := auditlog.Verify(ctx, s, verifier, "", append(cps, cp)); err != nil {
			t.Fatalf("Verify() after reopen = %v", err)
		}
	})
}

// runDeferred checks the auditlog.DeferredStorage methods of an empty s.
func runDeferred(t *testing.T, s auditlog.DeferredStorage) {
	ctx := context.Background()
	d := [][]byte{[]byte("a"), []byte("b")}
	hs := []tlog.Hash{tlog.RecordHash(d[0]), tlog.RecordHash(d[1]), {}}
	if err := s.AppendAuditDeferred(ctx, 1, d, hs); phivault.ErrorCode(err) != phivault.ECONFLICT {
		t.Fatalf("AppendAuditDeferred(start 1) on an empty log = %v, want ECONFLICT", err)
	}
	if err := s.AppendAuditDeferred(ctx, 0, d, hs); err != nil {
		t.Fatal(err)
	}
	// Visible at once, before any sync.
	if n, err := s.AuditSize(ctx); err != nil || n != 2 {
		t.Fatalf("AuditSize() after a deferred append = %d, %v, want 2", n, err)
	}
	got, err := s.ReadAuditHashes(ctx, []int64{0, 1, 2})
	if err != nil || got[0] != hs[0] || got[2] != hs[2] {
		t.Fatalf("ReadAuditHashes() after a deferred append = %v, %v", got, err)
	}
	if err := s.SyncAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, 2, [][]byte{[]byte("c")}, []tlog.Hash{tlog.RecordHash([]byte("c"))}); err != nil {
		t.Fatalf("AppendAudit after deferred ones = %v", err)
	}
	if data, err := s.ReadAuditEntries(ctx, 0, 3); err != nil || string(data[1]) != "b" || string(data[2]) != "c" {
		t.Fatalf("ReadAuditEntries() = %q, %v", data, err)
	}
}

// runCanceled checks that reads stopped by their context say so.
func runCanceled(t *testing.T, s auditlog.Storage) {
	ctx := context.Background()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.AuditSize(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("AuditSize(canceled) = %v, want context.Canceled in the chain", err)
	}
	if _, err := s.ReadAuditEntries(cctx, 0, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAuditEntries(canceled) = %v, want context.Canceled in the chain", err)
	}
	if _, err := s.ReadAuditHashes(cctx, []int64{0}); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAuditHashes(canceled) = %v, want context.Canceled in the chain", err)
	}
}
