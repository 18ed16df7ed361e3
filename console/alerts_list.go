package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/phivault/phivault/detect"
)

// alertStates are the states an alert list can be filtered on.
var alertStates = []string{detect.StateOpen, detect.StateTruePositive, detect.StateFalsePositive, detect.StateBenign}

// alertsPage is the data of the alerts list.
type alertsPage struct {
	Alerts   []detect.AlertView
	State    string // the filter in use
	Rule     string
	MinScore string
	User     string
	States   []string
	More     bool // more alerts than shown
}

// alertList lists alerts, newest first (as the API answers), filtered by state, rule, user and
// score: GET /console/alerts?state=&rule=&user=&min_score=.
func (h *Handler) alertList(w http.ResponseWriter, r *http.Request, s *session) {
	in := r.URL.Query()
	p := alertsPage{State: in.Get("state"), Rule: in.Get("rule"), MinScore: in.Get("min_score"), User: in.Get("user"), States: alertStates}
	if !in.Has("state") {
		p.State = detect.StateOpen
	}
	q := url.Values{"limit": {strconv.Itoa(maxListed)}}
	if p.State != "" {
		if !slices.Contains(alertStates, p.State) {
			h.renderError(w, r, s, http.StatusBadRequest, "Unknown alert state.")
			return
		}
		q.Set("state", p.State)
	}
	for name, v := range map[string]string{"rule": p.Rule, "min_score": p.MinScore, "user": p.User} {
		if v != "" {
			q.Set(name, v)
		}
	}
	var page detect.AlertPage
	if err := h.getJSON(r, s, "/security/alerts?"+q.Encode(), &page); err != nil {
		h.fail(w, r, s, err)
		return
	}
	p.Alerts, p.More = page.Alerts, page.Next != ""
	h.render(w, r, s, http.StatusOK, "alerts", "Alerts", p)
}

// maxListed bounds a list page: the console shows the newest this many.
const maxListed = 200

// alertRoutes registers the alert pages.
func (h *Handler) alertRoutes() {
	h.page("/console/alerts", "/console/alerts", "Alerts", officer, h.alertList)
	h.mux.HandleFunc("GET /console/alerts/{id}", h.with(officer, h.alertView))
	h.mux.HandleFunc("POST /console/alerts/{id}/triage", h.with(officer, h.alertTriage))
}
