package detect_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// acChange is the account change of target by actor at t, as
// admin.RecordChange records it.
func acChange(t time.Time, actor, target string) detect.Event {
	return detect.FromEntry(0, &phivault.AuditEntry{Time: t, Actor: actor, Action: phivault.ActionAccountChange,
		TargetType: "Account", TargetID: target, Outcome: "ok"})
}

func TestRoleGrant(t *testing.T) {
	// setup returns a directory of an admin and a nurse, and an engine
	// that has seen one event (so the rule took its picture).
	setup := func() (*detect.Directory, *detect.Engine) {
		dir := detect.NewDirectory()
		dir.PutUser(&detect.User{ID: "adm", Roles: []string{phivault.RoleSecurityAdmin}})
		dir.PutUser(&detect.User{ID: "nur", Roles: []string{"nurse"}, Department: "ed"})
		e := detect.NewEngine(dir, []detect.Rule{detect.NewRoleGrant()}, nil)
		ev := detect.Event{Stream: detect.StreamTrail, Time: acT0, User: "nur", Action: phivault.ActionRead, OK: true}
		e.Observe(&ev)
		return dir, e
	}
	observe := func(e *detect.Engine, ev detect.Event) []*detect.Alert {
		ev.Stream, ev.Seq = detect.StreamTrail, 7
		e.Observe(&ev)
		return e.Drain()
	}
	t.Run("a grant of privacy-officer is medium", func(t *testing.T) {
		dir, e := setup()
		dir.PutUser(&detect.User{ID: "nur", Roles: []string{"nurse", phivault.RolePrivacyOfficer}})
		a := acOne(t, observe(e, acChange(acT0.Add(time.Hour), "adm", "nur")), detect.RuleRoleGrant)
		if a.Severity != detect.SeverityMedium || a.User != "adm" || a.Key != "nur|privacy-officer|2026-11-30" || !strings.Contains(a.Why, "gave account nur privacy-officer") {
			t.Errorf("alert %s %s %q: %s", a.Severity, a.User, a.Key, a.Why)
		}
	})
	t.Run("a self-grant is high", func(t *testing.T) {
		dir, e := setup()
		dir.PutUser(&detect.User{ID: "adm", Roles: []string{phivault.RoleSecurityAdmin, "physician"}})
		a := acOne(t, observe(e, acChange(acT0.Add(time.Hour), "adm", "adm")), detect.RuleRoleGrant)
		if a.Severity != detect.SeverityHigh || !strings.Contains(a.Why, "gave itself physician") {
			t.Errorf("alert %s: %s", a.Severity, a.Why)
		}
	})
	t.Run("a new account with a clinical role is medium", func(t *testing.T) {
		dir, e := setup()
		dir.PutUser(&detect.User{ID: "new", Roles: []string{"physician"}})
		a := acOne(t, observe(e, acChange(acT0.Add(time.Hour), "adm", "new")), detect.RuleRoleGrant)
		if a.Severity != detect.SeverityMedium || !strings.Contains(a.Why, "created account new") {
			t.Errorf("alert %s: %s", a.Severity, a.Why)
		}
	})
	t.Run("a grant of another role is low", func(t *testing.T) {
		dir, e := setup()
		dir.PutUser(&detect.User{ID: "nur", Roles: []string{"nurse", "scheduler"}})
		if a := acOne(t, observe(e, acChange(acT0.Add(time.Hour), "adm", "nur")), detect.RuleRoleGrant); a.Severity != detect.SeverityLow {
			t.Errorf("severity %s", a.Severity)
		}
	})
	t.Run("a change without a new role does not", func(t *testing.T) {
		dir, e := setup()
		dir.PutUser(&detect.User{ID: "nur", Department: "icu"}) // role removed, department changed
		acNone(t, observe(e, acChange(acT0.Add(time.Hour), "adm", "nur")))
		dir.PutUser(&detect.User{ID: "nur", Roles: []string{"nurse"}, Department: "icu"}) // given back: a grant again
		acOne(t, observe(e, acChange(acT0.Add(2*time.Hour), "adm", "nur")), detect.RuleRoleGrant)
	})
	t.Run("a refused change does not", func(t *testing.T) {
		dir, e := setup()
		dir.PutUser(&detect.User{ID: "nur", Roles: []string{"nurse", phivault.RoleSecurityAdmin}})
		ev := acChange(acT0.Add(time.Hour), "nur", "nur")
		ev.OK, ev.Outcome = false, phivault.EFORBIDDEN
		acNone(t, observe(e, ev))
	})
	t.Run("the first event's own target is compared", func(t *testing.T) {
		dir := detect.NewDirectory()
		dir.PutUser(&detect.User{ID: "adm", Roles: []string{phivault.RoleSecurityAdmin}})
		dir.PutUser(&detect.User{ID: "new", Roles: []string{phivault.RoleSecurityAdmin}}) // the Loader refreshed before the rule saw it
		acOne(t, acFeed(t, dir, []detect.Rule{detect.NewRoleGrant()}, []detect.Event{acChange(acT0, "adm", "new")}), detect.RuleRoleGrant)
	})
}

func TestParseChangeWindows(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 2026-12-05 is a Saturday.
	for _, c := range []struct {
		spec string
		in   []string
		out  []string
	}{
		{"Sat 22:00-Sun 04:00", []string{"2026-12-05T22:00:00Z", "2026-12-06T03:59:59Z"}, []string{"2026-12-05T21:59:59Z", "2026-12-06T04:00:00Z", "2026-12-06T22:30:00Z"}},
		{"tue 23:00-01:00", []string{"2026-12-01T23:30:00Z", "2026-12-02T00:30:00Z"}, []string{"2026-12-02T01:00:00Z", "2026-12-03T00:30:00Z"}},
		{"Mon-Fri 18:00-19:00", []string{"2026-11-30T18:10:00Z", "2026-12-04T18:59:00Z"}, []string{"2026-12-05T18:10:00Z", "2026-12-04T19:00:00Z"}},
		{"Sat 23:00-Sun 01:00", []string{"2026-12-05T23:30:00Z", "2026-12-06T00:30:00Z"}, []string{"2026-12-06T23:30:00Z"}},
		{"2026-12-12T22:00:00Z/2026-12-13T02:00:00Z", []string{"2026-12-12T22:00:00Z"}, []string{"2026-12-13T02:00:00Z", "2026-12-05T22:00:00Z"}},
	} {
		w, err := detect.ParseChangeWindows(nil, c.spec)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		for _, s := range c.in {
			if !w.Contains(at(s)) {
				t.Errorf("%q does not contain %s", c.spec, s)
			}
		}
		for _, s := range c.out {
			if w.Contains(at(s)) {
				t.Errorf("%q contains %s", c.spec, s)
			}
		}
	}
	oslo, err := time.LoadLocation("Europe/Oslo")
	if err != nil {
		t.Fatal(err)
	}
	w, err := detect.ParseChangeWindows(oslo, "Sat 22:00-23:00")
	if err != nil {
		t.Fatal(err)
	}
	if !w.Contains(at("2026-12-05T21:30:00Z")) || w.Contains(at("2026-12-05T22:30:00Z")) {
		t.Error("weekly windows are not read in their location")
	}
	for _, bad := range []string{"", "Sat", "Sat 22:00", "Funday 10:00-11:00", "Sat 25:00-26:00", "Sat 10:00-10:00", "Sat 10:00-Sun", "2026-12-12/2026-12-13", "2026-12-13T02:00:00Z/2026-12-12T22:00:00Z"} {
		if _, err := detect.ParseChangeWindows(nil, bad); err == nil {
			t.Errorf("%q parsed", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestControlChangeWindows(t *testing.T) {
	reload := detect.FromEntry(0, &phivault.AuditEntry{Time: time.Date(2026, 12, 5, 22, 30, 0, 0, time.UTC), Actor: "system:sighup",
		Action: phivault.ActionPolicyChange, TargetType: "Policy", Outcome: "ok", Decision: "reload policies"})
	t.Run("no window declared: every reload is low", func(t *testing.T) {
		a := acOne(t, acFeed(t, nil, []detect.Rule{detect.NewPolicyReload()}, []detect.Event{reload}), detect.RulePolicyReload)
		if a.Severity != detect.SeverityLow || !strings.Contains(a.Why, "no change window is declared") {
			t.Errorf("alert %s: %s", a.Severity, a.Why)
		}
	})
	t.Run("a reload inside a declared window does not alert", func(t *testing.T) {
		r := detect.NewPolicyReload()
		var err error
		if r.Windows, err = detect.ParseChangeWindows(nil, "Sat 22:00-Sun 02:00"); err != nil {
			t.Fatal(err)
		}
		acNone(t, acFeed(t, nil, []detect.Rule{r}, []detect.Event{reload}))
		late := reload
		late.Time = reload.Time.Add(4 * time.Hour)
		a := acOne(t, acFeed(t, nil, []detect.Rule{r}, []detect.Event{late}), detect.RulePolicyReload)
		if a.Severity != detect.SeverityMedium || !strings.Contains(a.Why, "outside every declared change window") {
			t.Errorf("alert %s: %s", a.Severity, a.Why)
		}
	})
	admin := func(action, typ, id, outcome string) detect.Event {
		return detect.FromEntry(0, &phivault.AuditEntry{Time: acT0, Actor: "adm", Action: action, TargetType: typ, TargetID: id, Outcome: outcome})
	}
	t.Run("key operations", func(t *testing.T) {
		r := detect.NewKeyOperation()
		r.Windows = detect.ChangeWindows{Intervals: []detect.Interval{{Start: acT0.Add(-time.Hour), End: acT0.Add(time.Hour)}}}
		evs := []detect.Event{admin(phivault.ActionKeyRotate, "Key", "", "ok"), admin(phivault.ActionShred, "Patient", "p1", "ok")}
		acNone(t, acFeed(t, nil, []detect.Rule{r}, evs))
		r.Windows.Intervals[0].End = acT0 // [start, end): the end is outside
		got := acFeed(t, nil, []detect.Rule{r}, evs)
		if len(got) != 2 {
			t.Fatalf("got %d alerts, want 2", len(got))
		}
		for _, a := range got {
			if want := map[string]detect.Severity{"key-rotate": detect.SeverityMedium, "shred": detect.SeverityHigh}[strings.Split(a.Key, "|")[0]]; a.Severity != want {
				t.Errorf("%s: severity %s, want %s", a.Key, a.Severity, want)
			}
		}
		acNone(t, acFeed(t, nil, []detect.Rule{detect.NewKeyOperation()}, []detect.Event{admin(phivault.ActionRead, "Patient", "p1", "ok")}))
	})
	t.Run("seal and a refused unseal", func(t *testing.T) {
		got := acFeed(t, nil, []detect.Rule{detect.NewSealUnseal()}, []detect.Event{admin(phivault.ActionSeal, "Vault", "", "ok"), admin(phivault.ActionUnseal, "Vault", "", phivault.EFORBIDDEN)})
		if len(got) != 2 {
			t.Fatalf("got %d alerts, want 2", len(got))
		}
		for _, a := range got {
			if strings.HasPrefix(a.Key, "unseal|") && !strings.Contains(a.Why, "refused (forbidden)") {
				t.Errorf("why %q", a.Why)
			}
		}
	})
}

func TestBreakGlassOveruse(t *testing.T) {
	dir := detect.NewDirectory()
	for i := range 6 {
		dir.PutUser(&detect.User{ID: fmt.Sprintf("n%d", i), Roles: []string{"nurse"}, Department: "ward3"})
		dir.PutUser(&detect.User{ID: fmt.Sprintf("e%d", i), Roles: []string{"physician"}, Department: "ed"})
	}
	open := func(user string, at time.Time, patient string) detect.Event {
		return detect.FromEntry(0, &phivault.AuditEntry{Time: at, Actor: user, Action: phivault.ActionBreakGlass, TargetType: "Patient",
			TargetID: patient, Compartments: []string{patient}, Outcome: "ok", Purpose: "ETREAT"})
	}
	rule := func() []detect.Rule { return []detect.Rule{detect.NewBreakGlassOveruse()} }
	// Peers open once a week each.
	var base []detect.Event
	for w := range 4 {
		for i := range 5 {
			base = append(base, open(fmt.Sprintf("n%d", i), acT0.Add(time.Duration(7*w+i)*24*time.Hour), "p0"))
		}
	}
	day := acT0.Add(28 * 24 * time.Hour)
	t.Run("four in a day against the own rate alert", func(t *testing.T) {
		evs := append([]detect.Event{}, base...)
		for i := range 4 {
			evs = append(evs, open("n5", day.Add(time.Duration(i)*time.Hour), fmt.Sprintf("p%d", i+1)))
		}
		a := acOne(t, acFeed(t, dir, rule(), evs), detect.RuleBreakGlassOveruse)
		if a.User != "n5" || a.Events != 2 || len(a.Patients) != 2 || !strings.Contains(a.Why, "4 today") || a.Key != "n5|2026-12-28" {
			t.Errorf("alert %+v", a)
		}
	})
	t.Run("two in a day do not", func(t *testing.T) {
		evs := append([]detect.Event{}, base...)
		evs = append(evs, open("n5", day, "p1"), open("n5", day.Add(time.Hour), "p2"))
		acNone(t, acFeed(t, dir, rule(), evs))
	})
	daily := func(days int) []detect.Event {
		evs := append([]detect.Event{}, base...)
		for d := range days {
			evs = append(evs, open("n5", day.Add(time.Duration(d)*24*time.Hour), "p1"))
		}
		return evs
	}
	t.Run("one a day for two weeks against peers' once a week alerts", func(t *testing.T) {
		// On day 9, 9 openings in 30 days against peers' mean of 3.
		a := acOne(t, acFeed(t, dir, rule(), daily(14)), detect.RuleBreakGlassOveruse)
		if !strings.Contains(a.Why, "14 in 30 days against a mean of 2.0 among 5 peers (nurse|ward3)") || a.Key != "n5|2027-01-05" || a.Events != 6 {
			t.Errorf("alert %q: %s", a.Key, a.Why)
		}
	})
	t.Run("one a day for a week does not", func(t *testing.T) {
		acNone(t, acFeed(t, dir, rule(), daily(7)))
	})
	t.Run("peers are the same role set in any order", func(t *testing.T) {
		dir := detect.NewDirectory()
		for i := range 6 {
			roles := []string{"charge", "nurse"}
			if i == 5 {
				roles = []string{"nurse", "charge"}
			}
			dir.PutUser(&detect.User{ID: fmt.Sprintf("n%d", i), Roles: roles, Department: "ward3"})
		}
		a := acOne(t, acFeed(t, dir, rule(), daily(14)), detect.RuleBreakGlassOveruse)
		if !strings.Contains(a.Why, "among 5 peers (charge,nurse|ward3)") {
			t.Errorf("alert %q: %s", a.Key, a.Why)
		}
	})
	t.Run("one a day where every peer does the same does not", func(t *testing.T) {
		var evs []detect.Event
		for d := range 14 {
			for i := range 6 {
				evs = append(evs, open(fmt.Sprintf("e%d", i), acT0.Add(time.Duration(d)*24*time.Hour+time.Duration(i)*time.Hour), "p1"))
			}
		}
		acNone(t, acFeed(t, dir, rule(), evs))
	})
	t.Run("refused openings do not count", func(t *testing.T) {
		var evs []detect.Event
		for i := range 6 {
			ev := open("n5", day.Add(time.Duration(i)*time.Minute), "p1")
			ev.OK, ev.Outcome = false, phivault.EFORBIDDEN
			evs = append(evs, ev)
		}
		acNone(t, acFeed(t, dir, rule(), evs))
	})
}

func TestMassChange(t *testing.T) {
	write := func(action, user string, at time.Time, patient string) detect.Event {
		return detect.FromEntry(0, &phivault.AuditEntry{Time: at, Actor: user, Action: action, TargetType: "Observation", TargetID: "o1",
			Compartments: []string{patient}, Outcome: "ok"})
	}
	rule := func() []detect.Rule { return []detect.Rule{detect.NewMassChange()} }
	run := func(action string, n, patients int, gap time.Duration) []*detect.Alert {
		var evs []detect.Event
		for i := range n {
			evs = append(evs, write(action, "u1", acT0.Add(time.Duration(i)*gap), fmt.Sprintf("p%d", i%patients)))
		}
		return acFeed(t, nil, rule(), evs)
	}
	t.Run("120 updates in two minutes alert", func(t *testing.T) {
		a := acOne(t, run(phivault.ActionUpdate, 120, 5, time.Second), detect.RuleMassChange)
		if a.Severity != detect.SeverityHigh || a.Events != 21 || a.Key != "u1|"+acT0.Add(99*time.Second).Format(time.RFC3339) {
			t.Errorf("alert %s %d %q: %s", a.Severity, a.Events, a.Key, a.Why)
		}
	})
	t.Run("90 updates do not", func(t *testing.T) {
		acNone(t, run(phivault.ActionUpdate, 90, 5, time.Second))
	})
	t.Run("120 updates over an hour do not", func(t *testing.T) {
		acNone(t, run(phivault.ActionUpdate, 120, 5, 30*time.Second))
	})
	t.Run("25 deletes are critical", func(t *testing.T) {
		if a := acOne(t, run(phivault.ActionDelete, 25, 5, time.Second), detect.RuleMassChange); a.Severity != detect.SeverityCritical {
			t.Errorf("severity %s", a.Severity)
		}
		acNone(t, run(phivault.ActionDelete, 19, 5, time.Second))
	})
	t.Run("60 distinct patients alert", func(t *testing.T) {
		// The alert names every patient written to, those before the
		// threshold too: a privacy officer restores or notifies them all.
		if a := acOne(t, run(phivault.ActionUpdate, 60, 60, 3*time.Second), detect.RuleMassChange); a.Events != 11 || len(a.Patients) != 60 {
			t.Errorf("alert %d events %d patients", a.Events, len(a.Patients))
		}
		acNone(t, run(phivault.ActionUpdate, 49, 49, 3*time.Second))
	})
	t.Run("reads and creates do not count", func(t *testing.T) {
		acNone(t, run(phivault.ActionRead, 500, 100, 100*time.Millisecond))
		acNone(t, run(phivault.ActionCreate, 500, 100, 100*time.Millisecond))
	})
}
