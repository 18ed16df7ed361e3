package detect

import (
	"fmt"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

// TopUsers ranks the users active today or yesterday by their risk, the
// highest first, and leaves out users idle for longer; HourlyAccesses
// counts today's accesses by hour, sign-ins aside.
func TestRiskScorer_TopUsers(t *testing.T) {
	s := NewRiskScorer()
	if day, hours := s.HourlyAccesses(); !day.IsZero() || hours != [24]int{} {
		t.Fatalf("HourlyAccesses before any event = %v %v", day, hours)
	}
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	ev := func(at time.Time, user, action, patient string) {
		s.Observe(nil, &Event{Time: at, User: user, Roles: []string{"nurse"}, Action: action, OK: true, Patients: []string{patient}})
	}
	ev(t0, "idle", phivault.ActionRead, "p0") // active three days before: left out
	for d := 2; d <= 3; d++ {
		for i := range 3 {
			ev(t0.Add(time.Duration(d)*24*time.Hour), "steady", phivault.ActionRead, fmt.Sprintf("p%d", i))
		}
	}
	for i := range 40 { // many unrelated patients in one hour
		ev(t0.Add(3*24*time.Hour+time.Hour), "wide", phivault.ActionRead, fmt.Sprintf("q%d", i))
	}
	ev(t0.Add(3*24*time.Hour+2*time.Hour), "wide", phivault.ActionLogin, "")
	// An alert today lifts wide's risk to its score.
	at := t0.Add(3*24*time.Hour + time.Hour)
	s.Score(nil, &Alert{User: "wide", RuleScore: 80, Severity: SeverityHigh, First: at, Last: at})

	top := s.TopUsers(10)
	if len(top) != 2 || top[0].User != "wide" || top[1].User != "steady" || top[0].Score < top[1].Score || len(top[0].Factors) == 0 {
		t.Fatalf("TopUsers = %+v, want wide then steady", top)
	}
	if one := s.TopUsers(1); len(one) != 1 || one[0].User != "wide" {
		t.Fatalf("TopUsers(1) = %+v", one)
	}
	day, hours := s.HourlyAccesses()
	if want := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC); !day.Equal(want) {
		t.Errorf("day = %v, want %v", day, want)
	}
	want := [24]int{9: 3, 10: 40}
	if hours != want {
		t.Errorf("hours = %v, want %v", hours, want)
	}
	d3 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	if days := s.UserDays("steady"); len(days) != 2 || !days[0].Day.Equal(d3) || days[0].Accesses != 3 || days[0].Patients != 3 ||
		!days[1].Day.Equal(d3.AddDate(0, 0, 1)) || days[1].Accesses != 3 {
		t.Errorf("UserDays(steady) = %+v", days)
	}
	if days := s.UserDays("nobody"); days != nil {
		t.Errorf("UserDays(nobody) = %+v", days)
	}
}
