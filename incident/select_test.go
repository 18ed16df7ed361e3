package incident_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident"
)

// memTrail is a detect.Trail of entries in memory; failAt fails the
// read of the chunk holding that index.
type memTrail struct {
	entries []*phivault.AuditEntry
	failAt  int64
}

func (s *memTrail) Size(context.Context) (int64, error) { return int64(len(s.entries)), nil }

func (s *memTrail) Entries(_ context.Context, start, end int64) ([]*phivault.AuditEntry, error) {
	if s.failAt >= start && s.failAt < end {
		return nil, errors.New("disk error")
	}
	return s.entries[start:end], nil
}

func TestSelect(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	tr := &memTrail{failAt: -1, entries: []*phivault.AuditEntry{
		{Time: at(1), RequestID: "r0", Actor: "u1", Compartments: []string{"p9"}},        // 0: the user
		{Time: at(2), RequestID: "r1", Actor: "u2", Compartments: []string{"p1"}},        // 1: the patient, by someone else
		{Time: at(3), RequestID: "r2", Actor: "u2", Compartments: []string{"p2"}},        // 2: neither
		{Time: at(-60), RequestID: "r3", Actor: "u1", Compartments: []string{"p1"}},      // 3: before the window
		{Time: at(200), RequestID: "r4", Actor: "po-1", TargetType: incident.TargetType}, // 4: a change, after it
	}}
	scope := incident.Scope{Users: []string{"u1"}, Patients: []string{"p1"}, From: t0, To: at(60)}
	sel := func(s incident.Selection) []int64 {
		t.Helper()
		entries, errf := incident.Select(context.Background(), tr, int64(len(tr.entries)), s)
		var got []int64
		for i := range entries {
			got = append(got, i)
		}
		if err := errf(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// The breach report's selection: the scope's actors in the window.
	if got := sel(incident.Selection{Scope: scope}); !slices.Equal(got, []int64{0}) {
		t.Errorf("actors: %v, want [0]", got)
	}
	// The evidence's: their patients too, and the timeline's requests
	// whatever their time.
	if got := sel(incident.Selection{Scope: scope, Patients: true, Requests: []string{"r4", ""}}); !slices.Equal(got, []int64{0, 1, 4}) {
		t.Errorf("evidence: %v, want [0 1 4]", got)
	}
	// A scope of nobody selects nothing, not everything.
	if got := sel(incident.Selection{Scope: incident.Scope{From: t0}, Patients: true}); len(got) != 0 {
		t.Errorf("nobody: %v", got)
	}
	// A read error ends the sequence and is reported.
	tr.failAt = 0
	entries, errf := incident.Select(context.Background(), tr, int64(len(tr.entries)), incident.Selection{Scope: scope})
	for range entries {
		t.Fatal("an entry after a read error")
	}
	if errf() == nil {
		t.Fatal("no read error")
	}
}
