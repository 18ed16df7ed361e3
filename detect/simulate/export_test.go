package simulate_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/simulate"
)

func mustExport(tb testing.TB, w *simulate.Workload, maxLines int) *simulate.Export {
	tb.Helper()
	x, err := w.Export(maxLines)
	if err != nil {
		tb.Fatalf("Export: %v", err)
	}
	return x
}

func mustIngested(tb testing.TB, w *simulate.Workload, x *simulate.Export) *simulate.Workload {
	tb.Helper()
	v, err := w.Ingested(context.Background(), x, nil)
	if err != nil {
		tb.Fatalf("Ingested: %v", err)
	}
	return v
}

// TestExport_roundTrip sends the export through the server's own parser:
// every roster comes back with the generator's tokens, every decoy is
// declared, every relationship and every event that the format can carry
// comes back, in the generator's order.
func TestExport_roundTrip(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		w := mustGenerate(t, small(seed))
		x := mustExport(t, w, 700)
		v := mustIngested(t, w, x)

		want := map[string]detect.Person{}
		var wantHoney, gotHoney []string
		var wantRel, gotRel int
		var wantEv, gotEv [][]string // the patients of each event
		for _, r := range w.Records {
			switch r.Kind {
			case detect.RecordStaff:
				want["u "+r.User.ID] = r.User.Person
			case detect.RecordPatient:
				want["p "+r.Patient.ID] = r.Patient.Person
			case detect.RecordHoneytoken:
				wantHoney = append(wantHoney, r.Honeytoken)
			case detect.RecordRelationship:
				wantRel++
			case detect.RecordAccess:
				if _, skipped := x.Skipped[r.Event.Action]; !skipped {
					wantEv = append(wantEv, distinct(r.Event.Patients))
				}
			}
		}
		for _, r := range v.Records {
			switch r.Kind {
			case detect.RecordStaff:
				if !equalPerson(r.User.Person, want["u "+r.User.ID]) {
					t.Fatalf("seed %d: staff %s: tokens differ from the generator's", seed, r.User.ID)
				}
			case detect.RecordPatient:
				if !equalPerson(r.Patient.Person, want["p "+r.Patient.ID]) {
					t.Fatalf("seed %d: patient %s: tokens differ from the generator's", seed, r.Patient.ID)
				}
				if slices.Contains(r.Patient.Labels, simulate.LabelHoneytoken) {
					t.Errorf("seed %d: patient %s keeps the decoy label", seed, r.Patient.ID)
				}
			case detect.RecordHoneytoken:
				gotHoney = append(gotHoney, r.Honeytoken)
			case detect.RecordRelationship:
				gotRel++
				if _, ok := want["u "+r.Relationship.User]; !ok {
					t.Fatalf("seed %d: relationship of %s, who is on no staff roster", seed, r.Relationship.User)
				}
			case detect.RecordAccess:
				gotEv = append(gotEv, r.Event.Patients)
			}
		}
		if len(wantHoney) == 0 || !slices.Equal(gotHoney, wantHoney) {
			t.Errorf("seed %d: decoys %v, want %v", seed, gotHoney, wantHoney)
		}
		if gotRel != wantRel || len(gotEv) != len(wantEv) {
			t.Errorf("seed %d: %d relationships and %d events, want %d and %d", seed, gotRel, len(gotEv), wantRel, len(wantEv))
		}
		// An event of several patients (an export, a search) is one
		// event of them all, as in process.
		several := 0
		for i := range min(len(gotEv), len(wantEv)) {
			if !slices.Equal(gotEv[i], wantEv[i]) {
				t.Fatalf("seed %d: event %d: patients %q, want %q", seed, i, gotEv[i], wantEv[i])
			}
			if len(gotEv[i]) > 1 {
				several++
			}
		}
		if several == 0 {
			t.Errorf("seed %d: no event of several patients", seed)
		}
		for i := 1; i < len(v.Records); i++ {
			if v.Time(i).Before(v.Time(i - 1)) {
				t.Fatalf("seed %d: record %d at %v is before record %d at %v", seed, i, v.Time(i), i-1, v.Time(i-1))
			}
		}
		if x.Skipped["account-change"] == 0 || x.Skipped["break-glass"] != 0 {
			t.Errorf("seed %d: skipped %v: want account changes skipped, break-glass sent", seed, x.Skipped)
		}
		if d := eventDetails(v); d.glass == 0 || d.purpose == 0 || d.params == 0 {
			t.Errorf("seed %d: as ingested, %+v: want break-glass events, purposes and search parameters", seed, d)
		}
	}
}

// distinct returns ids without repeats, in order.
func distinct(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func equalPerson(a, b detect.Person) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y) && len(x) > 2
}

// TestExport_batches: each batch is one kind, within the line limit, and
// holds one JSON object a line that the parser accepts.
func TestExport_batches(t *testing.T) {
	w := mustGenerate(t, small(5))
	x := mustExport(t, w, 300)
	kinds := map[string]bool{}
	prev := -1
	for i, b := range x.Batches {
		kinds[b.Kind] = true
		lines := bytes.Count(b.Body, []byte("\n"))
		if lines != len(b.Lines) || lines == 0 || lines > 300 {
			t.Errorf("batch %d (%s): %d lines, %d mapped; want 1 to 300, equal", i, b.Kind, lines, len(b.Lines))
		}
		if b.Lines[0] < prev {
			t.Errorf("batch %d starts at record %d, before the previous batch's last %d", i, b.Lines[0], prev)
		}
		prev = b.Lines[len(b.Lines)-1]
		if i > 0 && x.Batches[i-1].Kind == b.Kind && len(x.Batches[i-1].Lines) < 300 {
			t.Errorf("batch %d (%s) follows a batch of the same kind that was not full", i, b.Kind)
		}
	}
	for _, k := range []string{detect.IngestAccess, detect.IngestStaff, detect.IngestPatients, detect.IngestRelationships} {
		if !kinds[k] {
			t.Errorf("no %s batch", k)
		}
	}
}

// TestExport_writeDir writes files that sort in sending order, private.
func TestExport_writeDir(t *testing.T) {
	w := mustGenerate(t, small(6))
	x := mustExport(t, w, 0)
	dir := t.TempDir()
	if err := x.WriteDir(dir, w.Truth); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(x.Batches) || !slices.IsSorted(names) {
		t.Fatalf("files %v, want %d in order", names, len(x.Batches))
	}
	for i, n := range names {
		if !strings.HasSuffix(n, "-"+x.Batches[i].Kind+".ndjson") {
			t.Errorf("file %s, want kind %s", n, x.Batches[i].Kind)
		}
		fi, err := os.Stat(n)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", n, fi.Mode().Perm())
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth simulate.Truth
	if err := json.Unmarshal(b, &truth); err != nil || len(truth.Labels) != len(w.Truth.Labels) {
		t.Errorf("truth.json: %d labels (%v), want %d", len(truth.Labels), err, len(w.Truth.Labels))
	}
	// The synthetic names are in the rosters, never in the truth.
	staff, err := os.Open(names[0])
	if err != nil {
		t.Fatal(err)
	}
	defer staff.Close()
	sc := bufio.NewScanner(staff)
	sc.Scan()
	var line struct{ Family string }
	if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Family == "" {
		t.Fatalf("first roster line %q: no family name (%v)", sc.Text(), err)
	}
	if bytes.Contains(b, []byte(`"`+line.Family+`"`)) {
		t.Errorf("truth.json holds the family name of a roster line")
	}
}

// TestIngested_honeytoken: the decoys declared through the roster label
// are watched: the honeytoken rule catches every target, as in process.
func TestIngested_honeytoken(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		w := mustGenerate(t, small(seed))
		v := mustIngested(t, w, mustExport(t, w, 0))
		rep, err := simulate.Evaluate(context.Background(), v, simulate.Options{Rules: []detect.Rule{honeyRule{}}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.HoneytokenRecall != 1 {
			t.Errorf("seed %d: honeytoken recall through the formats %v, want 1", seed, rep.HoneytokenRecall)
		}
	}
}

// TestIngested_decoyLabelDropped is the near miss of the above: without
// the label, no decoy is declared and the decoys' touches go unseen.
func TestIngested_decoyLabelDropped(t *testing.T) {
	w := mustGenerate(t, small(1))
	x := mustExport(t, w, 0)
	for i := range x.Batches {
		x.Batches[i].Body = bytes.ReplaceAll(x.Batches[i].Body, []byte(`"`+simulate.LabelHoneytoken+`"`), []byte(`"other"`))
	}
	v := mustIngested(t, w, x)
	rep, err := simulate.Evaluate(context.Background(), v, simulate.Options{Rules: []detect.Rule{honeyRule{}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.HoneytokenRecall != 0 {
		t.Errorf("honeytoken recall without decoy labels %v, want 0", rep.HoneytokenRecall)
	}
}

// memServer is a Server over a MemStore and a Pipeline on the wall
// clock, as serve runs them, without HTTP.
type memServer struct {
	mu    sync.Mutex
	tk    detect.Tokenizer
	store *detect.MemStore
	p     *detect.Pipeline
}

func newMemServer(t *testing.T, key []byte) *memServer {
	t.Helper()
	store := detect.NewMemStore()
	t.Cleanup(func() { store.Close() })
	eng := detect.NewEngineFor(simulate.Settings(), detect.NewDirectory(), nil)
	p := detect.NewPipeline(store, eng)
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &memServer{tk: simulate.NewTokenizer(key), store: store, p: p}
}

func (s *memServer) Ingest(ctx context.Context, kind string, body []byte) (*detect.IngestReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return detect.Ingest(ctx, s.store, s.tk, kind, detect.ContentNDJSON, bytes.NewReader(body), detect.IngestOptions{})
}

func (s *memServer) Processed(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.p.Step(ctx); err != nil {
		return 0, err
	}
	return s.p.Status().Cursor.Ingest, nil
}

func (s *memServer) Alerts(ctx context.Context, since time.Time) ([]*detect.Alert, error) {
	return s.store.Alerts(ctx, detect.AlertFilter{Since: since})
}

// TestEvaluateServer runs the whole engine through a server's ingestion
// path and compares it with the same records in process: the detections
// are the same; only the clock differs.
func TestEvaluateServer(t *testing.T) {
	cfg := small(7)
	cfg.Key = bytes.Repeat([]byte{7}, 32)
	w := mustGenerate(t, cfg)
	ctx := context.Background()
	got, err := simulate.EvaluateServer(ctx, w, newMemServer(t, cfg.Key), simulate.ServerOptions{Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want, err := simulate.Evaluate(ctx, mustIngested(t, w, mustExport(t, w, 0)), simulate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Through != "ingest" || got.Skipped["account-change"] == 0 || got.MedianTTD != -1 || got.Latency <= 0 {
		t.Errorf("through %q, skipped %v, TTD %v, latency %v; want ingest, account changes skipped, -1, > 0", got.Through, got.Skipped, got.MedianTTD, got.Latency)
	}
	if nm, wnm := got.NotMeasurable, want.NotMeasurable; nm == nil || wnm == nil || nm.Targets == 0 || !slices.Equal(nm.Scenarios, wnm.Scenarios) {
		t.Errorf("not measurable %+v, want targets left out as in process as ingested (%+v)", nm, want.NotMeasurable)
	}
	if got.HoneytokenRecall != 1 {
		t.Errorf("honeytoken recall %v, want 1", got.HoneytokenRecall)
	}
	// Scores are set once per pipeline step, and the server's steps are
	// not simulated live mode's: a few alerts may score differently.
	if got.Alerts != want.Alerts || got.Precision != want.Precision || got.Recall != want.Recall || math.Abs(got.AUC-want.AUC) > 0.01 {
		t.Errorf("server: %d alerts, precision %v, recall %v, AUC %v; in process: %d, %v, %v, %v",
			got.Alerts, got.Precision, got.Recall, got.AUC, want.Alerts, want.Precision, want.Recall, want.AUC)
	}
}

// details counts what the access log format now carries.
type details struct{ glass, purpose, params int }

func eventDetails(w *simulate.Workload) details {
	var d details
	for _, r := range w.Records {
		if ev := r.Event; ev != nil {
			if ev.Action == "break-glass" {
				d.glass++
			}
			if ev.Purpose != "" {
				d.purpose++
			}
			if len(ev.Params) > 0 {
				d.params++
			}
		}
	}
	return d
}

// TestIngested_controlRulesNotMeasurable: as ingested, the targets of
// the rules only phivault's control actions feed are left out of the
// scores, and their scenarios out of the table; the other rules, among
// them break-glass-overuse and name-search-browsing, keep their targets
// and catch them, with the same alerts as in process. In process (the
// near miss), nothing is left out.
func TestIngested_controlRulesNotMeasurable(t *testing.T) {
	ctx := context.Background()
	w := mustGenerate(t, small(1))
	in, err := simulate.Evaluate(ctx, w, simulate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := simulate.Evaluate(ctx, mustIngested(t, w, mustExport(t, w, 0)), simulate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	control := []string{simulate.RuleRoleGrant, simulate.RulePolicy, simulate.RuleKeyOperation, simulate.RuleSealUnseal}
	if in.NotMeasurable != nil {
		t.Errorf("in process: not measurable %+v, want nil", in.NotMeasurable)
	}
	nm := got.NotMeasurable
	if nm == nil || !slices.Equal(nm.Rules, control) || !slices.Equal(nm.Scenarios, []string{"role-grant", "policy-reload", "key-seal"}) ||
		nm.Targets < 3 || nm.Labels <= nm.Targets {
		t.Fatalf("as ingested: not measurable %+v, want the control rules, their 3 scenarios, their targets and other labels", nm)
	}
	for _, s := range got.ByScenario {
		if slices.Contains(nm.Scenarios, s.Name) {
			t.Errorf("as ingested: scenario %s has a row", s.Name)
		}
	}
	rows := func(r *simulate.Report) map[string]simulate.DetectorReport {
		m := map[string]simulate.DetectorReport{}
		for _, d := range r.Detectors {
			m[d.Rule] = d
		}
		return m
	}
	inRows, gotRows := rows(in), rows(got)
	for _, rule := range control {
		if d := gotRows[rule]; !d.NotMeasurable || d.Targets != 0 {
			t.Errorf("as ingested: %s %+v, want not measurable, no targets", rule, d)
		}
		if d := inRows[rule]; d.NotMeasurable || d.Targets == 0 || d.Recall != 1 {
			t.Errorf("in process: %s %+v, want measured, caught", rule, d)
		}
	}
	for _, rule := range []string{simulate.RuleBreakGlass, simulate.RuleNameSearch} {
		if d := gotRows[rule]; d.NotMeasurable || d.Targets == 0 || d.Recall <= 0 {
			t.Errorf("as ingested: %s %+v, want targets caught", rule, d)
		}
	}
	// Apart from the control rules, the formats lose nothing the rules
	// use: an event of several patients is one event of them all, so
	// every other rule raises the same alerts over the same pairs.
	for rule, d := range gotRows {
		if e := inRows[rule]; !slices.Contains(control, rule) && (d.Alerts != e.Alerts || d.Pairs != e.Pairs) {
			t.Errorf("%s: as ingested %d alerts over %d pairs, in process %d over %d", rule, d.Alerts, d.Pairs, e.Alerts, e.Pairs)
		}
	}
	if got.Recall < in.Recall-0.01 || math.Abs(got.AUC-in.AUC) > 0.01 {
		t.Errorf("as ingested: recall %v, AUC %v; in process %v, %v: want them within 0.01", got.Recall, got.AUC, in.Recall, in.AUC)
	}
}

// extraAlerts is a Server whose alert list carries extra alerts.
type extraAlerts struct {
	simulate.Server
	extra []*detect.Alert
}

func (s extraAlerts) Alerts(ctx context.Context, since time.Time) ([]*detect.Alert, error) {
	a, err := s.Server.Alerts(ctx, since)
	return append(a, s.extra...), err
}

// TestEvaluateServer_otherSystem: alerts about another system on the same
// server are not counted; alerts about the run's system are.
func TestEvaluateServer_otherSystem(t *testing.T) {
	cfg := small(8)
	cfg.Key = bytes.Repeat([]byte{8}, 32)
	cfg.Scenarios = []string{}
	w := mustGenerate(t, cfg)
	ctx := context.Background()
	opts := simulate.ServerOptions{Poll: time.Millisecond, Options: simulate.Options{Threshold: -1}}
	run := func(extra ...*detect.Alert) *simulate.Report {
		t.Helper()
		rep, err := simulate.EvaluateServer(ctx, w, extraAlerts{newMemServer(t, cfg.Key), extra}, opts)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	alert := func(user, patient string) *detect.Alert {
		return &detect.Alert{ID: "x-" + user, Rule: simulate.RuleNoRelationship, Score: 90, User: user, Patients: []string{patient},
			First: w.Start, Last: w.Start, Detected: time.Now(), Evidence: []string{"ingest/999999999"}}
	}
	base := run()
	if other := run(alert("other:u1000", "other:p1")); other.Alerts != base.Alerts {
		t.Errorf("%d alerts with another system's, %d without: it was counted", other.Alerts, base.Alerts)
	}
	if ours := run(alert("sim:u1000", "sim:p1")); ours.Alerts != base.Alerts+1 {
		t.Errorf("%d alerts with one more of the run's system, %d without; want one more", ours.Alerts, base.Alerts)
	}
}

// stalled is a Server whose detector never gets past sequence 0; its
// first look at the detector ends the run's context.
type stalled struct {
	simulate.Server
	cancel context.CancelFunc
}

func (s stalled) Processed(context.Context) (int64, error) {
	s.cancel()
	return 0, nil
}

// rejecting is a Server that rejects the last line of every batch.
type rejecting struct{ simulate.Server }

func (s rejecting) Ingest(ctx context.Context, kind string, body []byte) (*detect.IngestReport, error) {
	return s.Server.Ingest(ctx, kind, append(bytes.TrimRight(body, "\n"), []byte("x\n")...))
}

// TestEvaluateServer_errors: a detector that does not catch up before the
// context ends, and a server that rejects lines, fail the run instead of
// scoring what is missing.
func TestEvaluateServer_errors(t *testing.T) {
	cfg := small(9)
	cfg.Key = bytes.Repeat([]byte{9}, 32)
	cfg.Scenarios = []string{"honeytoken"}
	w := mustGenerate(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := simulate.EvaluateServer(ctx, w, stalled{newMemServer(t, cfg.Key), cancel}, simulate.ServerOptions{Poll: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "waiting for the detector") {
		t.Errorf("stalled detector: %v, want an error waiting for the detector", err)
	}
	_, err = simulate.EvaluateServer(context.Background(), w, rejecting{newMemServer(t, cfg.Key)}, simulate.ServerOptions{Poll: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "accepted") || !strings.Contains(err.Error(), ": not valid JSON") {
		t.Errorf("rejected lines: %v, want an error naming the lines accepted and why the first rejected was", err)
	}
}

// stuck is a Server whose detector stays at sequence 0, as one that is
// stopped or fails every commit.
type stuck struct{ simulate.Server }

func (stuck) Processed(context.Context) (int64, error) { return 0, nil }

// TestEvaluateServer_stall: a detector that does not move fails the run
// once Stall has passed, with no deadline on the context; one that keeps
// moving is waited on past Stall.
func TestEvaluateServer_stall(t *testing.T) {
	cfg := small(9)
	cfg.Key = bytes.Repeat([]byte{9}, 32)
	cfg.Scenarios = []string{"honeytoken"}
	w := mustGenerate(t, cfg)
	opts := simulate.ServerOptions{Poll: time.Millisecond, Stall: 50 * time.Millisecond}
	// A bound for a hung test only: sending the workload takes seconds
	// under the race detector on a loaded machine, and the stall is found
	// after it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := simulate.EvaluateServer(ctx, w, stuck{newMemServer(t, cfg.Key)}, opts)
	if err == nil || !strings.Contains(err.Error(), "has not moved from 0") {
		t.Errorf("stuck detector: %v, want an error saying it has not moved", err)
	}
	rep, err := simulate.EvaluateServer(context.Background(), w, newMemServer(t, cfg.Key), opts)
	if err != nil {
		t.Fatalf("moving detector: %v", err)
	}
	if rep.HoneytokenRecall != 1 {
		t.Errorf("moving detector: honeytoken recall %v, want 1", rep.HoneytokenRecall)
	}
}

// TestExport_writeDirExisting: WriteDir never writes over a file, so a
// folder with an earlier run's files (more batches, or made readable by
// others) is refused instead of mixed with this run's.
func TestExport_writeDirExisting(t *testing.T) {
	w := mustGenerate(t, small(6))
	x := mustExport(t, w, 0)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := x.WriteDir(dir, w.Truth); err != nil {
		t.Fatalf("a folder without the workload's files: %v", err)
	}
	if err := x.WriteDir(dir, w.Truth); err == nil || !strings.Contains(err.Error(), "empty folder") {
		t.Errorf("WriteDir into a folder holding a workload = %v, want an error asking for an empty folder", err)
	}
}

// TestExport_patients: an event of several patients is one line naming
// them all, with its result count; one of more than the line's bound is
// as few lines as the bound allows, the first with the result count; an
// event of one patient names it in "patient".
func TestExport_patients(t *testing.T) {
	const bound = detect.MaxIngestPatients
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "sim:p" + strconv.Itoa(i)
		}
		return out
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	event := func(action string, n int) detect.Record {
		return detect.Record{Kind: detect.RecordAccess, Event: &detect.Event{
			Time: at, User: "sim:u1", Action: action, OK: true, Count: 7, Patients: ids(n)}}
	}
	w := &simulate.Workload{Config: simulate.Config{System: "sim"},
		Records: []detect.Record{event("search", 3), event("read", 1), event("export", 2*bound+1)}}
	x := mustExport(t, w, 0)
	if len(x.Batches) != 1 {
		t.Fatalf("%d batches, want 1", len(x.Batches))
	}
	type line struct {
		Patient     string
		Patients    []string
		ResultCount int `json:"result_count"`
	}
	var got []line
	for l := range bytes.Lines(x.Batches[0].Body) {
		var v line
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	local := func(from, to int) []string {
		out := ids(to)[from:]
		for i := range out {
			out[i] = strings.TrimPrefix(out[i], "sim:")
		}
		return out
	}
	want := []line{
		{Patients: local(0, 3), ResultCount: 7},
		{Patient: "p0", ResultCount: 7},
		{Patients: local(0, bound), ResultCount: 7},
		{Patients: local(bound, 2*bound)},
		{Patients: local(2*bound, 2*bound+1)},
	}
	if !reflect.DeepEqual(got, want) || !slices.Equal(x.Batches[0].Lines, []int{0, 1, 2, 2, 2}) {
		t.Errorf("lines %d (records %v), want %d as 0, 1, 2, 2, 2", len(got), x.Batches[0].Lines, len(want))
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("line %d: %d patients, patient %q, count %d; want %d, %q, %d", i+1,
					len(got[i].Patients), got[i].Patient, got[i].ResultCount, len(want[i].Patients), want[i].Patient, want[i].ResultCount)
			}
		}
	}
}
