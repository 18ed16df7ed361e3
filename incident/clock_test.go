package incident_test

import (
	"testing"
	"time"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
)

func TestIncident_Clocks(t *testing.T) {
	opened := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	in := &incident.Incident{Severity: detect.SeverityCritical, Source: incident.SourceAlert, Opened: opened, Discovered: opened.Add(-24 * time.Hour)}
	sla := incident.DefaultSLA()
	byName := func(cs []incident.Clock) map[string]incident.Clock {
		m := map[string]incident.Clock{}
		for _, c := range cs {
			m[c.Name] = c
		}
		return m
	}

	// Ten minutes in: nothing overdue.
	c := byName(in.Clocks(opened.Add(10*time.Minute), sla))
	if len(c) != 3 || c[incident.ClockAcknowledge].Overdue || c[incident.ClockContain].Overdue || c[incident.ClockNotify].Overdue {
		t.Fatalf("at 10 min: %+v", c)
	}
	if want := opened.Add(-24 * time.Hour).Add(60 * 24 * time.Hour); !c[incident.ClockNotify].Due.Equal(want) {
		t.Fatalf("notify due %v, want 60 days after discovery %v", c[incident.ClockNotify].Due, want)
	}
	if in.Overdue(opened.Add(10*time.Minute), sla) {
		t.Fatal("overdue at 10 min")
	}
	// Twenty minutes in, not taken: the acknowledge clock is overdue.
	if c := byName(in.Clocks(opened.Add(20*time.Minute), sla)); !c[incident.ClockAcknowledge].Overdue || c[incident.ClockContain].Overdue {
		t.Fatalf("at 20 min: %+v", c)
	}
	// Taken at 5 minutes: met, and stays met.
	in.Acknowledged = opened.Add(5 * time.Minute)
	if c := byName(in.Clocks(opened.Add(20*time.Minute), sla)); c[incident.ClockAcknowledge].Overdue || c[incident.ClockAcknowledge].Done.IsZero() {
		t.Fatalf("taken: %+v", c)
	}
	// Contained late: done, and overdue as a matter of record, but no
	// longer counted by Overdue.
	in.Contained = opened.Add(5 * time.Hour)
	c = byName(in.Clocks(opened.Add(6*time.Hour), sla))
	if !c[incident.ClockContain].Overdue || c[incident.ClockContain].Done.IsZero() {
		t.Fatalf("contained late: %+v", c)
	}
	if in.Overdue(opened.Add(6*time.Hour), sla) {
		t.Fatal("a met clock counts as overdue")
	}
	// Day 60 after discovery, still open: notification overdue.
	if !in.Overdue(opened.Add(60*24*time.Hour), sla) {
		t.Fatal("notification clock not overdue after 60 days")
	}
	// A drill has no notification clock.
	in.Source = incident.SourceDrill
	if c := byName(in.Clocks(opened.Add(60*24*time.Hour), sla)); len(c) != 2 {
		t.Fatalf("drill clocks %+v", c)
	}
}
