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
	Score   int              `json:"score"`
	Factors []string         `json:"factors"`
	Days    []detect.UserDay `json:"days"`
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
			p.Baseline = baselineChart(risk.Days, p.Alert.First, p.Alert.Last)
		}
	}
	h.render(w, r, s, status, "alert", "Alert "+shortID(id), p)
}

// baselineChart draws the user's accesses per day, as the risk scorer
// counted them (the baseline their behaviour is scored against), over
// the baselineDays ending with the alert's last day, the alert's days
// marked.
func baselineChart(days []detect.UserDay, first, last time.Time) *barChart {
	end := last.UTC().Truncate(24 * time.Hour)
	start := end.AddDate(0, 0, -(baselineDays - 1))
	c := &barChart{Title: "Accesses per day by this user, the alert's days marked",
		Series: []chartSeries{{"accesses", "s-base"}}}
	for i := range baselineDays {
		day := start.AddDate(0, 0, i)
		c.Slots = append(c.Slots, chartSlot{Label: day.Format("Jan 2"), Values: []int{0},
			Mark: !day.Before(first.UTC().Truncate(24*time.Hour)) && !day.After(end)})
	}
	for _, d := range days {
		if i := int(d.Day.UTC().Sub(start) / (24 * time.Hour)); i >= 0 && i < baselineDays {
			c.Slots[i].Values[0] = d.Accesses
		}
	}
	return c.layout()
}
