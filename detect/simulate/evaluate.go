package simulate

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/detect"
)

// Defaults of Options: the simulated live mode.
const (
	// DefaultIngestDelay is how long an event takes to reach the ingest
	// stream: a clinic's system shipping its access log as it goes.
	DefaultIngestDelay = 500 * time.Millisecond
	// DefaultCoalesce is how close together records arrive to be
	// processed in one pipeline step (a Wake finds them all waiting).
	DefaultCoalesce = 100 * time.Millisecond
	// DefaultProcessingDelay is the time a step takes from the arrival of
	// its last record to the alert: read, observe, commit.
	DefaultProcessingDelay = 100 * time.Millisecond
	// DefaultSnapshotEvery is the simulated time between engine
	// snapshots.
	DefaultSnapshotEvery = 6 * time.Hour
)

// Options configure Evaluate. The zero value runs detect.DefaultRules in
// the default simulated live mode.
type Options struct {
	// Rules are the detectors; nil means the engine serve runs
	// (detect.NewEngineFor with Settings(): every rule, the learned
	// scoring, the simulated hospital's change windows).
	Rules []detect.Rule
	// Scorer and Suppressor, if set, are given to the engine (Scorer
	// replaces the default one).
	Scorer     detect.Scorer
	Suppressor detect.Suppressor
	// IngestDelay, Coalesce and ProcessingDelay model live mode: record i
	// arrives at its time + IngestDelay; the records arriving within
	// Coalesce of the first one waiting are one pipeline step; the
	// engine's clock (which stamps Alert.Detected) reads the arrival of
	// the step's last record + ProcessingDelay. Zero means the
	// Default… value; a negative value means zero.
	IngestDelay, Coalesce, ProcessingDelay time.Duration
	// Threshold is the alert score below which an alert does not count
	// as raised. Zero means detect.DefaultPageScore, the score from
	// which serve pages (detect.Dispatcher), so what is measured is what
	// reaches a person; a negative value counts every alert.
	Threshold int
	// Aliases maps the simulator's rule names (Rule…) to the engine's,
	// where they differ.
	Aliases map[string]string
	// FalsePositives is how many false alarms to keep as examples per
	// detector (Report.FalsePositives), for tuning. Default 0.
	FalsePositives int
}

// threshold is the effective Threshold.
func (o Options) threshold() int {
	switch {
	case o.Threshold == 0:
		return detect.DefaultPageScore
	case o.Threshold < 0:
		return 0
	}
	return o.Threshold
}

func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// Report is what Evaluate measured. Ratios are -1 where undefined (no
// alerts, or nothing to catch); durations -1 where nothing was caught.
type Report struct {
	Seed      uint64   `json:"seed"`
	Days      int      `json:"days"`
	Staff     int      `json:"staff"`
	Patients  int      `json:"patients"`
	Records   int      `json:"records"`
	Events    int      `json:"events"`
	Alerts    int      `json:"alerts"` // alerts raised (at or above Threshold)
	Scenarios []string `json:"scenarios"`
	// Detectors has one row per rule of the engine and per rule the
	// truth targets, by name.
	Detectors []DetectorReport `json:"detectors"`
	// ByScenario says how each scenario's targets fared against all
	// rules together.
	ByScenario []ScenarioReport `json:"byScenario"`
	// Overall: every alert, every target pair; MedianTTD is the median
	// of the scenarios' TTD.
	Precision float64       `json:"precision"`
	Recall    float64       `json:"recall"`
	MedianTTD time.Duration `json:"medianTTD"`
	// AUC is the ROC AUC of the risk score (the highest score of the
	// alerts covering a pair, 0 if none) over every user-patient pair of
	// the workload, malicious pairs positive.
	AUC   float64 `json:"auc"`
	Pairs int     `json:"pairs"` // pairs the AUC ranks
	// HoneytokenRecall is the recall of the honeytoken rule; the target
	// is 1.
	HoneytokenRecall float64 `json:"honeytokenRecall"`
	// FalsePositives are examples of alerts covering no malicious pair,
	// up to Options.FalsePositives per detector, earliest first.
	FalsePositives []FalsePositive `json:"falsePositives,omitempty"`
	// Elapsed is the wall time of the run (not deterministic).
	Elapsed time.Duration `json:"elapsed"`

	// Through is "ingest" for a run through a server's ingestion API
	// (EvaluateServer), "" in process.
	Through string `json:"through,omitempty"`
	// Skipped counts, through a server, the events the ingestion
	// formats cannot carry, by action (Export.Skipped).
	Skipped map[string]int `json:"skipped,omitempty"`
	// Latency is, through a server, the wall time from the answer to the
	// last ingestion request to the detector having processed it all.
	Latency time.Duration `json:"latency,omitempty"`
	// NotMeasurable is, through a server, what was left out of the
	// scores because no access log can feed its rules; nil in process.
	NotMeasurable *NotMeasurable `json:"notMeasurable,omitempty"`
}

// NotMeasurable is the part of the truth a run leaves out of precision,
// recall and AUC, because its rules watch events the run cannot send:
// through a server, the control actions of phivault's own trail, which
// role-grant, policy-reload, key-operation and seal-unseal watch.
type NotMeasurable struct {
	Rules []string `json:"rules"` // the rules no event sent can feed
	// Scenarios are those all of whose targets are the Rules': their
	// rows are left out of Report.ByScenario.
	Scenarios []string `json:"scenarios"`
	// Labels are the truth labels left out: those whose rules are all
	// among Rules, and every label of Scenarios. Targets are those of
	// them that a detector's recall would have counted.
	Labels  int `json:"labels"`
	Targets int `json:"targets"`
	// Pairs are the user-patient pairs left out of precision and AUC:
	// those all of whose labels are left out.
	Pairs int `json:"pairs"`
	// Alerts are the raised alerts left out: those covering only such
	// pairs.
	Alerts int `json:"alerts"`
}

// FalsePositive is an alert that covers no malicious pair: ids and the
// rule's sentence, and what the simulator knows of its user.
type FalsePositive struct {
	Rule       string    `json:"rule"`
	ID         string    `json:"id"`
	User       string    `json:"user"`
	Role       string    `json:"role,omitempty"`       // the user's first role, from the last roster
	Department string    `json:"department,omitempty"` // the user's department, from the last roster
	Patients   int       `json:"patients"`
	First      time.Time `json:"first"`
	Score      int       `json:"score"`
	NearMiss   bool      `json:"nearMiss"` // it covers a labelled look-alike
	Why        string    `json:"why"`
}

// DetectorReport is one rule's result.
type DetectorReport struct {
	Rule    string `json:"rule"`
	Present bool   `json:"present"` // the engine runs it
	Alerts  int    `json:"alerts"`
	// AlertTP are the alerts covering at least one malicious pair;
	// AlertPrecision is their share of Alerts.
	AlertTP        int     `json:"alertTP"`
	AlertPrecision float64 `json:"alertPrecision"`
	Pairs          int     `json:"pairs"` // distinct pairs its alerts cover
	TP             int     `json:"tp"`    // of Pairs, malicious
	FP             int     `json:"fp"`
	// NearMisses are the FP pairs labelled as benign look-alikes.
	NearMisses int     `json:"nearMisses"`
	Targets    int     `json:"targets"` // pairs the truth says it should catch
	Caught     int     `json:"caught"`
	Precision  float64 `json:"precision"`
	Recall     float64 `json:"recall"`
	// MedianTTD is the median over the incidents (scenarios) it caught of
	// the time from the incident's first target event to its first
	// catching alert.
	MedianTTD time.Duration `json:"medianTTD"`
	// NotMeasurable says its targets were left out (Report.NotMeasurable).
	NotMeasurable bool `json:"notMeasurable,omitempty"`
}

// ScenarioReport is one scenario's result against all rules.
type ScenarioReport struct {
	Name    string  `json:"name"`
	Targets int     `json:"targets"`
	Caught  int     `json:"caught"`
	Recall  float64 `json:"recall"`
	// TTD is the time from the first event of its targets to the first
	// alert catching any of them, or -1.
	TTD time.Duration `json:"ttd"`
	// NearMisses are its look-alike pairs, and how many raised alerts.
	NearMisses        int `json:"nearMisses"`
	NearMissesAlerted int `json:"nearMissesAlerted"`
}

// Run replays w through the detectors and returns the alerts, in
// simulated live mode (see Options).
func Run(ctx context.Context, w *Workload, opts Options) ([]*detect.Alert, []detect.Rule, error) {
	ingestDelay := orDefault(opts.IngestDelay, DefaultIngestDelay)
	coalesce := orDefault(opts.Coalesce, DefaultCoalesce)
	procDelay := orDefault(opts.ProcessingDelay, DefaultProcessingDelay)

	store := detect.NewMemStore()
	defer store.Close()
	clock := w.Start
	now := func() time.Time { return clock }
	// The pipeline gives the engine its lookup of committed alerts.
	var eng *detect.Engine
	if opts.Rules == nil {
		// The engine as serve runs it, with this hospital's change windows.
		eng = detect.NewEngineFor(Settings(), detect.NewDirectory(), nil)
	} else {
		eng = detect.NewEngine(detect.NewDirectory(), opts.Rules, nil)
	}
	if opts.Scorer != nil {
		eng.Scorer = opts.Scorer
	}
	eng.Now, eng.Suppressor = now, opts.Suppressor
	rules := eng.Rules()
	p := detect.NewPipeline(store, eng)
	p.Now, p.SnapshotEvery = now, DefaultSnapshotEvery
	if err := p.Open(ctx); err != nil {
		return nil, nil, err
	}
	for i := 0; i < len(w.Records); {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		first := w.times[i].Add(ingestDelay)
		j := i + 1
		for j < len(w.Records) && !w.times[j].Add(ingestDelay).After(first.Add(coalesce)) {
			j++
		}
		if _, err := store.Ingest(ctx, w.Records[i:j]); err != nil {
			return nil, nil, err
		}
		clock = w.times[j-1].Add(ingestDelay + procDelay)
		for {
			n, err := p.Step(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("simulate: step: %w", err)
			}
			if n < p.Batch {
				break
			}
		}
		i = j
	}
	alerts, err := store.Alerts(ctx, detect.AlertFilter{})
	if err != nil {
		return nil, nil, err
	}
	return alerts, rules, nil
}

// Evaluate runs w through the detectors (Run) and scores the alerts
// against w's truth.
func Evaluate(ctx context.Context, w *Workload, opts Options) (*Report, error) {
	start := time.Now()
	alerts, rules, err := Run(ctx, w, opts)
	if err != nil {
		return nil, err
	}
	rep := Score(w, alerts, ruleNames(rules), opts)
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func ruleNames(rules []detect.Rule) []string {
	var names []string
	for _, r := range rules {
		names = append(names, r.Name())
	}
	return names
}

// coverage is what the alerts say about pairs.
type coverage struct {
	byRule map[string]map[Pair]bool // rule → pairs its alerts cover
	any    map[Pair]bool            // pairs any alert covers
	score  map[Pair]int             // highest score of any alert covering the pair
	uScore map[string]int           // user → highest score of any alert covering a pair of the user
	alerts map[string]int           // rule → alerts
	byPair map[Pair][]hit           // alerts covering the pair
	byUser map[string][]hit         // alerts covering any pair of the user, once each
}

// hit is an alert covering a pair.
type hit struct {
	rule                  string
	first, detected, last time.Time
}

// caught returns when an alert of rule (any rule if "") covering l's
// pair, or for a (user, "") label any pair of the user, was first
// detected, among the alerts whose events overlap l's.
func (c *coverage) caught(rule string, l *Label) (time.Time, bool) {
	hits := c.byPair[l.Pair]
	if l.Patient == "" {
		hits = c.byUser[l.User]
	}
	var best time.Time
	for _, h := range hits {
		if (rule == "" || h.rule == rule) && !h.last.Before(l.First) && !h.first.After(l.Last) && (best.IsZero() || h.detected.Before(best)) {
			best = h.detected
		}
	}
	return best, !best.IsZero()
}

// pairsOf returns the pairs alert a covers: its user with each of its
// patients if it names any; else its user alone, (user, ""); else, for an
// alert about no one user (credential stuffing from one address), each
// user of its evidence events alone.
func pairsOf(a *detect.Alert, events map[string]*detect.Event) []Pair {
	var out []Pair
	for _, p := range a.Patients {
		out = append(out, Pair{a.User, p})
	}
	switch {
	case len(out) > 0:
		return out
	case a.User != "":
		return []Pair{{a.User, ""}}
	}
	for _, ref := range a.Evidence {
		if ev := events[ref]; ev != nil && ev.User != "" {
			out = append(out, Pair{ev.User, ""})
		}
	}
	slices.SortFunc(out, func(x, y Pair) int {
		if c := strings.Compare(x.User, y.User); c != 0 {
			return c
		}
		return strings.Compare(x.Patient, y.Patient)
	})
	return slices.Compact(out)
}

// Score compares alerts with w's truth. rules are the names of the rules
// that ran. For a workload as ingested (Workload.Ingested), the part of
// the truth that only rules no access log feeds could catch, and the
// alerts about it, are left out of precision, recall and AUC
// (Report.NotMeasurable).
func Score(w *Workload, alerts []*detect.Alert, rules []string, opts Options) *Report {
	unfed := w.unfed
	alias := func(r string) string {
		if a, ok := opts.Aliases[r]; ok {
			return a
		}
		return r
	}
	out := leftOut(w.Truth, unfed)
	events := map[string]*detect.Event{}
	universe := map[Pair]bool{}
	for i := range w.Records {
		ev := w.Records[i].Event
		if ev == nil {
			continue
		}
		events[ev.Ref()] = ev
		if len(ev.Patients) == 0 {
			universe[Pair{ev.User, ""}] = true
		}
		for _, p := range ev.Patients {
			universe[Pair{ev.User, p}] = true
		}
	}
	verdict := out.verdicts(w.Truth)
	for p := range verdict {
		universe[p] = true
	}
	for p := range out.pairs() {
		delete(universe, p)
	}

	c := coverage{
		byRule: map[string]map[Pair]bool{}, any: map[Pair]bool{}, score: map[Pair]int{}, uScore: map[string]int{},
		alerts: map[string]int{}, byPair: map[Pair][]hit{}, byUser: map[string][]hit{},
	}
	raised := 0
	type alertPairs struct {
		rule  string
		pairs []Pair
	}
	var raisedPairs []alertPairs
	var kept []*detect.Alert
	for _, a := range alerts {
		if a.Score < opts.threshold() {
			continue
		}
		pairs := pairsOf(a, events)
		if out.covers(pairs) {
			out.Alerts++
			continue
		}
		pairs = out.without(pairs)
		kept = append(kept, a)
		raised++
		c.alerts[a.Rule]++
		if c.byRule[a.Rule] == nil {
			c.byRule[a.Rule] = map[Pair]bool{}
		}
		h := hit{a.Rule, a.First, a.Detected, a.Last}
		users := map[string]bool{}
		raisedPairs = append(raisedPairs, alertPairs{a.Rule, pairs})
		for _, p := range pairs {
			c.byRule[a.Rule][p], c.any[p] = true, true
			c.score[p] = max(c.score[p], a.Score)
			c.uScore[p.User] = max(c.uScore[p.User], a.Score)
			c.byPair[p] = append(c.byPair[p], h)
			if !users[p.User] {
				users[p.User] = true
				c.byUser[p.User] = append(c.byUser[p.User], h)
			}
		}
	}

	rep := &Report{
		Seed: w.Config.Seed, Days: w.Config.Days, Staff: w.Config.Staff, Patients: w.Config.Patients,
		Records: len(w.Records), Events: len(events), Alerts: raised, Scenarios: w.Truth.Injected,
	}
	// malicious reports whether an alerted pair is a true positive.
	maliciousUser := map[string]bool{}
	for p, bad := range verdict {
		if bad {
			maliciousUser[p.User] = true
		}
	}
	isTP := func(p Pair) bool {
		if bad, ok := verdict[p]; ok {
			return bad
		}
		return p.Patient == "" && maliciousUser[p.User]
	}
	// A look-alike of a user as a whole, (user, ""), makes every pair of
	// the user a look-alike for the rules it names.
	nearUser := map[[2]string]bool{}
	for _, l := range w.Truth.Labels {
		if !l.Malicious && l.Patient == "" && !out.has(l) {
			for _, r := range l.Rules {
				nearUser[[2]string{alias(r), l.User}] = true
			}
		}
	}
	isNear := func(rule string, p Pair) bool {
		if bad, ok := verdict[p]; ok {
			return !bad
		}
		return nearUser[[2]string{rule, p.User}]
	}
	// Time to detect is per incident: from the first event of a
	// scenario's targets to the first detection of any of them.
	type incident struct{ first, detected time.Time }
	note := func(m map[string]*incident, l *Label, t time.Time, ok bool) {
		in := m[l.Scenario]
		if in == nil {
			in = &incident{first: l.First}
			m[l.Scenario] = in
		}
		if l.First.Before(in.first) {
			in.first = l.First
		}
		if ok && (in.detected.IsZero() || t.Before(in.detected)) {
			in.detected = t
		}
	}
	ttds := func(m map[string]*incident) []time.Duration {
		var out []time.Duration
		for _, in := range m {
			if !in.detected.IsZero() {
				out = append(out, max(0, in.detected.Sub(in.first)))
			}
		}
		return out
	}

	// The engine's rules in its order, then the absent ones by name.
	var absent []string
	for _, l := range w.Truth.Labels {
		if out.has(l) {
			continue
		}
		for _, r := range l.Rules {
			if r = alias(r); !slices.Contains(rules, r) && !slices.Contains(absent, r) {
				absent = append(absent, r)
			}
		}
	}
	slices.Sort(absent)
	names := append(slices.Clone(rules), absent...)
	var allTP, allFP int
	for p := range c.any {
		if isTP(p) {
			allTP++
		} else {
			allFP++
		}
	}
	for _, name := range names {
		d := DetectorReport{Rule: name, Present: slices.Contains(rules, name), Alerts: c.alerts[name],
			NotMeasurable: slices.ContainsFunc(unfed, func(r string) bool { return alias(r) == name })}
		for p := range c.byRule[name] {
			d.Pairs++
			switch {
			case isTP(p):
				d.TP++
			case isNear(name, p):
				d.FP++
				d.NearMisses++
			default:
				d.FP++
			}
		}
		for _, ap := range raisedPairs {
			if ap.rule == name && slices.ContainsFunc(ap.pairs, isTP) {
				d.AlertTP++
			}
		}
		d.AlertPrecision = ratio(d.AlertTP, d.Alerts)
		incidents := map[string]*incident{}
		for _, l := range w.Truth.Labels {
			if !l.Malicious || out.has(l) || !slices.ContainsFunc(l.Rules, func(r string) bool { return alias(r) == name }) {
				continue
			}
			d.Targets++
			t, ok := c.caught(name, l)
			if ok {
				d.Caught++
			}
			note(incidents, l, t, ok)
		}
		d.Precision, d.Recall, d.MedianTTD = ratio(d.TP, d.Pairs), ratio(d.Caught, d.Targets), median(ttds(incidents))
		rep.Detectors = append(rep.Detectors, d)
		if name == alias(RuleHoneytoken) {
			rep.HoneytokenRecall = d.Recall
		}
	}
	var targets, caught int
	var allTTD []time.Duration
	for _, name := range w.Truth.Injected {
		if out.scenario(name) {
			continue
		}
		s := ScenarioReport{Name: name, TTD: -1}
		incidents := map[string]*incident{}
		for _, l := range w.Truth.Labels {
			p := l.Pair
			if l.Scenario != name || out.has(l) {
				continue
			}
			if !l.Malicious {
				if verdict[p] {
					continue // malicious in another scenario
				}
				s.NearMisses++
				if _, ok := c.caught("", l); ok {
					s.NearMissesAlerted++
				}
				continue
			}
			if len(l.Rules) == 0 {
				continue
			}
			s.Targets++
			t, ok := c.caught("", l)
			if ok {
				s.Caught++
			}
			note(incidents, l, t, ok)
		}
		s.Recall = ratio(s.Caught, s.Targets)
		if d := ttds(incidents); len(d) > 0 {
			s.TTD = d[0]
			allTTD = append(allTTD, d[0])
		}
		rep.ByScenario = append(rep.ByScenario, s)
		targets, caught = targets+s.Targets, caught+s.Caught
	}
	rep.Precision, rep.Recall, rep.MedianTTD = ratio(allTP, allTP+allFP), ratio(caught, targets), median(allTTD)
	if opts.FalsePositives > 0 {
		rep.FalsePositives = falsePositives(w, kept, opts, isTP, isNear)
	}
	if !slices.Contains(names, alias(RuleHoneytoken)) {
		rep.HoneytokenRecall = -1
	}

	// ROC AUC over the universe of pairs.
	var pos, neg []int
	for p := range universe {
		s := c.score[p]
		if p.Patient == "" {
			s = max(s, c.uScore[p.User])
		}
		if isTP(p) {
			pos = append(pos, s)
		} else {
			neg = append(neg, s)
		}
	}
	rep.Pairs, rep.AUC = len(universe), auc(pos, neg)
	rep.NotMeasurable = out.report()
	return rep
}

func ratio(a, b int) float64 {
	if b == 0 {
		return -1
	}
	return float64(a) / float64(b)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	if len(ds)%2 == 1 {
		return ds[len(ds)/2]
	}
	return (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
}

// auc returns the probability that a random positive scores above a
// random negative, ties counting half (the Mann–Whitney U statistic over
// |pos|·|neg|); -1 if either is empty.
func auc(pos, neg []int) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return -1
	}
	slices.Sort(neg)
	var u float64
	for _, s := range pos {
		below, _ := slices.BinarySearch(neg, s)
		upto, _ := slices.BinarySearch(neg, s+1)
		u += float64(below) + float64(upto-below)/2
	}
	return u / (float64(len(pos)) * float64(len(neg)))
}

// FormatRatio renders a ratio of a Report: "-" if undefined.
func FormatRatio(r float64) string {
	if r < 0 {
		return "-"
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

// FormatDuration renders a duration of a Report: "-" if none.
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	if d < time.Minute {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// falsePositives returns up to opts.FalsePositives alerts per rule that
// cover no malicious pair, earliest first.
func falsePositives(w *Workload, alerts []*detect.Alert, opts Options, isTP func(Pair) bool, isNear func(string, Pair) bool) []FalsePositive {
	users := map[string]*detect.User{}
	for i := range w.Records {
		if u := w.Records[i].User; u != nil {
			users[u.ID] = u
		}
	}
	events := map[string]*detect.Event{}
	for i := range w.Records {
		if ev := w.Records[i].Event; ev != nil {
			events[ev.Ref()] = ev
		}
	}
	sorted := slices.Clone(alerts)
	slices.SortFunc(sorted, func(a, b *detect.Alert) int {
		if c := a.First.Compare(b.First); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var out []FalsePositive
	per := map[string]int{}
	for _, a := range sorted {
		if a.Score < opts.threshold() || per[a.Rule] >= opts.FalsePositives {
			continue
		}
		pairs := pairsOf(a, events)
		if slices.ContainsFunc(pairs, isTP) {
			continue
		}
		per[a.Rule]++
		fp := FalsePositive{Rule: a.Rule, ID: a.ID, User: a.User, Patients: len(a.Patients), First: a.First, Score: a.Score,
			NearMiss: slices.ContainsFunc(pairs, func(p Pair) bool { return isNear(a.Rule, p) }), Why: a.Why}
		if u := users[a.User]; u != nil {
			fp.Department = u.Department
			if len(u.Roles) > 0 {
				fp.Role = u.Roles[0]
			}
		}
		out = append(out, fp)
	}
	return out
}

// excluded is the part of a truth left out of the scores, or nil for
// none: its methods take a nil receiver.
type excluded struct {
	NotMeasurable
	labels    map[*Label]bool
	scenarios map[string]bool
	pairSet   map[Pair]bool
}

// leftOut returns the part of t that only the rules unfed could catch:
// the labels whose rules are all among them, every label of a scenario
// all of whose targets are such labels, and the pairs all of whose
// labels are left out. nil if unfed is empty.
func leftOut(t *Truth, unfed []string) *excluded {
	if len(unfed) == 0 {
		return nil
	}
	onlyUnfed := func(l *Label) bool {
		return len(l.Rules) > 0 && !slices.ContainsFunc(l.Rules, func(r string) bool { return !slices.Contains(unfed, r) })
	}
	x := &excluded{NotMeasurable: NotMeasurable{Rules: slices.Clone(unfed)},
		labels: map[*Label]bool{}, scenarios: map[string]bool{}, pairSet: map[Pair]bool{}}
	fed := map[string]bool{} // scenario → some target of it has a rule fed
	for _, l := range t.Labels {
		if l.Malicious && len(l.Rules) > 0 {
			fed[l.Scenario] = fed[l.Scenario] || !onlyUnfed(l)
		}
	}
	for name, f := range fed {
		if !f {
			x.scenarios[name] = true
		}
	}
	kept := map[Pair]bool{}
	for _, l := range t.Labels {
		if onlyUnfed(l) || x.scenarios[l.Scenario] {
			x.labels[l] = true
			x.Labels++
			if l.Malicious && len(l.Rules) > 0 {
				x.Targets++
			}
			x.pairSet[l.Pair] = true
		} else {
			kept[l.Pair] = true
		}
	}
	for p := range kept {
		delete(x.pairSet, p)
	}
	x.Pairs = len(x.pairSet)
	for _, name := range t.Injected {
		if x.scenarios[name] {
			x.Scenarios = append(x.Scenarios, name)
		}
	}
	return x
}

// has reports whether l is left out.
func (x *excluded) has(l *Label) bool { return x != nil && x.labels[l] }

// scenario reports whether the scenario name is left out.
func (x *excluded) scenario(name string) bool { return x != nil && x.scenarios[name] }

// verdicts returns t.Verdicts() over the labels not left out.
func (x *excluded) verdicts(t *Truth) map[Pair]bool {
	if x == nil {
		return t.Verdicts()
	}
	out := make(map[Pair]bool, len(t.Labels))
	for _, l := range t.Labels {
		if !x.labels[l] {
			out[l.Pair] = out[l.Pair] || l.Malicious
		}
	}
	return out
}

// pairs returns the pairs left out.
func (x *excluded) pairs() map[Pair]bool {
	if x == nil {
		return nil
	}
	return x.pairSet
}

// covers reports whether pairs, those of an alert, are all left out.
func (x *excluded) covers(pairs []Pair) bool {
	return x != nil && len(pairs) > 0 && !slices.ContainsFunc(pairs, func(p Pair) bool { return !x.pairSet[p] })
}

// without returns pairs, those of an alert, less those left out.
func (x *excluded) without(pairs []Pair) []Pair {
	if x == nil {
		return pairs
	}
	return slices.DeleteFunc(pairs, func(p Pair) bool { return x.pairSet[p] })
}

// report returns what was left out, or nil.
func (x *excluded) report() *NotMeasurable {
	if x == nil {
		return nil
	}
	nm := x.NotMeasurable
	return &nm
}
