package incident_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/playbook"
)

// controls records what it is asked to do; kinds in fail fail.
type controls struct {
	mu   sync.Mutex
	did  []string
	fail map[string]bool
}

func (c *controls) Do(_ context.Context, a incident.Action) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail[a.Kind] {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The session store is down.")
	}
	c.did = append(c.did, a.Kind+" "+a.Target.User)
	return nil
}

func (c *controls) Undo(_ context.Context, a incident.Action) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.did = append(c.did, "undo "+a.Kind+" "+a.Target.User)
	return nil
}

func (c *controls) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.did)
}

func newResponder(t *testing.T) (*fixture, *incident.Responder, *controls) {
	f := newFixture(t)
	set, err := playbook.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	c := &controls{fail: map[string]bool{}}
	r := &incident.Responder{
		Service: f.svc, Playbooks: func() *playbook.Set { return set }, Controls: c,
		User: func(context.Context, string) playbook.User {
			return playbook.User{Roles: []string{"nurse"}, Staff: true}
		},
	}
	return f, r, c
}

func decoyAlert(now time.Time) *detect.Alert {
	return &detect.Alert{ID: "00000000000000d1", Rule: detect.RuleHoneytoken, Severity: detect.SeverityCritical, Score: 100,
		User: "u-nurse", Patients: []string{"p-decoy"}, First: now.Add(-time.Second), Last: now.Add(-time.Second),
		Detected: now, State: detect.StateOpen}
}

// The default: a decoy touch suspends the account and revokes
// its tokens before a person looks, on an incident that says so.
func TestResponder_honeytoken(t *testing.T) {
	f, r, c := newResponder(t)
	a := decoyAlert(f.now)
	ins := r.Answer(context.Background(), a)
	if len(ins) != 1 {
		t.Fatalf("%d incidents", len(ins))
	}
	in := ins[0]
	if got, want := c.all(), []string{"suspend-account u-nurse", "revoke-sessions u-nurse", "collect-evidence u-nurse", "notify u-nurse"}; !slices.Equal(got, want) {
		t.Fatalf("controls did %v, want %v", got, want)
	}
	if in.Phase != incident.PhaseContain || in.Severity != detect.SeverityCritical || !slices.Equal(in.Alerts, []string{a.ID}) || in.Source != incident.SourceAlert {
		t.Fatalf("incident %+v", in)
	}
	for _, act := range in.Actions {
		if act.State != incident.ActionDone || act.Playbook != "honeytoken-touch" {
			t.Fatalf("action %+v", act)
		}
	}
	title, _ := f.svc.OpenText(in.ID, in.Title)
	if string(title) != "Decoy patient touched by u-nurse" {
		t.Fatalf("title %q", title)
	}
	// Every step is on the timeline and in the trail, as the responder.
	tl, _ := f.svc.Timeline(context.Background(), in.ID)
	var done int
	for _, ev := range tl {
		if ev.Kind == incident.EventAction && strings.Contains(ev.Detail, " done") {
			done++
		}
	}
	if done != 4 {
		t.Fatalf("%d done events on the timeline", done)
	}
	for _, e := range f.log.all() {
		if e.Actor != incident.Actor || e.Action != phivault.ActionIncident {
			t.Fatalf("entry %+v", e)
		}
	}

	// The pipeline hands the alert over again as it grows: nothing is
	// done twice, and the same incident is kept.
	a.Events++
	if again := r.Answer(context.Background(), a); len(again) != 1 || again[0].ID != in.ID || len(c.all()) != 4 {
		t.Fatalf("second answer: %d incidents, controls %v", len(again), c.all())
	}
	// A second decoy touched by the same user joins the incident.
	b := decoyAlert(f.now)
	b.ID, b.Patients = "00000000000000d2", []string{"p-decoy-2"}
	again := r.Answer(context.Background(), b)
	if len(again) != 1 || again[0].ID != in.ID || !slices.Equal(again[0].Alerts, []string{a.ID, b.ID}) || len(again[0].Actions) != 8 {
		t.Fatalf("second alert: %+v", again)
	}
	if list, _ := f.svc.List(context.Background(), incident.Filter{}); len(list) != 1 {
		t.Fatalf("%d incidents", len(list))
	}
}

// A failing control fails its action with a safe reason, and the others
// still run.
func TestResponder_failure(t *testing.T) {
	f, r, c := newResponder(t)
	c.fail["revoke-sessions"] = true
	in := r.Answer(context.Background(), decoyAlert(f.now))[0]
	states := map[string]string{}
	for _, act := range in.Actions {
		states[act.Kind] = act.State
		if act.Kind == "revoke-sessions" && act.Reason != "The session store is down" {
			t.Fatalf("reason %q", act.Reason)
		}
	}
	if states["revoke-sessions"] != incident.ActionFailed || states["suspend-account"] != incident.ActionDone || states["notify"] != incident.ActionDone {
		t.Fatalf("states %v", states)
	}
}

// Near misses: a triaged, a suppressed and an unmatched alert do
// nothing.
func TestResponder_nothing(t *testing.T) {
	f, r, c := newResponder(t)
	triaged := decoyAlert(f.now)
	triaged.State = detect.StateFalsePositive
	suppressed := decoyAlert(f.now)
	suppressed.Suppressed = true
	other := decoyAlert(f.now)
	other.Rule = detect.RuleAfterHours
	r.OnCommit([]*detect.Alert{triaged, suppressed})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	go r.Run(ctx)
	r.Answer(context.Background(), other)
	<-ctx.Done()
	if len(c.all()) != 0 {
		t.Fatalf("controls did %v", c.all())
	}
	if list, _ := f.svc.List(context.Background(), incident.Filter{}); len(list) != 0 {
		t.Fatalf("%d incidents", len(list))
	}
}

// Two-person steps wait; the alert's own user may not approve; another
// person approves, and the responder carries it out; a done action is
// undone.
func TestResponder_approval(t *testing.T) {
	f, r, c := newResponder(t)
	a := decoyAlert(f.now)
	a.Rule, a.Severity = detect.RuleMassChange, detect.SeverityHigh
	in := r.Answer(context.Background(), a)[0]
	var block incident.Action
	for _, act := range in.Actions {
		if act.Kind == playbook.ActionBlockClient {
			block = act
		}
	}
	if block.State != incident.ActionAwaiting || slices.Contains(c.all(), "block-client u-nurse") {
		t.Fatalf("block-client %+v, controls %v", block, c.all())
	}
	as := func(id string) context.Context {
		return phivault.WithRequestInfo(context.Background(), phivault.RequestInfo{Actor: id})
	}
	if _, _, err := f.svc.Decide(as("u-nurse"), in.ID, block.ID, in.Version, true, ""); phivault.ErrorCode(err) != phivault.EFORBIDDEN {
		t.Fatalf("self-approval: %v", err)
	}
	in2, act, err := f.svc.Decide(as("po-1"), in.ID, block.ID, in.Version, true, "")
	if err != nil || act == nil || act.State != incident.ActionRunning || act.By != "po-1" {
		t.Fatalf("approve: %+v, %v", act, err)
	}
	in3 := r.Carry(context.Background(), in2.ID, *act)
	if !slices.Contains(c.all(), "block-client u-nurse") {
		t.Fatalf("controls did %v", c.all())
	}
	for _, x := range in3.Actions {
		if x.ID == block.ID && x.State != incident.ActionDone {
			t.Fatalf("after carrying: %+v", x)
		}
	}
	// Undo: only what can be undone.
	var revoke, suspend incident.Action
	for _, x := range in3.Actions {
		switch x.Kind {
		case playbook.ActionRevokeSessions:
			revoke = x
		case playbook.ActionSuspendAccount:
			suspend = x
		}
	}
	if _, err := f.svc.Undoing(as("po-1"), in3.ID, revoke.ID, in3.Version); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Fatalf("undo of revoke-sessions: %v", err)
	}
	u, err := f.svc.Undoing(as("po-1"), in3.ID, suspend.ID, in3.Version)
	if err != nil {
		t.Fatal(err)
	}
	in4, err := r.Revert(context.Background(), in3.ID, *u)
	if err != nil || !slices.Contains(c.all(), "undo suspend-account u-nurse") {
		t.Fatalf("revert: %v, controls %v", err, c.all())
	}
	for _, x := range in4.Actions {
		if x.ID == suspend.ID && (x.State != incident.ActionUndone || x.By != "po-1") {
			t.Fatalf("after undo: %+v", x)
		}
	}
	// Rejecting needs the action to be awaiting.
	if _, _, err := f.svc.Decide(as("po-1"), in4.ID, block.ID, in4.Version, false, "no"); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Fatalf("reject of a done action: %v", err)
	}
}

// Alerts without a user (unauthenticated probes of a decoy) each get an
// incident of their own, never someone else's; an alert answered before
// is not answered again once its incident is closed.
func TestResponder_noUserAndClosed(t *testing.T) {
	f, r, c := newResponder(t)
	nurse := r.Answer(context.Background(), decoyAlert(f.now))[0]
	probe := decoyAlert(f.now)
	probe.ID, probe.User = "00000000000000e1", ""
	got := r.Answer(context.Background(), probe)
	if len(got) != 1 || got[0].ID == nurse.ID {
		t.Fatalf("a probe joined %+v", got)
	}
	closed, err := f.svc.Change(officer(), nurse.ID, incident.Change{Version: nurse.Version, Phase: incident.PhaseClosed})
	if err != nil {
		t.Fatal(err)
	}
	n := len(c.all())
	again := decoyAlert(f.now)
	again.Events = 5
	if got := r.Answer(context.Background(), again); len(got) != 1 || got[0].ID != closed.ID || got[0].Phase != incident.PhaseClosed || len(c.all()) != n {
		t.Fatalf("a closed incident's alert answered again: %+v, controls %v", got, c.all())
	}
}

// After a restart the responder remembers nothing, and the store says
// what was answered: nothing is done twice.
func TestResponder_restart(t *testing.T) {
	f, r, c := newResponder(t)
	a := decoyAlert(f.now)
	in := r.Answer(context.Background(), a)[0]
	fresh := &incident.Responder{Service: f.svc, Playbooks: r.Playbooks, Controls: c, User: r.User}
	a.Events++
	got := fresh.Answer(context.Background(), a)
	if len(got) != 1 || got[0].ID != in.ID || len(c.all()) != 4 {
		t.Fatalf("after a restart: %+v, controls %v", got, c.all())
	}
}

// TestResponder_targets checks that an alert's sources go to the
// actions it proposes, and its client only when its events came through
// one client: block-client blocks everyone who uses it, never on a guess.
func TestResponder_targets(t *testing.T) {
	f, r, _ := newResponder(t)
	a := &detect.Alert{ID: "00000000000000e1", Rule: detect.RuleMassChange, Severity: detect.SeverityCritical, Score: 90,
		User: "u-1", Sources: []string{"203.0.113.7", "198.51.100.0"}, Clients: []string{"etl"},
		First: f.now, Last: f.now, Detected: f.now, State: detect.StateOpen}
	ins := r.Answer(context.Background(), a)
	if len(ins) != 1 {
		t.Fatalf("%d incidents", len(ins))
	}
	for _, act := range ins[0].Actions {
		if !slices.Equal(act.Target.Sources, a.Sources) || act.Target.Client != "etl" || act.Target.User != "u-1" {
			t.Fatalf("%s targets %+v", act.Kind, act.Target)
		}
	}
	f2, r2, _ := newResponder(t)
	a.ID, a.Clients, a.First, a.Last, a.Detected = "00000000000000e2", []string{"etl", "app"}, f2.now, f2.now, f2.now
	for _, act := range r2.Answer(context.Background(), a)[0].Actions {
		if act.Target.Client != "" {
			t.Fatalf("%s names client %q of an alert through two", act.Kind, act.Target.Client)
		}
	}
}

// TestResponder_bulkExport is the other default: a bulk export by
// a staff account suspends it and revokes its tokens at once; the same
// alert on a system client (a backend export) is left to people.
func TestResponder_bulkExport(t *testing.T) {
	f, r, c := newResponder(t)
	a := &detect.Alert{ID: "00000000000000b1", Rule: detect.RuleBulkAccess, Severity: detect.SeverityHigh, Score: 80,
		User: "u-clerk", Patients: []string{"p-1", "p-2"}, First: f.now, Last: f.now, Detected: f.now, State: detect.StateOpen}
	ins := r.Answer(context.Background(), a)
	if len(ins) != 1 || ins[0].Actions[0].Playbook != "bulk-export" {
		t.Fatalf("incidents %+v", ins)
	}
	if got := c.all(); len(got) < 2 || got[0] != "suspend-account u-clerk" || got[1] != "revoke-sessions u-clerk" {
		t.Fatalf("controls did %v, want the account suspended and its sessions revoked first", got)
	}
	f2, r2, c2 := newResponder(t)
	r2.User = func(context.Context, string) playbook.User { return playbook.User{Roles: []string{"system"}} }
	a.ID, a.User, a.First, a.Last, a.Detected = "00000000000000b2", "svc-etl", f2.now, f2.now, f2.now
	if ins := r2.Answer(context.Background(), a); len(ins) != 0 || len(c2.all()) != 0 {
		t.Fatalf("a system client's bulk export: incidents %d, controls did %v", len(ins), c2.all())
	}
}
