// Package report is the staff reporting channel: any signed-in staff
// member reports something suspicious (a phishing e-mail, a lost device,
// an odd access, a record sent to the wrong person), is acknowledged with
// a receipt to follow the report's state, and privacy officers and
// security admins triage it, into an incident (package incident) or
// closed with no action.
//
// # What a report holds
//
// A [Report] holds ids, codes and times. Its description is free text
// that may hold PHI: it is sealed (purpose "report", bound to the
// report's id) and opened only for an officer's audited read. The
// reporter is named in the clear, or, for an anonymous report, sealed
// (purpose "reporter") so that investigators see "anonymous".
//
// # Anonymity
//
// An anonymous report's reporter is opened only with two people: a
// privacy officer or security admin asks, with a reason, and a second,
// different one approves; each step is an audit entry and the opening is
// recorded on the report, where the reporter sees it through the receipt.
// The audit entries of a submission and of the reporter's reads through
// the receipt name no account, no roles, no client and no source address
// (actor [AnonymousActor]). What still tells is the time: see
// docs/incident-response.md, "Staff reports".
//
// The reporter follows the report with its receipt, a random token
// returned once in the acknowledgement; only its SHA-256 hash is kept.
package report

import (
	"slices"
	"time"

	"github.com/phivault/phivault/detect"
)

// TargetType is the audit entries' target type for reports. The
// detectors count it among the security API's own (detect.TargetReport):
// a report naming a patient is not a look at the patient's record.
const TargetType = detect.TargetReport

// AnonymousActor is the actor of the audit entries of an anonymous
// reporter's requests, and of refused submissions (whose body, which says
// whether the reporter asked for anonymity, may be what was refused).
const AnonymousActor = "anonymous-reporter"

// Kinds of report.
const (
	KindPhishing          = "phishing"
	KindLostDevice        = "lost-device"
	KindOddAccess         = "odd-access"
	KindMisdirectedRecord = "misdirected-record"
	KindOther             = "other"
)

// Kinds lists the kinds of report.
var Kinds = []string{KindPhishing, KindLostDevice, KindOddAccess, KindMisdirectedRecord, KindOther}

// States of a report.
const (
	StateReceived = "received"         // submitted, nobody has looked yet
	StateTriaging = "triaging"         // an officer is looking at it
	StateIncident = "incident"         // taken into an incident (Report.Incident)
	StateClosed   = "closed-no-action" // looked at; nothing to do
)

// States lists the states of a report.
var States = []string{StateReceived, StateTriaging, StateIncident, StateClosed}

// Report is one staff report as stored (its JSON is the stored form: the
// description, and an anonymous reporter, sealed).
type Report struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Description []byte    `json:"description"`       // sealed (purpose "report"), about ID
	Occurred    time.Time `json:"occurred,omitzero"` // when it happened, as the reporter says; zero: not said
	Patient     string    `json:"patient,omitempty"` // a patient it concerns, if any
	User        string    `json:"user,omitempty"`    // a user (account) it concerns, if any
	State       string    `json:"state"`
	Incident    string    `json:"incident,omitempty"` // the incident it was taken into

	// Reporter is the reporter's account id, or "" for an anonymous
	// report, whose reporter is SealedReporter (purpose "reporter", about
	// ID).
	Reporter       string `json:"reporter,omitempty"`
	Anonymous      bool   `json:"anonymous"`
	SealedReporter []byte `json:"sealed_reporter,omitempty"`
	// Receipt is the SHA-256 hash of the receipt the reporter follows the
	// report with.
	Receipt []byte `json:"receipt"`

	// Identity is the two-person opening of an anonymous reporter, once
	// asked for.
	Identity *Opening `json:"identity,omitempty"`

	Submitted time.Time `json:"submitted"`
	Updated   time.Time `json:"updated"`
	History   []Event   `json:"history"`
	// Version counts changes from 1; a change names the version it was
	// made on (If-Match).
	Version int64 `json:"version"`
}

// Opening is the two-person opening of an anonymous reporter's identity.
type Opening struct {
	RequestedBy string    `json:"requested_by"`
	Requested   time.Time `json:"requested"`
	Reason      []byte    `json:"reason"` // sealed (purpose "report"), about the report
	ApprovedBy  string    `json:"approved_by,omitempty"`
	Approved    time.Time `json:"approved,omitzero"` // zero: still awaiting the second person
}

// Event is one entry of a report's history, backed by the audit entry
// with request id Request.
type Event struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Kind    string    `json:"kind"`
	Detail  string    `json:"detail,omitempty"` // ids and codes only
	Note    []byte    `json:"note,omitempty"`   // sealed free text, if any
	Request string    `json:"request"`
}

// Kinds of history events.
const (
	EventSubmitted        = "submitted"
	EventState            = "state"
	EventNote             = "note"
	EventIncident         = "incident"
	EventIdentityRequest  = "identity-requested"
	EventIdentityApproved = "identity-opened"
)

// Clone returns a deep copy of r.
func (r *Report) Clone() *Report {
	c := *r
	c.Description = slices.Clone(r.Description)
	c.SealedReporter = slices.Clone(r.SealedReporter)
	c.Receipt = slices.Clone(r.Receipt)
	if r.Identity != nil {
		o := *r.Identity
		o.Reason = slices.Clone(r.Identity.Reason)
		c.Identity = &o
	}
	c.History = make([]Event, len(r.History))
	for i, ev := range r.History {
		ev.Note = slices.Clone(ev.Note)
		c.History[i] = ev
	}
	return &c
}
