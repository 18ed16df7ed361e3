// Package detect implements phivault's continuous monitoring: detectors
// that read the audit trail (and access logs ingested from other systems)
// in order, and raise explained, idempotent alerts.
//
// # Shape
//
// An [Event] is one access, sign-in or control change, read from the trail
// ([FromEntry]) or ingested from another system. An [Engine] runs every
// [Rule] over each event in order; a rule that sees something worth a
// person's attention reports a [Finding]. Findings with the same rule and
// key merge into one [Alert], so processing an event twice never makes a
// second alert. A [Pipeline] feeds an Engine from durable cursors and
// commits the alerts it changed together with the cursors, so a restart
// after kill -9 resumes exactly where the last commit stopped.
//
// Rules see people only through a [Directory]: accounts, patients and
// care relationships, where names, addresses and phones are blind-index
// tokens ([Person]), never plaintext. No PHI is kept by this package or
// its stores.
//
// The Engine is not safe for concurrent use: one goroutine feeds it, which
// is what makes the order of events, and so the alerts, deterministic.
package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
)

// Streams an event can come from.
const (
	StreamTrail  = "trail"  // phivault's own audit trail; Seq is the entry index
	StreamIngest = "ingest" // access logs ingested from other systems; Seq is the ingest sequence
)

// Actions of events beyond phivault's audit actions (phivault.Action…),
// which ingested logs may also use.
const (
	ActionPrint       = "print"
	ActionLoginFailed = "login-failed" // a failed sign-in; trail entries map to it from login + an error outcome
)

// Event is one access, sign-in or control change, as the detectors see it.
// It holds ids only. Users and patients of another system are namespaced
// "system:id", so they never collide with phivault's own random ids.
//
// Its JSON (an ingest Record as stored) omits zero fields, which decode
// as absent ones did before they were omitted: the names did not change.
type Event struct {
	Stream string    `json:",omitzero"` // StreamTrail or StreamIngest
	Seq    int64     `json:",omitzero"` // position in its stream
	Time   time.Time `json:",omitzero"` // when it happened, UTC

	System     string   `json:",omitzero"` // "" for phivault; the other system's name for ingested events
	User       string   `json:",omitzero"` // actor id ("" if unauthenticated)
	Roles      []string `json:",omitzero"` // the actor's roles, if known
	Department string   `json:",omitzero"` // the actor's department, if the event states it
	Client     string   `json:",omitzero"` // client application id, or ""
	Source     string   `json:",omitzero"` // network address the request came from, or ""

	Action       string   `json:",omitzero"` // a phivault.Action… constant, ActionPrint or ActionLoginFailed
	ResourceType string   `json:",omitzero"` // type acted on, or ""
	ResourceID   string   `json:",omitzero"` // id acted on, or "" for a search
	Patients     []string `json:",omitzero"` // patient compartments touched
	Count        int      `json:",omitzero"` // resources returned (reads, searches, exports)
	// Returned lists the versions returned or written, as
	// "Type/id/_history/n" (trail events only; ingested events have none).
	Returned []string `json:",omitzero"`
	Params   []string `json:",omitzero"` // search parameter names, never values
	OK       bool     `json:",omitzero"` // the request succeeded
	Outcome  string   `json:",omitzero"` // "ok", or the error code of a failed attempt
	Purpose  string   `json:",omitzero"` // purpose of use, if stated
	Decision string   `json:",omitzero"` // the policy decision text, if any
}

// Ref returns the evidence reference of e: "trail/<index>" or
// "ingest/<seq>".
func (e *Event) Ref() string {
	return e.Stream + "/" + strconv.FormatInt(e.Seq, 10)
}

// FromEntry returns the event of trail entry index. A failed login
// becomes ActionLoginFailed.
func FromEntry(index int64, en *phivault.AuditEntry) Event {
	ev := Event{
		Stream:       StreamTrail,
		Seq:          index,
		Time:         en.Time.UTC(),
		User:         en.Actor,
		Roles:        en.Roles,
		Client:       en.Client,
		Source:       en.Source,
		Action:       en.Action,
		ResourceType: en.TargetType,
		ResourceID:   en.TargetID,
		Patients:     en.Compartments,
		Count:        len(en.Returned),
		Returned:     en.Returned,
		Params:       en.SearchParams,
		OK:           en.Outcome == "ok",
		Outcome:      en.Outcome,
		Purpose:      en.Purpose,
		Decision:     en.Decision,
	}
	if ev.Action == phivault.ActionLogin && !ev.OK {
		ev.Action = ActionLoginFailed
	}
	return ev
}

// TargetReport is the target type of staff reports (package
// incident/report): a report naming a patient is not a look at the record.
const TargetReport = "Report"

// securityTargets are the target types of the security API's own audit
// entries (alerts, incidents, the detector, ingestion, decoys, risk,
// staff reports) and of the reads of the trail (its entries, a patient's
// access report, a user's activity report, a privacy officer's patient
// lookup).
var securityTargets = []string{TargetAlert, TargetIncident, TargetDetector, TargetIngest, TargetHoneytoken, TargetUserRisk, TargetReport,
	auditlog.TargetAuditEvent, auditlog.TargetAccessReport, auditlog.TargetActivityReport, auditlog.TargetPatientLookup}

// OnRecords reports whether ev is about patients' records rather than
// about security work on them: an officer reading an alert that names a
// patient, a privacy officer reading a patient's access report or finding
// the patient for it, or the incident responder acting on one, is not a
// look at the patient's record (it names the patients so that the
// patient's access report shows who handled what about them). So a
// privacy officer investigating a decoy's touch is no touch herself.
func (ev *Event) OnRecords() bool {
	return ev.Stream != StreamTrail || !slices.Contains(securityTargets, ev.ResourceType)
}

// Severity ranks alerts.
type Severity int

// Severities, lowest first.
const (
	SeverityLow Severity = iota + 1
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < SeverityLow || s > SeverityCritical {
		return "unknown"
	}
	return severityNames[s]
}

// ParseSeverity returns the Severity named s.
func ParseSeverity(s string) (Severity, bool) {
	for i := SeverityLow; i <= SeverityCritical; i++ {
		if severityNames[i] == s {
			return i, true
		}
	}
	return 0, false
}

// Finding is what a rule reports about one event.
type Finding struct {
	Rule string // the rule's name
	// Key identifies what the finding is about within the rule, e.g.
	// "user|patient" or "user|2026-12-06": findings with the same rule and
	// key are one alert.
	Key      string
	Severity Severity
	Score    int      // 0–100: how unusual or harmful, before learned scoring
	User     string   // the actor
	Patients []string // patients concerned, if any
	// Why says in one plain sentence, with ids only, why this is worth a
	// person's attention.
	Why string
}

// Alert states. An alert is open until triaged.
const (
	StateOpen          = "open"
	StateTruePositive  = "true-positive"
	StateFalsePositive = "false-positive"
	StateBenign        = "benign"
)

// MaxEvidence bounds the evidence references an alert keeps; Events
// still counts every event merged into it.
const MaxEvidence = 100

// MaxAlertSources bounds the sources and the clients an alert keeps.
const MaxAlertSources = 16

// Alert is one or more findings of a rule about the same thing, with
// the events that caused them. It holds ids, never PHI.
type Alert struct {
	ID       string // AlertID(Rule, Key)
	Rule     string
	Key      string
	Severity Severity
	Score    int // 0–100: the learned score (Scorer), else RuleScore
	// RuleScore is the highest score the rule's findings gave, before
	// learned scoring: what the Scorer scores from each time.
	RuleScore int
	User      string
	Patients  []string
	// Sources and Clients are the network addresses and OAuth client ids
	// of the events merged into it, the first MaxAlertSources of each:
	// what containment may block (block-source, block-client).
	Sources  []string  `json:",omitempty"`
	Clients  []string  `json:",omitempty"`
	First    time.Time // time of the first event
	Last     time.Time // time of the latest event
	Detected time.Time // when the first finding was made
	Why      string    // the latest finding's sentence
	// Evidence lists the first MaxEvidence events, as Event.Ref.
	Evidence []string
	Events   int64 // events merged, including those beyond Evidence
	// Factors are the top contributions to Score, in words.
	Factors []string
	State   string // StateOpen, or the triage decision
	// Suppressed alerts are kept and counted, but do not page.
	Suppressed bool
}

// Clone returns a deep copy of a: the copy shares none of its slices.
func (a *Alert) Clone() *Alert {
	c := *a
	c.Patients, c.Evidence, c.Factors = slices.Clone(a.Patients), slices.Clone(a.Evidence), slices.Clone(a.Factors)
	c.Sources, c.Clients = slices.Clone(a.Sources), slices.Clone(a.Clients)
	return &c
}

// AlertID returns the stable id of the alert of rule and key: 16 hex
// digits of SHA-256(rule ‖ 0 ‖ key). Keys hold ids only, so the id
// reveals nothing a reader of the alert could not see.
func AlertID(rule, key string) string {
	h := sha256.Sum256([]byte(rule + "\x00" + key))
	return hex.EncodeToString(h[:8])
}
