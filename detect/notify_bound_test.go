package detect

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// pageLog is a Notifier that keeps "id@severity" of what it pages.
type pageLog struct {
	mu   sync.Mutex
	sent []string
}

func (p *pageLog) Notify(ctx context.Context, alerts []*Alert) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range alerts {
		p.sent = append(p.sent, a.ID+"@"+a.Severity.String())
	}
	return nil
}

// The dispatcher remembers at most Known alerts, and an alert it forgot
// never pages twice for the same severity.
func TestDispatcher_Known_bounded(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	alert := func(i int, sev Severity) *Alert {
		return &Alert{ID: fmt.Sprintf("a%04d", i), Rule: "r", Severity: sev, Score: 70, Events: 1,
			Detected: t0.Add(time.Duration(i) * time.Second), State: StateOpen}
	}
	log := &pageLog{}
	d := NewDispatcher()
	d.Known, d.Queue = 100, 2000
	d.Notifiers["log"] = log
	if err := d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		d.OnCommit([]*Alert{alert(i, SeverityMedium)})
		if len(d.known) > d.Known {
			t.Fatalf("after %d alerts, %d known; want at most %d", i+1, len(d.known), d.Known)
		}
	}
	first, latest := alert(0, SeverityMedium), alert(999, SeverityMedium)
	first.Events = 2
	d.OnCommit([]*Alert{first}) // forgotten, same severity: no page
	latest.Severity = SeverityHigh
	d.OnCommit([]*Alert{latest}) // known, raised: pages
	d.OnCommit([]*Alert{alert(1000, SeverityLow)})
	// A forgotten alert risen to critical pages: it cannot be told from a
	// new one, and a critical alert must never go unpaged. Once.
	second := alert(1, SeverityCritical)
	d.OnCommit([]*Alert{second})
	second.Events++
	d.OnCommit([]*Alert{second})
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(log.sent); n != 1003 {
		t.Fatalf("%d pages, want 1003", n)
	}
	want := []string{"a0999@high", "a1000@low", "a0001@critical"}
	if got := log.sent[1000:]; !slices.Equal(got, want) {
		t.Errorf("last pages %v, want %v", got, want)
	}
	if got := log.sent[0]; got != "a0000@medium" {
		t.Errorf("first page %s, want a0000@medium", got)
	}
}

// loadCounter is a Store that keeps the limits and sizes of the alert
// lists it was asked for.
type loadCounter struct {
	Store
	limits, sizes []int
}

func (s *loadCounter) Alerts(ctx context.Context, f AlertFilter) ([]*Alert, error) {
	a, err := s.Store.Alerts(ctx, f)
	s.limits, s.sizes = append(s.limits, f.Limit), append(s.sizes, len(a))
	return a, err
}

// Open reads only the Known alerts detected latest (and one more, to
// know that older ones exist): a store of many alerts is never held
// whole. The older are forgotten: merged again they do not page; the
// kept ones page when raised, and a new one pages.
func TestDispatcher_Known_open(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	alert := func(i int, sev Severity) *Alert {
		return &Alert{ID: fmt.Sprintf("a%04d", i), Rule: "r", Severity: sev, Score: 70, Events: 1,
			Detected: t0.Add(time.Duration(i) * time.Second), State: StateOpen}
	}
	mem := NewMemStore()
	var all []*Alert
	for i := range 40 {
		all = append(all, alert(i, SeverityMedium))
	}
	if err := mem.Commit(t.Context(), &Commit{Alerts: all}); err != nil {
		t.Fatal(err)
	}
	store := &loadCounter{Store: mem}
	log := &pageLog{}
	d := NewDispatcher()
	d.Known, d.Store = 10, store
	d.Notifiers["log"] = log
	if err := d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(store.sizes) != 1 || store.limits[0] <= 0 || store.sizes[0] > d.Known+1 || len(d.known) != d.Known {
		t.Errorf("Open read limits %v, sizes %v, and knows %d; want one read of at most %d, knowing %d", store.limits, store.sizes, len(d.known), d.Known+1, d.Known)
	}
	old, horizon, kept := alert(0, SeverityMedium), alert(29, SeverityMedium), alert(39, SeverityHigh)
	old.Events, horizon.Events = 2, 2
	d.OnCommit([]*Alert{old, horizon, kept, alert(40, SeverityMedium)})
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a0039@high", "a0040@medium"}; !slices.Equal(log.sent, want) {
		t.Errorf("pages %v, want %v", log.sent, want)
	}
}
