package auditlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Journal mode: how a Log on a DeferredStorage appends.
//
// An Append returns once its entry is fdatasynced in the journal; the
// storage commit follows in the background (see applier).
//
// Appends are journaled in groups by a leader, one of the appending
// goroutines itself (as in LevelDB's write path), so that no other
// goroutine has to be scheduled on the way: the first caller to find no
// leader becomes it, takes every entry waiting, numbers and hashes them,
// writes them to the journal, fdatasyncs it, hands them to the applier and
// answers the waiting callers. If more entries arrived meanwhile, it hands
// the leadership to the first of their callers. One fdatasync serves every
// request that arrived during the previous one, and one storage commit
// serves every group journaled during the previous commit.
//
// At Open, entries in the journal but not in the storage are appended
// again (replay). After a journal write or fdatasync fails, the Log stops
// using the journal: it waits for the applier to store what it holds,
// makes the storage durable and commits every batch durably, as on a plain
// Storage.

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
	l.ap = newApplier(ds, dir, l.seq, l.MaxBatch, l.ApplyDelay, l.publish, l.Logger)
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
			// The journal cannot be trusted: store what it acknowledged,
			// make the storage durable, then commit durably from there.
			if err := l.ap.flush(ctx); err != nil {
				return err
			}
			if err := l.deferred.SyncAudit(ctx); err != nil {
				return fmt.Errorf("auditlog: append: %w", err)
			}
			l.direct = true
		}
		return l.commit(batch)
	}
	if err := l.ap.failure(); err != nil {
		// Entries are refused while the storage fails, so that the
		// acknowledged ones waiting for it stay few.
		return fmt.Errorf("auditlog: append: storage failing: %w", err)
	}
	data, entries := liveData(batch)
	if len(data) == 0 {
		return context.Canceled
	}
	start := l.seq
	stored, subtrees := l.hash(data)
	if err := l.jr.write(start, data); err != nil {
		l.jbroken.Store(true)
		return err
	}
	if err := l.jr.sync.datasync(l.jr.f); err != nil {
		l.jbroken.Store(true)
		return fmt.Errorf("auditlog: journal fdatasync: %w", err)
	}
	l.subtrees, l.seq = subtrees, start+int64(len(data))
	l.recent.Add(start, entries)
	l.ap.enqueue(journaled{start: start, data: data, stored: stored, subtrees: subtrees})
	if l.jr.full() {
		// The applier removes the old segment once it has stored its
		// entries durably.
		if err := l.jr.start(l.seq); err != nil {
			l.Logger.Error("audit journal rotation", "error", err.Error())
		} else {
			l.ap.segmentStarted(l.seq)
		}
	}
	return nil
}

// Flush waits until every entry appended before the call is visible in the
// storage and covered by Tree, which in journal mode follows Append by a
// storage commit. It fails while the storage fails.
func (l *Log) Flush(ctx context.Context) error {
	if l.ap == nil {
		return nil
	}
	return l.ap.flush(ctx)
}

// closeJournal stops the applier, makes the storage durable and, if it
// holds every entry, removes the journal. Otherwise the journal stays, and
// the next Open appends its entries again.
func (l *Log) closeJournal() {
	stored := l.ap.close() || l.direct
	l.jr.close()
	if !stored {
		l.Logger.Error("audit log closed with entries the storage lacks; they are in the journal and are appended at the next start")
		return
	}
	if err := l.deferred.SyncAudit(context.Background()); err != nil {
		l.Logger.Error("audit log sync at close", "error", err.Error())
		return
	}
	if err := removeSegmentsBefore(l.jr.dir, l.seq+1); err != nil {
		l.Logger.Error("audit journal cleanup", "error", err.Error())
	}
}
