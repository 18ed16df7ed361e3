package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
)

// overviewDays is how many days the overview's alert chart covers.
const overviewDays = 14

// overviewPage is the data of the overview.
type overviewPage struct {
	Alerts     *barChart // alerts detected per day, by severity
	OpenAlerts map[string]int
	AlertsMore bool // the chart is of the newest detect.MaxAlertsCounted alerts only
	TopUsers   []rankedUser
	Hourly     *barChart // today's accesses per hour
	Detector   *detect.Status
	Incidents  []incident.View
	Checkpoint *auditlog.Checkpoint // the latest signed one, unverified
	Vault      *vaultStatus
	Keys       *keyStatus // the key status, for security admins
}

// rankedUser is a user of the risk ranking, with their open alerts.
type rankedUser struct {
	detect.UserScore
	OpenAlerts int
}

// vaultStatus is GET /security/vault.
type vaultStatus struct {
	Sealed bool `json:"sealed"`
	Audit  struct {
		IntegrityOK  bool      `json:"integrity_ok"`
		LastVerified time.Time `json:"last_verified"`
		Verified     int64     `json:"verified"`
	} `json:"audit"`
	Witnesses []struct {
		Name      string `json:"name"`
		Published int64  `json:"published"`
		Failures  int64  `json:"failures"`
		Dropped   int64  `json:"dropped"`
		Queued    int    `json:"queued"`
	} `json:"witnesses"`
	Backup *struct {
		Target       string    `json:"target"`
		Latest       time.Time `json:"latest"`
		Snapshot     string    `json:"snapshot"`
		LastVerified time.Time `json:"last_verified"`
		Error        string    `json:"error"`
	} `json:"backup"`
	RestoreDrill *struct {
		At   time.Time `json:"at"`
		Pass bool      `json:"pass"`
		RTO  int64     `json:"rto_ms"`
		RPO  int64     `json:"rpo_ms"`
	} `json:"restore_drill"`
}

// severities are the alert severities, mildest first.
var severities = []string{"low", "medium", "high", "critical"}

// overview is the officers' home: GET /console/.
func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s *session) {
	now := h.opts.Now()
	p := overviewPage{OpenAlerts: map[string]int{}}
	labels, first := dayLabels(now, overviewDays)
	// Counts, not the alerts: the overview shows no alert, and its read
	// names none (nor their patients) in the audit trail.
	var counts detect.AlertCounts
	if err := h.getJSON(r, s, "/security/alerts/counts?"+url.Values{"since": {first.Format(time.RFC3339)}}.Encode(), &counts); err != nil {
		h.fail(w, r, s, err)
		return
	}
	p.AlertsMore = counts.Truncated
	c := &barChart{Title: "Alerts detected per day, by severity"}
	for _, sev := range severities {
		c.Series = append(c.Series, chartSeries{Name: sev, Class: "s-" + sev})
	}
	for i, l := range labels {
		c.Slots = append(c.Slots, chartSlot{Label: l, Values: make([]int, len(severities))})
		day := first.AddDate(0, 0, i).Format(time.DateOnly)
		if j := slices.IndexFunc(counts.Days, func(d detect.AlertDayCount) bool { return d.Day == day }); j >= 0 {
			for k, sev := range severities {
				c.Slots[i].Values[k] = counts.Days[j].BySeverity[sev]
			}
		}
	}
	p.OpenAlerts = counts.Open
	open := counts.OpenByUser
	p.Alerts = c.layout()
	var risk detect.RiskSummary
	if err := h.getJSON(r, s, "/security/risk?top=5", &risk); err == nil {
		for _, u := range risk.Users {
			p.TopUsers = append(p.TopUsers, rankedUser{UserScore: u, OpenAlerts: open[u.User]})
		}
		p.Hourly = hourlyChart(risk.Day, risk.Hourly)
	}
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
		if cp, err := readCheckpoint(rp.body); err == nil {
			p.Checkpoint = &cp
		}
	}
	var vs vaultStatus
	if err := h.getJSON(r, s, "/security/vault", &vs); err == nil {
		p.Vault = &vs
	}
	if securityAdmin(&s.principal) && (p.Vault == nil || !p.Vault.Sealed) {
		var keys keyStatus
		if err := h.getJSON(r, s, "/fhir/admin/keys/status", &keys); err == nil {
			p.Keys = &keys
		}
	}
	h.render(w, r, s, http.StatusOK, "overview", "Overview", p)
}

// hourlyChart draws the accesses of each hour of day.
func hourlyChart(day time.Time, hours [24]int) *barChart {
	title := "Accesses per hour today (UTC)"
	if !day.IsZero() {
		title = "Accesses per hour on " + day.Format(time.DateOnly) + " (UTC)"
	}
	c := &barChart{Title: title, Slot: "Hour", Series: []chartSeries{{"accesses", "s-base"}}}
	for h, n := range hours {
		c.Slots = append(c.Slots, chartSlot{Label: strconv.Itoa(h), Values: []int{n}})
	}
	return c.layout()
}
