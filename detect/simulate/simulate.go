// Package simulate provides a hospital to test the detectors on: a
// seeded, realistic workload over simulated days, with labelled
// scenarios injected, and the harness that runs it through the detect
// engine and measures precision, recall, time to detect and ROC AUC at
// the user-patient pair level.
//
// # Workload
//
// [Generate] builds a hospital (departments, staff on day, evening and
// night shifts, float nurses, residents rotating between departments,
// clerks, front desks, security staff), a population of patients living
// in households on streets (families share a family name and an address,
// neighbours a street), some of them employees, VIPs, deceased, plus
// honeytokens, and then simulates its days: admissions with care teams
// and encounters, emergency visits (with legitimate break-the-glass),
// clinics with appointments, billing batches and sign-ins. It emits all of
// it as [detect.Record] values exactly as ingestion produces them, in time
// order: rosters with [detect.Person] tokens, relationships, access
// events on [detect.StreamIngest], with users and patients namespaced
// "sim:id". Names, addresses and phones exist only inside the generator;
// only their blind-index tokens leave it, except through Export.
//
// On top of that background it injects labelled scenarios ([Scenarios]):
// each detector's target behaviour, mixed cases (a curious clerk, a
// stolen account, a departing employee, a celebrity admission) and
// benign look-alikes, with ground truth ([Truth]) at the user-patient
// pair level.
//
// # Evaluation
//
// [Evaluate] feeds a workload through a [detect.Pipeline] over a
// [detect.MemStore] in simulated live mode (the clock follows simulated
// time, see [Options]) and compares the alerts with the truth ([Report]).
//
// # Through a server
//
// [Workload.Export] writes a workload in the ingestion formats (NDJSON
// requests to POST /security/ingest/{kind}, with the generator's made-up
// names, addresses and phones in plaintext, in sending order), and
// [EvaluateServer] sends it to a running server ([Server]), waits for its
// detectors, and scores the alerts it lists with the same [Score].
// [Workload.Ingested] is the workload as such a server holds it, to tell
// what the formats lose from what the server does.
//
// Everything is deterministic for a given [Config]: randomness comes from
// Config.Seed only, and time from the simulated clock.
package simulate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/phivault/phivault/detect"
)

// Defaults of Config: the CI size.
const (
	DefaultDays     = 21
	DefaultStaff    = 240
	DefaultPatients = 2400
	DefaultSystem   = "sim"
)

// DefaultStart is the first simulated day, a Monday, when Config.Start
// is zero.
var DefaultStart = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// Config sets the size and seed of a simulated hospital.
type Config struct {
	Seed     uint64
	Days     int // simulated days; default DefaultDays
	Staff    int // staff accounts; default DefaultStaff, at least 60
	Patients int // patients (besides honeytokens); default DefaultPatients, at least 300
	// Start is midnight UTC of the first day; default DefaultStart.
	Start time.Time
	// Warmup is the days of background before any scenario starts, so
	// baselines exist; default two thirds of Days (at least 1).
	Warmup int
	// Scenarios are the names of the scenarios to inject; nil means all
	// of Scenarios(), empty (non-nil) means none.
	Scenarios []string
	// Key is the 32-byte blind-index key; nil draws one from Seed.
	Key []byte
	// System names the simulated source system; default DefaultSystem.
	System string
}

func (c *Config) fill() error {
	if c.Days <= 0 {
		c.Days = DefaultDays
	}
	if c.Staff <= 0 {
		c.Staff = DefaultStaff
	}
	if c.Patients <= 0 {
		c.Patients = DefaultPatients
	}
	c.Staff, c.Patients = max(c.Staff, 60), max(c.Patients, 300)
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	c.Start = c.Start.UTC()
	if c.Warmup <= 0 || c.Warmup >= c.Days {
		c.Warmup = max(1, c.Days*2/3)
	}
	if c.Warmup >= c.Days {
		return fmt.Errorf("simulate: %d days leave no day for scenarios after the warm-up", c.Days)
	}
	if c.System == "" {
		c.System = DefaultSystem
	}
	if c.Scenarios == nil {
		c.Scenarios = ScenarioNames()
	}
	for _, s := range c.Scenarios {
		if scenarioByName(s) == nil {
			return fmt.Errorf("simulate: unknown scenario %q", s)
		}
	}
	if c.Key != nil && len(c.Key) != 32 {
		return fmt.Errorf("simulate: key must be 32 bytes, not %d", len(c.Key))
	}
	return nil
}

// Workload is a simulated hospital's records and their ground truth.
type Workload struct {
	Config Config
	// Records are in time order, as an ingestion would store them; each
	// access event's Seq is its record's position from 1, so it matches
	// the sequence a fresh Store assigns.
	Records []detect.Record
	Truth   *Truth
	// Start and End bound the simulated time.
	Start, End time.Time

	times []time.Time // of each record
	// people are the plaintext of every staffer and patient, by
	// namespaced id, for Export only: they never reach a Record.
	people map[string]*person
	tk     *Tokenizer // the blind-index key's
	// practitioners maps "Practitioner/<id>" to the user id it is.
	practitioners map[string]string
	// unfed are the rules no record of w can feed: notIngestible for a
	// workload as ingested (Ingested), nil otherwise.
	unfed []string
}

// Events returns the number of access events in w.
func (w *Workload) Events() int {
	n := 0
	for i := range w.Records {
		if w.Records[i].Kind == detect.RecordAccess {
			n++
		}
	}
	return n
}

// Time returns the time of record i: its event's time, or when a roster
// or relationship record was sent.
func (w *Workload) Time(i int) time.Time { return w.times[i] }

// Pair is a user and a patient; Patient "" stands for the user's
// activity without a patient (sign-ins, control changes) or for the user
// as a whole.
type Pair struct {
	User    string `json:"user"`
	Patient string `json:"patient,omitempty"`
}

// Label is one piece of ground truth: what a scenario did to a pair.
type Label struct {
	Pair
	Scenario string `json:"scenario"`
	// Malicious is false for a benign look-alike (a near miss): an
	// alert on it is a false positive.
	Malicious bool `json:"malicious"`
	// Rules are the detectors this pair is the target of: their recall
	// counts it. A malicious pair without rules (collateral: the other
	// patients of a user-level scenario) still makes an alert on it a
	// true positive.
	Rules []string  `json:"rules,omitempty"`
	First time.Time `json:"first"` // the first malicious (or look-alike) event
	// Last is the last event of the label; for a (user, "") label, the
	// last of the scenario's events of the user.
	Last time.Time `json:"last"`
}

// Truth is the ground truth of a workload.
type Truth struct {
	// Labels are in the order the scenarios made them; a pair may have
	// labels of several scenarios.
	Labels []*Label
	// Injected are the scenarios injected, in order.
	Injected []string

	index map[[2]any][]*Label // (pair, scenario) → labels
}

// label records what scenario did to pair, expecting rules. Labels of
// one pair and scenario with the same rules merge (malicious wins over
// benign, the times widen); a label without rules only widens the
// scenario's labels of the pair, or stands alone as collateral.
func (t *Truth) label(p Pair, scenario string, malicious bool, at time.Time, rules ...string) {
	if t.index == nil {
		t.index = map[[2]any][]*Label{}
	}
	k := [2]any{p, scenario}
	rules = slices.Clone(rules)
	slices.Sort(rules)
	var l *Label
	for _, x := range t.index[k] {
		if len(rules) == 0 || slices.Equal(x.Rules, rules) {
			l = x
			break
		}
	}
	if l == nil {
		l = &Label{Pair: p, Scenario: scenario, Malicious: malicious, Rules: rules, First: at, Last: at}
		t.index[k] = append(t.index[k], l)
		t.Labels = append(t.Labels, l)
		return
	}
	switch {
	case malicious && !l.Malicious:
		l.Malicious, l.First, l.Last = true, at, at
		return
	case !malicious && l.Malicious:
		return
	}
	if at.Before(l.First) {
		l.First = at
	}
	if at.After(l.Last) {
		l.Last = at
	}
}

// spans extends each (user, "") label to the last labelled event of its
// scenario and user.
func (t *Truth) spans() {
	last := map[[2]string]time.Time{}
	for _, l := range t.Labels {
		k := [2]string{l.Scenario, l.User}
		if l.Last.After(last[k]) {
			last[k] = l.Last
		}
	}
	for _, l := range t.Labels {
		if l.Patient == "" {
			l.Last = last[[2]string{l.Scenario, l.User}]
		}
	}
}

// Verdicts returns, for every labelled pair, whether it is malicious
// (true if any scenario says so) or a benign look-alike (false).
func (t *Truth) Verdicts() map[Pair]bool {
	out := make(map[Pair]bool, len(t.Labels))
	for _, l := range t.Labels {
		out[l.Pair] = out[l.Pair] || l.Malicious
	}
	return out
}

// Generate simulates the hospital of cfg.
func Generate(ctx context.Context, cfg Config) (*Workload, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	key := cfg.Key
	if key == nil {
		key = make([]byte, 32)
		for i := range key {
			key[i] = byte(r.Uint32())
		}
	}
	g := &gen{
		cfg: cfg, r: r, tk: NewTokenizer(key), ctx: ctx,
		truth: &Truth{},
		used:  map[string]bool{},
	}
	if err := g.hospital(); err != nil {
		return nil, err
	}
	g.background()
	g.nBackground = len(g.items)
	for _, name := range cfg.Scenarios {
		sc := scenarioByName(name)
		sc.run(g, sc.Name)
		g.truth.Injected = append(g.truth.Injected, name)
	}
	if g.err != nil {
		return nil, g.err
	}
	g.truth.spans()
	return g.workload(), nil
}

// item is one record with its time and ordering keys.
type item struct {
	t    time.Time
	prio int // at equal times: rosters, then relationships, then events
	n    int // creation order
	rec  detect.Record
}

const (
	prioRoster = iota
	prioRelationship
	prioEvent
)

func (g *gen) workload() *Workload {
	g.items = slices.DeleteFunc(g.items, func(it item) bool { return !g.working(&it) })
	slices.SortFunc(g.items, func(a, b item) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		if a.prio != b.prio {
			return a.prio - b.prio
		}
		return a.n - b.n
	})
	w := &Workload{
		Config: g.cfg, Truth: g.truth,
		Start:   g.cfg.Start,
		End:     g.cfg.Start.AddDate(0, 0, g.cfg.Days),
		Records: make([]detect.Record, len(g.items)),
		times:   make([]time.Time, len(g.items)),
		people:  map[string]*person{}, practitioners: map[string]string{}, tk: g.tk,
	}
	for _, s := range g.staff {
		w.people[s.id] = s.person
		if s.practitioner != "" {
			w.practitioners["Practitioner/"+s.practitioner] = s.id
		}
	}
	for _, p := range append(slices.Clone(g.patients), g.honey...) {
		w.people[p.id] = p.person
	}
	for i := range g.items {
		rec := g.items[i].rec
		if rec.Event != nil {
			rec.Event.Seq = int64(i + 1)
		}
		w.Records[i] = rec
		w.times[i] = g.items[i].t
	}
	return w
}

// poisson draws from a Poisson distribution of mean m.
func poisson(r *rand.Rand, m float64) int {
	if m <= 0 {
		return 0
	}
	if m > 30 {
		return max(0, int(math.Round(m+r.NormFloat64()*math.Sqrt(m))))
	}
	l, k, p := math.Exp(-m), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// ns namespaces id in the simulated system.
func (g *gen) ns(id string) string { return g.cfg.System + ":" + id }

// day returns midnight of simulated day d.
func (g *gen) day(d int) time.Time { return g.cfg.Start.AddDate(0, 0, d) }

// at returns day d at hour:min.
func (g *gen) at(d, hour, min int) time.Time {
	return g.day(d).Add(time.Duration(hour)*time.Hour + time.Duration(min)*time.Minute)
}

// between returns a random time in [a, b).
func (g *gen) between(a, b time.Time) time.Time {
	if !b.After(a) {
		return a
	}
	return a.Add(time.Duration(g.r.Int64N(int64(b.Sub(a)))))
}

func (g *gen) add(t time.Time, prio int, rec detect.Record) {
	g.items = append(g.items, item{t: t, prio: prio, n: len(g.items), rec: rec})
}

// fail keeps the first error of the generation.
func (g *gen) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

func weekday(t time.Time) bool {
	wd := t.Weekday()
	return wd != time.Saturday && wd != time.Sunday
}
