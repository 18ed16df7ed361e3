// Package playbook reads incident-response playbooks: declarative YAML
// files that say, for alerts matching a trigger, whether to open an
// incident and which containment steps to take, each a call on one of
// the vault's controls (suspend an account, revoke its sessions, block a
// source, ...). A set is the embedded defaults plus an operator's folder;
// it is validated whole when loaded, like the Cedar policies: a file with
// a mistake is refused with its line and the reason, and the caller keeps
// the set it had.
//
// A playbook:
//
//	name: honeytoken-touch
//	description: Anyone who opens a decoy patient is treated as an intruder.
//	trigger:
//	  rules: [honeytoken]          # alert rules; none means any
//	  min_severity: critical       # low, medium, high, critical
//	  min_score: 0                 # 0-100
//	  roles: [nurse, physician]    # the alert's user has one; none means any
//	  staff: true                  # only a staff account (not a system client or a patient)
//	incident:                      # the incident the steps are recorded on
//	  severity: critical           # default: the alert's
//	  title: "Decoy touched by {user}"   # {rule}, {user}, {severity}
//	steps:
//	  - action: suspend-account
//	  - action: revoke-sessions
//	  - action: notify
//	    channels: [webhook, email]
//	  - action: rotate-patient-key
//	    approval: two-person       # auto or two-person; default per action
//
// This package only reads, checks and plans; carrying steps out is the
// responder's job (package incident).
package playbook

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/phivault/phivault/detect"
)

// Playbook is one checked playbook.
type Playbook struct {
	Name        string
	Description string
	File        string // where it was read: "default/NAME.yaml" or a path
	Trigger     Trigger
	Incident    IncidentSpec
	Steps       []Step
}

// Trigger says which alerts a playbook answers. Empty fields match any.
type Trigger struct {
	Rules       []string
	MinSeverity detect.Severity
	MinScore    int
	Roles       []string
	Staff       bool // only alerts on a staff account
}

// User is what a trigger may ask of an alert's user.
type User struct {
	Roles []string
	Staff bool // a person's staff account: not a system client, not a patient
}

// IncidentSpec describes the incident a matching alert opens (or the
// user's open one of the same playbook it joins), where the steps are
// recorded.
type IncidentSpec struct {
	Severity detect.Severity // 0: the alert's
	Title    string          // with {rule}, {user}, {severity} filled in
}

// Step is one containment step.
type Step struct {
	Action   string
	Approval string        // ApprovalAuto or ApprovalTwoPerson
	Channels []string      // notify: which notifiers; none means all
	For      time.Duration // raise-detail, block-source: how long; 0 means until undone
	Line     int           // in its file
}

// Approvals of a step.
const (
	ApprovalAuto      = "auto"       // carried out at once
	ApprovalTwoPerson = "two-person" // waits for a second person (not the alert's user)
)

// Actions a step may take: each a call on one of the vault's controls.
const (
	ActionSuspendAccount      = "suspend-account"      // the alert's user
	ActionRevokeSessions      = "revoke-sessions"      // the user's sessions and tokens
	ActionRequireReenrolment  = "require-reenrolment"  // new password and MFA enrolment at next sign-in
	ActionBlockSource         = "block-source"         // the addresses the alert's events came from
	ActionBlockClient         = "block-client"         // the OAuth client of the alert's events
	ActionRestrictCompartment = "restrict-compartment" // the alert's patients: break-the-glass only
	ActionRotatePatientKey    = "rotate-patient-key"   // the alert's patients' data keys
	ActionCompromiseKEK       = "compromise-kek"       // mark the current key-encryption key compromised and rotate
	ActionRaiseDetail         = "raise-detail"         // record the user's search values as tokens, for For
	ActionCollectEvidence     = "collect-evidence"     // the incident's evidence archive
	ActionNotify              = "notify"               // the alert to the notifiers in Channels
)

// actionInfo is what the package knows of an action: its default
// approval, whether it can be undone, and which parameters it takes.
type actionInfo struct {
	approval string
	undo     bool
	params   []string
}

var actions = map[string]actionInfo{
	ActionSuspendAccount:      {ApprovalAuto, true, nil},
	ActionRevokeSessions:      {ApprovalAuto, false, nil},
	ActionRequireReenrolment:  {ApprovalAuto, false, nil}, // the cleared credentials are gone
	ActionBlockSource:         {ApprovalTwoPerson, true, []string{"for"}},
	ActionBlockClient:         {ApprovalTwoPerson, true, nil},
	ActionRestrictCompartment: {ApprovalAuto, true, nil},
	ActionRotatePatientKey:    {ApprovalTwoPerson, false, nil},
	ActionCompromiseKEK:       {ApprovalTwoPerson, false, nil},
	ActionRaiseDetail:         {ApprovalAuto, true, []string{"for"}},
	ActionCollectEvidence:     {ApprovalAuto, false, nil},
	ActionNotify:              {ApprovalAuto, false, []string{"channels"}},
}

// Actions returns the names of the actions, sorted.
func Actions() []string {
	out := make([]string, 0, len(actions))
	for a := range actions {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Undoable reports whether action can be undone (suspend → activate, a
// block → unblock); revoking sessions, rotating keys, collecting
// evidence and notifying cannot.
func Undoable(action string) bool { return actions[action].undo }

// DefaultApproval returns the approval action takes unless a playbook
// says otherwise, or "" for an unknown action.
func DefaultApproval(action string) string { return actions[action].approval }

// Takes reports whether action takes the step parameter param ("for",
// "channels").
func Takes(action, param string) bool { return slices.Contains(actions[action].params, param) }

// Channels of notify.
var Channels = []string{"webhook", "email", "syslog", "ocsf"}

// Set is a checked set of playbooks, in name order.
type Set struct {
	Playbooks []*Playbook
}

//go:embed default/*.yaml
var defaults embed.FS

// Defaults returns the embedded default playbooks.
func Defaults() (*Set, error) {
	return load(defaults, "default", "default/")
}

// Load returns the embedded defaults plus the playbooks of dir (files
// ending .yaml or .yml; "" means none). A playbook of dir named like a
// default replaces it. Every mistake in every file is reported, each as
// "file:line: reason"; then no set is returned, so the caller keeps the
// one it had.
func Load(dir string) (*Set, error) {
	set, err := Defaults()
	if err != nil {
		return nil, fmt.Errorf("playbook: the embedded defaults: %w", err)
	}
	if dir == "" {
		return set, nil
	}
	own, err := load(os.DirFS(dir), ".", dir+string(filepath.Separator))
	if err != nil {
		return nil, err
	}
	byName := map[string]*Playbook{}
	for _, p := range set.Playbooks {
		byName[p.Name] = p
	}
	for _, p := range own.Playbooks {
		byName[p.Name] = p
	}
	return newSet(byName), nil
}

func newSet(byName map[string]*Playbook) *Set {
	s := &Set{}
	for _, p := range byName {
		s.Playbooks = append(s.Playbooks, p)
	}
	sort.Slice(s.Playbooks, func(i, j int) bool { return s.Playbooks[i].Name < s.Playbooks[j].Name })
	return s
}

// load reads every playbook file of dir in fsys, naming files prefix+name.
func load(fsys fs.FS, dir, prefix string) (*Set, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("playbook: read %s: %w", strings.TrimSuffix(prefix, "/"), err)
	}
	byName := map[string]*Playbook{}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		b, err := fs.ReadFile(fsys, filepath.ToSlash(filepath.Join(dir, name)))
		if err != nil {
			errs = append(errs, fmt.Errorf("playbook: read %s: %w", prefix+name, err))
			continue
		}
		p, err := Parse(prefix+name, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := byName[p.Name]; ok {
			errs = append(errs, &Error{File: p.File, Line: 1, Reason: fmt.Sprintf("the name %q is also the name of %s", p.Name, prev.File)})
			continue
		}
		byName[p.Name] = p
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return newSet(byName), nil
}

// Error is a mistake in a playbook file.
type Error struct {
	File   string
	Line   int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// Match returns the playbooks whose trigger a matches, a being about u,
// in name order.
func (s *Set) Match(a *detect.Alert, u User) []*Playbook {
	var out []*Playbook
	for _, p := range s.Playbooks {
		if p.Trigger.Matches(a, u) {
			out = append(out, p)
		}
	}
	return out
}

// Matches reports whether t matches alert a about user u.
func (t *Trigger) Matches(a *detect.Alert, u User) bool {
	return t.MatchesAlert(a) && t.MatchesUser(u)
}

// MatchesAlert reports whether t's conditions on the alert itself (rule,
// severity, score) hold: what can be told without looking the user up.
func (t *Trigger) MatchesAlert(a *detect.Alert) bool {
	return (len(t.Rules) == 0 || slices.Contains(t.Rules, a.Rule)) && a.Severity >= t.MinSeverity && a.Score >= t.MinScore
}

// MatchesUser reports whether t's conditions on the alert's user hold.
func (t *Trigger) MatchesUser(u User) bool {
	return (!t.Staff || u.Staff) &&
		(len(t.Roles) == 0 || slices.ContainsFunc(u.Roles, func(r string) bool { return slices.Contains(t.Roles, r) }))
}

// TitleFor returns the incident title for a: the spec's with its
// placeholders filled, or a default naming the rule and the user.
func (s *IncidentSpec) TitleFor(a *detect.Alert) string {
	t := s.Title
	if t == "" {
		t = "{rule} by {user}"
	}
	return strings.NewReplacer("{rule}", a.Rule, "{user}", a.User, "{severity}", a.Severity.String()).Replace(t)
}
