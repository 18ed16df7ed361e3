// Package storetest is the conformance suite of incident.Store: every
// implementation runs it.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
)

// Run runs the suite against stores made by open, one per subtest.
func Run(t *testing.T, open func(t *testing.T) incident.Store) {
	t.Run("CreateGet", func(t *testing.T) { createGet(t, open(t)) })
	t.Run("Update", func(t *testing.T) { update(t, open(t)) })
	t.Run("UpdateRace", func(t *testing.T) { updateRace(t, open(t)) })
	t.Run("List", func(t *testing.T) { list(t, open(t)) })
	t.Run("NotFound", func(t *testing.T) { notFound(t, open(t)) })
}

var t0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

// Incident returns incident n as a Service would open it.
func Incident(n int) *incident.Incident {
	at := t0.Add(time.Duration(n) * time.Minute)
	return &incident.Incident{
		ID: fmt.Sprintf("inc-%04d", n), Title: []byte{0xde, 0xad, byte(n)}, Severity: detect.SeverityHigh,
		Phase: incident.PhaseDetect, Source: incident.SourceAlert, Alerts: []string{fmt.Sprintf("alert-%d", n)},
		Scope:      incident.Scope{Users: []string{fmt.Sprintf("u-%d", n%3)}, Patients: []string{fmt.Sprintf("p-%d", n%5)}, From: at.Add(-time.Hour), To: at},
		Discovered: at.Add(-time.Hour), Opened: at, Updated: at, Version: 1,
	}
}

func event(kind string, at time.Time) *incident.Event {
	return &incident.Event{At: at, Actor: "po-1", Kind: kind, Detail: "d", Note: []byte{1, 2, 3}, Request: "req-" + kind}
}

func createGet(t *testing.T, s incident.Store) {
	ctx := context.Background()
	in := Incident(1)
	if err := s.Create(ctx, in, event(incident.EventOpened, in.Opened)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(got, in) {
		t.Fatalf("Get = %+v, want %+v", got, in)
	}
	// Get returns a copy: changing it changes nothing stored.
	got.Alerts[0] = "changed"
	if again, _ := s.Get(ctx, in.ID); again.Alerts[0] != in.Alerts[0] {
		t.Fatal("Get shares memory with the store")
	}
	if err := s.Create(ctx, in, event(incident.EventOpened, in.Opened)); phivault.ErrorCode(err) != phivault.ECONFLICT {
		t.Fatalf("second Create: %v, want ECONFLICT", err)
	}
	tl, err := s.Timeline(ctx, in.ID)
	if err != nil || len(tl) != 1 || tl[0].Kind != incident.EventOpened || !slices.Equal(tl[0].Note, []byte{1, 2, 3}) || !tl[0].At.Equal(in.Opened) {
		t.Fatalf("Timeline = %+v, %v", tl, err)
	}
}

func update(t *testing.T, s incident.Store) {
	ctx := context.Background()
	in := Incident(2)
	if err := s.Create(ctx, in, event(incident.EventOpened, in.Opened)); err != nil {
		t.Fatal(err)
	}
	next := in.Clone()
	next.Version, next.Phase, next.Owner = 2, incident.PhaseContain, "po-1"
	if err := s.Update(ctx, next, []*incident.Event{event(incident.EventPhase, t0), event(incident.EventOwner, t0)}); err != nil {
		t.Fatal(err)
	}
	// The same change again is at a stale version.
	if err := s.Update(ctx, next, []*incident.Event{event(incident.EventNote, t0)}); phivault.ErrorCode(err) != phivault.EPRECONDITION {
		t.Fatalf("stale Update: %v, want EPRECONDITION", err)
	}
	got, _ := s.Get(ctx, in.ID)
	if !equal(got, next) {
		t.Fatalf("after Update: %+v", got)
	}
	tl, _ := s.Timeline(ctx, in.ID)
	var kinds []string
	for _, ev := range tl {
		kinds = append(kinds, ev.Kind)
	}
	if want := []string{incident.EventOpened, incident.EventPhase, incident.EventOwner}; !slices.Equal(kinds, want) {
		t.Fatalf("timeline %v, want %v (a refused update adds nothing)", kinds, want)
	}
}

// updateRace: of concurrent changes made on one version, exactly one wins.
func updateRace(t *testing.T, s incident.Store) {
	ctx := context.Background()
	in := Incident(3)
	if err := s.Create(ctx, in, event(incident.EventOpened, in.Opened)); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := range 8 {
		wg.Go(func() {
			next := in.Clone()
			next.Version, next.Owner = 2, fmt.Sprintf("po-%d", i)
			err := s.Update(ctx, next, []*incident.Event{event(incident.EventOwner, t0)})
			mu.Lock()
			defer mu.Unlock()
			switch phivault.ErrorCode(err) {
			case "":
				wins++
			case phivault.EPRECONDITION:
			default:
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	if tl, _ := s.Timeline(ctx, in.ID); wins != 1 || len(tl) != 2 {
		t.Fatalf("%d changes won, timeline %d events; want 1 and 2", wins, len(tl))
	}
}

func list(t *testing.T, s incident.Store) {
	ctx := context.Background()
	for n := range 12 {
		in := Incident(n)
		if n%4 == 0 {
			in.Phase = incident.PhaseClosed
		}
		if err := s.Create(ctx, in, event(incident.EventOpened, in.Opened)); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(f incident.Filter) []string {
		t.Helper()
		got, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, in := range got {
			out = append(out, in.ID)
		}
		return out
	}
	if got := ids(incident.Filter{Limit: 3}); !slices.Equal(got, []string{"inc-0011", "inc-0010", "inc-0009"}) {
		t.Fatalf("newest 3: %v", got)
	}
	if got := ids(incident.Filter{Open: true, User: "u-1"}); !slices.Equal(got, []string{"inc-0010", "inc-0007", "inc-0001"}) {
		t.Fatalf("open of u-1: %v", got)
	}
	if got := ids(incident.Filter{Patient: "p-2", Alert: "alert-7"}); !slices.Equal(got, []string{"inc-0007"}) {
		t.Fatalf("p-2 and alert-7: %v", got)
	}
	if got := ids(incident.Filter{Phase: incident.PhaseClosed}); !slices.Equal(got, []string{"inc-0008", "inc-0004", "inc-0000"}) {
		t.Fatalf("closed: %v", got)
	}
	if got := ids(incident.Filter{Owner: "nobody"}); len(got) != 0 {
		t.Fatalf("owner nobody: %v", got)
	}
}

func notFound(t *testing.T, s incident.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "inc-none"); phivault.ErrorCode(err) != phivault.ENOTFOUND {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.Timeline(ctx, "inc-none"); phivault.ErrorCode(err) != phivault.ENOTFOUND {
		t.Fatalf("Timeline: %v", err)
	}
	in := Incident(9)
	in.Version = 2
	if err := s.Update(ctx, in, nil); phivault.ErrorCode(err) != phivault.ENOTFOUND {
		t.Fatalf("Update: %v", err)
	}
}

// equal compares stored incidents field by field (times by instant).
func equal(a, b *incident.Incident) bool {
	return a.ID == b.ID && slices.Equal(a.Title, b.Title) && a.Severity == b.Severity && a.Phase == b.Phase &&
		a.Owner == b.Owner && a.Source == b.Source && slices.Equal(a.Alerts, b.Alerts) &&
		slices.Equal(a.Scope.Users, b.Scope.Users) && slices.Equal(a.Scope.Patients, b.Scope.Patients) &&
		slices.Equal(a.Scope.Sources, b.Scope.Sources) && slices.Equal(a.Scope.Clients, b.Scope.Clients) &&
		a.Scope.From.Equal(b.Scope.From) && a.Scope.To.Equal(b.Scope.To) &&
		a.Discovered.Equal(b.Discovered) && a.Opened.Equal(b.Opened) && a.Updated.Equal(b.Updated) &&
		a.Acknowledged.Equal(b.Acknowledged) && a.Contained.Equal(b.Contained) && a.Closed.Equal(b.Closed) &&
		a.Version == b.Version
}
