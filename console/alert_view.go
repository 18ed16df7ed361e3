package console

import (
	"net/http"
	"net/url"
	"time"

	"github.com/phivault/phivault/detect"
)

// alertPage is the data of an alert's page.
type alertPage struct {
	Alert    detect.AlertView
	Risk     *userRisk // the user's risk score, or nil if none is kept
	Baseline *barChart // the user's daily activity around the alert, or nil
	Reasons  []string  // suggested reason codes of a benign decision
	Error    string
}

// userRisk is GET /security/users/{id}/risk.
type userRisk struct {
	Score   int      `json:"score"`
	Factors []string `json:"factors"`
}

// baselineDays is how many days of the user's activity the alert's
// chart shows, ending with the alert's last day.
const baselineDays = 14

// benignReasons are offered as reason codes of a benign decision; any
// other code may be typed.
var benignReasons = []string{"covering-shift", "authorized-research", "care-handover", "test-account", "other-known-cause"}

// alertView shows one alert: GET /console/alerts/{id}.
func (h *Handler) alertView(w http.ResponseWriter, r *http.Request, s *session) {
	h.renderAlert(w, r, s, http.StatusOK, "")
}

func (h *Handler) renderAlert(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	id := r.PathValue("id")
	p := alertPage{Reasons: benignReasons, Error: msg}
	if err := h.getJSON(r, s, "/security/alerts/"+url.PathEscape(id), &p.Alert); err != nil {
		h.fail(w, r, s, err)
		return
	}
	if u := p.Alert.User; u != "" {
		var risk userRisk
		if err := h.getJSON(r, s, "/security/users/"+url.PathEscape(u)+"/risk", &risk); err == nil {
			p.Risk = &risk
		}
		if c, err := h.activityChart(r, s, u, p.Alert.First, p.Alert.Last); err == nil {
			p.Baseline = c
		} else {
			h.opts.Logger.Warn("console: activity baseline", "error_type", errorType(err))
		}
	}
	h.render(w, r, s, status, "alert", "Alert "+shortID(id), p)
}

// activityChart draws the user's accesses per day over the baselineDays
// ending with last, marking the days of the alert, from the user
// activity report (itself an audit entry).
func (h *Handler) activityChart(r *http.Request, s *session, user string, first, last time.Time) (*barChart, error) {
	end := last.UTC().Truncate(24 * time.Hour)
	start := end.AddDate(0, 0, -(baselineDays - 1))
	q := url.Values{"format": {"json"}, "date": {"ge" + start.Format(time.DateOnly)}}
	var bundle struct {
		Entry []struct {
			Resource struct {
				Recorded time.Time `json:"recorded"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := h.getJSON(r, s, "/fhir/admin/reports/users/"+url.PathEscape(user)+"/activity?"+q.Encode(), &bundle); err != nil {
		return nil, err
	}
	c := &barChart{Title: "Accesses per day by this user, the alert's days marked", Series: []chartSeries{{"accesses", "s-base"}}}
	for i := range baselineDays {
		day := start.AddDate(0, 0, i)
		c.Slots = append(c.Slots, chartSlot{Label: day.Format("Jan 2"), Values: []int{0},
			Mark: !day.Before(first.UTC().Truncate(24*time.Hour)) && !day.After(end)})
	}
	for _, e := range bundle.Entry {
		i := int(e.Resource.Recorded.UTC().Sub(start) / (24 * time.Hour))
		if i >= 0 && i < baselineDays {
			c.Slots[i].Values[0]++
		}
	}
	return c.layout(), nil
}
