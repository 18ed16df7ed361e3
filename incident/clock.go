package incident

import (
	"time"

	"github.com/phivault/phivault/detect"
)

// NotificationWindow is the outer limit HIPAA gives for notifying the
// individuals of a breach: without unreasonable delay and in no case
// later than 60 calendar days after discovery (45 CFR 164.404(b)).
const NotificationWindow = 60 * 24 * time.Hour

// SLA is an organisation's own service levels: how soon a person must
// take an incident (acknowledge) and how soon it must be contained,
// counted from its opening, by severity. A zero duration sets no clock.
type SLA struct {
	Acknowledge map[detect.Severity]time.Duration
	Contain     map[detect.Severity]time.Duration
}

// DefaultSLA is the service level phivault assumes when the operator
// sets none: a critical incident is taken within 15 minutes and contained
// within 4 hours, a low one within a working day and a week.
func DefaultSLA() SLA {
	return SLA{
		Acknowledge: map[detect.Severity]time.Duration{
			detect.SeverityCritical: 15 * time.Minute,
			detect.SeverityHigh:     time.Hour,
			detect.SeverityMedium:   4 * time.Hour,
			detect.SeverityLow:      24 * time.Hour,
		},
		Contain: map[detect.Severity]time.Duration{
			detect.SeverityCritical: 4 * time.Hour,
			detect.SeverityHigh:     24 * time.Hour,
			detect.SeverityMedium:   72 * time.Hour,
			detect.SeverityLow:      7 * 24 * time.Hour,
		},
	}
}

// Names of clocks.
const (
	ClockAcknowledge = "acknowledge" // the organisation's SLA to take the incident
	ClockContain     = "contain"     // the organisation's SLA to contain it
	ClockNotify      = "notify"      // HIPAA: notify individuals within 60 days of discovery
)

// Clock is one deadline of an incident.
type Clock struct {
	Name    string    `json:"name"`
	Due     time.Time `json:"due"`
	Done    time.Time `json:"done,omitzero"` // when it was met, if it was
	Overdue bool      `json:"overdue"`       // not met by Due (at now, or when done)
}

// Clocks returns in's deadlines as of now: its SLAs to acknowledge and to
// contain, and HIPAA's 60 days from discovery to notify individuals,
// which runs until the incident is closed (whether notice was needed is
// the breach assessment's answer; a closed incident stops the clock). A
// drill's incident has SLA clocks only.
func (in *Incident) Clocks(now time.Time, sla SLA) []Clock {
	var out []Clock
	add := func(name string, due, done time.Time) {
		end := done
		if end.IsZero() {
			end = now
		}
		out = append(out, Clock{Name: name, Due: due, Done: done, Overdue: end.After(due)})
	}
	if d := sla.Acknowledge[in.Severity]; d > 0 {
		add(ClockAcknowledge, in.Opened.Add(d), in.Acknowledged)
	}
	if d := sla.Contain[in.Severity]; d > 0 {
		add(ClockContain, in.Opened.Add(d), in.Contained)
	}
	if in.Source != SourceDrill {
		add(ClockNotify, in.Discovered.Add(NotificationWindow), in.Closed)
	}
	return out
}

// Overdue reports whether any of in's clocks is overdue and not met.
func (in *Incident) Overdue(now time.Time, sla SLA) bool {
	for _, c := range in.Clocks(now, sla) {
		if c.Overdue && c.Done.IsZero() {
			return true
		}
	}
	return false
}
