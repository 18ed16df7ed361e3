package detect

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/phivault/phivault"
)

// Trail is phivault's audit trail as the pipeline reads it.
type Trail interface {
	// Size returns the number of committed entries.
	Size(ctx context.Context) (int64, error)
	// Entries returns the entries with indexes in [start, end), decoded,
	// one per index.
	Entries(ctx context.Context, start, end int64) ([]*phivault.AuditEntry, error)
}

// Loader keeps the directory current with phivault's own records and
// accounts.
type Loader interface {
	// Load fills dir with every user, patient and relationship at start.
	Load(ctx context.Context, dir *Directory) error
	// Refresh updates dir after the trail event ev, which wrote a record
	// or changed an account; it ignores events it has nothing to do with.
	Refresh(ctx context.Context, dir *Directory, ev *Event) error
}

// Defaults for the fields of Pipeline.
const (
	DefaultBatch    = 4096
	DefaultPoll     = 100 * time.Millisecond
	DefaultInterval = 100 * time.Millisecond
	// maxBackoff bounds the wait between retries of a failing step.
	maxBackoff           = 30 * time.Second
	DefaultSnapshotEvery = 30 * time.Second
)

// Pipeline feeds an Engine from the trail and the ingest stream, in
// order, and commits the alerts each step changed together with the new
// cursors: after a crash it resumes from the last commit, and since
// alerts merge by rule and key, nothing is lost and nothing doubled. Every
// SnapshotEvery it also commits the engine's state; on Open it restores
// the last snapshot and replays, silently, the events between it and the
// cursor.
//
// Create it with NewPipeline, set fields, Open, then Run (live) or Step
// until Caught (replay). Status and Wake are safe for concurrent use.
type Pipeline struct {
	// Trail, if set, is read from the cursor on.
	Trail Trail
	// Loader, if set, fills and refreshes the directory from the vault.
	Loader Loader
	// Batch bounds the events of one step per stream. Default DefaultBatch.
	Batch int
	// Poll is how often Run looks for new events without a Wake. Default
	// DefaultPoll.
	Poll time.Duration
	// Interval is the shortest time between the starts of two steps
	// while events trickle in: a wake within it waits for the rest, so
	// that one commit (and one fsync) covers what arrives meanwhile.
	// Default (and zero) DefaultInterval; negative means none. A step
	// that filled its Batch is followed at once.
	Interval time.Duration
	// SnapshotEvery is how often the engine state is committed. Default
	// DefaultSnapshotEvery.
	SnapshotEvery time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives failures (ids and counts only). Default discards.
	Logger *slog.Logger
	// OnCommit, if set, is called after each commit with the alerts it
	// stored (to notify, count, page).
	OnCommit func(alerts []*Alert)

	store  Store
	engine *Engine
	wake   chan struct{}

	lastSnap time.Time
	cursor   Cursor
	pending  *pendingCommit // observed, commit failed: stored again before anything else

	mu      sync.Mutex
	status  Status
	triaged []string // alerts triaged since the last step (TriageWatcher)
	// triagedAll: more than DefaultAlertCache triages since the last
	// step (one not running): forget every alert.
	triagedAll bool
}

// Status is what GET /security/detector reports.
type Status struct {
	Cursor      Cursor           `json:"cursor"`
	TrailSize   int64            `json:"trailSize"`  // entries in the trail when last looked
	IngestSize  int64            `json:"ingestSize"` // ingest records when last looked
	Lag         int64            `json:"lag"`        // trail entries and ingest records not yet processed
	Events      int64            `json:"events"`     // events processed since start
	Alerts      int64            `json:"alerts"`     // alerts stored since start (new or changed)
	Findings    map[string]int64 `json:"findings"`   // findings by rule since start
	LastCommit  time.Time        `json:"lastCommit,omitzero"`
	Failures    int64            `json:"failures"`
	LastFailure string           `json:"lastFailure,omitempty"`
}

// NewPipeline returns a Pipeline running engine and committing to store.
//
// If engine has no lookup of committed alerts (NewEngine's known is nil),
// it gets one in store, so that findings merge into the alerts earlier
// steps committed. If store is a TriageWatcher, the engine keeps the
// latest DefaultAlertCache alerts committed in memory, and forgets each
// alert triaged before its next step.
func NewPipeline(store Store, engine *Engine) *Pipeline {
	if engine.known == nil {
		engine.known = func(id string) *Alert {
			a, err := store.Alert(context.Background(), id)
			if err != nil {
				return nil
			}
			return a
		}
	}
	p := &Pipeline{
		Batch: DefaultBatch, Poll: DefaultPoll, SnapshotEvery: DefaultSnapshotEvery,
		Now: time.Now, Logger: slog.New(slog.DiscardHandler),
		store: store, engine: engine, wake: make(chan struct{}, 1),
	}
	if w, ok := store.(TriageWatcher); ok {
		engine.cacheCommitted(DefaultAlertCache)
		w.WatchTriage(p.triage)
	}
	return p
}

// triage notes that the alert id was triaged, for the engine to forget
// at the next step.
func (p *Pipeline) triage(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.triaged) >= DefaultAlertCache {
		p.triaged, p.triagedAll = nil, true
	}
	if !p.triagedAll {
		p.triaged = append(p.triaged, id)
	}
}

// forgetTriaged makes the engine forget the alerts triaged since the last
// step. A triage made later, while the step observes, is still kept:
// the step's commit stores the alert with the triaged State and hands it
// back so (Store.Commit), and the next step forgets it.
func (p *Pipeline) forgetTriaged() {
	p.mu.Lock()
	ids, all := p.triaged, p.triagedAll
	p.triaged, p.triagedAll = nil, false
	p.mu.Unlock()
	if all {
		p.engine.forgetAll()
		return
	}
	p.engine.forget(ids)
}

// Open loads the directory and the committed state, restores the engine
// state and replays, silently, the events after its snapshot (from the
// start of both streams if there is none) up to the cursor.
func (p *Pipeline) Open(ctx context.Context) error {
	dir := p.engine.Directory()
	if p.Loader != nil {
		if err := p.Loader.Load(ctx, dir); err != nil {
			return fmt.Errorf("detect: load context: %w", err)
		}
	}
	saved, err := p.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("detect: load state: %w", err)
	}
	for _, u := range saved.Users {
		dir.PutUser(u)
	}
	for _, pt := range saved.Patients {
		dir.PutPatient(pt)
	}
	for _, r := range saved.Relationships {
		dir.AddRelationship(r)
	}
	for _, h := range saved.Honeytokens {
		dir.SetHoneytoken(h, true)
	}
	p.cursor = saved.Cursor
	// Without a snapshot, the rules' state is rebuilt from the start of
	// both streams: a restart before the first snapshot must not forget
	// what the committed events taught them.
	var from Cursor
	if saved.Snapshot != nil {
		if err := p.engine.UnmarshalState(saved.Snapshot); err != nil {
			return err
		}
		from = saved.SnapshotAt
	}
	if err := p.replay(ctx, from, saved.Cursor); err != nil {
		return err
	}
	p.lastSnap = p.Now()
	if saved.Cursor != from {
		// There was something to replay: snapshot at the first commit,
		// so that a process restarting more often than SnapshotEvery
		// does not replay ever more.
		p.lastSnap = time.Time{}
	}
	p.setStatus(func(s *Status) { s.Cursor = p.cursor })
	return nil
}

// replay observes, silently, the events in (from, to]: their findings
// were committed before.
func (p *Pipeline) replay(ctx context.Context, from, to Cursor) error {
	for i := from.Trail; i < to.Trail && p.Trail != nil; {
		end := min(i+int64(p.batch()), to.Trail)
		entries, err := p.Trail.Entries(ctx, i, end)
		if err != nil {
			return fmt.Errorf("detect: replay trail: %w", err)
		}
		for j, en := range entries {
			if en == nil {
				continue
			}
			ev := FromEntry(i+int64(j), en)
			p.engine.Replay(&ev)
		}
		i = end
	}
	for after := from.Ingest; after < to.Ingest; {
		recs, err := p.store.ReadIngest(ctx, after, min(p.batch(), int(to.Ingest-after)))
		if err != nil {
			return fmt.Errorf("detect: replay ingest: %w", err)
		}
		if len(recs) == 0 {
			break
		}
		for i := range recs {
			if ev := recs[i].event(); ev != nil {
				p.engine.Replay(ev)
			}
		}
		after = recs[len(recs)-1].Seq
	}
	return nil
}

func (p *Pipeline) batch() int {
	if p.Batch < 1 {
		return DefaultBatch
	}
	return p.Batch
}

// Wake tells Run that events may be waiting.
func (p *Pipeline) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run steps until ctx is done, waiting for Wake or Poll when caught up.
// A failed step is logged and retried after Poll: a step fails before it
// observes anything, or in its commit, which the retry stores again as it
// was without observing its events a second time.
func (p *Pipeline) Run(ctx context.Context) error {
	poll := p.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	interval := p.Interval
	if interval == 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	backoff := poll
	for {
		start := time.Now()
		n, err := p.Step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// A failing store is retried with backoff, not at the rate
			// the trail wakes the pipeline.
			p.Logger.Error("detector step failed; retrying", "retry_in", backoff.String(), "error", err.Error())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = poll
		if n > 0 {
			if rest := interval - time.Since(start); n < p.batch() && rest > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(rest):
				}
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-t.C:
		}
	}
}

// Step processes up to Batch events of each stream and commits. It
// returns the number of trail entries and ingest records processed.
func (p *Pipeline) Step(ctx context.Context) (int, error) {
	n, err := p.step(ctx)
	if err != nil {
		p.setStatus(func(s *Status) { s.Failures++; s.LastFailure = err.Error() })
	}
	return n, err
}

func (p *Pipeline) step(ctx context.Context) (int, error) {
	if p.pending == nil {
		p.forgetTriaged()
		pc, err := p.observe(ctx)
		if err != nil || pc == nil {
			return 0, err
		}
		p.pending = pc
		p.setStatus(func(s *Status) {
			s.TrailSize, s.IngestSize = pc.trailSize, pc.ingestSize
			s.Lag = max(pc.trailSize-p.cursor.Trail, 0) + max(pc.ingestSize-p.cursor.Ingest, 0)
		})
	}
	// A commit that failed is stored again as it was: the engine has
	// observed its events already, and observing them twice would count
	// them twice in alerts (Events) and in stateful rules.
	pc := p.pending
	c := &pc.commit
	if err := p.store.Commit(ctx, c); err != nil {
		return 0, fmt.Errorf("detect: commit (kept for retry): %w", err)
	}
	p.pending = nil
	p.cursor = c.Cursor
	p.engine.committedAlerts(c.Alerts)
	counts := p.engine.Counts()
	p.setStatus(func(s *Status) {
		s.Cursor, s.TrailSize, s.IngestSize = c.Cursor, pc.trailSize, pc.ingestSize
		s.Lag = max(pc.trailSize-c.Cursor.Trail, 0) + max(pc.ingestSize-c.Cursor.Ingest, 0)
		s.Events += int64(pc.n)
		s.Alerts += int64(len(c.Alerts))
		s.Findings = counts
		s.LastCommit = p.Now().UTC()
	})
	if p.OnCommit != nil && len(c.Alerts) > 0 {
		p.OnCommit(c.Alerts)
	}
	return pc.n, nil
}

// event returns the access event of r, placed in the ingest stream at
// r.Seq (its evidence reference), or nil.
func (r *Record) event() *Event {
	if r.Kind != RecordAccess || r.Event == nil {
		return nil
	}
	ev := *r.Event
	ev.Stream, ev.Seq = StreamIngest, r.Seq
	return &ev
}

// pendingCommit is a step observed but not yet committed.
type pendingCommit struct {
	commit                Commit
	n                     int // trail entries and ingest records
	trailSize, ingestSize int64
}

// observe reads the next events of both streams and, once everything is
// read, feeds them to the engine and returns what to commit, or nil if
// there was nothing new. It fails only before observing anything: a read
// error after some events were observed would make the retry observe
// them twice.
func (p *Pipeline) observe(ctx context.Context) (*pendingCommit, error) {
	var (
		pc      = &pendingCommit{}
		c       = &pc.commit
		entries []*phivault.AuditEntry
		err     error
	)
	c.Cursor = p.cursor
	start := c.Cursor.Trail
	if p.Trail != nil {
		if pc.trailSize, err = p.Trail.Size(ctx); err != nil {
			return nil, fmt.Errorf("detect: trail size: %w", err)
		}
		if pc.trailSize > start {
			end := min(pc.trailSize, start+int64(p.batch()))
			if entries, err = p.Trail.Entries(ctx, start, end); err != nil {
				return nil, fmt.Errorf("detect: read trail: %w", err)
			}
			if int64(len(entries)) != end-start {
				return nil, fmt.Errorf("detect: read trail: %d entries for [%d, %d)", len(entries), start, end)
			}
		}
	}
	if pc.ingestSize, err = p.store.IngestSize(ctx); err != nil {
		return nil, fmt.Errorf("detect: ingest size: %w", err)
	}
	var recs []Record
	if pc.ingestSize > c.Cursor.Ingest {
		if recs, err = p.store.ReadIngest(ctx, c.Cursor.Ingest, p.batch()); err != nil {
			return nil, fmt.Errorf("detect: read ingest: %w", err)
		}
	}
	pc.n = len(entries) + len(recs)
	if pc.n == 0 {
		p.setStatus(func(s *Status) { s.TrailSize, s.IngestSize, s.Lag = pc.trailSize, pc.ingestSize, 0 })
		return nil, nil
	}

	// The ingest stream first: a roster or a honeytoken registered in
	// this step must be in the directory before the trail's events of the
	// same step are judged (a decoy made and touched within one step is
	// still a decoy). Ingested events are another system's and do not
	// depend on the trail's order.
	dir := p.engine.Directory()
	for i := range recs {
		r := &recs[i]
		switch r.Kind {
		case RecordAccess:
			if ev := r.event(); ev != nil {
				p.engine.Observe(ev)
			}
		case RecordStaff:
			if r.User != nil {
				dir.PutUser(r.User)
				c.Users = append(c.Users, r.User)
			}
		case RecordPatient:
			if r.Patient != nil {
				dir.PutPatient(r.Patient)
				c.Patients = append(c.Patients, r.Patient)
			}
		case RecordRelationship:
			if r.Relationship != nil {
				dir.AddRelationship(*r.Relationship)
				c.Relationships = append(c.Relationships, *r.Relationship)
			}
		case RecordHoneytoken:
			if r.Honeytoken != "" {
				dir.SetHoneytoken(r.Honeytoken, true)
				c.Honeytokens = append(c.Honeytokens, r.Honeytoken)
			}
		}
		c.Cursor.Ingest = r.Seq
	}
	for j, en := range entries {
		if en == nil {
			continue
		}
		ev := FromEntry(start+int64(j), en)
		if p.Loader != nil {
			if err := p.Loader.Refresh(ctx, p.engine.Directory(), &ev); err != nil {
				p.Logger.Warn("detector context refresh failed", "entry", ev.Seq, "error", err.Error())
			}
		}
		p.engine.Observe(&ev)
	}
	c.Cursor.Trail = start + int64(len(entries))
	c.Alerts = p.engine.Drain()
	if now := p.Now(); now.Sub(p.lastSnap) >= p.SnapshotEvery {
		// A snapshot only shortens the replay of the next Open: if the
		// state cannot be saved, commit without it.
		if snap, err := p.engine.MarshalState(); err != nil {
			p.Logger.Error("detector snapshot failed", "error", err.Error())
		} else {
			c.Snapshot, c.SnapshotAt, p.lastSnap = snap, c.Cursor, now
		}
	}
	return pc, nil
}

// Caught reports whether the last step found nothing left to process.
func (p *Pipeline) Caught() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status.Lag == 0 && p.status.Cursor.Trail >= p.status.TrailSize
}

// Status returns the pipeline's progress.
func (p *Pipeline) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.status
	s.Findings = make(map[string]int64, len(p.status.Findings))
	for k, v := range p.status.Findings {
		s.Findings[k] = v
	}
	return s
}

func (p *Pipeline) setStatus(fn func(*Status)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(&p.status)
}
