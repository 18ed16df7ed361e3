package auditlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Journal mode: how a Log on a DeferredStorage appends.
//
// Appends are committed in groups by a leader, one of the appending
// goroutines itself (as in LevelDB's write path), so that no other goroutine
// has to be scheduled on the way: the first caller to find no leader
// becomes it, takes every entry waiting, numbers and hashes them, writes
// them to the journal, fdatasyncs it, commits them to the storage in one
// transaction that is not fsynced itself (the entries are then visible to
// readers), publishes the grown tree to checkpoints and answers the
// waiting callers. If more entries arrived meanwhile, it hands the
// leadership to the first of their callers. One fdatasync and one storage
// commit serve every request that arrived during the previous ones.
//
// The storage is made durable (SyncAudit) before a full segment is
// removed, when the journal or the storage fails, and at Close; at Open,
// entries in the journal but not in the storage are appended again
// (replay). After a failure the Log stops using the journal and commits
// every batch durably, as on a plain Storage.

// DefaultJournalMax is the default of Log.JournalMax.
const DefaultJournalMax = 256

// errLead tells a waiting caller that it is the next leader.
var errLead = errors.New("auditlog: lead")

// openJournal replays the journal into the storage, if the storage keeps
// one, and starts a new segment.
func (l *Log) openJournal(ctx context.Context) error {
	ds, ok := l.store.(DeferredStorage)
	if !ok || ds.AuditJournal() == "" || l.NoJournal {
		return nil
	}
	dir := ds.AuditJournal()
	if l.JournalSegment <= 0 {
		l.JournalSegment = DefaultJournalSegment
	}
	if l.JournalMax == 0 {
		l.JournalMax = DefaultJournalMax
	}
	data, err := readJournal(dir, l.seq)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("auditlog: replay journal: %w", err)
	}
	for len(data) > 0 {
		part := data[:min(len(data), l.MaxBatch)]
		data = data[len(part):]
		tree, err := l.store1(part, ds.AppendAudit)
		if err != nil {
			return fmt.Errorf("auditlog: replay journal: %w", err)
		}
		l.publish(tree)
	}
	jr, err := openJournal(dir, l.seq, l.JournalSegment)
	if err != nil {
		return err
	}
	l.deferred, l.jr = ds, jr
	l.jbroken.Store(false)
	return nil
}

// appendJournal queues req and waits for its answer, leading the group
// commit when no one else does.
func (l *Log) appendJournal(req *appendReq) error {
	l.jmu.Lock()
	l.pending = append(l.pending, req)
	lead := !l.leading
	l.leading = true
	l.jmu.Unlock()
	if !lead {
		err := <-req.done
		if err != errLead {
			return err
		}
	}
	l.lead()
	return <-req.done
}

// lead commits one group: every request waiting, up to MaxBatch entries.
// Then it passes the leadership on, or gives it up if no one waits.
func (l *Log) lead() {
	l.jmu.Lock()
	n, k := 0, 0
	for k < len(l.pending) && (k == 0 || n+len(l.pending[k].data) <= l.MaxBatch) {
		n += len(l.pending[k].data)
		k++
	}
	batch := l.pending[:k:k]
	l.pending = l.pending[k:]
	l.jmu.Unlock()

	l.commitGroup(batch)

	l.jmu.Lock()
	if len(l.pending) == 0 {
		l.pending = nil
		l.leading = false
		l.jmu.Unlock()
		return
	}
	next := l.pending[0]
	l.jmu.Unlock()
	next.done <- errLead
}

// commitGroup appends a batch through the journal and answers it.
func (l *Log) commitGroup(batch []*appendReq) {
	answer(batch, l.commitJournal(batch))
}

func (l *Log) commitJournal(batch []*appendReq) error {
	ctx := context.Background() // a batch outlives its callers' contexts
	if l.jbroken.Load() {
		if !l.direct {
			// The journal cannot be trusted: make the storage durable,
			// then commit durably from what it holds, as without a journal.
			if err := l.deferred.SyncAudit(ctx); err != nil {
				return fmt.Errorf("auditlog: append: %w", err)
			}
			l.direct, l.stale = true, true
		}
		return l.commit(batch)
	}
	data := liveData(batch)
	if len(data) == 0 {
		return context.Canceled
	}
	if l.stale {
		// A failed commit may have stored entries: make whatever the
		// storage holds durable, and go on from there.
		if err := l.deferred.SyncAudit(ctx); err != nil {
			return fmt.Errorf("auditlog: append: %w", err)
		}
		if err := l.reload(ctx); err != nil {
			return err
		}
	}
	if len(data) > l.JournalMax {
		// A large group: its storage commit takes much longer than an
		// fsync, so writing it to the journal too would only add work.
		// Committed durably, it also makes the earlier deferred commits
		// durable; the journal's records below it are never replayed.
		tree, err := l.store1(data, l.deferred.AppendAudit)
		if err != nil {
			return err
		}
		l.publish(tree)
		return nil
	}
	start := l.seq
	hs, tree, err := l.hash(data)
	if err != nil {
		return err
	}
	if err := l.jr.write(start, data); err != nil {
		l.jbroken.Store(true)
		return err
	}
	// The fdatasync and the storage commit run side by side; the entries
	// may be visible before they are durable, but no caller is answered
	// and no checkpoint covers them before both are done.
	synced := make(chan error, 1)
	f := l.jr.f
	go func() { synced <- datasync(f) }()
	serr := l.deferred.AppendAuditDeferred(ctx, start, data, hs.stored)
	jerr := <-synced
	switch {
	case jerr != nil:
		l.jbroken.Store(true)
		return fmt.Errorf("auditlog: journal fdatasync: %w", jerr)
	case serr != nil:
		// The journal holds entries the storage lacks; they are appended
		// at the next Open, unless the storage has others by then.
		l.jbroken.Store(true)
		return fmt.Errorf("auditlog: append: %w", serr)
	}
	l.frontier, l.seq, l.seqTree = hs.frontier, tree.N, tree
	l.publish(tree)
	if l.jr.full() {
		if err := l.rotate(ctx); err != nil {
			l.Logger.Error("audit journal rotation", "error", err.Error())
		}
	}
	return nil
}

// rotate makes the storage durable, starts a new segment and removes the
// older ones, whose entries the storage now holds durably.
func (l *Log) rotate(ctx context.Context) error {
	if err := l.deferred.SyncAudit(ctx); err != nil {
		return err
	}
	if err := l.jr.start(l.seq); err != nil {
		return err
	}
	return l.jr.removeBefore(l.seq)
}

// closeJournal waits for the syncer, makes the storage durable and, if that
// worked, removes the journal: it holds nothing the storage lacks.
func (l *Log) closeJournal() {
	l.jr.close()
	if err := l.deferred.SyncAudit(context.Background()); err != nil {
		l.Logger.Error("audit log sync at close", "error", err.Error())
		return
	}
	if !l.jbroken.Load() {
		l.publish(l.seqTree)
	}
	if err := l.jr.removeBefore(l.seq + 1); err != nil {
		l.Logger.Error("audit journal cleanup", "error", err.Error())
	}
}
