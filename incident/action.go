package incident

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident/playbook"
)

// Action is one containment step of an incident: proposed by a playbook
// for an alert, carried out through the vault's controls at once or once
// a second person approves it, and undone where that makes sense. Its
// state changes are the incident's changes: each one an audit entry and a
// timeline event.
type Action struct {
	ID        string        `json:"id"`
	Kind      string        `json:"kind"` // a playbook action: suspend-account, …
	Playbook  string        `json:"playbook,omitempty"`
	Alert     string        `json:"alert,omitempty"`
	Approval  string        `json:"approval"` // playbook.ApprovalAuto or ApprovalTwoPerson
	Target    Target        `json:"target"`
	For       time.Duration `json:"for,omitempty"`
	Channels  []string      `json:"channels,omitempty"`
	State     string        `json:"state"`
	Requested time.Time     `json:"requested"`
	Finished  time.Time     `json:"finished,omitzero"`
	By        string        `json:"by,omitempty"` // who approved, rejected or undid it
	// ProposedBy is the person who added it by hand (Propose); a
	// playbook's action has none.
	ProposedBy string `json:"proposedBy,omitempty"`
	Reason     string `json:"reason,omitempty"` // why it failed or was rejected: a safe message
}

// What an action acts on: ids only.
type Target struct {
	User     string   `json:"user,omitempty"`
	Patients []string `json:"patients,omitempty"`
	Sources  []string `json:"sources,omitempty"`
	Client   string   `json:"client,omitempty"`
}

// States of an action.
const (
	ActionAwaiting = "awaiting-approval" // two-person: waits for a second person
	ActionRunning  = "running"           // being carried out
	ActionDone     = "done"
	ActionFailed   = "failed"
	ActionRejected = "rejected" // a person decided against it
	ActionUndone   = "undone"
)

// EventAction is the timeline kind of an action's changes.
const EventAction = "action"

func (a *Action) clone() Action {
	c := *a
	c.Target = a.Target.clone()
	c.Channels = slices.Clone(a.Channels)
	return c
}

func (t Target) clone() Target {
	t.Patients, t.Sources = slices.Clone(t.Patients), slices.Clone(t.Sources)
	return t
}

func (a *Action) detail() string {
	d := a.Kind + " " + a.State
	if a.Target.User != "" {
		d += ", user " + a.Target.User
	}
	if n := len(a.Target.Patients); n > 0 {
		d += fmt.Sprintf(", %d patients", n)
	}
	if a.Reason != "" {
		d += " (" + a.Reason + ")"
	}
	return a.ID + " " + d
}

// action returns the action id of in, or nil.
func (in *Incident) action(id string) *Action {
	for i := range in.Actions {
		if in.Actions[i].ID == id {
			return &in.Actions[i]
		}
	}
	return nil
}

// responded reports whether in holds actions of playbook p for alert.
func (in *Incident) responded(p, alert string) bool {
	return slices.ContainsFunc(in.Actions, func(a Action) bool { return a.Playbook == p && a.Alert == alert })
}

// Respond answers alert a with playbook p: it joins the user's open
// incident opened by p (or opens one), links a, and adds
// p's steps as actions, automatic ones running, two-person ones awaiting
// approval. It returns the incident and the actions to carry out now;
// an alert p already answered returns nothing (the pipeline hands an
// alert over again each time it grows).
func (s *Service) Respond(ctx context.Context, a *detect.Alert, p *playbook.Playbook) (*Incident, []Action, error) {
	// Answered before (the pipeline hands an alert over again as it
	// grows): nothing more, whatever the incident's phase.
	linked, err := s.opts.Store.List(ctx, Filter{Alert: a.ID, Limit: MaxAlerts})
	if err != nil {
		return nil, nil, err
	}
	for _, in := range linked {
		if in.responded(p.Name, a.ID) {
			return in, nil, nil
		}
	}
	// Join the user's open incident of the same playbook; an alert
	// without a user (an unauthenticated probe) joins nothing.
	var target *Incident
	if a.User != "" {
		open, err := s.opts.Store.List(ctx, Filter{Open: true, User: a.User, Limit: MaxAlerts})
		if err != nil {
			return nil, nil, err
		}
		for _, in := range open {
			if in.Source == SourceAlert && slices.ContainsFunc(in.Actions, func(x Action) bool { return x.Playbook == p.Name }) {
				target = in
				break
			}
		}
	}
	if target == nil {
		sev := p.Incident.Severity
		if sev == 0 {
			sev = a.Severity
		}
		if target, err = s.Open(ctx, Draft{
			Title: p.Incident.TitleFor(a), Severity: sev, Source: SourceAlert, Alerts: []string{a.ID},
			Scope:      Scope{Users: nonEmpty(a.User), Patients: a.Patients, From: a.First, To: a.Last},
			Discovered: a.Detected,
		}); err != nil {
			return nil, nil, err
		}
	}
	var run []Action
	in, err := s.apply(ctx, target.ID, 0, func(in *Incident, now time.Time) ([]*Event, error) {
		run = run[:0]
		if in.responded(p.Name, a.ID) {
			return nil, nil
		}
		var evs []*Event
		if added := missing(in.Alerts, []string{a.ID}); len(added) > 0 {
			in.Alerts = append(in.Alerts, added...)
			evs = append(evs, &Event{Kind: EventAlerts, Detail: "added " + a.ID})
		}
		if d := in.Scope.widenDetail(Scope{Users: nonEmpty(a.User), Patients: a.Patients, From: a.First, To: a.Last}); d != "" {
			evs = append(evs, &Event{Kind: EventScope, Detail: d})
		}
		for _, st := range p.Steps {
			id, err := s.newActionID()
			if err != nil {
				return nil, err
			}
			act := Action{
				ID: id, Kind: st.Action, Playbook: p.Name, Alert: a.ID, Approval: st.Approval,
				Target: targetOf(a), For: st.For, Channels: st.Channels,
				State: ActionRunning, Requested: now,
			}
			if st.Approval == playbook.ApprovalTwoPerson {
				act.State = ActionAwaiting
			} else {
				run = append(run, act.clone())
			}
			in.Actions = append(in.Actions, act)
			evs = append(evs, &Event{Kind: EventAction, Detail: act.detail()})
		}
		if in.Phase == PhaseDetect && len(run) > 0 {
			evs = append(evs, &Event{Kind: EventPhase, Detail: in.Phase + " → " + PhaseContain + " (playbook " + p.Name + ")"})
			in.Phase = PhaseContain
		}
		return evs, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return in, run, nil
}

// Proposal is an action a person adds to an incident by hand.
type Proposal struct {
	Kind     string // a playbook action
	Target   Target
	For      time.Duration // block-source, raise-detail
	Channels []string      // notify
	// TwoPerson asks for a second person's approval of an action that
	// does not need one by default; an action that does always waits.
	TwoPerson bool
}

// maxProposalFor bounds Proposal.For.
const maxProposalFor = 365 * 24 * time.Hour

func (p *Proposal) check() error {
	switch {
	case playbook.DefaultApproval(p.Kind) == "":
		return phivault.Errorf(phivault.EINVALID, "Unknown action; the actions are %s.", strings.Join(playbook.Actions(), ", "))
	case p.For < 0 || p.For > maxProposalFor:
		return phivault.Errorf(phivault.EINVALID, "The duration is out of range (0 to a year).")
	case p.For != 0 && !playbook.Takes(p.Kind, "for"):
		return phivault.Errorf(phivault.EINVALID, "%s takes no duration.", p.Kind)
	case len(p.Channels) > 0 && !playbook.Takes(p.Kind, "channels"):
		return phivault.Errorf(phivault.EINVALID, "%s takes no channels.", p.Kind)
	}
	for _, c := range p.Channels {
		if !slices.Contains(playbook.Channels, c) {
			return phivault.Errorf(phivault.EINVALID, "Unknown channel; the channels are %s.", strings.Join(playbook.Channels, ", "))
		}
	}
	t := p.Target
	return CheckIDs("target", slices.Concat([]string{t.User, t.Client}, t.Patients, t.Sources), MaxScopeIDs)
}

// Propose adds an action to the incident id, on version, as the person
// in ctx: running (returned, for the responder to carry out at once) if
// it needs no second person, else awaiting the approval of a privacy
// officer or security admin who is neither its proposer nor the person
// it is about. It is recorded like every change.
func (s *Service) Propose(ctx context.Context, id string, version int64, p Proposal) (*Incident, *Action, error) {
	if err := p.check(); err != nil {
		return nil, nil, err
	}
	by := actorOf(ctx)
	if by == "" {
		return nil, nil, phivault.Errorf(phivault.EFORBIDDEN, "An action is proposed by a person.")
	}
	var out *Action
	in, err := s.apply(ctx, id, version, func(in *Incident, now time.Time) ([]*Event, error) {
		if in.Phase == PhaseClosed {
			return nil, phivault.Errorf(phivault.EINVALID, "The incident is closed; reopen it first.")
		}
		if len(in.Actions) >= MaxActions {
			return nil, phivault.Errorf(phivault.EINVALID, "An incident holds at most %d actions.", MaxActions)
		}
		aid, err := s.newActionID()
		if err != nil {
			return nil, err
		}
		act := Action{
			ID: aid, Kind: p.Kind, Approval: playbook.DefaultApproval(p.Kind), Target: p.Target.clone(),
			For: p.For, Channels: slices.Clone(p.Channels), State: ActionRunning, Requested: now, ProposedBy: by,
		}
		if p.TwoPerson {
			act.Approval = playbook.ApprovalTwoPerson
		}
		if act.Approval == playbook.ApprovalTwoPerson {
			act.State = ActionAwaiting
		} else {
			c := act.clone()
			out = &c
		}
		in.Actions = append(in.Actions, act)
		return []*Event{{Kind: EventAction, Detail: act.detail() + " (proposed by hand)"}}, nil
	})
	return in, out, err
}

func nonEmpty(id string) []string {
	if id == "" {
		return nil
	}
	return []string{id}
}

// Finish records how the running action ended: done, or failed with
// err's safe message.
func (s *Service) Finish(ctx context.Context, incidentID, actionID string, err error) (*Incident, error) {
	return s.apply(ctx, incidentID, 0, func(in *Incident, now time.Time) ([]*Event, error) {
		act := in.action(actionID)
		if act == nil || act.State != ActionRunning {
			return nil, nil
		}
		act.State, act.Finished = ActionDone, now
		if err != nil {
			act.State, act.Reason = ActionFailed, safeReason(err)
		}
		return []*Event{{Kind: EventAction, Detail: act.detail()}}, nil
	})
}

// Decide approves or rejects an action awaiting approval, on version of
// its incident, as the person in ctx; an approved action is returned to
// be carried out. The alert's own user may not decide.
func (s *Service) Decide(ctx context.Context, incidentID, actionID string, version int64, approve bool, reason string) (*Incident, *Action, error) {
	if err := CheckText("reason", reason, maxReasonLen); err != nil {
		return nil, nil, err
	}
	by := actorOf(ctx)
	var out *Action
	in, err := s.apply(ctx, incidentID, version, func(in *Incident, now time.Time) ([]*Event, error) {
		act := in.action(actionID)
		switch {
		case act == nil:
			return nil, phivault.Errorf(phivault.ENOTFOUND, "The incident has no such action.")
		case act.State != ActionAwaiting:
			return nil, phivault.Errorf(phivault.EINVALID, "The action is %s, not awaiting approval.", act.State)
		case by == "" || by == act.Target.User:
			return nil, phivault.Errorf(phivault.EFORBIDDEN, "The person an action is about may not decide on it.")
		case by == act.ProposedBy:
			return nil, phivault.Errorf(phivault.EFORBIDDEN, "The person who proposed an action may not approve it: a second person decides.")
		}
		act.By = by
		ev := &Event{Kind: EventAction}
		if approve {
			act.State = ActionRunning
			c := act.clone()
			out = &c
		} else {
			// The reason is a person's words: sealed on the event, not
			// kept on the action nor in the audit entry.
			act.State, act.Finished = ActionRejected, now
			var err error
			if ev.Note, err = s.sealReason(incidentID, reason); err != nil {
				return nil, err
			}
		}
		ev.Detail = act.detail()
		if ev.Note != nil {
			ev.Detail += reasonInNote
		}
		return []*Event{ev}, nil
	})
	return in, out, err
}

// Undoing marks a done action for undoing, on version of its incident,
// as the person in ctx, and returns it for the responder to undo; then
// Undone records the outcome.
func (s *Service) Undoing(ctx context.Context, incidentID, actionID string, version int64) (*Action, error) {
	by := actorOf(ctx)
	var out *Action
	_, err := s.apply(ctx, incidentID, version, func(in *Incident, now time.Time) ([]*Event, error) {
		act := in.action(actionID)
		switch {
		case act == nil:
			return nil, phivault.Errorf(phivault.ENOTFOUND, "The incident has no such action.")
		case act.State != ActionDone:
			return nil, phivault.Errorf(phivault.EINVALID, "Only a done action can be undone; this one is %s.", act.State)
		case !playbook.Undoable(act.Kind):
			return nil, phivault.Errorf(phivault.EINVALID, "%s cannot be undone.", act.Kind)
		}
		act.State, act.By = ActionRunning, by
		c := act.clone()
		out = &c
		return []*Event{{Kind: EventAction, Detail: act.ID + " " + act.Kind + " undoing"}}, nil
	})
	return out, err
}

// Undone records the outcome of undoing an action: undone, or back to
// done with err's safe message if the undo failed.
func (s *Service) Undone(ctx context.Context, incidentID, actionID string, err error) (*Incident, error) {
	return s.apply(ctx, incidentID, 0, func(in *Incident, now time.Time) ([]*Event, error) {
		act := in.action(actionID)
		if act == nil || act.State != ActionRunning {
			return nil, nil
		}
		act.State, act.Finished, act.Reason = ActionUndone, now, ""
		if err != nil {
			act.State, act.Reason = ActionDone, "undo failed: "+safeReason(err)
		}
		return []*Event{{Kind: EventAction, Detail: act.detail()}}, nil
	})
}

// safeReason returns the message of err if it is a *phivault.Error (made
// to be shown), else a generic one.
func safeReason(err error) string {
	if m := phivault.ErrorMessage(err); m != "" && phivault.ErrorCode(err) != phivault.EINTERNAL {
		return strings.TrimSuffix(m, ".")
	}
	return "internal error"
}

func actorOf(ctx context.Context) string {
	if info, ok := phivault.RequestInfoFromContext(ctx); ok && info.Actor != "" {
		return info.Actor
	}
	if p := phivault.PrincipalFromContext(ctx); p != nil {
		return p.ID
	}
	return ""
}

func (s *Service) newActionID() (string, error) {
	id, err := s.newID()
	if err != nil {
		return "", err
	}
	return "act-" + strings.TrimPrefix(id, "inc-")[:16], nil
}

// targetOf returns what an alert's actions act on: its user, patients
// and sources, and its client if its events came through one only (a
// client is blocked for everyone who uses it: never on a guess).
func targetOf(a *detect.Alert) Target {
	t := Target{User: a.User, Patients: slices.Clone(a.Patients), Sources: slices.Clone(a.Sources)}
	if len(a.Clients) == 1 {
		t.Client = a.Clients[0]
	}
	return t
}
