package detect_test

import (
	"testing"
	"time"

	"github.com/phivault/phivault/detect"
)

func triage(alert, user, rule, decision string) *detect.Triage {
	return &detect.Triage{Alert: alert, User: user, Rule: rule, Decision: decision}
}

func TestTriageSuppressor_Suppress(t *testing.T) {
	medium := &detect.Alert{Rule: "family", User: "u1", Severity: detect.SeverityMedium}
	t.Run("OK", func(t *testing.T) {
		s := detect.NewTriageSuppressor([]*detect.Triage{
			triage("a1", "u1", "family", detect.StateFalsePositive),
			triage("a2", "u1", "family", detect.StateBenign),
			triage("a3", "u1", "family", detect.StateFalsePositive),
		})
		if !s.Suppress(medium) {
			t.Error("Suppress after 3 false-positive/benign = false, want true")
		}
		for _, a := range []*detect.Alert{
			{Rule: "family", User: "u1", Severity: detect.SeverityCritical}, // critical always pages
			{Rule: "family", User: "u2", Severity: detect.SeverityMedium},   // another user
			{Rule: "neighbour", User: "u1", Severity: detect.SeverityLow},   // another rule
			{Rule: "family", User: "", Severity: detect.SeverityLow},        // no user
		} {
			if s.Suppress(a) {
				t.Errorf("Suppress(%s %s %s) = true, want false", a.Rule, a.User, a.Severity)
			}
		}
	})
	t.Run("NearMiss", func(t *testing.T) {
		tests := []struct {
			name    string
			triages []*detect.Triage
		}{
			{"two", []*detect.Triage{
				triage("a1", "u1", "family", detect.StateFalsePositive),
				triage("a2", "u1", "family", detect.StateBenign),
			}},
			{"one true positive", []*detect.Triage{
				triage("a1", "u1", "family", detect.StateFalsePositive),
				triage("a2", "u1", "family", detect.StateFalsePositive),
				triage("a3", "u1", "family", detect.StateFalsePositive),
				triage("a4", "u1", "family", detect.StateTruePositive),
			}},
			{"one alert triaged thrice", []*detect.Triage{
				triage("a1", "u1", "family", detect.StateFalsePositive),
				triage("a1", "u1", "family", detect.StateFalsePositive),
				triage("a1", "u1", "family", detect.StateBenign),
			}},
			{"decision changed to true positive", []*detect.Triage{
				triage("a1", "u1", "family", detect.StateFalsePositive),
				triage("a2", "u1", "family", detect.StateFalsePositive),
				triage("a3", "u1", "family", detect.StateFalsePositive),
				triage("a3", "u1", "family", detect.StateTruePositive),
			}},
			{"spread over rules", []*detect.Triage{
				triage("a1", "u1", "family", detect.StateFalsePositive),
				triage("a2", "u1", "family", detect.StateFalsePositive),
				triage("a3", "u1", "neighbour", detect.StateFalsePositive),
			}},
		}
		for _, tt := range tests {
			if detect.NewTriageSuppressor(tt.triages).Suppress(medium) {
				t.Errorf("%s: Suppress = true, want false", tt.name)
			}
		}
	})
	t.Run("After", func(t *testing.T) {
		s := detect.NewTriageSuppressor([]*detect.Triage{triage("a1", "u1", "family", detect.StateFalsePositive)})
		s.After = 1
		if !s.Suppress(medium) {
			t.Error("After=1: one false positive does not suppress")
		}
	})
}

// reportRule reports every event as a finding of severity sev about its
// user and first patient.
type reportRule struct{ sev detect.Severity }

func (reportRule) Name() string { return "test-rule" }

func (r reportRule) Observe(x *detect.Context, ev *detect.Event) {
	x.Report(detect.Finding{
		Rule: "test-rule", Key: ev.User + "|" + ev.Patients[0], Severity: r.sev, Score: 50,
		User: ev.User, Patients: ev.Patients, Why: "User " + ev.User + " read patient " + ev.Patients[0] + ".",
	})
}

// The engine marks new alerts of a suppressed user and rule Suppressed,
// and still stores and counts them.
func TestTriageSuppressor_Engine(t *testing.T) {
	var triages []*detect.Triage
	for _, id := range []string{"a1", "a2", "a3"} {
		triages = append(triages, triage(id, "u1", "test-rule", detect.StateFalsePositive))
	}
	for _, tt := range []struct {
		sev  detect.Severity
		user string
		want bool
	}{
		{detect.SeverityHigh, "u1", true},
		{detect.SeverityCritical, "u1", false},
		{detect.SeverityHigh, "u2", false},
	} {
		eng := detect.NewEngine(detect.NewDirectory(), []detect.Rule{reportRule{tt.sev}}, nil)
		eng.Suppressor = detect.NewTriageSuppressor(triages)
		eng.Observe(&detect.Event{Stream: detect.StreamTrail, Seq: 1, Time: time.Now(), User: tt.user, Patients: []string{"p1"}, Action: "read"})
		alerts := eng.Drain()
		if len(alerts) != 1 || alerts[0].Suppressed != tt.want {
			t.Errorf("%s alert of %s: %+v, want one with Suppressed %v", tt.sev, tt.user, alerts, tt.want)
		}
		if eng.Counts()["test-rule"] != 1 {
			t.Errorf("%s alert of %s: not counted", tt.sev, tt.user)
		}
	}
}
