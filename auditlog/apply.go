package auditlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"golang.org/x/mod/sumdb/tlog"
)

// An applier commits the groups a Log has made durable in its journal to
// the DeferredStorage, in the background and without an fsync: one
// goroutine waits up to delay after a group arrives, then takes every group
// queued (up to max entries) and stores them in one transaction, so that
// one storage commit serves many groups (a commit of hundreds of entries
// costs a fifth per entry of a commit of a few). It goes at once when a
// flush waits, when closing, or when a quarter of max is queued. Entries
// are visible to readers, and covered by checkpoints, once applied.
//
// If a commit fails, the applier keeps the groups and tries again with
// backoff; while it fails, failure reports the error, and the Log refuses
// new entries rather than queue them without bound. An acknowledged entry
// is never dropped: it is in the journal until the storage holds it
// durably.
//
// The applier also owns the journal's old segments: once the entries of a
// segment are applied, it makes the storage durable and removes the
// segment.
type applier struct {
	store   DeferredStorage
	dir     string // the journal's directory
	max     int    // entries per storage commit
	delay   time.Duration
	limit   int64 // entries queued at most before enqueue waits
	publish func(tlog.Tree)
	logger  *slog.Logger

	mu      sync.Mutex
	queue   []journaled
	queued  int64   // index after the last entry queued
	applied int64   // index after the last entry in the storage
	segs    []int64 // first index of each journal segment, oldest first
	err     error   // the last commit's error; nil once one works
	closing bool
	flushes int           // flush calls waiting
	changed chan struct{} // closed and replaced when applied or err change
	wake    chan struct{} // capacity 1: work was queued, or closing
	done    chan struct{} // closed when run returns
}

// journaled is a group of entries in the journal: their data from index
// start, their stored hashes, and the subtrees of the tree they complete
// (its root is computed once per storage commit, not per group).
type journaled struct {
	start    int64
	data     [][]byte
	stored   []tlog.Hash
	subtrees []tlog.Hash
}

// tree returns the tree that g completes.
func (g journaled) tree() tlog.Tree {
	return tlog.Tree{N: g.start + int64(len(g.data)), Hash: rootHash(g.subtrees)}
}

// maxBackoff bounds the wait between tries of a failing storage commit.
const maxBackoff = time.Second

// newApplier returns an applier for a storage holding size entries, whose
// journal's current segment starts at index size, and starts it.
func newApplier(store DeferredStorage, dir string, size int64, max int, delay time.Duration, publish func(tlog.Tree), logger *slog.Logger) *applier {
	a := &applier{
		store: store, dir: dir, max: max, delay: delay, limit: 16 * int64(max), publish: publish, logger: logger,
		queued: size, applied: size, segs: []int64{size},
		changed: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go a.run()
	return a
}

// notify wakes the callers waiting for a change. The caller holds a.mu.
func (a *applier) notify() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// failure returns the error of the last storage commit if it failed.
func (a *applier) failure() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// enqueue hands g, now durable in the journal, to the applier. It waits
// while more than a.limit entries are queued and the storage works.
func (a *applier) enqueue(g journaled) {
	a.mu.Lock()
	for a.queued-a.applied > a.limit && a.err == nil && !a.closing {
		ch := a.changed
		a.mu.Unlock()
		<-ch
		a.mu.Lock()
	}
	a.queue = append(a.queue, g)
	a.queued = g.start + int64(len(g.data))
	// run waits for the first group, then gathers for a.delay unless the
	// commit becomes urgent: other groups need not wake it.
	wake := len(a.queue) == 1 || a.urgent()
	a.mu.Unlock()
	if wake {
		a.poke()
	}
}

// poke wakes run to look at the queue again.
func (a *applier) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// urgent reports whether run should commit now rather than wait for more
// groups. The caller holds a.mu.
func (a *applier) urgent() bool {
	return a.closing || a.flushes > 0 || a.queued-a.applied >= int64(a.max/4)
}

// segmentStarted records that the journal's entries from index first on
// go to a new segment.
func (a *applier) segmentStarted(first int64) {
	a.mu.Lock()
	a.segs = append(a.segs, first)
	a.mu.Unlock()
}

// flush waits until every entry queued before the call is in the storage.
// It fails with the storage's error while commits fail.
func (a *applier) flush(ctx context.Context) error {
	a.mu.Lock()
	target := a.queued
	a.flushes++
	defer func() { a.mu.Lock(); a.flushes--; a.mu.Unlock() }()
	if a.applied < target {
		a.poke()
	}
	for a.applied < target {
		if a.err != nil {
			err := a.err
			a.mu.Unlock()
			return fmt.Errorf("auditlog: storage: %w", err)
		}
		ch := a.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		a.mu.Lock()
	}
	a.mu.Unlock()
	return nil
}

// close applies what is queued, unless the storage fails, and stops the
// applier. It reports whether the storage holds every queued entry.
func (a *applier) close() bool {
	a.mu.Lock()
	a.closing = true
	a.notify()
	a.mu.Unlock()
	a.poke()
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied == a.queued
}

// run commits queued groups until close, retrying a failing commit with
// backoff; once closing, it stops at the first failure.
func (a *applier) run() {
	defer close(a.done)
	backoff := time.Millisecond
	for {
		a.mu.Lock()
		for len(a.queue) == 0 && !a.closing {
			a.mu.Unlock()
			<-a.wake
			a.mu.Lock()
		}
		if len(a.queue) == 0 {
			a.mu.Unlock()
			return
		}
		if !a.urgent() && a.delay > 0 {
			a.mu.Unlock()
			a.gather()
			a.mu.Lock()
		}
		k, g := a.take()
		a.mu.Unlock()

		err := a.commit(g)

		if err == nil {
			// Before flush returns: Tree covers what it waited for, and
			// the journal holds no segment the storage holds durably.
			a.publish(g.tree())
			a.trimJournal(g.start + int64(len(g.data)))
		}
		a.mu.Lock()
		closing := a.closing
		if err != nil {
			first := a.err == nil
			a.err = err
			a.notify()
			a.mu.Unlock()
			if first {
				a.logger.Error("audit storage commit failed; new entries are refused until it works", "error", err.Error())
			}
			if closing {
				return
			}
			a.sleep(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = time.Millisecond
		if a.err != nil {
			a.logger.Info("audit storage commit works again")
		}
		a.err = nil
		a.queue = a.queue[k:]
		if len(a.queue) == 0 {
			a.queue = nil
		}
		a.applied = g.start + int64(len(g.data))
		a.notify()
		a.mu.Unlock()
	}
}

// take returns how many queued groups the next commit takes, up to a.max
// entries but at least one, and them merged into one. The caller holds
// a.mu.
func (a *applier) take() (int, journaled) {
	k, n := 1, len(a.queue[0].data)
	for k < len(a.queue) && n+len(a.queue[k].data) <= a.max {
		n += len(a.queue[k].data)
		k++
	}
	if k == 1 {
		return 1, a.queue[0]
	}
	g := journaled{start: a.queue[0].start, data: make([][]byte, 0, n), subtrees: a.queue[k-1].subtrees}
	for _, q := range a.queue[:k] {
		g.data = append(g.data, q.data...)
		g.stored = append(g.stored, q.stored...)
	}
	return k, g
}

// commit stores g without an fsync. If an earlier try that reported an
// error had in fact committed g, the storage holds exactly g's end and
// commit succeeds.
func (a *applier) commit(g journaled) error {
	ctx := context.Background() // the entries are acknowledged: no caller can cancel them
	err := a.store.AppendAuditDeferred(ctx, g.start, g.data, g.stored)
	if phivault.ErrorCode(err) == phivault.ECONFLICT {
		if n, serr := a.store.AuditSize(ctx); serr == nil && n == g.start+int64(len(g.data)) {
			return nil
		}
	}
	return err
}

// gather waits up to a.delay for more groups, unless the commit becomes
// urgent.
func (a *applier) gather() {
	t := time.NewTimer(a.delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-a.wake:
		}
		a.mu.Lock()
		urgent := a.urgent()
		a.mu.Unlock()
		if urgent {
			return
		}
	}
}

func (a *applier) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	a.mu.Lock()
	ch := a.changed // closed by close
	a.mu.Unlock()
	select {
	case <-t.C:
	case <-ch:
	}
}

// trimJournal removes the segments whose entries are all below applied,
// which the storage holds, after making the storage durable.
func (a *applier) trimJournal(applied int64) {
	a.mu.Lock()
	k := 0
	for k+1 < len(a.segs) && a.segs[k+1] <= applied {
		k++
	}
	keep := a.segs[k]
	a.mu.Unlock()
	if k == 0 {
		return
	}
	if err := a.store.SyncAudit(context.Background()); err != nil {
		a.logger.Error("audit storage sync before journal trim", "error", err.Error())
		return
	}
	if err := removeSegmentsBefore(a.dir, keep); err != nil {
		a.logger.Error("audit journal trim", "error", err.Error())
		return
	}
	a.mu.Lock()
	a.segs = a.segs[k:]
	a.mu.Unlock()
}
