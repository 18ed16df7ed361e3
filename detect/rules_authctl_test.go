package detect_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// acRules returns fresh instances of every sign-in and control rule.
func acRules() []detect.Rule {
	return []detect.Rule{
		detect.NewFailedLoginBurst(), detect.NewCredentialStuffing(), detect.NewPasswordSpraying(),
		detect.NewNewSource(), detect.NewImpossibleTravel(), detect.NewSuspendedSignIn(),
		detect.NewRoleGrant(), detect.NewPolicyReload(), detect.NewKeyOperation(), detect.NewSealUnseal(),
		detect.NewBreakGlassOveruse(), detect.NewMassChange(),
	}
}

func TestAuthControlRulesAreDefault(t *testing.T) {
	var names []string
	for _, r := range detect.DefaultRules() {
		names = append(names, r.Name())
	}
	for _, r := range acRules() {
		if !slices.Contains(names, r.Name()) {
			t.Errorf("%s is not on by default", r.Name())
		}
		_, stateful := r.(detect.Stateful)
		switch r.(type) {
		case *detect.SuspendedSignIn, *detect.PolicyReload, *detect.KeyOperation, *detect.SealUnseal:
			if stateful {
				t.Errorf("%s keeps no state but is Stateful", r.Name())
			}
		default:
			if !stateful {
				t.Errorf("%s keeps state but is not Stateful", r.Name())
			}
		}
	}
}

// acScenario is a stream that makes every stateful rule alert, with each
// alert's events on both sides of the middle.
func acScenario(dir *detect.Directory) (before, after []detect.Event) {
	login := func(at time.Duration, user, src string, ok bool) detect.Event {
		return acLogin(acT0.Add(at), user, src, ok)
	}
	day := 24 * time.Hour
	add := func(list *[]detect.Event, evs ...detect.Event) { *list = append(*list, evs...) }
	dir.PutUser(&detect.User{ID: "adm", Roles: []string{phivault.RoleSecurityAdmin}})
	dir.PutUser(&detect.User{ID: "nur", Roles: []string{"nurse"}, Department: "ward3"})
	for i := range 5 {
		dir.PutUser(&detect.User{ID: fmt.Sprintf("n%d", i), Roles: []string{"nurse"}, Department: "ward3"})
	}
	// Ten days of history: new-source learns, break-glass peers open
	// once a week.
	for d := range 10 {
		add(&before, login(time.Duration(d)*day, "traveller", "198.51.100.4", true))
		add(&before, detect.FromEntry(0, &phivault.AuditEntry{Time: acT0.Add(time.Duration(d) * day), Actor: fmt.Sprintf("n%d", d%5),
			Action: phivault.ActionBreakGlass, TargetType: "Patient", TargetID: "p0", Outcome: "ok"}))
	}
	at := 10 * day
	for i := range 3 {
		add(&before, login(at+time.Duration(i)*time.Second, "victim", "203.0.113.66", false))
	}
	for i := range 8 {
		add(&before, login(at+time.Duration(i)*time.Second, fmt.Sprintf("s%d", i), "203.0.113.99", false))
		add(&before, login(at+time.Duration(i)*time.Second, fmt.Sprintf("sp%d", i), fmt.Sprintf("192.0.2.%d", i%4), false))
	}
	add(&before, login(at, "traveller", "198.51.100.4", true))
	for i := range 60 {
		add(&before, detect.FromEntry(0, &phivault.AuditEntry{Time: acT0.Add(at + time.Duration(i)*time.Second), Actor: "nur",
			Action: phivault.ActionUpdate, TargetType: "Observation", TargetID: "o", Compartments: []string{"p1"}, Outcome: "ok"}))
	}
	for i := range 2 {
		add(&before, detect.FromEntry(0, &phivault.AuditEntry{Time: acT0.Add(at + time.Duration(i)*time.Minute), Actor: "nur",
			Action: phivault.ActionBreakGlass, TargetType: "Patient", TargetID: "p2", Outcome: "ok"}))
	}

	at += 2 * time.Minute
	for i := range 3 {
		add(&after, login(at+time.Duration(i)*time.Second, "victim", "203.0.113.66", false))
	}
	for i := 8; i < 16; i++ {
		add(&after, login(at+time.Duration(i)*time.Second, fmt.Sprintf("s%d", i), "203.0.113.99", false))
		add(&after, login(at+time.Duration(i)*time.Second, fmt.Sprintf("sp%d", i), fmt.Sprintf("192.0.2.%d", i%4), false))
	}
	add(&after, login(at, "traveller", "203.0.113.200", true)) // new network, and far from the last one
	for i := range 60 {
		add(&after, detect.FromEntry(0, &phivault.AuditEntry{Time: acT0.Add(at + time.Duration(i)*time.Second), Actor: "nur",
			Action: phivault.ActionUpdate, TargetType: "Observation", TargetID: "o", Compartments: []string{"p1"}, Outcome: "ok"}))
	}
	for i := range 2 {
		add(&after, detect.FromEntry(0, &phivault.AuditEntry{Time: acT0.Add(at + time.Duration(i)*time.Minute), Actor: "nur",
			Action: phivault.ActionBreakGlass, TargetType: "Patient", TargetID: "p3", Outcome: "ok"}))
	}
	dir.PutUser(&detect.User{ID: "nur", Roles: []string{"nurse", phivault.RolePrivacyOfficer}, Department: "ward3"})
	add(&after, acChange(acT0.Add(at+time.Hour), "adm", "nur"))
	for i := range after {
		after[i].Seq = int64(len(before) + i)
	}
	for i := range before {
		before[i].Seq = int64(i)
	}
	return before, after
}

func TestAuthControlRulesRestart(t *testing.T) {
	run := func(restart bool) map[string]*detect.Alert {
		dir := detect.NewDirectory()
		before, after := acScenario(dir)
		// The grant in after must not be in the directory's first picture.
		dir.PutUser(&detect.User{ID: "nur", Roles: []string{"nurse"}, Department: "ward3"})
		stored := map[string]*detect.Alert{}
		known := func(id string) *detect.Alert { return stored[id] }
		drain := func(e *detect.Engine) {
			for _, a := range e.Drain() {
				stored[a.ID] = a
			}
		}
		e := detect.NewEngine(dir, acRules(), known)
		e.Now = func() time.Time { return acT0 }
		for i := range before {
			e.Observe(&before[i])
		}
		drain(e)
		if restart {
			state, err := e.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			e = detect.NewEngine(dir, acRules(), known)
			e.Now = func() time.Time { return acT0 }
			if err := e.UnmarshalState(state); err != nil {
				t.Fatal(err)
			}
		}
		for i := range after {
			if after[i].Action == phivault.ActionAccountChange {
				dir.PutUser(&detect.User{ID: "nur", Roles: []string{"nurse", phivault.RolePrivacyOfficer}, Department: "ward3"})
			}
			e.Observe(&after[i])
		}
		drain(e)
		return stored
	}
	straight, restarted := run(false), run(true)
	for _, a := range straight {
		t.Logf("%s %s %s %d: %s", a.Rule, a.Key, a.Severity, a.Events, a.Why)
	}
	rules := map[string]bool{}
	for _, a := range straight {
		rules[a.Rule] = true
	}
	for _, want := range []string{detect.RuleFailedLoginBurst, detect.RuleCredentialStuffing, detect.RulePasswordSpraying, detect.RuleNewSource,
		detect.RuleImpossibleTravel, detect.RuleRoleGrant, detect.RuleBreakGlassOveruse, detect.RuleMassChange} {
		if !rules[want] {
			t.Errorf("the scenario raised no %s alert", want)
		}
	}
	if len(straight) != len(restarted) {
		t.Errorf("%d alerts straight, %d with a restart", len(straight), len(restarted))
	}
	for id, a := range straight {
		b := restarted[id]
		if b == nil {
			t.Errorf("%s %s: lost in the restart", a.Rule, a.Key)
			continue
		}
		if a.Events != b.Events || a.Severity != b.Severity || !slices.Equal(a.Evidence, b.Evidence) || a.Why != b.Why {
			t.Errorf("%s %s: straight %d events %s %v %q, restarted %d events %s %v %q", a.Rule, a.Key,
				a.Events, a.Severity, a.Evidence, a.Why, b.Events, b.Severity, b.Evidence, b.Why)
		}
	}
}

func TestAuthControlRulesBadState(t *testing.T) {
	for _, r := range acRules() {
		if s, ok := r.(detect.Stateful); ok {
			if err := s.UnmarshalState([]byte("{nope")); err == nil {
				t.Errorf("%s took bad state", r.Name())
			}
			if err := s.UnmarshalState([]byte("{}")); err != nil {
				t.Errorf("%s: empty state: %v", r.Name(), err)
			}
		}
	}
}

// BenchmarkAuthControlRules runs every sign-in and control rule over a
// mix like a hospital's trail: mostly reads and searches, a few sign-ins
// (some failed), writes and the odd break-the-glass.
func BenchmarkAuthControlRules(b *testing.B) {
	dir := detect.NewDirectory()
	for i := range 1000 {
		dir.PutUser(&detect.User{ID: fmt.Sprintf("u%d", i), Roles: []string{"nurse"}, Department: fmt.Sprintf("d%d", i%20)})
	}
	var evs []detect.Event
	rnd := rand.New(rand.NewPCG(1, 2))
	// A day's worth of events at one every 100 ms, repeated: users come
	// round again only after hours, as in a real trail.
	for len(evs) < 8192 { // few enough to stay in cache, as a live event is
		u := rnd.IntN(1000)
		ev := detect.Event{Stream: detect.StreamTrail, User: fmt.Sprintf("u%d", u), Source: fmt.Sprintf("10.%d.%d.%d", u%3, u%50, rnd.IntN(250)), OK: true, Outcome: "ok",
			Action: phivault.ActionRead, ResourceType: "Observation", ResourceID: "o", Patients: []string{fmt.Sprintf("p%d", rnd.IntN(5000))}}
		switch n := rnd.IntN(1000); {
		case n < 5:
			ev.Action = phivault.ActionLogin
		case n < 7: // a typo, then the sign-in
			fail := ev
			fail.Action, fail.OK, fail.Outcome = detect.ActionLoginFailed, false, phivault.EUNAUTHORIZED
			evs = append(evs, fail)
			ev.Action = phivault.ActionLogin
		case n < 30:
			ev.Action = phivault.ActionUpdate
		case n < 150:
			ev.Action = phivault.ActionSearch
		case n < 151 && rnd.IntN(10) == 0:
			ev.Action = phivault.ActionBreakGlass
		}
		evs = append(evs, ev)
	}
	e := detect.NewEngine(dir, acRules(), nil)
	alerts := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev := &evs[i%len(evs)]
		ev.Seq, ev.Time = int64(i), acT0.Add(time.Duration(i)*100*time.Millisecond)
		e.Observe(ev)
		if i%4096 == 0 {
			alerts += len(e.Drain())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	b.ReportMetric(float64(alerts)/float64(b.N), "alerts/event")
}

// TestAuthControlRulesReadsDoNotAllocate guards the common path: a read
// passes every sign-in and control rule without an allocation.
func TestAuthControlRulesReadsDoNotAllocate(t *testing.T) {
	dir := detect.NewDirectory()
	dir.PutUser(&detect.User{ID: "u1", Roles: []string{"nurse"}})
	e := detect.NewEngine(dir, acRules(), nil)
	ev := detect.Event{Stream: detect.StreamTrail, Time: acT0, User: "u1", Source: "10.0.0.1", Action: phivault.ActionRead,
		ResourceType: "Patient", ResourceID: "p1", Patients: []string{"p1"}, OK: true, Outcome: "ok"}
	e.Observe(&ev) // the first event lets role-grant take its picture
	if n := testing.AllocsPerRun(1000, func() { ev.Seq++; e.Observe(&ev) }); n != 0 {
		t.Errorf("%.1f allocations per read", n)
	}
}
