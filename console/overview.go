package console

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
)

// overviewDays is how many days the overview's alert chart covers.
const overviewDays = 14

// overviewPage is the data of the overview.
type overviewPage struct {
	Alerts     *barChart // alerts detected per day, by severity
	OpenAlerts map[string]int
	AlertsMore bool // the chart is of the newest MaxAlertPage alerts only
	TopUsers   []userCount
	Detector   *detect.Status
	Incidents  []incident.View
	Checkpoint *checkpoint
	Keys       map[string]any // the key status, for security admins
}

// userCount is a user and how many open alerts name them, with their
// highest score.
type userCount struct {
	User     string
	Alerts   int
	TopScore int
}

// severities are the alert severities, mildest first.
var severities = []string{"low", "medium", "high", "critical"}

// overview is the officers' home: GET /console/.
func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s *session) {
	now := h.opts.Now()
	p := overviewPage{OpenAlerts: map[string]int{}}
	labels, first := dayLabels(now, overviewDays)
	var page detect.AlertPage
	q := url.Values{"since": {first.Format(time.RFC3339)}, "limit": {strconv.Itoa(detect.MaxAlertPage)}}
	if err := h.getJSON(r, s, "/security/alerts?"+q.Encode(), &page); err != nil {
		h.fail(w, r, s, err)
		return
	}
	p.AlertsMore = page.Next != ""
	c := &barChart{Title: "Alerts detected per day, by severity"}
	for _, sev := range severities {
		c.Series = append(c.Series, chartSeries{Name: sev, Class: "s-" + sev})
	}
	for _, l := range labels {
		c.Slots = append(c.Slots, chartSlot{Label: l, Values: make([]int, len(severities))})
	}
	users := map[string]*userCount{}
	for _, a := range page.Alerts {
		sev := slices.Index(severities, a.Severity)
		day := int(a.Detected.UTC().Sub(first) / (24 * time.Hour))
		if sev >= 0 && day >= 0 && day < overviewDays {
			c.Slots[day].Values[sev]++
		}
		if a.State == detect.StateOpen {
			p.OpenAlerts[a.Severity]++
			if a.User != "" {
				u := users[a.User]
				if u == nil {
					u = &userCount{User: a.User}
					users[a.User] = u
				}
				u.Alerts++
				u.TopScore = max(u.TopScore, a.Score)
			}
		}
	}
	p.Alerts = c.layout()
	p.TopUsers = topUsers(users, 5)

	var st detect.Status
	if err := h.getJSON(r, s, "/security/detector", &st); err == nil {
		p.Detector = &st
	}
	var list struct {
		Incidents []incident.View `json:"incidents"`
	}
	if err := h.getJSON(r, s, "/security/incidents?open=true", &list); err != nil {
		h.fail(w, r, s, err)
		return
	}
	p.Incidents = list.Incidents
	if rp, err := h.api(r, s, http.MethodGet, "/fhir/audit/checkpoint", nil); err == nil && rp.status == http.StatusOK {
		p.Checkpoint = parseCheckpoint(rp.body)
	}
	if securityAdmin(&s.principal) {
		var keys map[string]any
		if err := h.getJSON(r, s, "/fhir/admin/keys/status", &keys); err == nil {
			p.Keys = keys
		}
	}
	h.render(w, r, s, http.StatusOK, "overview", "Overview", p)
}

// topUsers returns the n users with the highest scores, then most alerts.
func topUsers(users map[string]*userCount, n int) []userCount {
	out := make([]userCount, 0, len(users))
	for _, u := range users {
		out = append(out, *u)
	}
	sortUsers(out)
	return out[:min(n, len(out))]
}

// checkpoint is what the overview shows of the latest signed checkpoint.
type checkpoint struct {
	Origin string
	Size   string
	Hash   string
}

// parseCheckpoint reads the first three lines of a signed checkpoint
// note (origin, tree size, root hash); the browser's proof checker
// verifies it for real.
func parseCheckpoint(b []byte) *checkpoint {
	lines := strings.SplitN(string(b), "\n", 4)
	if len(lines) < 4 {
		return nil
	}
	return &checkpoint{Origin: lines[0], Size: lines[1], Hash: lines[2]}
}

func sortUsers(us []userCount) {
	slices.SortFunc(us, func(a, b userCount) int {
		if c := cmp.Compare(b.TopScore, a.TopScore); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Alerts, a.Alerts); c != 0 {
			return c
		}
		return strings.Compare(a.User, b.User)
	})
}
