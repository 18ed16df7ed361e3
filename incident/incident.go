// Package incident manages security and privacy incidents: what happened
// (linked alerts, scope), who owns it, where it stands in the response
// (the phases of NIST SP 800-61r3 read with CSF 2.0: detect, analyse,
// contain, eradicate, recover, post-incident), and the clocks that follow
// from it: the HIPAA discovery date and its 60-day notification deadline,
// and the organisation's own service levels to acknowledge and to contain.
//
// # History is the audit trail
//
// A [Service] records every change to an incident in the audit trail
// (action [phivault.ActionIncident], target type [TargetType]) before it
// stores it, and keeps the request id of that entry on the incident's
// [Event]. The timeline an incident shows is thus backed, entry for entry,
// by the tamper-evident trail: an evidence archive proves each one.
//
// Incidents hold ids, codes and times. Free text that may hold PHI (titles,
// notes) is sealed by a [Sealer] bound to the incident's id, as triage
// notes are.
package incident

import (
	"slices"
	"time"

	"github.com/phivault/phivault/detect"
)

// TargetType is the audit entries' target type for incidents; the
// detectors know it as the security API's own (detect.TargetIncident).
const TargetType = detect.TargetIncident

// Phases of an incident, in order. An incident may move to any phase: a
// containment that fails sends it back to analyse; Closed ends it, and
// only a reopening (to analyse) leaves Closed.
const (
	PhaseDetect       = "detect"        // raised, not yet looked at
	PhaseAnalyse      = "analyse"       // a person is establishing what happened
	PhaseContain      = "contain"       // stopping the harm from spreading
	PhaseEradicate    = "eradicate"     // removing the cause
	PhaseRecover      = "recover"       // restoring normal operation
	PhasePostIncident = "post-incident" // lessons learned, reports
	PhaseClosed       = "closed"
)

// Phases lists the phases in order.
var Phases = []string{PhaseDetect, PhaseAnalyse, PhaseContain, PhaseEradicate, PhaseRecover, PhasePostIncident, PhaseClosed}

// phaseRank returns the position of phase in Phases, or -1.
func phaseRank(phase string) int { return slices.Index(Phases, phase) }

// Sources of an incident.
const (
	SourceAlert  = "alert"  // opened from alerts, by a person or a playbook
	SourceReport = "report" // opened from a staff report
	SourceManual = "manual" // opened by hand
	SourceDrill  = "drill"  // opened by a drill; never a real breach
)

// Incident is one incident as stored (its JSON is the stored form: the
// title sealed; an API shows a view of it).
type Incident struct {
	ID       string          `json:"id"`
	Title    []byte          `json:"title"` // sealed (Sealer), about ID
	Severity detect.Severity `json:"severity"`
	Phase    string          `json:"phase"`
	Owner    string          `json:"owner,omitempty"` // user id
	Source   string          `json:"source"`
	Alerts   []string        `json:"alerts,omitempty"` // detect alert ids
	Scope    Scope           `json:"scope"`
	Actions  []Action        `json:"actions,omitempty"` // containment steps, in the order proposed

	// Discovered is the HIPAA discovery date: the first day the breach
	// was known, or would have been with reasonable diligence (45 CFR
	// 164.404(a)(2)). It defaults to the first linked alert's detection,
	// else to the opening; a privacy officer may set it earlier, with a
	// reason.
	Discovered time.Time `json:"discovered"`
	Opened     time.Time `json:"opened"`
	Updated    time.Time `json:"updated"`
	// Acknowledged is when a person first took the incident (an owner
	// set, or a phase past detect); Contained when it first reached
	// contain's end (a phase past contain); Closed when it was closed.
	Acknowledged time.Time `json:"acknowledged,omitzero"`
	Contained    time.Time `json:"contained,omitzero"`
	Closed       time.Time `json:"closed,omitzero"`

	// Version counts changes from 1; a change names the version it was
	// made on (If-Match), so two officers never overwrite each other.
	Version int64 `json:"version"`
}

// Clone returns a deep copy of in.
func (in *Incident) Clone() *Incident {
	c := *in
	c.Title = slices.Clone(in.Title)
	c.Alerts = slices.Clone(in.Alerts)
	c.Scope = in.Scope.clone()
	c.Actions = make([]Action, len(in.Actions))
	for i := range in.Actions {
		c.Actions[i] = in.Actions[i].clone()
	}
	return &c
}

// Scope is what an incident concerns. Patients are patient ids (the
// vault's, or "system:id" of an ingested log); Sources are IP addresses
// or networks in CIDR form.
type Scope struct {
	Users    []string  `json:"users,omitempty"`
	Clients  []string  `json:"clients,omitempty"`
	Sources  []string  `json:"sources,omitempty"`
	Patients []string  `json:"patients,omitempty"`
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
}

func (s Scope) clone() Scope {
	s.Users = slices.Clone(s.Users)
	s.Clients = slices.Clone(s.Clients)
	s.Sources = slices.Clone(s.Sources)
	s.Patients = slices.Clone(s.Patients)
	return s
}

// widen adds what o holds to s: ids not yet in it, and a window that
// covers both.
func (s *Scope) widen(o Scope) {
	s.Users = union(s.Users, o.Users)
	s.Clients = union(s.Clients, o.Clients)
	s.Sources = union(s.Sources, o.Sources)
	s.Patients = union(s.Patients, o.Patients)
	if !o.From.IsZero() && (s.From.IsZero() || o.From.Before(s.From)) {
		s.From = o.From
	}
	if !o.To.IsZero() && (s.To.IsZero() || o.To.After(s.To)) {
		s.To = o.To
	}
}

// union returns a with the elements of b it lacks appended, in b's order.
func union(a, b []string) []string {
	for _, v := range b {
		if v != "" && !slices.Contains(a, v) {
			a = append(a, v)
		}
	}
	return a
}

// Event is one entry of an incident's timeline: a change or an action,
// backed by the audit entry with request id Request.
type Event struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Kind    string    `json:"kind"`
	Detail  string    `json:"detail,omitempty"` // ids and codes only
	Note    []byte    `json:"note,omitempty"`   // sealed free text, if any
	Request string    `json:"request"`          // the audit entry's request id
}

// Kinds of timeline events.
const (
	EventOpened     = "opened"
	EventPhase      = "phase"
	EventOwner      = "owner"
	EventSeverity   = "severity"
	EventTitle      = "title"
	EventAlerts     = "alerts"
	EventScope      = "scope"
	EventDiscovered = "discovered"
	EventNote       = "note"
)
