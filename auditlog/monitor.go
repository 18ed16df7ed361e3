package auditlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Defaults for the fields of Monitor.
const (
	DefaultMonitorInterval  = time.Minute
	DefaultMonitorFullEvery = 60 // a full pass every hour at the default interval
)

// Monitor verifies a running log's storage continuously: every Interval it
// checks the entries appended since its last pass (canonical, matching
// their stored hashes) and that the stored log extends the tree the Log
// itself computed from what it appended; every FullEvery-th pass it
// re-checks every entry from index 0 and, if the storage keeps an index
// (IndexStorage), the index against the entries (VerifyIndex). So an entry
// edited, removed or inserted in the database while the server runs, or an
// index row deleted, is noticed by the next full pass, and a cut or
// rewritten tail by the next pass of either kind.
//
// A pass runs in the background and never holds up Append. A mismatch is
// logged at error level and kept in Status until a later pass succeeds;
// the caller exports Status as health and metrics. Create it with
// NewMonitor, set fields, then Start; Close stops it. Check runs one pass
// at once (tests, and a pass on demand).
type Monitor struct {
	// Interval is the time between passes. Default (and zero)
	// DefaultMonitorInterval; negative means no passes on a timer (tests
	// call Check).
	Interval time.Duration
	// FullEvery makes every FullEvery-th pass a full one (the first pass
	// is always full). Default DefaultMonitorFullEvery; 1 makes every pass
	// full.
	FullEvery int
	// Now stamps passes. Default time.Now.
	Now func() time.Time
	// Logger receives failures (an entry index and the kind of mismatch;
	// entries hold no PHI, and none is logged). Default discards.
	Logger *slog.Logger

	store Storage
	log   *Log

	passMu sync.Mutex // serializes passes; guards tv and passes
	tv     *treeVerifier
	passes int

	mu     sync.Mutex // guards status
	status MonitorStatus

	stop chan struct{}
	done chan struct{}
}

// MonitorStatus is the outcome of a Monitor's passes so far.
type MonitorStatus struct {
	OK          bool      // no pass has failed since the last one that succeeded (true before any pass)
	Passes      int64     // passes run
	Failures    int64     // passes that found a mismatch or could not read the storage
	LastPass    time.Time // when the last pass ended
	LastSuccess time.Time // when the last successful pass ended
	Verified    int64     // entries the last successful pass covered
	Err         string    // the last failure, ids only; "" if OK
}

// NewMonitor returns a Monitor of l, whose storage is s, with default
// settings.
func NewMonitor(s Storage, l *Log) *Monitor {
	return &Monitor{
		Interval:  DefaultMonitorInterval,
		FullEvery: DefaultMonitorFullEvery,
		store:     s,
		log:       l,
		status:    MonitorStatus{OK: true},
	}
}

// Start starts the passes on a timer (unless Interval is negative).
func (m *Monitor) Start() {
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	if m.FullEvery < 1 {
		m.FullEvery = 1
	}
	if m.Interval == 0 {
		m.Interval = DefaultMonitorInterval
	}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	if m.Interval < 0 {
		close(m.done)
		return
	}
	go m.run()
}

func (m *Monitor) run() {
	defer close(m.done)
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-m.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		m.Check(ctx, false)
		cancel()
	}
}

// Close stops the passes, interrupting one that runs.
func (m *Monitor) Close() {
	if m.stop == nil {
		return
	}
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}

// Status returns the outcome of the passes so far.
func (m *Monitor) Status() MonitorStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// Check runs one pass now: a full one if full is set or one is due, else
// one over the entries appended since the last pass. It returns the
// mismatch found, if any, and records it in Status.
func (m *Monitor) Check(ctx context.Context, full bool) error {
	m.passMu.Lock()
	defer m.passMu.Unlock()
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	full = full || m.tv == nil || m.FullEvery <= 1 || m.passes%m.FullEvery == 0
	m.passes++
	n, err := m.pass(ctx, full)
	if err != nil {
		m.tv = nil // a pass cut short leaves tv unusable: start over from index 0 next time
	}
	if ctx.Err() != nil && err != nil {
		return err // stopped, not a finding
	}
	now := m.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status.Passes++
	m.status.LastPass = now
	if err != nil {
		m.status.OK = false
		m.status.Failures++
		m.status.Err = err.Error()
		m.Logger.Error("audit trail verification FAILED; run phivault audit verify", "full", full, "error", err.Error())
		return err
	}
	m.status.OK, m.status.Err = true, ""
	m.status.LastSuccess, m.status.Verified = now, n
	return nil
}

// pass checks the storage, from index 0 if full, and returns the size
// verified.
func (m *Monitor) pass(ctx context.Context, full bool) (int64, error) {
	// The reference: the tree the Log computed from what it appended,
	// all of it in the storage after Flush.
	if err := m.log.Flush(ctx); err != nil {
		return 0, fmt.Errorf("flush: %w", err)
	}
	ref := m.log.Tree()
	size, err := m.store.AuditSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit log size: %w", err)
	}
	if full || m.tv == nil {
		m.tv = &treeVerifier{m: hashMap{}}
	}
	if size < m.tv.n {
		return 0, &VerifyError{Index: size, Err: fmt.Errorf("the log has %d entries but %d were verified before: entries were removed", size, m.tv.n)}
	}
	if err := m.tv.extend(ctx, m.store, size); err != nil {
		return 0, err
	}
	tree, err := m.tv.tree()
	if err != nil {
		return 0, err
	}
	if err := checkExtends(ctx, m.store, tree, ref, 0, "the running log's tree"); err != nil {
		return 0, err
	}
	if is, ok := m.store.(IndexStorage); ok && full {
		if err := VerifyIndex(ctx, is); err != nil {
			return 0, err
		}
	}
	return tree.N, nil
}
