package detect

import (
	"container/list"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Rule is one detector. Observe sees every event in order and reports
// findings through x. A rule keeps whatever state it needs in itself; an
// Engine calls it from one goroutine only.
type Rule interface {
	// Name is the rule's stable name, e.g. "self-access"; it keys alerts,
	// settings and metrics.
	Name() string
	// Observe looks at ev, with x.Dir as it stands at ev.
	Observe(x *Context, ev *Event)
}

// Stateful is a Rule (or Scorer) whose state outlives one event, saved
// with the pipeline's snapshots so a restart resumes with it.
type Stateful interface {
	MarshalState() ([]byte, error)
	UnmarshalState([]byte) error
}

// Scorer is the learned scoring on top of the rules: it sees every event
// after the rules, and scores each alert they changed.
type Scorer interface {
	Observe(dir *Directory, ev *Event)
	// Score returns a's risk 0–100 and the top contributing factors in
	// words, given the rule's own score a.Score.
	Score(dir *Directory, a *Alert) (score int, factors []string)
}

// Suppressor decides, from triage feedback, which alerts do not page.
type Suppressor interface {
	Suppress(a *Alert) bool
}

// Context is what a rule sees besides the event: the directory, and where
// to report.
type Context struct {
	Dir *Directory
	eng *Engine
	ev  *Event

	// The directory entries of ev, looked up once for every rule: its
	// user (if userDone) and its patients (if patientsDone), in order.
	userDone, patientsDone bool
	u                      *User
	patients               []*Patient
	// Whether ev looks at people, but for its number of hits
	// (peopleLooksAtAll), if looksDone.
	looksDone, looksAtAll bool
}

// Report records f about the event being observed.
func (x *Context) Report(f Finding) { x.eng.report(x.ev, f) }

// observing makes ev the event being observed, forgetting the entries
// looked up for the one before.
func (x *Context) observing(ev *Event) {
	x.ev = ev
	x.userDone, x.patientsDone, x.u = false, false, nil
	x.looksDone = false
	clear(x.patients)
	x.patients = x.patients[:0]
}

// user returns the directory's entry of ev's user, or nil: looked up
// once per event an Engine observes.
func (x *Context) user(ev *Event) *User {
	if ev != x.ev {
		return x.Dir.User(ev.User)
	}
	if !x.userDone {
		x.u, x.userDone = x.Dir.User(ev.User), true
	}
	return x.u
}

// looks reports peopleLooks(ev, searchHits), working out what does not
// depend on searchHits once per event an Engine observes.
func (x *Context) looks(ev *Event, searchHits int) bool {
	if ev != x.ev {
		return peopleLooks(ev, searchHits)
	}
	if !x.looksDone {
		x.looksAtAll, x.looksDone = peopleLooksAtAll(ev), true
	}
	return x.looksAtAll && peopleFewHits(ev, searchHits)
}

// patient returns the directory's entry of ev.Patients[i], or nil: looked
// up once per event an Engine observes.
func (x *Context) patient(ev *Event, i int) *Patient {
	if ev != x.ev {
		return x.Dir.Patient(ev.Patients[i])
	}
	if !x.patientsDone {
		for _, p := range ev.Patients {
			x.patients = append(x.patients, x.Dir.Patient(p))
		}
		x.patientsDone = true
	}
	return x.patients[i]
}

// Engine runs rules over events in order and merges their findings into
// alerts. Create it with NewEngine; it is not safe for concurrent use.
type Engine struct {
	// Now stamps alerts' detection time. Default time.Now.
	Now func() time.Time
	// Scorer, if set, scores every alert changed.
	Scorer Scorer
	// Suppressor, if set, decides which new alerts do not page.
	Suppressor Suppressor

	dir    *Directory
	rules  []Rule
	x      Context
	silent bool              // replaying: observe, report nothing
	alerts map[string]*Alert // alerts changed since the last Drain, by id
	known  func(id string) *Alert
	// committed holds the alerts as the latest commits stored them, so
	// that a finding merges into one without reading it back from the
	// store; nil (the default) means always read through known. Only a
	// Pipeline whose store tells of triages turns it on (see
	// TriageWatcher): a triage changes a stored alert behind the engine's
	// back.
	committed *alertCache
	counts    map[string]int64 // findings by rule since start
	events    int64
}

// NewEngine returns an Engine running rules over events with dir as
// context. known, if not nil, returns a copy of the stored alert id (so
// findings merge into alerts committed before; the engine changes the
// copy), or nil.
func NewEngine(dir *Directory, rules []Rule, known func(id string) *Alert) *Engine {
	e := &Engine{Now: time.Now, dir: dir, rules: rules, alerts: map[string]*Alert{}, known: known, counts: map[string]int64{}}
	e.x = Context{Dir: dir, eng: e}
	return e
}

// Directory returns the engine's context.
func (e *Engine) Directory() *Directory { return e.dir }

// Rules returns the engine's rules.
func (e *Engine) Rules() []Rule { return e.rules }

// Observe runs every rule, then the scorer, over ev.
func (e *Engine) Observe(ev *Event) {
	e.events++
	e.x.observing(ev)
	for _, r := range e.rules {
		r.Observe(&e.x, ev)
	}
	if e.Scorer != nil {
		e.Scorer.Observe(e.dir, ev)
	}
	e.x.observing(nil)
}

// Replay observes ev without reporting anything: it rebuilds the rules'
// state from events whose findings were already committed.
func (e *Engine) Replay(ev *Event) {
	e.silent = true
	e.Observe(ev)
	e.silent = false
}

// Counts returns the findings reported by each rule since the engine
// started, suppressed or not.
func (e *Engine) Counts() map[string]int64 {
	out := make(map[string]int64, len(e.rules))
	for _, r := range e.rules {
		out[r.Name()] = e.counts[r.Name()]
	}
	return out
}

func (e *Engine) report(ev *Event, f Finding) {
	if e.silent {
		return
	}
	e.counts[f.Rule]++
	id := AlertID(f.Rule, f.Key)
	a := e.alerts[id]
	if a == nil {
		a = e.stored(id)
	}
	if a == nil {
		a = &Alert{
			ID: id, Rule: f.Rule, Key: f.Key, User: f.User,
			First: ev.Time, Detected: e.Now().UTC(), State: StateOpen,
		}
	}
	if f.Severity > a.Severity {
		a.Severity = f.Severity
	}
	a.Score = max(a.Score, f.Score)
	a.RuleScore = max(a.RuleScore, f.Score)
	for _, p := range f.Patients {
		if !slices.Contains(a.Patients, p) {
			a.Patients = append(a.Patients, p)
		}
	}
	a.Sources = appendBounded(a.Sources, ev.Source, MaxAlertSources)
	a.Clients = appendBounded(a.Clients, ev.Client, MaxAlertSources)
	if ev.Time.Before(a.First) {
		a.First = ev.Time
	}
	if ev.Time.After(a.Last) {
		a.Last = ev.Time
	}
	a.Why = f.Why
	ref := ev.Ref()
	if len(a.Evidence) < MaxEvidence && !slices.Contains(a.Evidence, ref) {
		a.Evidence = append(a.Evidence, ref)
	}
	a.Events++
	e.alerts[id] = a
}

// appendBounded appends v to list unless it is empty, already there, or
// list holds n.
func appendBounded(list []string, v string, n int) []string {
	if v == "" || len(list) >= n || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// stored returns a copy of the committed alert id for the engine to
// change, or nil: from the cache of recent commits if it holds it, else
// from the store.
func (e *Engine) stored(id string) *Alert {
	if a := e.committed.get(id); a != nil {
		// The committed alert was handed to Pipeline.OnCommit too, which
		// may keep it: change a copy.
		return a.Clone()
	}
	if e.known != nil {
		return e.known(id) // a copy of its own (Store.Alert returns one)
	}
	return nil
}

// Drain returns the alerts changed since the last Drain, scored and with
// suppression decided, in id order, and forgets them.
func (e *Engine) Drain() []*Alert {
	if len(e.alerts) == 0 {
		return nil
	}
	out := make([]*Alert, 0, len(e.alerts))
	for _, a := range e.alerts {
		if e.Scorer != nil {
			a.Score, a.Factors = e.Scorer.Score(e.dir, a)
		}
		if e.Suppressor != nil && a.State == StateOpen {
			a.Suppressed = e.Suppressor.Suppress(a)
		}
		out = append(out, a)
	}
	clear(e.alerts)
	slices.SortFunc(out, func(a, b *Alert) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// DefaultAlertCache bounds the committed alerts an Engine keeps in memory
// for a Pipeline whose store tells of triages: as many as one step of
// DefaultBatch events can change, so that alerts touched at every step
// stay in it.
const DefaultAlertCache = 4096

// alertCache is a bounded map of the alerts last committed, by id,
// evicting the least recently stored or used. A nil *alertCache holds
// nothing.
type alertCache struct {
	max   int
	byID  map[string]*list.Element // of *Alert
	order *list.List               // most recently stored or used first
}

func newAlertCache(max int) *alertCache {
	return &alertCache{max: max, byID: map[string]*list.Element{}, order: list.New()}
}

// get returns the alert id as last committed, or nil.
func (c *alertCache) get(id string) *Alert {
	if c == nil {
		return nil
	}
	el := c.byID[id]
	if el == nil {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*Alert)
}

// put keeps a as committed, evicting the least recent beyond the bound.
func (c *alertCache) put(a *Alert) {
	if el := c.byID[a.ID]; el != nil {
		el.Value = a
		c.order.MoveToFront(el)
		return
	}
	c.byID[a.ID] = c.order.PushFront(a)
	for c.order.Len() > c.max {
		last := c.order.Back()
		delete(c.byID, last.Value.(*Alert).ID)
		c.order.Remove(last)
	}
}

// forget drops the alert id, if held.
func (c *alertCache) forget(id string) {
	if el := c.byID[id]; el != nil {
		delete(c.byID, id)
		c.order.Remove(el)
	}
}

// cacheCommitted turns on the cache of committed alerts, bounded to max.
func (e *Engine) cacheCommitted(max int) { e.committed = newAlertCache(max) }

// committedAlerts tells the engine that alerts, as Drain returned them, are now
// stored as they are, State included (Store.Commit sets it to the stored
// one): later findings merge into them without reading them back.
func (e *Engine) committedAlerts(alerts []*Alert) {
	if e.committed == nil {
		return
	}
	for _, a := range alerts {
		e.committed.put(a)
	}
}

// forget drops what the engine holds of the committed alerts ids, which
// were triaged: their next finding reads them from the store again.
func (e *Engine) forget(ids []string) {
	if e.committed == nil {
		return
	}
	for _, id := range ids {
		e.committed.forget(id)
	}
}

// forgetAll drops every committed alert the engine holds.
func (e *Engine) forgetAll() {
	if e.committed != nil {
		e.committed = newAlertCache(e.committed.max)
	}
}

// MarshalState returns the state of every Stateful rule and scorer.
func (e *Engine) MarshalState() ([]byte, error) {
	state := map[string]json.RawMessage{} // each rule's JSON as it is, not base64
	add := func(name string, v any) error {
		s, ok := v.(Stateful)
		if !ok {
			return nil
		}
		b, err := s.MarshalState()
		if err != nil {
			return fmt.Errorf("detect: state of %s: %w", name, err)
		}
		state[name] = b
		return nil
	}
	for _, r := range e.rules {
		if err := add(r.Name(), r); err != nil {
			return nil, err
		}
	}
	if e.Scorer != nil {
		if err := add(scorerStateKey, e.Scorer); err != nil {
			return nil, err
		}
	}
	return json.Marshal(state)
}

const scorerStateKey = "#scorer"

// UnmarshalState restores what MarshalState returned. State of a rule
// that no longer exists is ignored; a rule without saved state starts
// afresh.
func (e *Engine) UnmarshalState(b []byte) error {
	var state map[string]json.RawMessage
	if err := json.Unmarshal(b, &state); err != nil {
		return fmt.Errorf("detect: state: %w", err)
	}
	set := func(name string, v any) error {
		s, ok := v.(Stateful)
		if raw := state[name]; !ok || len(raw) == 0 || string(raw) == "null" {
			return nil
		}
		if err := s.UnmarshalState(state[name]); err != nil {
			return fmt.Errorf("detect: state of %s: %w", name, err)
		}
		return nil
	}
	for _, r := range e.rules {
		if err := set(r.Name(), r); err != nil {
			return err
		}
	}
	if e.Scorer != nil {
		return set(scorerStateKey, e.Scorer)
	}
	return nil
}
