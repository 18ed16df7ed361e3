package drill

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// run is one drill being played.
type run struct {
	t   *Target
	o   Options
	s   *Scenario
	rep *Report
	t0  time.Time // the first malicious request
	// suspended are drill accounts to set active again after a live drill.
	suspended []string
}

func (r *run) fail(format string, args ...any) {
	r.rep.Failures = append(r.rep.Failures, fmt.Sprintf(format, args...))
}

func (r *run) note(format string, args ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
}

// ms is the time from the first malicious request to t, in milliseconds.
func (r *run) ms(t time.Time) int64 { return max(0, t.Sub(r.t0).Milliseconds()) }

// start marks the first malicious request.
func (r *run) start() { r.t0 = r.o.Now() }

// alert is an alert as GET /security/alerts answers it.
type alert struct {
	ID, Rule, Severity, User string
	Detected, Last           time.Time
	Events                   int64
}

// alertsOf lists the alerts of the scenario's rules (of user, if given).
func (r *run) alertsOf(ctx context.Context, user string) ([]alert, error) {
	var all []alert
	for _, rule := range r.s.Rules {
		q := url.Values{"rule": {rule}, "limit": {"1000"}}
		if user != "" {
			q.Set("user", user)
		}
		var res struct{ Alerts []alert }
		if _, err := r.t.officer(ctx, http.MethodGet, "/security/alerts?"+q.Encode(), nil, &res); err != nil {
			return nil, err
		}
		all = append(all, res.Alerts...)
	}
	return all, nil
}

// snapshot records the alerts before the attack: a drill's alert is a new
// one, or one that grew.
func (r *run) snapshot(ctx context.Context, user string) (map[string]int64, error) {
	list, err := r.alertsOf(ctx, user)
	if err != nil {
		return nil, err
	}
	seen := map[string]int64{}
	for _, a := range list {
		seen[a.ID] = a.Events
	}
	return seen, nil
}

// waitAlert waits for an alert of the scenario's rules that is new or grew
// since before, and records it. It returns nil if none came in time.
func (r *run) waitAlert(ctx context.Context, before map[string]int64, user string) (*alert, error) {
	deadline := r.o.Now().Add(r.o.Timeout)
	for {
		list, err := r.alertsOf(ctx, user)
		if err != nil {
			return nil, err
		}
		seen := r.o.Now()
		for _, a := range list {
			if n, ok := before[a.ID]; ok && a.Events <= n {
				continue
			}
			r.rep.Alert, r.rep.Rule = a.ID, a.Rule
			// The server's detection time if it is plausible on this
			// clock, else when the drill saw the alert.
			at := seen
			if !a.Detected.Before(r.t0) && a.Detected.Before(seen) {
				at = a.Detected
			}
			r.rep.DetectMS = r.ms(at)
			return &a, nil
		}
		if seen.After(deadline) {
			return nil, nil
		}
		if err := r.sleep(ctx); err != nil {
			return nil, err
		}
	}
}

func (r *run) sleep(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.o.Poll):
		return nil
	}
}

// waitContained polls contained until it holds, and records when.
func (r *run) waitContained(ctx context.Context, contained func() (bool, error)) error {
	deadline := r.o.Now().Add(r.o.Timeout)
	for {
		ok, err := contained()
		if err != nil {
			return err
		}
		now := r.o.Now()
		if ok {
			r.rep.ContainMS = r.ms(now)
			return nil
		}
		if now.After(deadline) {
			return nil
		}
		if err := r.sleep(ctx); err != nil {
			return err
		}
	}
}

// incident is an incident as GET /security/incidents answers it.
type incident struct {
	ID      string
	Version int64
	Phase   string
	Actions []struct {
		Kind, State, Playbook, Reason string
		Finished                      time.Time
	}
}

// incidentsOf lists the incidents that carry the alert.
func (r *run) incidentsOf(ctx context.Context, alertID string) ([]incident, error) {
	var res struct{ Incidents []incident }
	_, err := r.t.officer(ctx, http.MethodGet, "/security/incidents?alert="+url.QueryEscape(alertID), nil, &res)
	return res.Incidents, err
}

// requiredDone reports whether every required step is done on an incident
// of the alert.
func (r *run) requiredDone(ctx context.Context, alertID string) (bool, error) {
	if len(r.s.Required) == 0 {
		return true, nil
	}
	list, err := r.incidentsOf(ctx, alertID)
	if err != nil {
		return false, err
	}
	for _, need := range r.s.Required {
		done := false
		for _, in := range list {
			for _, a := range in.Actions {
				done = done || a.Kind == need && a.State == "done"
			}
		}
		if !done {
			return false, nil
		}
	}
	return true, nil
}

// collectSteps waits for the responder to finish the incidents of the
// alert, then records each step expected or taken and its outcome, and
// checks the first incident's evidence.
func (r *run) collectSteps(ctx context.Context, alertID string) error {
	var list []incident
	deadline := r.o.Now().Add(r.o.Timeout)
	for {
		var err error
		if list, err = r.incidentsOf(ctx, alertID); err != nil {
			return err
		}
		// Settled: an incident is there if a playbook is expected, each
		// has its steps, and none is still running.
		settled := len(list) > 0 || len(r.s.Playbooks) == 0
		for _, in := range list {
			settled = settled && len(in.Actions) > 0
			for _, a := range in.Actions {
				settled = settled && a.State != "running"
			}
		}
		if settled || r.o.Now().After(deadline) {
			break
		}
		if err := r.sleep(ctx); err != nil {
			return err
		}
	}
	byKind := map[string]Step{}
	var order []string
	for _, in := range list {
		r.rep.Incidents = append(r.rep.Incidents, in.ID)
		for _, a := range in.Actions {
			st := Step{Action: a.Kind, Playbook: a.Playbook, Outcome: StepFailed, Reason: a.Reason}
			switch a.State {
			case "done":
				st.Outcome, st.Reason = StepDone, ""
				if !a.Finished.IsZero() {
					st.MS = r.ms(a.Finished)
				}
			case "awaiting-approval":
				st.Outcome, st.Reason = StepNotCarried, "awaits a second person's approval"
			case "running":
				st.Outcome, st.Reason = StepNotCarried, "still running when the drill ended"
			case "failed":
				if strings.Contains(a.Reason, "does not carry out") {
					st.Outcome = StepNotCarried
				}
			default:
				st.Outcome = a.State
			}
			prev, ok := byKind[a.Kind]
			if !ok {
				order = append(order, a.Kind)
			}
			if !ok || prev.Outcome != StepDone {
				byKind[a.Kind] = st
			}
		}
	}
	for _, kind := range slices.Concat(r.s.Required, r.s.Expected) {
		if _, ok := byKind[kind]; !ok {
			byKind[kind] = Step{Action: kind, Outcome: StepMissing, Reason: "no incident of the alert lists it"}
			order = append(order, kind)
		}
	}
	for _, kind := range order {
		st := byKind[kind]
		st.Required = slices.Contains(r.s.Required, kind)
		r.rep.Steps = append(r.rep.Steps, st)
	}
	if len(list) == 0 {
		if len(r.s.Playbooks) > 0 {
			r.note("no incident was opened for alert %s", alertID)
		}
		return nil
	}
	r.evidence(ctx, list[0].ID)
	return nil
}

// evidence checks an incident's evidence bundle; only a bundle that fails
// its check fails the drill.
func (r *run) evidence(ctx context.Context, incidentID string) {
	ev := r.o.Evidence(ctx, r.t, incidentID)
	r.rep.Evidence = &ev
	if ev.Status == EvidenceFailed {
		r.fail("the evidence bundle of %s did not verify", incidentID)
	}
}

// restore sets the drill accounts a live drill suspended active again and
// closes the incidents it caused, so the next drill can sign in.
func (r *run) restore(ctx context.Context) {
	ids := slices.Clone(r.suspended)
	for _, a := range r.t.Accounts[:1] {
		if id, err := r.t.accountID(ctx, a.Username); err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	// The detectors may still be reading the attack, and the responder
	// answering what they found: an alert answered after the account is
	// active again would suspend it again, and fail the next drill. Wait
	// for the detectors to pass the attack, then close and reactivate
	// until a round finds nothing more to undo.
	r.waitDetectors(ctx)
	for round := 0; round < restoreRounds; round++ {
		time.Sleep(restoreSettle) // the responder answers what was committed
		closed := 0
		for _, id := range ids {
			var res struct{ Incidents []incident }
			if _, err := r.t.officer(ctx, http.MethodGet, "/security/incidents?open=true&user="+url.QueryEscape(id), nil, &res); err != nil {
				r.note("could not list the open incidents of %s: %v", id, err)
				continue
			}
			for _, in := range res.Incidents {
				body := map[string]string{"phase": "closed", "reason": "drill " + r.s.Name + " finished"}
				if _, err := r.t.officer(ctx, http.MethodPatch, "/security/incidents/"+url.PathEscape(in.ID), body, nil,
					"If-Match", fmt.Sprintf(`W/"%d"`, in.Version)); err != nil {
					r.note("could not close incident %s: %v", in.ID, err)
					continue
				}
				closed++
			}
		}
		for _, id := range ids {
			if err := r.t.setStatus(ctx, id, "active"); err != nil {
				r.note("could not set drill account %s active again: %v", id, err)
			}
		}
		if closed == 0 && round > 0 {
			return
		}
	}
}

// Bounds of restore: how many rounds, and how long each waits for the
// responder.
const (
	restoreRounds = 5
	restoreSettle = 300 * time.Millisecond
)

// waitDetectors waits (up to the run's timeout) until the detectors have
// read the trail as far as it went when called.
func (r *run) waitDetectors(ctx context.Context) {
	var st struct {
		Cursor    struct{ Trail int64 }
		TrailSize int64 `json:"trailSize"`
	}
	if _, err := r.t.officer(ctx, http.MethodGet, "/security/detector", nil, &st); err != nil {
		r.note("could not read the detectors' status: %v", err)
		return
	}
	target := st.TrailSize
	for deadline := r.o.Now().Add(r.o.Timeout); r.o.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := r.t.officer(ctx, http.MethodGet, "/security/detector", nil, &st); err != nil || st.Cursor.Trail >= target {
			return
		}
	}
	r.note("the detectors had not caught up when the drill account was restored")
}
