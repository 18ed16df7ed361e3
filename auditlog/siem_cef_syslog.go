package auditlog

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for CEFOptions.
const (
	DefaultCEFBatch      = 256
	DefaultCEFMaxLag     = 100_000
	DefaultCEFBackoff    = 250 * time.Millisecond
	DefaultCEFMaxBackoff = 30 * time.Second
)

// CEFOptions configure a CEFForwarder; zero fields take defaults.
type CEFOptions struct {
	// Version is the Device Version of every CEF header.
	Version string
	// Poll is how often the forwarder looks for new entries. Default
	// DefaultStreamPoll.
	Poll time.Duration
	// Batch bounds the entries sent in one write. Default DefaultCEFBatch.
	Batch int
	// MaxLag bounds how far the forwarder may fall behind the log while
	// the syslog server is away: beyond it, the oldest entries not yet
	// sent are skipped and counted as dropped (they stay in the log and
	// its NDJSON export). Default DefaultCEFMaxLag.
	MaxLag int64
	// Backoff is the wait after a failed write; it doubles after each
	// one, up to MaxBackoff. Defaults DefaultCEFBackoff and
	// DefaultCEFMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Logger receives failures and drops (counts, never entries).
	// Default discards.
	Logger *slog.Logger
}

// CEFStats counts a CEFForwarder's work since it started.
type CEFStats struct {
	Sent     int64 // entries written to the syslog server
	Failures int64 // failed writes (each retried)
	Dropped  int64 // entries skipped: beyond MaxLag, or undecodable
	Lag      int64 // entries in the log not yet sent
}

// CEFForwarder sends every new entry of a Log to a syslog server as a CEF
// line (see CEF), one RFC 5424 message each, over TLS with RFC 5425
// octet-counting framing, on the connection handling of a SyslogWitness:
//
//	LEN SP <110>1 ENTRY-TIME HOSTNAME APP-NAME - cef - CEF:0|phivault|…
//
// It tails the committed log from the store and never touches Append: a
// slow or absent server makes the forwarder fall behind, never the
// requests. After a failed write it reconnects with exponential backoff and
// resends the whole batch, so a SIEM may see an entry twice (deduplicate on
// externalId) but, while the process runs and the lag stays within MaxLag,
// misses none that the server's TLS stack acknowledged reading. Syslog has
// no application acknowledgment (RFC 5425): messages the sender's kernel
// took just before the connection broke can be lost; reconcile with the
// NDJSON export by index.
//
// Start it with NewCEFForwarder and stop it with Close.
type CEFForwarder struct {
	log    *Log
	syslog *SyslogWitness
	opts   CEFOptions
	host   string
	app    string

	next                    atomic.Int64 // first index not yet sent
	sent, failures, dropped atomic.Int64

	stop    chan struct{} // closed by Close: drain, then exit
	abort   chan struct{} // closed when Close's context ends: exit now
	done    chan struct{}
	closeMu sync.Once
}

// NewCEFForwarder starts forwarding the entries of l from index start (use
// l.Tree().N for new entries only) to syslog. Its Addr, TLS, Hostname,
// AppName and Timeout apply; it is used by this forwarder only.
func NewCEFForwarder(l *Log, syslog *SyslogWitness, start int64, opts CEFOptions) *CEFForwarder {
	if opts.Poll <= 0 {
		opts.Poll = DefaultStreamPoll
	}
	if opts.Batch < 1 {
		opts.Batch = DefaultCEFBatch
	}
	if opts.MaxLag < 1 {
		opts.MaxLag = DefaultCEFMaxLag
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultCEFBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultCEFMaxBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &CEFForwarder{
		log: l, syslog: syslog, opts: opts,
		host: syslog.Hostname, app: syslog.AppName,
		stop: make(chan struct{}), abort: make(chan struct{}), done: make(chan struct{}),
	}
	if f.host == "" {
		f.host, _ = os.Hostname()
	}
	if f.app == "" {
		f.app = "phivault"
	}
	f.next.Store(start)
	go f.run()
	return f
}

// Stats returns the forwarder's counters.
func (f *CEFForwarder) Stats() CEFStats {
	return CEFStats{
		Sent: f.sent.Load(), Failures: f.failures.Load(), Dropped: f.dropped.Load(),
		Lag: max(f.log.Tree().N-f.next.Load(), 0),
	}
}

// Close sends the entries committed so far until ctx is done, then stops
// and closes the connection.
func (f *CEFForwarder) Close(ctx context.Context) error {
	f.closeMu.Do(func() { close(f.stop) })
	select {
	case <-f.done:
	case <-ctx.Done():
		close(f.abort)
		<-f.done
	}
	return f.syslog.Close()
}

func (f *CEFForwarder) run() {
	defer close(f.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.abort:
			cancel()
		case <-f.done:
		}
	}()
	tick := time.NewTicker(f.opts.Poll)
	defer tick.Stop()
	wait := f.opts.Backoff
	stopping := false
	for {
		if ctx.Err() != nil {
			return
		}
		more, err := f.sendBatch(ctx)
		if err != nil {
			f.failures.Add(1)
			f.opts.Logger.Warn("audit CEF forwarder failed; retrying", "retry_in", wait.String(), "error", err.Error())
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-f.abort:
				t.Stop()
				return
			}
			wait = min(2*wait, f.opts.MaxBackoff)
			continue
		}
		wait = f.opts.Backoff
		if more {
			continue
		}
		if stopping {
			return // caught up after Close
		}
		select {
		case <-tick.C:
		case <-f.stop:
			stopping = true
		case <-f.abort:
			return
		}
	}
}

// sendBatch sends up to Batch entries from f.next; more reports whether
// entries were left behind it.
func (f *CEFForwarder) sendBatch(ctx context.Context) (more bool, err error) {
	size := f.log.Tree().N
	next := f.next.Load()
	if lag := size - next; lag > f.opts.MaxLag {
		skip := lag - f.opts.MaxLag
		f.dropped.Add(skip)
		next += skip
		f.next.Store(next)
		f.opts.Logger.Warn("audit CEF forwarder fell behind; skipped the oldest entries", "skipped", skip)
	}
	if next >= size {
		return false, nil
	}
	end := min(next+int64(f.opts.Batch), size)
	data, err := f.log.store.ReadAuditEntries(ctx, next, end)
	if err != nil {
		return true, err
	}
	if int64(len(data)) != end-next {
		return true, errors.New("audit CEF: short read from the store")
	}
	msgs := make([][]byte, 0, len(data))
	var bad int64
	for i, d := range data {
		e, err := Decode(d)
		if err != nil {
			bad++ // the log verifier, not the forwarder, reports damage
			continue
		}
		msgs = append(msgs, FormatSyslog(e.Time, f.host, f.app, "cef", CEF(next+int64(i), f.log.Origin, f.opts.Version, e)))
	}
	if len(msgs) > 0 {
		if err := f.syslog.send(ctx, msgs...); err != nil {
			return true, err
		}
	}
	f.sent.Add(int64(len(msgs)))
	f.dropped.Add(bad)
	f.next.Store(end)
	return end < size, nil
}
