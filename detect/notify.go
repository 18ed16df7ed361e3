package detect

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"
)

// Notifier delivers alerts somewhere a person or a SIEM will see them: a
// stream of OCSF findings, CEF over syslog, a webhook, e-mail. Alerts
// hold ids, never PHI, and so does everything a Notifier sends. Notify
// may retry within ctx; an error means the batch was not delivered.
type Notifier interface {
	Notify(ctx context.Context, alerts []*Alert) error
}

// Defaults for the fields of Dispatcher.
const (
	DefaultNotifyQueue   = 256              // batches waiting per notifier
	DefaultNotifyTimeout = 2 * time.Minute  // one Notify call, retries included
	DefaultNotifyClose   = 10 * time.Second // see Dispatcher.Close
	DefaultNotifyKnown   = 100_000          // alerts remembered (Dispatcher.Known)
)

// DefaultPageScore is the default paging threshold: an alert whose risk
// score (Alert.Score, after the learned scoring) is below it is stored
// and listed by the API, but does not page (Dispatcher.PageScore). The
// simulator's evaluation counts an alert as raised from the same score
// (simulate.Options.Threshold), so what it measures is what pages.
const DefaultPageScore = 15

// Dispatcher takes the alerts each pipeline commit stored (OnCommit) and
// hands those worth paging to its notifiers, each on its own goroutine
// behind its own bounded queue: a slow or absent webhook never slows the
// pipeline, nor the e-mail. An alert pages when it is created and again
// when its severity rises, not on every merge of another event into it;
// an alert scored below PageScore does not page until its score reaches
// it; a suppressed alert, or one triaged false-positive or benign, never
// pages. Every alert is counted in Metrics, paged or not.
//
// Delivery is at most once: a full queue drops the batch (counted and
// logged), and alerts committed just before a crash may not be paged
// (they are stored, and listed by the API). The alerts remembered are
// bounded (Known): beyond it, those detected earliest are forgotten, and
// an alert that comes back detected no later than the latest forgotten
// one is taken as paged at its severity: it never pages twice for the
// same severity, and its later rises do not page (they are stored);
// except a critical one, which pages again rather than risk never paging
// (at most once each time it is forgotten).
//
// Create it with NewDispatcher, set fields, Open, and Close. OnCommit is
// safe for concurrent use, though the pipeline calls it from one
// goroutine.
type Dispatcher struct {
	// Notifiers by name (the name appears in logs and metrics).
	Notifiers map[string]Notifier
	// Store, if set, is read by Open to learn the severity of the
	// Known stored alerts detected latest, so that after a restart an
	// alert merged again does not page unless its severity rose (the
	// older are forgotten, see Known).
	Store Store
	// Metrics, if set, counts alerts and deliveries.
	Metrics *Metrics
	// Queue bounds the batches waiting for each notifier. Default
	// DefaultNotifyQueue.
	Queue int
	// Timeout bounds one Notify call. Default DefaultNotifyTimeout.
	Timeout time.Duration
	// PageScore is the least risk score that pages. Default
	// DefaultPageScore; 0 pages every alert.
	PageScore int
	// Logger receives delivery failures and drops (notifier names and
	// counts, never alert contents). Default discards.
	Logger *slog.Logger
	// Known bounds the alerts remembered to page each once per
	// severity; when it is passed, the quarter detected earliest are
	// forgotten. Default DefaultNotifyKnown.
	Known int

	mu      sync.Mutex
	known   map[string]seen // by alert id
	horizon int64           // latest Detected (Unix ns) forgotten; valid if forgot
	forgot  bool
	workers []*notifyWorker
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  bool
}

type seen struct {
	severity Severity
	events   int64
	paged    bool  // it reached PageScore (or was stored having reached it)
	detected int64 // Alert.Detected, Unix ns: the oldest are forgotten first
}

type notifyWorker struct {
	name string
	n    Notifier
	ch   chan []*Alert
}

// NewDispatcher returns a Dispatcher with default settings and no
// notifiers.
func NewDispatcher() *Dispatcher {
	return &Dispatcher{
		Notifiers: map[string]Notifier{}, Queue: DefaultNotifyQueue, Timeout: DefaultNotifyTimeout,
		PageScore: DefaultPageScore, Logger: slog.New(slog.DiscardHandler), Known: DefaultNotifyKnown, known: map[string]seen{},
	}
}

// Open learns the stored alerts (if Store is set) and starts one
// goroutine per notifier.
func (d *Dispatcher) Open(ctx context.Context) error {
	if d.Store != nil {
		// The newest Known alerts only (Store.Alerts lists newest first):
		// the older are forgotten as forget would, without ever being
		// held all at once.
		limit := d.knownLimit()
		alerts, err := d.Store.Alerts(ctx, AlertFilter{Limit: limit + 1})
		if err != nil {
			return fmt.Errorf("detect: dispatcher: load alerts: %w", err)
		}
		d.mu.Lock()
		if len(alerts) > limit {
			d.horizon, d.forgot = detectedAt(alerts[limit]), true
			alerts = alerts[:limit]
		}
		for _, a := range alerts {
			d.known[a.ID] = seen{a.Severity, a.Events, a.Score >= d.PageScore, detectedAt(a)}
		}
		d.mu.Unlock()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	queue := d.Queue
	if queue < 1 {
		queue = DefaultNotifyQueue
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultNotifyTimeout
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	names := make([]string, 0, len(d.Notifiers))
	for name := range d.Notifiers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		w := &notifyWorker{name: name, n: d.Notifiers[name], ch: make(chan []*Alert, queue)}
		d.workers = append(d.workers, w)
		d.wg.Add(1)
		go d.run(runCtx, w, timeout)
	}
	return nil
}

func (d *Dispatcher) run(ctx context.Context, w *notifyWorker, timeout time.Duration) {
	defer d.wg.Done()
	for batch := range w.ch {
		if ctx.Err() != nil {
			d.Metrics.delivered(w.name, "dropped", len(batch))
			continue
		}
		nctx, cancel := context.WithTimeout(ctx, timeout)
		err := w.n.Notify(nctx, batch)
		cancel()
		if err != nil {
			d.Metrics.delivered(w.name, "failed", len(batch))
			d.Logger.Warn("alert delivery failed", "notifier", w.name, "alerts", len(batch), "error", err.Error())
			continue
		}
		d.Metrics.delivered(w.name, "sent", len(batch))
	}
}

// OnCommit takes the alerts a pipeline commit stored (Pipeline.OnCommit).
// It never blocks on delivery.
func (d *Dispatcher) OnCommit(alerts []*Alert) {
	var page []*Alert
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	for _, a := range alerts {
		prev, ok := d.recall(a)
		raised := !ok || a.Severity > prev.severity
		d.Metrics.observe(a, prev, ok, raised)
		high := a.Score >= d.PageScore
		d.known[a.ID] = seen{max(a.Severity, prev.severity), a.Events, prev.paged || high, detectedAt(a)}
		// It pages when created or raised, or when its score first
		// reaches the paging threshold.
		if high && (raised || !prev.paged) && pages(a) {
			page = append(page, a.Clone())
		}
	}
	d.forget()
	workers := d.workers
	if len(page) > 0 {
		for _, w := range workers {
			select {
			case w.ch <- page:
			default:
				d.Metrics.delivered(w.name, "dropped", len(page))
				d.Logger.Warn("alert delivery queue full; dropped a batch", "notifier", w.name, "alerts", len(page))
			}
		}
	}
	d.mu.Unlock()
}

// recall returns what is known of a. An alert not known but detected no
// later than the latest forgotten one may have been forgotten: it is
// taken as seen and paged at its severity (at most once), unless it is
// critical: a critical alert that cannot be told from a new one (it rose
// after it was forgotten, or the clock stepped back past the horizon)
// pages, a repeat page being the lesser harm.
func (d *Dispatcher) recall(a *Alert) (seen, bool) {
	if s, ok := d.known[a.ID]; ok {
		return s, true
	}
	if d.forgot && detectedAt(a) <= d.horizon && a.Severity < SeverityCritical {
		return seen{severity: a.Severity, events: a.Events, paged: true}, true
	}
	return seen{}, false
}

// detectedAt returns a.Detected in Unix ns, the zero time (or any before
// 1678, beyond int64 ns) as the least.
func detectedAt(a *Alert) int64 {
	if a.Detected.Before(time.Unix(0, math.MinInt64)) {
		return math.MinInt64
	}
	return a.Detected.UnixNano()
}

// forget drops the quarter of the alerts known that were detected
// earliest, once there are more than Known, and moves the horizon to the
// latest of them: O(log n) amortised per alert.
func (d *Dispatcher) forget() {
	limit := d.knownLimit()
	if len(d.known) <= limit {
		return
	}
	byAge := make([]int64, 0, len(d.known))
	for _, s := range d.known {
		byAge = append(byAge, s.detected)
	}
	slices.Sort(byAge)
	drop := max(len(d.known)-limit, len(d.known)/4)
	cut := byAge[drop-1]
	maps.DeleteFunc(d.known, func(_ string, s seen) bool { return s.detected <= cut })
	if !d.forgot || cut > d.horizon {
		d.horizon, d.forgot = cut, true
	}
}

// knownLimit returns Known, or its default.
func (d *Dispatcher) knownLimit() int {
	if d.Known <= 0 {
		return DefaultNotifyKnown
	}
	return d.Known
}

// pages reports whether a, new or escalated, should reach a person.
func pages(a *Alert) bool {
	return !a.Suppressed && a.State != StateFalsePositive && a.State != StateBenign
}

// Close stops taking alerts and delivers those queued until ctx is done,
// then abandons the rest.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for _, w := range d.workers {
		close(w.ch)
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if d.cancel != nil {
			d.cancel()
		}
		<-done
	}
	if d.cancel != nil {
		d.cancel()
	}
	return nil
}

// Defaults of the retries of Webhook, CEFStream and Mailer.
const (
	DefaultNotifyAttempts   = 5
	DefaultNotifyBackoff    = time.Second
	DefaultNotifyMaxBackoff = time.Minute
)

// errPermanent marks an error that a retry cannot fix.
type errPermanent struct{ err error }

func (e errPermanent) Error() string { return e.err.Error() }
func (e errPermanent) Unwrap() error { return e.err }

// retry calls try up to attempts times, waiting backoff after the first
// failure and doubling the wait after each, up to maxBackoff, until it
// succeeds, fails permanently (errPermanent) or ctx is done.
func retry(ctx context.Context, attempts int, backoff, maxBackoff time.Duration, try func() error) error {
	if attempts < 1 {
		attempts = DefaultNotifyAttempts
	}
	if backoff <= 0 {
		backoff = DefaultNotifyBackoff
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultNotifyMaxBackoff
	}
	var err error
	for i := range attempts {
		if err = try(); err == nil {
			return nil
		}
		if _, ok := err.(errPermanent); ok || i == attempts-1 {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
	return err
}
