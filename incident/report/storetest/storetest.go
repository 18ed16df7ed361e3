// Package storetest is the conformance suite of report.Store: every
// implementation runs it.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident/report"
)

// Run runs the suite against stores made by open, one per subtest.
func Run(t *testing.T, open func(t *testing.T) report.Store) {
	t.Run("CreateGet", func(t *testing.T) { createGet(t, open(t)) })
	t.Run("Update", func(t *testing.T) { update(t, open(t)) })
	t.Run("UpdateRace", func(t *testing.T) { updateRace(t, open(t)) })
	t.Run("List", func(t *testing.T) { list(t, open(t)) })
	t.Run("NotFound", func(t *testing.T) { notFound(t, open(t)) })
}

var t0 = time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)

// Report returns report n as a Service would store it: odd n anonymous.
func Report(n int) *report.Report {
	at := t0.Add(time.Duration(n) * time.Minute)
	r := &report.Report{
		ID: fmt.Sprintf("rep-%04d", n), Kind: report.Kinds[n%len(report.Kinds)], Description: []byte{0xde, 0xad, byte(n)},
		Patient: fmt.Sprintf("p-%d", n%5), State: report.StateReceived, Receipt: []byte{byte(n), 1, 2},
		Submitted: at, Updated: at, Version: 1,
		History: []report.Event{{At: at, Actor: "u-1", Kind: report.EventSubmitted, Detail: "kind x", Request: "req"}},
	}
	if n%2 == 1 {
		r.Anonymous, r.SealedReporter, r.History[0].Actor = true, []byte{0xbe, 0xef, byte(n)}, report.AnonymousActor
	} else {
		r.Reporter = fmt.Sprintf("u-%d", n%3)
	}
	return r
}

func createGet(t *testing.T, s report.Store) {
	ctx := context.Background()
	r := Report(1)
	r.Occurred = t0.Add(-time.Hour)
	r.Identity = &report.Opening{RequestedBy: "po-1", Requested: t0, Reason: []byte{9}}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Fatalf("Get differs (-want +got):\n%s", diff)
	}
	// Get returns a copy: changing it changes nothing stored.
	got.SealedReporter[0] = 0
	got.History[0].Actor = "changed"
	if again, _ := s.Get(ctx, r.ID); again.SealedReporter[0] != 0xbe || again.History[0].Actor != report.AnonymousActor {
		t.Fatal("Get shares memory with the store")
	}
	if err := s.Create(ctx, r); phivault.ErrorCode(err) != phivault.ECONFLICT {
		t.Fatalf("second Create: %v, want ECONFLICT", err)
	}
}

func update(t *testing.T, s report.Store) {
	ctx := context.Background()
	r := Report(2)
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	next := r.Clone()
	next.Version, next.State, next.Incident = 2, report.StateIncident, "inc-1"
	next.History = append(next.History, report.Event{At: t0, Actor: "po-1", Kind: report.EventIncident, Request: "r2"})
	if err := s.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, r.ID)
	if err != nil || got.Version != 2 || got.State != report.StateIncident || got.Incident != "inc-1" || len(got.History) != 2 {
		t.Fatalf("after Update: %+v, %v", got, err)
	}
	// The same version again is a stale change.
	if err := s.Update(ctx, next); phivault.ErrorCode(err) != phivault.EPRECONDITION {
		t.Fatalf("stale Update: %v, want EPRECONDITION", err)
	}
	if got, _ := s.Get(ctx, r.ID); got.Version != 2 {
		t.Fatalf("a stale Update changed the report: version %d", got.Version)
	}
}

// updateRace: of changes made on the same version at once, exactly one
// wins.
func updateRace(t *testing.T, s report.Store) {
	ctx := context.Background()
	r := Report(3)
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			next := r.Clone()
			next.Version, next.State = 2, report.StateTriaging
			errs[i] = s.Update(ctx, next)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch phivault.ErrorCode(err) {
		case "":
			won++
		case phivault.EPRECONDITION:
		default:
			t.Fatalf("Update: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d changes on the same version won, want 1", won)
	}
}

func list(t *testing.T, s report.Store) {
	ctx := context.Background()
	for n := 1; n <= 12; n++ {
		r := Report(n)
		if n == 4 {
			r.State = report.StateClosed
		}
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(f report.Filter) []string {
		t.Helper()
		rs, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tt := range []struct {
		give report.Filter
		want []string
	}{
		{report.Filter{Limit: 3}, []string{"rep-0012", "rep-0011", "rep-0010"}},
		{report.Filter{State: report.StateClosed}, []string{"rep-0004"}},
		{report.Filter{Kind: report.KindLostDevice}, []string{"rep-0011", "rep-0006", "rep-0001"}},
		// A reporter's own reports are the named ones only.
		{report.Filter{Reporter: "u-1"}, []string{"rep-0010", "rep-0004"}},
		{report.Filter{Reporter: "u-1", State: report.StateReceived}, []string{"rep-0010"}},
	} {
		if got := ids(tt.give); !slices.Equal(got, tt.want) {
			t.Errorf("List(%+v) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func notFound(t *testing.T, s report.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "rep-none"); phivault.ErrorCode(err) != phivault.ENOTFOUND {
		t.Fatalf("Get: %v, want ENOTFOUND", err)
	}
	if err := s.Update(ctx, Report(9)); phivault.ErrorCode(err) != phivault.ENOTFOUND {
		t.Fatalf("Update: %v, want ENOTFOUND", err)
	}
}
