package detect_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// escalateRule reports every event of a user on the watched patient into
// one alert per user: High for a read, Critical for an update, so that an
// update raises the alert (and would page it again).
type escalateRule struct{}

func (escalateRule) Name() string { return "test-escalate" }

func (escalateRule) Observe(x *detect.Context, ev *detect.Event) {
	sev := detect.SeverityHigh
	if ev.Action == phivault.ActionUpdate {
		sev = detect.SeverityCritical
	}
	x.Report(detect.Finding{
		Rule: "test-escalate", Key: ev.User, Severity: sev, Score: 50,
		User: ev.User, Patients: []string{watched}, Why: ev.User + " touched " + watched + ".",
	})
}

// askedSuppressor suppresses nothing and records the state of every alert
// it is asked about, by id.
type askedSuppressor struct {
	mu    sync.Mutex
	asked map[string][]string
}

func (s *askedSuppressor) Suppress(a *detect.Alert) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[a.ID] = append(s.asked[a.ID], a.State)
	return false
}

func (s *askedSuppressor) states(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked[id]...)
}

// pagesNotifier counts the alerts paged, by id.
type pagesNotifier struct {
	mu    sync.Mutex
	paged map[string]int
}

func (n *pagesNotifier) Notify(ctx context.Context, alerts []*detect.Alert) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range alerts {
		n.paged[a.ID]++
	}
	return nil
}

func (n *pagesNotifier) count(id string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paged[id]
}

func touch(user, action string, minute int) detect.Record {
	return detect.Record{Kind: detect.RecordAccess, Event: &detect.Event{
		Time: time.Date(2026, 12, 6, 9, minute, 0, 0, time.UTC), System: "ehr", User: user,
		Action: action, Patients: []string{watched}, OK: true, Outcome: "ok",
	}}
}

// eventually waits up to five seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPipeline_triageWhileRunning triages an alert through the store (as
// the API does) while the pipeline runs and keeps the alerts it committed
// in memory: a later finding that raises the alert keeps the triage
// decision, is not put to the suppressor as an open alert, and does not
// page again; an untriaged alert raised the same way pages again (the
// near miss).
func TestPipeline_triageWhileRunning(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openStore(t, filepath.Join(t.TempDir(), "detect.db"))
	eng := detect.NewEngine(detect.NewDirectory(), []detect.Rule{escalateRule{}}, nil)
	sup := &askedSuppressor{asked: map[string][]string{}}
	eng.Suppressor = sup
	p := detect.NewPipeline(s, eng)
	p.Poll, p.Interval = 5*time.Millisecond, -1
	notes := &pagesNotifier{paged: map[string]int{}}
	disp := detect.NewDispatcher()
	disp.Notifiers = map[string]detect.Notifier{"test": notes}
	if err := disp.Open(ctx); err != nil {
		t.Fatal(err)
	}
	p.OnCommit = disp.OnCommit
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	ingest := func(recs ...detect.Record) {
		t.Helper()
		last, err := s.Ingest(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		p.Wake()
		eventually(t, "the pipeline to commit", func() bool { return p.Status().Cursor.Ingest >= last })
	}
	triaged, open := detect.AlertID("test-escalate", "ehr:u1"), detect.AlertID("test-escalate", "ehr:u2")
	ingest(touch("ehr:u1", phivault.ActionRead, 0), touch("ehr:u2", phivault.ActionRead, 0))
	eventually(t, "both alerts to page", func() bool { return notes.count(triaged) == 1 && notes.count(open) == 1 })

	a, err := s.Alert(ctx, triaged)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Triage(ctx, &detect.Triage{Alert: triaged, Decision: detect.StateTruePositive, By: "u-officer",
		At: time.Now().UTC(), Rule: a.Rule, User: a.User}); err != nil {
		t.Fatal(err)
	}
	ingest(touch("ehr:u1", phivault.ActionUpdate, 1), touch("ehr:u2", phivault.ActionUpdate, 1))
	eventually(t, "the open alert to page again", func() bool { return notes.count(open) == 2 })
	if err := disp.Close(ctx); err != nil {
		t.Fatal(err)
	}

	got, err := s.Alert(ctx, triaged)
	if err != nil || got.State != detect.StateTruePositive || got.Events != 2 || got.Severity != detect.SeverityCritical {
		t.Errorf("triaged alert after a new finding: %+v, %v; want true-positive, 2 events, critical", got, err)
	}
	if n := notes.count(triaged); n != 2 {
		// A true positive raised pages again (it is not dismissed): the
		// point is that it was not taken for an open one below.
		t.Errorf("the triaged (true-positive) alert paged %d times, want 2", n)
	}
	if asked := sup.states(triaged); len(asked) != 1 || asked[0] != detect.StateOpen {
		t.Errorf("the suppressor was asked about the triaged alert in states %v, want only [open] before the triage", asked)
	}
	if asked := sup.states(open); len(asked) != 2 {
		t.Errorf("the suppressor was asked about the open alert %d times, want 2", len(asked))
	}
}

// TestPipeline_dismissedDoesNotPage triages an alert as a false positive
// while the pipeline runs: a finding that raises it keeps the decision and
// does not page.
func TestPipeline_dismissedDoesNotPage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openStore(t, filepath.Join(t.TempDir(), "detect.db"))
	p := detect.NewPipeline(s, detect.NewEngine(detect.NewDirectory(), []detect.Rule{escalateRule{}}, nil))
	p.Poll, p.Interval = 5*time.Millisecond, -1
	notes := &pagesNotifier{paged: map[string]int{}}
	disp := detect.NewDispatcher()
	disp.Notifiers = map[string]detect.Notifier{"test": notes}
	if err := disp.Open(ctx); err != nil {
		t.Fatal(err)
	}
	p.OnCommit = disp.OnCommit
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	ingest := func(recs ...detect.Record) {
		t.Helper()
		last, err := s.Ingest(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		p.Wake()
		eventually(t, "the pipeline to commit", func() bool { return p.Status().Cursor.Ingest >= last })
	}
	id := detect.AlertID("test-escalate", "ehr:u1")
	ingest(touch("ehr:u1", phivault.ActionRead, 0))
	eventually(t, "the alert to page", func() bool { return notes.count(id) == 1 })
	a, err := s.Alert(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Triage(ctx, &detect.Triage{Alert: id, Decision: detect.StateFalsePositive, By: "u-officer",
		At: time.Now().UTC(), Rule: a.Rule, User: a.User}); err != nil {
		t.Fatal(err)
	}
	ingest(touch("ehr:u1", phivault.ActionUpdate, 1))
	if err := disp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Alert(ctx, id)
	if err != nil || got.State != detect.StateFalsePositive || got.Events != 2 {
		t.Errorf("dismissed alert after a new finding: %+v, %v; want false-positive, 2 events", got, err)
	}
	if n := notes.count(id); n != 1 {
		t.Errorf("the dismissed alert paged %d times, want once (before the triage)", n)
	}
}

// countingStore is a MemStore that tells of triages and counts the alerts
// read back.
type countingStore struct {
	*detect.MemStore
	reads    atomic.Int64
	watchers []func(string)
}

func (s *countingStore) Alert(ctx context.Context, id string) (*detect.Alert, error) {
	s.reads.Add(1)
	return s.MemStore.Alert(ctx, id)
}

func (s *countingStore) WatchTriage(fn func(string)) { s.watchers = append(s.watchers, fn) }

func (s *countingStore) Triage(ctx context.Context, t *detect.Triage) error {
	if err := s.MemStore.Triage(ctx, t); err != nil {
		return err
	}
	for _, fn := range s.watchers {
		fn(t.Alert)
	}
	return nil
}

// TestPipeline_alertCache checks that a pipeline on a store that tells of
// triages reads a committed alert back only when it must: not while it
// holds it, again after a triage, and again once more than
// DefaultAlertCache other alerts pushed it out.
func TestPipeline_alertCache(t *testing.T) {
	ctx := context.Background()
	s := &countingStore{MemStore: detect.NewMemStore()}
	p := detect.NewPipeline(s, detect.NewEngine(detect.NewDirectory(), []detect.Rule{escalateRule{}}, nil))
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	step := func(recs ...detect.Record) {
		t.Helper()
		if _, err := s.Ingest(ctx, recs); err != nil {
			t.Fatal(err)
		}
		drain(t, p)
	}
	step(touch("ehr:u0", phivault.ActionRead, 0))
	reads := s.reads.Load()
	step(touch("ehr:u0", phivault.ActionRead, 1))
	if n := s.reads.Load() - reads; n != 0 {
		t.Errorf("a committed alert was read back %d times, want none", n)
	}
	id := detect.AlertID("test-escalate", "ehr:u0")
	if err := s.Triage(ctx, &detect.Triage{Alert: id, Decision: detect.StateBenign, Reason: "covering-shift", By: "u-officer", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	reads = s.reads.Load()
	step(touch("ehr:u0", phivault.ActionRead, 2))
	if n := s.reads.Load() - reads; n != 1 {
		t.Errorf("a triaged alert was read back %d times, want once", n)
	}
	if a, err := s.Alert(ctx, id); err != nil || a.State != detect.StateBenign || a.Events != 3 {
		t.Errorf("alert after triage and a finding: %+v, %v; want benign, 3 events", a, err)
	}

	var others []detect.Record
	for i := range detect.DefaultAlertCache {
		others = append(others, touch(fmt.Sprint("ehr:v", i), phivault.ActionRead, 3))
	}
	step(others...)
	reads = s.reads.Load()
	step(touch("ehr:v0", phivault.ActionRead, 4), touch("ehr:u0", phivault.ActionRead, 4))
	if n := s.reads.Load() - reads; n != 1 {
		t.Errorf("%d alerts read back after %d others were committed, want 1 (the oldest, u0's)", n, detect.DefaultAlertCache)
	}
}
