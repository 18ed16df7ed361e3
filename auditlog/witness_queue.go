package auditlog

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for WitnessQueue.
const (
	DefaultWitnessQueueSize  = 64
	DefaultWitnessAttempts   = 8
	DefaultWitnessBackoff    = 250 * time.Millisecond
	DefaultWitnessMaxBackoff = 30 * time.Second
	defaultWitnessCloseWait  = 5 * time.Second
)

// WitnessQueue is a Witness that hands checkpoints to another Witness in the
// background, so that a slow or unreachable witness (a webhook, a syslog
// server) never holds up the log. Publish only queues: the queue is bounded
// (Size), and when it is full the oldest checkpoint waiting is dropped, which
// loses nothing a later checkpoint does not also prove, since every
// checkpoint covers the whole log. A failed delivery is logged and retried
// with exponential backoff up to Attempts times.
//
// Create it with NewWitnessQueue and stop it with Close. It is safe for
// concurrent use by multiple goroutines.
type WitnessQueue struct {
	name   string
	w      Witness
	opts   WitnessQueueOptions
	ch     chan queuedCheckpoint
	mu     sync.Mutex // serializes drop-oldest in Publish
	stop   chan struct{}
	done   chan struct{}
	closed atomic.Bool

	published, failures, dropped atomic.Int64
	lastLatency                  atomic.Int64 // nanoseconds
}

// WitnessQueueOptions configures a WitnessQueue; zero fields take defaults.
type WitnessQueueOptions struct {
	// Size bounds the checkpoints waiting. Default DefaultWitnessQueueSize.
	Size int
	// Attempts bounds the deliveries tried per checkpoint. Default
	// DefaultWitnessAttempts.
	Attempts int
	// Backoff is the wait after the first failure; it doubles after each
	// one, up to MaxBackoff. Defaults DefaultWitnessBackoff and
	// DefaultWitnessMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Now times publication latency. Default time.Now.
	Now func() time.Time
	// Logger receives failures (with the witness's name, never checkpoint
	// contents). Default discards.
	Logger *slog.Logger
	// Published, if set, is called after each delivery with the time from
	// Publish to the witness's acknowledgment.
	Published func(latency time.Duration)
}

// WitnessStats counts a WitnessQueue's work since it started.
type WitnessStats struct {
	Published   int64         // checkpoints the witness acknowledged
	Failures    int64         // failed delivery attempts
	Dropped     int64         // checkpoints given up on or pushed out of a full queue
	Queued      int           // checkpoints waiting now
	LastLatency time.Duration // Publish to acknowledgment, for the last one
}

type queuedCheckpoint struct {
	signed []byte
	at     time.Time
}

// NewWitnessQueue starts a queue in front of w; name identifies w in logs.
func NewWitnessQueue(name string, w Witness, opts WitnessQueueOptions) *WitnessQueue {
	if opts.Size < 1 {
		opts.Size = DefaultWitnessQueueSize
	}
	if opts.Attempts < 1 {
		opts.Attempts = DefaultWitnessAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultWitnessBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultWitnessMaxBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	q := &WitnessQueue{
		name: name, w: w, opts: opts,
		ch:   make(chan queuedCheckpoint, opts.Size),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go q.run()
	return q
}

// Publish queues signedCheckpoint for delivery and returns at once. It fails
// only after Close.
func (q *WitnessQueue) Publish(ctx context.Context, signedCheckpoint []byte) error {
	if q.closed.Load() {
		return errClosed
	}
	item := queuedCheckpoint{signed: append([]byte(nil), signedCheckpoint...), at: q.opts.Now()}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() { // Close may have closed ch since the check above
		return errClosed
	}
	for {
		select {
		case q.ch <- item:
			return nil
		default:
		}
		select {
		case <-q.ch: // full: drop the oldest
			q.dropped.Add(1)
			q.opts.Logger.Warn("audit witness queue full; dropped the oldest checkpoint", "witness", q.name)
		default:
		}
	}
}

// Name returns the witness's name, as given to NewWitnessQueue.
func (q *WitnessQueue) Name() string { return q.name }

// Stats returns the queue's counters.
func (q *WitnessQueue) Stats() WitnessStats {
	return WitnessStats{
		Published:   q.published.Load(),
		Failures:    q.failures.Load(),
		Dropped:     q.dropped.Load(),
		Queued:      len(q.ch),
		LastLatency: time.Duration(q.lastLatency.Load()),
	}
}

// Close stops taking checkpoints, delivers those waiting until ctx is done,
// and stops. If the witness also has a Close method, it is called.
func (q *WitnessQueue) Close(ctx context.Context) error {
	if q.closed.Swap(true) {
		return nil
	}
	q.mu.Lock()
	close(q.ch)
	q.mu.Unlock()
	select {
	case <-q.done:
	case <-ctx.Done():
		close(q.stop)
		<-q.done
	}
	if c, ok := q.w.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

func (q *WitnessQueue) run() {
	defer close(q.done)
	for item := range q.ch {
		q.deliver(item)
	}
}

// deliver tries item until it is acknowledged, Attempts run out, or the
// queue is stopped.
func (q *WitnessQueue) deliver(item queuedCheckpoint) {
	wait := q.opts.Backoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-q.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := q.w.Publish(ctx, item.signed)
		cancel()
		if err == nil {
			d := q.opts.Now().Sub(item.at)
			q.published.Add(1)
			q.lastLatency.Store(int64(d))
			if q.opts.Published != nil {
				q.opts.Published(d)
			}
			return
		}
		q.failures.Add(1)
		if attempt >= q.opts.Attempts {
			q.dropped.Add(1)
			q.opts.Logger.Error("audit witness gave up on a checkpoint", "witness", q.name, "attempts", attempt, "error", err.Error())
			return
		}
		q.opts.Logger.Warn("audit witness failed; retrying", "witness", q.name, "attempt", attempt, "retry_in", wait.String(), "error", err.Error())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.stop:
			t.Stop()
			q.dropped.Add(1)
			return
		}
		wait = min(2*wait, q.opts.MaxBackoff)
	}
}
