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
