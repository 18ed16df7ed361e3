package simulate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/simulate"
)

// small is a simulation size that runs in well under a second.
func small(seed uint64) simulate.Config {
	return simulate.Config{Seed: seed, Days: 10, Staff: 80, Patients: 600}
}

func mustGenerate(tb testing.TB, cfg simulate.Config) *simulate.Workload {
	tb.Helper()
	w, err := simulate.Generate(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("Generate: %v", err)
	}
	return w
}

// honeyRule is a test honeytoken detector: any touch of a decoy.
type honeyRule struct{}

func (honeyRule) Name() string { return simulate.RuleHoneytoken }

func (honeyRule) Observe(x *detect.Context, ev *detect.Event) {
	for _, p := range ev.Patients {
		if x.Dir.Honeytoken(p) {
			x.Report(detect.Finding{Rule: simulate.RuleHoneytoken, Key: ev.User + "|" + p, Severity: detect.SeverityCritical,
				Score: 100, User: ev.User, Patients: []string{p}, Why: "decoy " + p + " touched by " + ev.User})
		}
	}
}

// relRule is a strict test no-relationship detector: an access by staff
// to a patient without a relationship within an hour.
type relRule struct{}

func (relRule) Name() string { return simulate.RuleNoRelationship }

func (relRule) Observe(x *detect.Context, ev *detect.Event) {
	if ev.User == "" || !ev.OK || x.Dir.User(ev.User) == nil {
		return
	}
	for _, p := range ev.Patients {
		if x.Dir.Honeytoken(p) || x.Dir.Related(ev.User, p, ev.Time, time.Hour) != nil {
			continue
		}
		x.Report(detect.Finding{Rule: simulate.RuleNoRelationship, Key: ev.User + "|" + p, Severity: detect.SeverityMedium,
			Score: 50, User: ev.User, Patients: []string{p}, Why: "no relationship"})
	}
}

func digest(tb testing.TB, w *simulate.Workload) [32]byte {
	tb.Helper()
	b, err := json.Marshal(w.Records)
	if err != nil {
		tb.Fatal(err)
	}
	t, err := json.Marshal(w.Truth)
	if err != nil {
		tb.Fatal(err)
	}
	return sha256.Sum256(append(b, t...))
}

func TestGenerate_deterministic(t *testing.T) {
	tiny := func(seed uint64) simulate.Config {
		return simulate.Config{Seed: seed, Days: 6, Staff: 60, Patients: 300}
	}
	a, b := mustGenerate(t, tiny(7)), mustGenerate(t, tiny(7))
	if digest(t, a) != digest(t, b) {
		t.Error("two workloads of seed 7 differ")
	}
	if c := mustGenerate(t, tiny(8)); digest(t, c) == digest(t, a) {
		t.Error("workloads of seeds 7 and 8 are the same")
	}
}

// TestGenerate_records checks the records look like ingestion's: time
// order, sequence numbers, namespaced ids, the ingest stream, tokens only.
func TestGenerate_records(t *testing.T) {
	w := mustGenerate(t, small(1))
	if w.Events() < 5000 {
		t.Fatalf("Events() = %d, want a busy hospital", w.Events())
	}
	kinds := map[string]int{}
	for i, r := range w.Records {
		kinds[r.Kind]++
		if i > 0 && w.Time(i).Before(w.Time(i-1)) {
			t.Fatalf("record %d at %v comes after one at %v", i, w.Time(i), w.Time(i-1))
		}
		if r.Kind != detect.RecordAccess {
			continue
		}
		ev := r.Event
		if ev.Seq != int64(i+1) || ev.Stream != detect.StreamIngest || ev.System != "sim" || !ev.Time.Equal(w.Time(i)) {
			t.Fatalf("record %d: event seq %d stream %q system %q time %v", i, ev.Seq, ev.Stream, ev.System, ev.Time)
		}
		if !strings.HasPrefix(ev.User, "sim:") {
			t.Fatalf("record %d: user %q not namespaced", i, ev.User)
		}
		for _, p := range ev.Patients {
			if !strings.HasPrefix(p, "sim:") {
				t.Fatalf("record %d: patient %q not namespaced", i, p)
			}
		}
	}
	for _, k := range []string{detect.RecordAccess, detect.RecordStaff, detect.RecordPatient, detect.RecordRelationship, detect.RecordHoneytoken} {
		if kinds[k] == 0 {
			t.Errorf("no %s records", k)
		}
	}
	b, err := json.Marshal(w.Records)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Smith", "smith", "Maple", "maple", "Avenue", "Lakeview"} {
		if bytes.Contains(b, []byte(name)) {
			t.Errorf("records contain %q: plaintext left the generator", name)
		}
	}
}

// TestGenerate_people checks the population has what the people
// detectors look for: shared family names and addresses, streets,
// employees who are patients, VIPs, deceased patients.
func TestGenerate_people(t *testing.T) {
	w := mustGenerate(t, small(2))
	var (
		users    []*detect.User
		patients []*detect.Patient
	)
	for _, r := range w.Records {
		switch r.Kind {
		case detect.RecordStaff:
			users = append(users, r.User)
		case detect.RecordPatient:
			patients = append(patients, r.Patient)
		}
	}
	count := func(f func(*detect.Patient) bool) int {
		n := 0
		for _, p := range patients {
			if f(p) {
				n++
			}
		}
		return n
	}
	sharedAddress := 0
	for i := 1; i < len(patients); i++ {
		if detect.Shares(patients[i].Person.Address, patients[i-1].Person.Address) {
			sharedAddress++
		}
	}
	if sharedAddress == 0 {
		t.Error("no two patients share an address")
	}
	if n := count(func(p *detect.Patient) bool { return p.HasLabel(detect.LabelVIP) }); n == 0 {
		t.Error("no VIP")
	}
	if n := count(func(p *detect.Patient) bool { return p.Deceased }); n == 0 {
		t.Error("no deceased patient")
	}
	if n := count(func(p *detect.Patient) bool { return p.Employee != "" }); n == 0 {
		t.Error("no employee is a patient")
	}
	linked := 0
	for _, u := range users {
		if u.Patient != "" {
			linked++
		}
		if len(u.Person.Family) == 0 || len(u.Person.Address) == 0 || len(u.Person.Street) == 0 {
			t.Fatalf("user %s has no person tokens", u.ID)
		}
	}
	if linked == 0 {
		t.Error("no user is linked to their patient record")
	}
}

func TestGenerate_errors(t *testing.T) {
	tests := []simulate.Config{
		{Scenarios: []string{"no-such-scenario"}},
		{Key: []byte("short")},
	}
	for _, cfg := range tests {
		if _, err := simulate.Generate(context.Background(), cfg); err == nil {
			t.Errorf("Generate(%+v) = nil error, want one", cfg)
		}
	}
}

// TestGenerate_scenarios checks every scenario leaves ground truth to
// measure against, at a small size, for several seeds.
func TestGenerate_scenarios(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		w := mustGenerate(t, small(seed))
		if !slices.Equal(w.Truth.Injected, simulate.ScenarioNames()) {
			t.Fatalf("seed %d: injected %v, want every scenario", seed, w.Truth.Injected)
		}
		targets := map[string]int{}
		for _, l := range w.Truth.Labels {
			if l.Malicious && len(l.Rules) > 0 {
				targets[l.Scenario]++
				if l.First.Before(w.Start.AddDate(0, 0, w.Config.Warmup)) || l.First.After(w.End) {
					t.Errorf("seed %d: %s target %v starts at %v, outside the scenario days", seed, l.Scenario, l.Pair, l.First)
				}
			}
		}
		for _, name := range simulate.ScenarioNames() {
			if targets[name] == 0 {
				t.Errorf("seed %d: scenario %s has no target", seed, name)
			}
		}
	}
	none := mustGenerate(t, simulate.Config{Seed: 1, Days: 10, Staff: 80, Patients: 600, Scenarios: []string{}})
	for _, l := range none.Truth.Labels {
		if l.Malicious {
			t.Fatalf("no scenarios asked, yet %v is malicious (%s)", l.Pair, l.Scenario)
		}
	}
}

// TestEvaluate_honeytoken runs the harness with a test honeytoken rule:
// every touch caught, nothing else flagged, detected within the live
// mode's delays.
func TestEvaluate_honeytoken(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		w := mustGenerate(t, small(seed))
		rep, err := simulate.Evaluate(context.Background(), w, simulate.Options{Rules: []detect.Rule{honeyRule{}}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.HoneytokenRecall != 1 {
			t.Errorf("seed %d: honeytoken recall %v, want 1", seed, rep.HoneytokenRecall)
		}
		d := detector(t, rep, simulate.RuleHoneytoken)
		if !d.Present || d.Targets < 2 || d.Precision != 1 {
			t.Errorf("seed %d: honeytoken row %+v, want present, ≥ 2 targets, precision 1", seed, d)
		}
		if max := simulate.DefaultIngestDelay + simulate.DefaultCoalesce + simulate.DefaultProcessingDelay; d.MedianTTD <= 0 || d.MedianTTD > max {
			t.Errorf("seed %d: median time to detect %v, want in (0, %v]", seed, d.MedianTTD, max)
		}
		if r := detector(t, rep, simulate.RuleNoRelationship); r.Present || r.Targets == 0 || r.Recall != 0 {
			t.Errorf("seed %d: absent rule's row %+v, want absent, with targets, recall 0", seed, r)
		}
		if rep.AUC <= 0.5 || rep.AUC > 1 {
			t.Errorf("seed %d: AUC %v with honeytoken alerts only, want in (0.5, 1]", seed, rep.AUC)
		}
	}
}

// TestEvaluate_background runs a strict no-relationship rule: every pair
// it flags must be malicious or a labelled look-alike, which shows the
// background is consistent (every ordinary access has its reason).
func TestEvaluate_background(t *testing.T) {
	w := mustGenerate(t, small(4))
	alerts, _, err := simulate.Run(context.Background(), w, simulate.Options{Rules: []detect.Rule{relRule{}}})
	if err != nil {
		t.Fatal(err)
	}
	verdict := w.Truth.Verdicts()
	var stray []string
	for _, a := range alerts {
		p := simulate.Pair{User: a.User, Patient: a.Patients[0]}
		if _, ok := verdict[p]; !ok {
			stray = append(stray, a.Key)
		}
	}
	if len(stray) > 0 {
		t.Errorf("%d of %d alerts on unlabelled pairs (background accesses without a relationship), e.g. %v", len(stray), len(alerts), stray[:min(5, len(stray))])
	}
	rep := simulate.Score(w, alerts, []string{simulate.RuleNoRelationship}, simulate.Options{})
	d := detector(t, rep, simulate.RuleNoRelationship)
	if d.Recall < 0.9 {
		t.Errorf("strict no-relationship recall %v, want ≥ 0.9: %+v", d.Recall, d)
	}
	if d.NearMisses == 0 {
		t.Errorf("strict rule fell for no look-alike; the near misses test nothing: %+v", d)
	}
	fps := simulate.Score(w, alerts, []string{simulate.RuleNoRelationship}, simulate.Options{FalsePositives: 2}).FalsePositives
	if len(fps) != min(2, d.FP) {
		t.Fatalf("%d false-alarm examples, want %d", len(fps), min(2, d.FP))
	}
	for _, f := range fps {
		if f.Rule != simulate.RuleNoRelationship || !f.NearMiss || f.Role == "" || f.Patients != 1 {
			t.Errorf("false alarm %+v: want a no-relationship look-alike of a staff member", f)
		}
	}
}

// TestEvaluate_threshold checks alerts below the threshold do not count.
func TestEvaluate_threshold(t *testing.T) {
	w := mustGenerate(t, small(5))
	alerts, _, err := simulate.Run(context.Background(), w, simulate.Options{Rules: []detect.Rule{honeyRule{}}})
	if err != nil {
		t.Fatal(err)
	}
	rep := simulate.Score(w, alerts, []string{simulate.RuleHoneytoken}, simulate.Options{Threshold: 101})
	if rep.Alerts != 0 || rep.HoneytokenRecall != 0 {
		t.Errorf("threshold 101: %d alerts, recall %v; want 0, 0", rep.Alerts, rep.HoneytokenRecall)
	}
	aliased := simulate.Score(w, alerts, []string{"decoy"}, simulate.Options{Aliases: map[string]string{simulate.RuleHoneytoken: "decoy"}})
	if d := detector(t, aliased, "decoy"); d.Targets == 0 {
		t.Errorf("alias: decoy row %+v, want the honeytoken targets", d)
	}
}

// TestEvaluate_liveClock checks Detected follows simulated time plus the
// modelled delays.
func TestEvaluate_liveClock(t *testing.T) {
	w := mustGenerate(t, small(6))
	alerts, _, err := simulate.Run(context.Background(), w, simulate.Options{Rules: []detect.Rule{honeyRule{}}, IngestDelay: 2 * time.Second, ProcessingDelay: -1, Coalesce: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) == 0 {
		t.Fatal("no alerts")
	}
	for _, a := range alerts {
		if got := a.Detected.Sub(a.First); got != 2*time.Second {
			t.Errorf("alert %s detected %v after its first event, want 2s", a.ID, got)
		}
	}
}

func detector(t *testing.T, rep *simulate.Report, rule string) simulate.DetectorReport {
	t.Helper()
	for _, d := range rep.Detectors {
		if d.Rule == rule {
			return d
		}
	}
	t.Fatalf("no row for %s", rule)
	return simulate.DetectorReport{}
}

var _ = phivault.ActionRead

// TestGenerate_peopleTruth checks, through tokens only, that the people
// scenarios' targets have what their detectors compare, and their near
// misses do not.
func TestGenerate_peopleTruth(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		w := mustGenerate(t, small(seed))
		dir := detect.NewDirectory()
		for _, r := range w.Records {
			switch r.Kind {
			case detect.RecordStaff:
				dir.PutUser(r.User)
			case detect.RecordPatient:
				dir.PutPatient(r.Patient)
			}
		}
		checked := map[string]int{}
		for _, l := range w.Truth.Labels {
			u, p := dir.User(l.User), dir.Patient(l.Patient)
			if u == nil || p == nil {
				continue
			}
			// Family: same address or phone (the definition).
			family := detect.Shares(u.Person.Address, p.Person.Address) || detect.Shares(u.Person.Phone, p.Person.Phone)
			street := detect.Shares(u.Person.Street, p.Person.Street)
			for _, rule := range l.Rules {
				var ok bool
				switch rule {
				case simulate.RuleSelf:
					ok = u.Patient == p.ID && p.Employee == u.ID
				case simulate.RuleFamily:
					ok = family == l.Malicious && (l.Malicious || detect.Shares(u.Person.Family, p.Person.Family))
				case simulate.RuleNeighbour:
					ok = street == l.Malicious && (!l.Malicious || !detect.Shares(u.Person.Address, p.Person.Address))
				case simulate.RuleCoworker:
					ok = p.Employee != "" && p.Employee != u.ID
				case simulate.RuleVIP:
					ok = p.HasLabel(detect.LabelVIP)
				case simulate.RuleDeceased:
					ok = p.Deceased
				case simulate.RuleHoneytoken:
					ok = true // checked by TestEvaluate_honeytoken
				default:
					continue
				}
				checked[rule]++
				if !ok {
					t.Errorf("seed %d: %s %v (malicious %v) of %s: the directory does not show it", seed, rule, l.Pair, l.Malicious, l.Scenario)
				}
			}
		}
		for _, r := range []string{simulate.RuleSelf, simulate.RuleFamily, simulate.RuleNeighbour, simulate.RuleCoworker, simulate.RuleVIP, simulate.RuleDeceased} {
			if checked[r] == 0 {
				t.Errorf("seed %d: no %s label to check", seed, r)
			}
		}
	}
}

// TestScore checks the pair-level arithmetic on alerts made by hand: one
// catch a second late, one false alarm on a look-alike, one alert before
// the malicious activity (which catches nothing).
func TestScore(t *testing.T) {
	w := mustGenerate(t, small(9))
	var target, near *simulate.Label
	for _, l := range w.Truth.Labels {
		switch {
		case target == nil && l.Malicious && slices.Contains(l.Rules, simulate.RuleNoRelationship) && l.Patient != "":
			target = l
		case near == nil && !l.Malicious && l.Patient != "" && slices.Contains(l.Rules, simulate.RuleNoRelationship):
			near = l
		}
	}
	if target == nil || near == nil {
		t.Fatal("no no-relationship target or look-alike")
	}
	alerts := []*detect.Alert{
		{ID: "a", Rule: simulate.RuleNoRelationship, User: target.User, Patients: []string{target.Patient}, Score: 80,
			First: target.First, Last: target.First, Detected: target.First.Add(time.Second)},
		{ID: "b", Rule: simulate.RuleNoRelationship, User: near.User, Patients: []string{near.Patient}, Score: 40,
			First: near.First, Last: near.First, Detected: near.First.Add(time.Second)},
		{ID: "c", Rule: simulate.RuleSelf, User: target.User, Score: 30,
			First: w.Start, Last: w.Start, Detected: w.Start},
	}
	rep := simulate.Score(w, alerts, []string{simulate.RuleNoRelationship, simulate.RuleSelf}, simulate.Options{})
	d := detector(t, rep, simulate.RuleNoRelationship)
	if d.Pairs != 2 || d.TP != 1 || d.FP != 1 || d.NearMisses != 1 || d.Precision != 0.5 || d.Caught != 1 || d.MedianTTD != time.Second {
		t.Errorf("no-relationship row %+v, want 2 pairs, 1 TP, 1 near-miss FP, 1 caught in 1s", d)
	}
	if want := 1 / float64(d.Targets); d.Recall != want {
		t.Errorf("recall %v, want %v", d.Recall, want)
	}
	if s := detector(t, rep, simulate.RuleSelf); s.Caught != 0 || s.Pairs != 1 || s.TP != 1 {
		t.Errorf("self row %+v: an alert on the user before the act catches nothing, but the user is malicious", s)
	}
	if rep.Alerts != 3 || rep.AUC <= 0.5 {
		t.Errorf("%d alerts, AUC %v; want 3, above chance", rep.Alerts, rep.AUC)
	}
}

// TestEvaluate_targets checks the targets on the default
// hospital for three seeds, with the engine serve runs and its paging
// threshold: every honeytoken touch caught, ROC AUC ≥ 0.95, precision
// ≥ 0.8, and overall recall no lower than the tuning left it (0.93).
func TestEvaluate_targets(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		start := time.Now()
		w := mustGenerate(t, simulate.Config{Seed: seed})
		rep, err := simulate.Evaluate(context.Background(), w, simulate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.HoneytokenRecall != 1 || rep.AUC < 0.95 || rep.Precision < 0.8 || rep.Recall < 0.93 {
			t.Errorf("seed %d: honeytoken recall %.2f, AUC %.3f, precision %.3f, recall %.3f; want 1, ≥ 0.95, ≥ 0.8, ≥ 0.93",
				seed, rep.HoneytokenRecall, rep.AUC, rep.Precision, rep.Recall)
		}
		t.Logf("seed %d: precision %.3f, recall %.3f, AUC %.3f in %s", seed, rep.Precision, rep.Recall, rep.AUC, time.Since(start).Round(time.Millisecond))
	}
}
