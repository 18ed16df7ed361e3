package detect_test

import (
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// TestContext_entriesPerEvent runs the self-access rule and the
// family-access rule (both reading the event's user and patients through
// the Context) over one Event value observed twice, the directory
// changing in between: the first sees a stranger's record and reports
// nothing, the second sees the user's own record and reports it. The
// rules share the lookups of one event, never those of the one before.
func TestContext_entriesPerEvent(t *testing.T) {
	dir := detect.NewDirectory()
	dir.PutUser(&detect.User{ID: "u1", Status: phivault.AccountActive})
	dir.PutPatient(&detect.Patient{ID: "p1"})
	eng := detect.NewEngine(dir, []detect.Rule{detect.NewSelfAccess(), detect.NewFamilyAccess()}, nil)
	ev := &detect.Event{Time: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC), User: "u1", Action: phivault.ActionRead,
		ResourceType: "Patient", ResourceID: "p1", Patients: []string{"p1"}, OK: true, Outcome: "ok", Stream: detect.StreamTrail}
	eng.Observe(ev)
	if alerts := eng.Drain(); len(alerts) != 0 {
		t.Fatalf("a stranger's record raised %d alerts, want none", len(alerts))
	}
	dir.PutPatient(&detect.Patient{ID: "p1", Employee: "u1"})
	ev.Seq++
	eng.Observe(ev)
	alerts := eng.Drain()
	if len(alerts) != 1 || alerts[0].Rule != detect.RuleSelfAccess {
		t.Fatalf("the user's own record raised %v, want one self-access alert", alerts)
	}
}

// TestContext_looksPerRule runs two self-access rules, one counting
// searches of up to 2 hits and one of up to 3, over a search that found
// the user's own record among 3: the Context works out once whether the
// event looks at people, but each rule still applies its own bound, so
// only the second reports.
func TestContext_looksPerRule(t *testing.T) {
	dir := detect.NewDirectory()
	dir.PutUser(&detect.User{ID: "u1", Patient: "p1", Roles: []string{"nurse"}, Status: phivault.AccountActive})
	few, more := detect.NewSelfAccess(), detect.NewSelfAccess()
	few.SearchHits, more.SearchHits = 2, 3
	at := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name  string
		rules []detect.Rule
		want  int
	}{
		{"bound 2 first", []detect.Rule{few, more}, 1},
		{"bound 3 first", []detect.Rule{more, few}, 1},
		{"bound 2 only", []detect.Rule{few}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			eng := detect.NewEngine(dir, tt.rules, nil)
			eng.Observe(&detect.Event{Time: at, User: "u1", Action: phivault.ActionSearch, ResourceType: "Patient",
				Patients: []string{"p1", "p2", "p3"}, OK: true, Outcome: "ok", Stream: detect.StreamTrail})
			if got := eng.Counts()[detect.RuleSelfAccess]; got != int64(tt.want) {
				t.Errorf("a search of 3 hits gave %d findings, want %d", got, tt.want)
			}
		})
	}
}
