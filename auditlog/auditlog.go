// Package auditlog implements phivault's tamper-evident audit trail: a
// [phivault.RecordService] layer that records every attempt before any data
// leaves, and a [phivault.AuditLog] whose entries form an RFC 6962 Merkle
// tree (built on golang.org/x/mod/sumdb/tlog) with signed checkpoints
// (golang.org/x/mod/sumdb/note).
//
// The package does no I/O of its own: entries and tree hashes are kept by a
// [Storage] (the sqlite and postgres stores implement it), and checkpoints
// are handed to [Witness]es that publish them outside the database.
//
// # Entries and the tree
//
// Each entry is encoded canonically (see [Encode]) and gets the next index.
// The leaf hash is tlog.RecordHash of the encoded bytes, and the stored
// hashes of the tree are tlog.StoredHashes, kept beside the entries. A
// checkpoint states the tree size and root hash, signed with an Ed25519
// note key; [Verify] checks every entry, every stored hash and consistency
// with saved checkpoints, and names the first bad index.
package auditlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/tail"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Storage keeps the log's entries and the stored hashes of its Merkle tree.
// Implementations are safe for concurrent use by multiple goroutines.
type Storage interface {
	// AuditSize returns the number of entries: one more than the highest
	// index stored, or 0.
	AuditSize(ctx context.Context) (int64, error)
	// AppendAudit stores data[i] as the entry at index start+i, and hashes
	// at stored-hash indexes tlog.StoredHashIndex(0, start) onward, in one
	// transaction. It MUST NOT return nil until both are durably
	// committed. It stores nothing and fails if the log does not hold
	// exactly start entries.
	AppendAudit(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error
	// ReadAuditHashes returns the stored hashes at indexes, in order, or an
	// error if any is missing.
	ReadAuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// ReadAuditEntries returns the entries with indexes in [start, end), one
	// slot per index, nil where an index has no entry.
	ReadAuditEntries(ctx context.Context, start, end int64) ([][]byte, error)
}

// DeferredStorage is a Storage that can commit an append without waiting
// for it to be durable, which lets a Log acknowledge entries from its own
// journal (an append-only file fsynced in batches) instead of waiting for
// a durable storage commit. A Log uses it when AuditJournal is not empty.
// Only one Log may append to a DeferredStorage: the journal numbers the
// entries.
type DeferredStorage interface {
	Storage
	// AppendAuditDeferred is AppendAudit, except that it may return before
	// the commit is durable. The entries are visible to readers when it
	// returns; a crash may lose them, in the order they were appended.
	AppendAuditDeferred(ctx context.Context, start int64, data [][]byte, hashes []tlog.Hash) error
	// SyncAudit returns once every append committed before the call is
	// durable.
	SyncAudit(ctx context.Context) error
	// AuditJournal returns the directory of the Log's journal, kept beside
	// the storage, or "" for none.
	AuditJournal() string
}

// A Witness publishes signed checkpoints outside the database, so that a
// rewrite of the database can be detected.
type Witness interface {
	Publish(ctx context.Context, signedCheckpoint []byte) error
}

// Defaults for the fields of Log.
const (
	DefaultMaxBatch           = 4096
	DefaultCheckpointInterval = time.Second
	DefaultCheckpointEvery    = 4096
	DefaultApplyDelay         = 10 * time.Millisecond
)

// Log is a phivault.AuditLog on a Storage. Create it with New, set fields,
// then call Open; Close publishes a last checkpoint and stops it. Log is safe
// for concurrent use by multiple goroutines once open.
//
// Concurrent Appends are committed together: one goroutine takes every
// entry waiting (up to MaxBatch), computes their tree hashes and stores them
// with one AppendAudit, so many callers share one fsync. On a
// DeferredStorage with a journal (SQLite), a group is instead flushed to the
// journal and stored in the background (see append_journal.go and
// apply.go): an entry is durable when Append returns, and visible to
// readers and checkpoints after Flush.
type Log struct {
	// Origin names the log in its checkpoints, e.g. "phivault/audit/<id>".
	Origin string
	// Signer signs checkpoints. If nil, no checkpoints are made.
	Signer note.Signer
	// Witnesses receive every checkpoint. A failing witness is logged.
	Witnesses []Witness
	// MaxBatch bounds the entries of one AppendAudit. Default DefaultMaxBatch.
	MaxBatch int
	// CheckpointInterval is how often a checkpoint is made while the log
	// grows. Default DefaultCheckpointInterval; negative means never on a
	// timer (tests call Checkpoint).
	CheckpointInterval time.Duration
	// CheckpointEvery makes a checkpoint as soon as this many entries were
	// added since the last one. Default DefaultCheckpointEvery.
	CheckpointEvery int64
	// Now stamps entries that have no time. Default time.Now.
	Now func() time.Time
	// Logger receives witness failures. Default discards.
	Logger *slog.Logger
	// JournalSegment is the size in bytes of the journal's segment files,
	// zero-filled when made. Default DefaultJournalSegment.
	JournalSegment int64
	// ApplyDelay is how long, in journal mode, entries acknowledged from
	// the journal may wait to be committed to the storage with others
	// (Flush and Close do not wait for it). Default DefaultApplyDelay;
	// negative means no wait.
	ApplyDelay time.Duration
	// NoJournal makes the Log commit every batch durably to a
	// DeferredStorage, as to a plain Storage, instead of acknowledging
	// entries from its journal (for comparisons).
	NoJournal bool

	store  Storage
	reqs   chan *appendReq
	done   chan struct{} // closed when the committer exits
	ckpt   chan struct{} // wakes the checkpointer; capacity 1
	stop   chan struct{} // closed by Close to stop the checkpointer
	ckDone chan struct{}

	// Owned by the committer goroutine, or in journal mode by the leader.
	subtrees []tlog.Hash // of the tree of seq entries (see appendHashes)
	seq      int64       // entries committed to the store, or journaled
	stale    bool        // a failed append may have committed; reload first

	// Journal mode (see journal.go and append_journal.go); nil jr means
	// every batch is committed durably to the store.
	deferred DeferredStorage
	jr       *journal       // owned by the leader
	ap       *applier       // stores journaled entries
	jbroken  atomic.Bool    // a journal write or fdatasync failed
	direct   bool           // after jbroken: committing durably without the journal
	jmu      sync.Mutex     // guards pending and leading
	pending  []*appendReq   // waiting for the leader
	leading  bool           // a caller is leading the group commit
	inflight sync.WaitGroup // Appends in journal mode, for Close

	mu        sync.Mutex // guards the fields below
	tree      tlog.Tree  // committed tree
	latest    []byte     // latest signed checkpoint
	latestN   int64      // its size
	onPublish []func()   // see OnPublish

	recent *tail.Tail[*phivault.AuditEntry] // the latest entries appended, for Recent

	closeMu sync.RWMutex // guards closed against sends on reqs
	closed  bool

	pubMu sync.Mutex // serializes checkpoint publication
}

var _ phivault.AuditLog = (*Log)(nil)

// New returns a Log on store with default settings.
func New(store Storage, origin string, signer note.Signer) *Log {
	return &Log{
		Origin:             origin,
		Signer:             signer,
		MaxBatch:           DefaultMaxBatch,
		ApplyDelay:         DefaultApplyDelay,
		CheckpointInterval: DefaultCheckpointInterval,
		CheckpointEvery:    DefaultCheckpointEvery,
		store:              store,
		recent:             tail.New[*phivault.AuditEntry](RecentEntries),
	}
}

type appendReq struct {
	ctx     context.Context
	data    [][]byte
	entries []*phivault.AuditEntry // copies of what data encodes, for Recent
	done    chan error
	skipped bool // left out of its batch: its caller had gone
}

var errClosed = errors.New("auditlog: log is closed")

// Open reads the tree's size and frontier from the store and starts the
// committer and the checkpointer.
func (l *Log) Open(ctx context.Context) error {
	if l.Now == nil {
		l.Now = time.Now
	}
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
	if l.MaxBatch < 1 {
		l.MaxBatch = 1
	}
	if l.CheckpointEvery < 1 {
		l.CheckpointEvery = DefaultCheckpointEvery
	}
	if err := l.reload(ctx); err != nil {
		return err
	}
	if err := l.openJournal(ctx); err != nil {
		return err
	}
	l.reqs = make(chan *appendReq, l.MaxBatch) // room for a whole batch to wait during a commit
	l.done = make(chan struct{})
	l.ckpt = make(chan struct{}, 1)
	l.stop = make(chan struct{})
	l.ckDone = make(chan struct{})
	if l.jr == nil {
		go l.committer()
	}
	go l.checkpointer()
	return nil
}

// reload reads the size and frontier hashes of the stored tree.
func (l *Log) reload(ctx context.Context) error {
	n, err := l.store.AuditSize(ctx)
	if err != nil {
		return fmt.Errorf("auditlog: size: %w", err)
	}
	hs, err := l.store.ReadAuditHashes(ctx, frontier(n))
	if err != nil {
		return fmt.Errorf("auditlog: read tree: %w", err)
	}
	l.subtrees = hs
	l.seq = n
	l.stale = false
	l.publish(tlog.Tree{N: n, Hash: rootHash(hs)})
	return nil
}

// publish makes tree, which is durable, the committed tree, unless that
// has grown past it already.
func (l *Log) publish(tree tlog.Tree) {
	l.mu.Lock()
	grew := tree.N > l.tree.N
	if tree.N >= l.tree.N {
		l.tree = tree
	}
	due := l.tree.N-l.latestN >= l.CheckpointEvery
	notify := l.onPublish
	l.mu.Unlock()
	if grew {
		for _, fn := range notify {
			fn()
		}
	}
	if due && l.ckpt != nil {
		select {
		case l.ckpt <- struct{}{}:
		default:
		}
	}
}

// Append durably adds entries to the log. Entries without a Time get l.Now().
// It returns once the entries are durable (in journal mode, before they are
// visible in the storage: see Flush), or with an error, in which case they
// may or may not be in the log.
func (l *Log) Append(ctx context.Context, entries ...*phivault.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	req := &appendReq{ctx: ctx, data: make([][]byte, len(entries)), entries: make([]*phivault.AuditEntry, len(entries)), done: make(chan error, 1)}
	copies := make([]phivault.AuditEntry, len(entries))
	for i, e := range entries {
		if e.Time.IsZero() {
			e.Time = l.Now()
		}
		b, err := Encode(e)
		if err != nil {
			return err
		}
		req.data[i] = b
		copies[i] = *e
		req.entries[i] = &copies[i]
	}
	// Sending under closeMu keeps Close from closing reqs under us.
	l.closeMu.RLock()
	if l.closed || l.reqs == nil {
		l.closeMu.RUnlock()
		return errClosed
	}
	if l.jr != nil {
		l.inflight.Add(1)
		l.closeMu.RUnlock()
		defer l.inflight.Done()
		return l.appendJournal(req)
	}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		l.closeMu.RUnlock()
		return ctx.Err()
	}
	l.closeMu.RUnlock()
	return <-req.done
}

// committer is the single goroutine that appends to the store.
func (l *Log) committer() {
	defer close(l.done)
	for req := range l.reqs {
		batch := []*appendReq{req}
		n := len(req.data)
	more:
		for n < l.MaxBatch {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
				n += len(r.data)
			default:
				break more
			}
		}
		answer(batch, l.commit(batch))
	}
}

// commit appends a batch's entries in one storage transaction. If another
// writer (a second node on the same database) appended first, it reloads the
// tree and tries once more.
func (l *Log) commit(batch []*appendReq) error {
	err := l.commitOnce(batch)
	if phivault.ErrorCode(err) == phivault.ECONFLICT {
		err = l.commitOnce(batch)
	}
	return err
}

func (l *Log) commitOnce(batch []*appendReq) error {
	data, entries := liveData(batch)
	if len(data) == 0 {
		return context.Canceled
	}
	tree, err := l.store1(data, l.store.AppendAudit)
	if err != nil {
		return err
	}
	l.recent.Add(tree.N-int64(len(entries)), entries)
	l.publish(tree)
	return nil
}

// liveData returns the entries of the requests whose callers still wait,
// encoded and as given, and marks the others skipped.
func liveData(batch []*appendReq) ([][]byte, []*phivault.AuditEntry) {
	var (
		data    [][]byte
		entries []*phivault.AuditEntry
	)
	for _, r := range batch {
		if r.ctx.Err() == nil {
			data = append(data, r.data...)
			entries = append(entries, r.entries...)
		} else {
			r.skipped = true
		}
	}
	return data, entries
}

// answer sends err to every request of batch, and to those whose entries
// were left out because their caller had gone, that they were not written.
func answer(batch []*appendReq, err error) {
	for _, r := range batch {
		if r.skipped && err == nil {
			r.done <- context.Canceled
			continue
		}
		r.done <- err
	}
}

// store1 hashes data into the tree after the l.seq entries committed so
// far and stores it with appendFn. It returns the grown tree.
func (l *Log) store1(data [][]byte, appendFn func(context.Context, int64, [][]byte, []tlog.Hash) error) (tlog.Tree, error) {
	ctx := context.Background() // a batch outlives its callers' contexts
	if l.stale {
		if err := l.reload(ctx); err != nil {
			return tlog.Tree{}, err
		}
	}
	start := l.seq
	stored, subtrees := l.hash(data)
	if err := appendFn(ctx, start, data, stored); err != nil {
		l.stale = true
		return tlog.Tree{}, fmt.Errorf("auditlog: append: %w", err)
	}
	tree := tlog.Tree{N: start + int64(len(data)), Hash: rootHash(subtrees)}
	l.subtrees, l.seq = subtrees, tree.N
	return tree, nil
}

// hash returns the stored hashes of data as entries l.seq… and the
// subtrees of the grown tree, without changing l.
func (l *Log) hash(data [][]byte) (stored, subtrees []tlog.Hash) {
	leaves := make([]tlog.Hash, len(data))
	for i, d := range data {
		leaves[i] = tlog.RecordHash(d)
	}
	return appendHashes(l.subtrees, l.seq, leaves)
}

// checkpointer makes a checkpoint every CheckpointInterval while the log
// grows, and when the committer asks for one.
func (l *Log) checkpointer() {
	defer close(l.ckDone)
	var tick <-chan time.Time
	if l.CheckpointInterval > 0 {
		t := time.NewTicker(l.CheckpointInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.stop:
			return
		case <-tick:
		case <-l.ckpt:
		}
		if _, err := l.Checkpoint(context.Background()); err != nil {
			l.Logger.Error("audit checkpoint", "error", err.Error())
		}
	}
}

// Recent returns the entries with indexes in [start, end), as appended,
// if they are all committed (end <= Tree().N) and still among the latest
// RecentEntries this Log appended itself; otherwise false, and the caller
// reads them from the storage. A reader tailing the log (the detectors)
// so skips reading back and decoding what it just wrote. The entries are
// shared: callers MUST NOT change them.
func (l *Log) Recent(start, end int64) ([]*phivault.AuditEntry, bool) {
	if end > l.Tree().N {
		return nil, false
	}
	return l.recent.Get(start, end)
}

// RecentEntries is how many of the latest entries a Log keeps in memory
// for Recent: at 10,000 entries a second, over a second and a half.
const RecentEntries = 16384

// OnPublish registers fn to be called each time entries become visible
// to readers (Tree grows), so a reader tailing the log need not poll. fn
// is called on the committing goroutine: it MUST NOT block.
func (l *Log) OnPublish(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onPublish = append(l.onPublish, fn)
}

// Tree returns the size and root hash of the committed tree.
func (l *Log) Tree() tlog.Tree {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tree
}

// Checkpoint signs the committed tree, which holds every entry appended
// before the call (see Flush), publishes the checkpoint to every witness if
// the tree grew since the last one, and returns it.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	if l.Signer == nil {
		return nil, errors.New("auditlog: no checkpoint signer")
	}
	if err := l.Flush(ctx); err != nil {
		return nil, err
	}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	l.mu.Lock()
	tree, latest, latestN := l.tree, l.latest, l.latestN
	l.mu.Unlock()
	if latest != nil && tree.N == latestN {
		return latest, nil
	}
	signed, err := SignCheckpoint(Checkpoint{Origin: l.Origin, Tree: tree}, l.Signer)
	if err != nil {
		return nil, fmt.Errorf("auditlog: sign checkpoint: %w", err)
	}
	var errs []error
	for _, w := range l.Witnesses {
		if err := w.Publish(ctx, signed); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	l.latest, l.latestN = signed, tree.N
	l.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return signed, fmt.Errorf("auditlog: publish checkpoint: %w", err)
	}
	return signed, nil
}

// ProveInclusion returns the proof that entry index is in the tree of size
// entries, for tlog.CheckRecord.
func (l *Log) ProveInclusion(ctx context.Context, index, size int64) (tlog.RecordProof, error) {
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	if index < 0 || index >= size {
		return nil, phivault.Errorf(phivault.EINVALID, "The index must be below the tree size.")
	}
	return tlog.ProveRecord(size, index, l.reader(ctx))
}

// ProveConsistency returns the proof that the tree of size old is a prefix
// of the tree of size size, for tlog.CheckTree.
func (l *Log) ProveConsistency(ctx context.Context, old, size int64) (tlog.TreeProof, error) {
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	if old < 1 || old > size {
		return nil, phivault.Errorf(phivault.EINVALID, "The old size must be between 1 and the new size.")
	}
	return tlog.ProveTree(size, old, l.reader(ctx))
}

func (l *Log) checkSize(size int64) error {
	if size < 1 || size > l.Tree().N {
		return phivault.Errorf(phivault.EINVALID, "The tree size must be between 1 and the current size.")
	}
	return nil
}

func (l *Log) reader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return l.store.ReadAuditHashes(ctx, idx)
	})
}

// Close waits for pending appends, stops the checkpointer and publishes a
// last checkpoint.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if l.closed || l.reqs == nil {
		l.closed = true
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	if l.jr != nil {
		l.closeMu.Unlock()
		l.inflight.Wait()
		l.closeJournal()
	} else {
		close(l.reqs)
		l.closeMu.Unlock()
		<-l.done
	}
	close(l.stop)
	<-l.ckDone
	if l.Signer == nil {
		return nil
	}
	_, err := l.Checkpoint(context.Background())
	return err
}

// CheckConsistent checks that the committed tree extends the tree of c
// (typically the last checkpoint a witness holds), so that a database
// rolled back or rewritten since is noticed at start.
func (l *Log) CheckConsistent(ctx context.Context, c Checkpoint) error {
	tree := l.Tree()
	if c.N > tree.N {
		return fmt.Errorf("auditlog: the log has %d entries but checkpoint covers %d: entries were removed", tree.N, c.N)
	}
	if c.N == 0 {
		return nil
	}
	p, err := tlog.ProveTree(tree.N, c.N, l.reader(ctx))
	if err != nil {
		return fmt.Errorf("auditlog: prove consistency: %w", err)
	}
	if err := tlog.CheckTree(p, tree.N, tree.Hash, c.N, c.Hash); err != nil {
		return fmt.Errorf("auditlog: the log does not extend checkpoint of size %d: %w", c.N, err)
	}
	return nil
}
