package incident

import (
	"context"
	"log/slog"
	"sync"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident/playbook"
)

// Controls carries out actions on the vault: each kind a call on one of
// its controls (suspend an account, revoke its sessions, …). An action
// kind it cannot carry out is an error saying so, which fails the action
// on the incident's timeline.
type Controls interface {
	Do(ctx context.Context, a Action) error
	Undo(ctx context.Context, a Action) error
}

// Responder answers the alerts the detectors commit with the playbooks
// that match them: it opens or joins incidents and carries out their
// automatic steps at once, before a person looks. It never blocks the
// pipeline: OnCommit hands alerts to its own goroutine through a bounded
// queue.
type Responder struct {
	Service   *Service
	Playbooks func() *playbook.Set // the current set
	Controls  Controls
	// User describes an alert's user for triggers (roles, staff).
	User   func(ctx context.Context, id string) playbook.User
	Logger *slog.Logger // nil discards

	once  sync.Once
	queue chan []*detect.Alert
	// answered remembers the (alert, playbook) pairs answered since the
	// start, so that an alert handed over again as it grows costs no
	// store query; the store's own check covers what a restart forgot.
	mu       sync.Mutex
	answered map[string]string // alert|playbook → incident
}

// maxAnswered bounds Responder.answered; beyond it, it starts again.
const maxAnswered = 100_000

// ResponderQueue bounds the batches of alerts waiting for the responder.
const ResponderQueue = 1024

// Actor is the actor of the responder's own changes and actions in the
// audit trail.
const Actor = "incident-responder"

func (r *Responder) init() {
	r.once.Do(func() {
		r.queue = make(chan []*detect.Alert, ResponderQueue)
		r.answered = map[string]string{}
		if r.Logger == nil {
			r.Logger = slog.New(slog.DiscardHandler)
		}
	})
}

// OnCommit takes the alerts a pipeline commit stored
// (detect.Pipeline.OnCommit); it never blocks. Alerts that are not open
// (triaged) or are suppressed are left to people.
func (r *Responder) OnCommit(alerts []*detect.Alert) {
	r.init()
	var take []*detect.Alert
	for _, a := range alerts {
		if a.State == detect.StateOpen && !a.Suppressed {
			take = append(take, a.Clone())
		}
	}
	if len(take) == 0 {
		return
	}
	select {
	case r.queue <- take:
	default:
		r.Logger.Error("incident responder queue full; alerts left to people", "alerts", len(take))
	}
}

// Run answers queued alerts until ctx ends.
func (r *Responder) Run(ctx context.Context) {
	r.init()
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-r.queue:
			for _, a := range batch {
				r.Answer(ctx, a)
			}
		}
	}
}

// responderContext returns ctx as the responder's own: its changes and actions are
// recorded as made by Actor.
func responderContext(ctx context.Context) context.Context {
	return phivault.WithRequestInfo(ctx, phivault.RequestInfo{Actor: Actor, Purpose: "incident-response"})
}

// Answer answers one alert with every playbook that matches it, and
// returns the incidents it touched.
func (r *Responder) Answer(ctx context.Context, a *detect.Alert) []*Incident {
	r.init()
	set := r.Playbooks()
	if set == nil {
		return nil
	}
	ctx = responderContext(ctx)
	var (
		out  []*Incident
		user *playbook.User // looked up once, only if a trigger asks
	)
	for _, p := range set.Playbooks {
		if !p.Trigger.MatchesAlert(a) {
			continue
		}
		if id := r.seen(a.ID, p.Name); id != "" {
			if in, err := r.Service.Get(ctx, id); err == nil {
				out = append(out, in) // answered before: nothing more to do
			}
			continue
		}
		if user == nil {
			user = &playbook.User{}
			if r.User != nil && a.User != "" {
				*user = r.User(ctx, a.User)
			}
		}
		if !p.Trigger.MatchesUser(*user) {
			continue
		}
		in, run, err := r.Service.Respond(ctx, a, p)
		if err != nil {
			r.Logger.Error("incident responder: answer an alert", "alert", a.ID, "playbook", p.Name, "error", err.Error())
			continue
		}
		if in != nil {
			r.remember(a.ID, p.Name, in.ID)
		}
		for _, act := range run {
			if in2 := r.Carry(ctx, in.ID, act); in2 != nil {
				in = in2
			}
		}
		if in != nil {
			out = append(out, in)
		}
	}
	return out
}

// seen returns the incident that answered alert with playbook since the
// start, or "".
func (r *Responder) seen(alert, playbook string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.answered[alert+"|"+playbook]
}

func (r *Responder) remember(alert, playbook, incident string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.answered) >= maxAnswered {
		clear(r.answered)
	}
	r.answered[alert+"|"+playbook] = incident
}

// Carry carries out a running action through the controls and records
// the outcome on its incident.
func (r *Responder) Carry(ctx context.Context, incidentID string, act Action) *Incident {
	ctx = WithIncident(responderContext(ctx), incidentID)
	err := r.Controls.Do(ctx, act)
	if err != nil {
		r.Logger.Warn("incident action failed", "incident", incidentID, "action", act.ID, "kind", act.Kind, "error", safeReason(err))
	}
	in, ferr := r.Service.Finish(context.WithoutCancel(ctx), incidentID, act.ID, err)
	if ferr != nil {
		r.Logger.Error("incident responder: record an action", "incident", incidentID, "action", act.ID, "error", ferr.Error())
		return nil
	}
	return in
}

// Revert undoes a done action through the controls and records the
// outcome.
func (r *Responder) Revert(ctx context.Context, incidentID string, act Action) (*Incident, error) {
	err := r.Controls.Undo(WithIncident(ctx, incidentID), act)
	return r.Service.Undone(context.WithoutCancel(ctx), incidentID, act.ID, err)
}
