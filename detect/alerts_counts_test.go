package detect_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// TestAlertsAPI_Counts counts alerts over several pages of the store, by
// day, severity, state and user, and checks that the read names no alert
// and no patient in its audit entry.
func TestAlertsAPI_Counts(t *testing.T) {
	f := newAlertsFixture(t) // five open alerts on 2026-12-01, 03:00 to 07:00
	// 2,500 more over the three days before: more than two pages of the
	// store. Every third is triaged; all are low, about u9 or u8.
	var more []*detect.Alert
	for i := range 2500 {
		a := &detect.Alert{ID: detect.AlertID("volume-spike", fmt.Sprint(i)), Rule: "volume-spike", Key: fmt.Sprint(i),
			Severity: detect.SeverityLow, Score: 20, User: []string{"u9", "u8"}[i%2], Patients: []string{"p-many"},
			First: alertsT0, Last: alertsT0, Detected: alertsT0.Add(-time.Duration(24+i%3*24) * time.Hour), State: detect.StateOpen}
		if i%3 == 0 {
			a.State = detect.StateFalsePositive
		}
		more = append(more, a)
	}
	if err := f.store.Commit(t.Context(), &detect.Commit{Alerts: more}); err != nil {
		t.Fatal(err)
	}

	rec := f.do(t, "officer", "GET", "/security/alerts/counts?since=2026-11-28T00:00:00Z", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("counts = %d %s", rec.Code, rec.Body)
	}
	c := decode[detect.AlertCounts](t, rec)
	// Day i%3: 0 → 2026-11-30, 1 → 11-29, 2 → 11-28; 834, 833, 833 alerts.
	want := []detect.AlertDayCount{
		{Day: "2026-11-28", BySeverity: map[string]int{"low": 833}},
		{Day: "2026-11-29", BySeverity: map[string]int{"low": 833}},
		{Day: "2026-11-30", BySeverity: map[string]int{"low": 834}},
		{Day: "2026-12-01", BySeverity: map[string]int{"critical": 1, "high": 1, "medium": 2, "low": 1}},
	}
	if c.Total != 2505 || c.Truncated || fmt.Sprint(c.Days) != fmt.Sprint(want) {
		t.Errorf("counts: total %d, truncated %v, days %v; want 2505, false, %v", c.Total, c.Truncated, c.Days, want)
	}
	// 834 of the 2,500 were triaged (i%3 == 0).
	if c.Open["low"] != 1+2500-834 || c.Open["critical"] != 1 || c.OpenByUser["u9"] != 833 || c.OpenByUser["u8"] != 833 || c.OpenByUser["u1"] != 2 {
		t.Errorf("open %v, by user %v", c.Open, c.OpenByUser)
	}
	e := f.log.last(t)
	if e.Action != phivault.ActionSearch || e.TargetType != detect.TargetAlert || len(e.Compartments) != 0 || len(e.Returned) != 0 ||
		!slices.Equal(e.SearchParams, []string{"since"}) || e.Outcome != "ok" {
		t.Errorf("audit entry %+v, want a search naming no alert and no patient", e)
	}

	// Since later: the older days are left out.
	c = decode[detect.AlertCounts](t, f.do(t, "security", "GET", "/security/alerts/counts?since=2026-12-01T00:00:00Z", ""))
	if c.Total != 5 || len(c.Days) != 1 {
		t.Errorf("counts since 12-01: total %d, days %v", c.Total, c.Days)
	}

	for _, q := range []string{"", "?since=yesterday", "?since=2026-12-01T00:00:00Z&user=u1", "?since=2026-12-01T00:00:00Z&since=2026-12-02T00:00:00Z"} {
		if rec := f.do(t, "officer", "GET", "/security/alerts/counts"+q, ""); rec.Code != http.StatusBadRequest {
			t.Errorf("counts%s = %d %s, want 400", q, rec.Code, rec.Body)
		}
		if e := f.log.last(t); e.Outcome != phivault.EINVALID {
			t.Errorf("refused counts%s recorded as %q", q, e.Outcome)
		}
	}
	if rec := f.do(t, "nurse", "GET", "/security/alerts/counts?since=2026-12-01T00:00:00Z", ""); rec.Code != http.StatusForbidden {
		t.Errorf("a nurse's counts = %d, want 403", rec.Code)
	}
}
