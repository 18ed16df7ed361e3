package detect

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
)

// MaxAlertsCounted bounds the alerts GET /security/alerts/counts reads;
// beyond it the answer says Truncated.
const MaxAlertsCounted = 100_000

// AlertCounts is GET /security/alerts/counts?since=: how many alerts were
// detected at or after Since, by UTC day and severity, and how many of
// them are still open, by severity and by user. It names no alert and no
// patient, so its audit entry lists none either, and a patient's access
// report does not show a dashboard's counts as a look at their alerts.
type AlertCounts struct {
	Since time.Time `json:"since"`
	Total int       `json:"total"`
	// Days are the days with alerts, oldest first.
	Days []AlertDayCount `json:"days"`
	// Open counts the open alerts by severity; OpenByUser by the user
	// each is about.
	Open       map[string]int `json:"open"`
	OpenByUser map[string]int `json:"open_by_user"`
	// Truncated says that more than MaxAlertsCounted alerts matched: the
	// counts are of the newest of them.
	Truncated bool `json:"truncated,omitempty"`
}

// AlertDayCount is the alerts detected on one UTC day, by severity.
type AlertDayCount struct {
	Day        string         `json:"day"` // YYYY-MM-DD, UTC
	BySeverity map[string]int `json:"by_severity"`
}

var alertCountParams = []string{"since"}

// serveAlertCounts answers GET /security/alerts/counts?since=RFC3339.
func (h *handler) serveAlertCounts(w http.ResponseWriter, r *http.Request) {
	e := h.entry(r, phivault.ActionSearch, TargetAlert, "", alertCountParams...)
	q := r.URL.Query()
	if len(q) != 1 || len(q["since"]) != 1 {
		h.refuse(w, r, e, phivault.Errorf(phivault.EINVALID, "Give since, once and alone: an RFC 3339 time, e.g. 2026-12-06T00:00:00Z."))
		return
	}
	f, err := parseAlertFilter(q)
	if err != nil {
		h.refuse(w, r, e, err)
		return
	}
	counts := AlertCounts{Since: f.Since, Days: []AlertDayCount{}, Open: map[string]int{}, OpenByUser: map[string]int{}}
	days := map[string]map[string]int{}
	f.Limit = MaxAlertPage
	for {
		alerts, err := h.opts.Store.Alerts(r.Context(), f)
		if err != nil {
			h.refuse(w, r, e, err)
			return
		}
		for _, a := range alerts {
			if counts.Total == MaxAlertsCounted {
				counts.Truncated = true
				break
			}
			counts.Total++
			sev, day := a.Severity.String(), a.Detected.UTC().Format(time.DateOnly)
			if days[day] == nil {
				days[day] = map[string]int{}
			}
			days[day][sev]++
			if a.State == StateOpen {
				counts.Open[sev]++
				counts.OpenByUser[a.User]++
			}
		}
		if counts.Truncated || len(alerts) < f.Limit {
			break
		}
		f.After = alerts[len(alerts)-1].ID
	}
	for day, by := range days {
		counts.Days = append(counts.Days, AlertDayCount{Day: day, BySeverity: by})
	}
	slices.SortFunc(counts.Days, func(a, b AlertDayCount) int { return strings.Compare(a.Day, b.Day) })
	if !h.record(w, r, e) {
		return
	}
	writeJSON(w, http.StatusOK, counts)
}
