package detect_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// acT0 is the start of the sign-in and control tests' clock: a Monday.
var acT0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

// acFeed runs rules over events in a fresh engine with dir (a new one if
// nil) and returns the alerts.
func acFeed(t testing.TB, dir *detect.Directory, rules []detect.Rule, events []detect.Event) []*detect.Alert {
	t.Helper()
	if dir == nil {
		dir = detect.NewDirectory()
	}
	e := detect.NewEngine(dir, rules, nil)
	e.Now = func() time.Time { return acT0 }
	for i := range events {
		events[i].Seq = int64(i)
		if events[i].Stream == "" {
			events[i].Stream = detect.StreamTrail
		}
		e.Observe(&events[i])
	}
	return e.Drain()
}

// acLogin is a sign-in event of user from source at t: ok, or failed for
// a wrong credential, made the way the trail records it.
func acLogin(t time.Time, user, source string, ok bool) detect.Event {
	en := &phivault.AuditEntry{Time: t, Actor: user, Source: source, Action: phivault.ActionLogin, Outcome: "ok"}
	if !ok {
		en.Outcome = phivault.EUNAUTHORIZED
	}
	return detect.FromEntry(0, en)
}

func acOne(t *testing.T, alerts []*detect.Alert, rule string) *detect.Alert {
	t.Helper()
	if len(alerts) != 1 || alerts[0].Rule != rule {
		for _, a := range alerts {
			t.Logf("alert %s %s %s: %s", a.Rule, a.Key, a.Severity, a.Why)
		}
		t.Fatalf("got %d alerts, want one of %s", len(alerts), rule)
	}
	return alerts[0]
}

func acNone(t *testing.T, alerts []*detect.Alert) {
	t.Helper()
	for _, a := range alerts {
		t.Errorf("unexpected alert %s %s %s: %s", a.Rule, a.Key, a.Severity, a.Why)
	}
}

func TestFailedLoginBurst(t *testing.T) {
	burst := func(n int, gap time.Duration) []detect.Event {
		var evs []detect.Event
		for i := range n {
			evs = append(evs, acLogin(acT0.Add(time.Duration(i)*gap), "acc1", "198.51.100.7", false))
		}
		return evs
	}
	t.Run("six failures alert", func(t *testing.T) {
		a := acOne(t, acFeed(t, nil, []detect.Rule{detect.NewFailedLoginBurst()}, burst(6, 30*time.Second)), detect.RuleFailedLoginBurst)
		if a.User != "acc1" || a.Severity != detect.SeverityMedium || a.Events != 2 || !a.First.Equal(acT0.Add(2*time.Minute)) {
			t.Errorf("alert %+v", a)
		}
		if a.Key != "acc1|"+acT0.Format(time.RFC3339) || !strings.Contains(a.Why, "6 times") {
			t.Errorf("key %q why %q", a.Key, a.Why)
		}
	})
	t.Run("four failures do not", func(t *testing.T) {
		acNone(t, acFeed(t, nil, []detect.Rule{detect.NewFailedLoginBurst()}, burst(4, 30*time.Second)))
	})
	t.Run("six failures spread over an hour do not", func(t *testing.T) {
		acNone(t, acFeed(t, nil, []detect.Rule{detect.NewFailedLoginBurst()}, burst(6, 11*time.Minute)))
	})
	t.Run("refusals after the password was checked do not count", func(t *testing.T) {
		evs := burst(6, 10*time.Second)
		for i := range evs {
			evs[i].Outcome = phivault.EFORBIDDEN // no second factor enrolled
		}
		acNone(t, acFeed(t, nil, []detect.Rule{detect.NewFailedLoginBurst()}, evs))
	})
	t.Run("a success after the burst is high", func(t *testing.T) {
		evs := append(burst(5, 10*time.Second), acLogin(acT0.Add(2*time.Minute), "acc1", "198.51.100.7", true))
		a := acOne(t, acFeed(t, nil, []detect.Rule{detect.NewFailedLoginBurst()}, evs), detect.RuleFailedLoginBurst)
		if a.Severity != detect.SeverityHigh || !strings.Contains(a.Why, "successfully") {
			t.Errorf("alert %s: %s", a.Severity, a.Why)
		}
	})
	t.Run("a later burst is a second alert", func(t *testing.T) {
		evs := append(burst(5, 10*time.Second), burst(5, 10*time.Second)...)
		for i := 5; i < 10; i++ {
			evs[i].Time = evs[i].Time.Add(time.Hour)
		}
		if got := acFeed(t, nil, []detect.Rule{detect.NewFailedLoginBurst()}, evs); len(got) != 2 {
			t.Errorf("got %d alerts, want 2", len(got))
		}
	})
}

func TestCredentialStuffing(t *testing.T) {
	rule := func() []detect.Rule { return []detect.Rule{detect.NewCredentialStuffing()} }
	t.Run("ten accounts from one source alert", func(t *testing.T) {
		var evs []detect.Event
		for i := range 10 {
			evs = append(evs, acLogin(acT0.Add(time.Duration(i)*20*time.Second), fmt.Sprintf("acc%d", i), "203.0.113.5", false))
		}
		a := acOne(t, acFeed(t, nil, rule(), evs), detect.RuleCredentialStuffing)
		if a.Severity != detect.SeverityHigh || a.Key != "203.0.113.5|"+acT0.Format(time.RFC3339) || !strings.Contains(a.Why, "10 distinct accounts") {
			t.Errorf("alert %s %q: %s", a.Severity, a.Key, a.Why)
		}
	})
	t.Run("a success from the source during the episode is critical", func(t *testing.T) {
		var evs []detect.Event
		for i := range 10 {
			evs = append(evs, acLogin(acT0.Add(time.Duration(i)*20*time.Second), fmt.Sprintf("acc%d", i), "203.0.113.5", false))
		}
		evs = append(evs, acLogin(acT0.Add(4*time.Minute), "acc42", "203.0.113.5", true))
		a := acOne(t, acFeed(t, nil, rule(), evs), detect.RuleCredentialStuffing)
		if a.Severity != detect.SeverityCritical || a.Events != 2 || !strings.Contains(a.Why, "acc42") {
			t.Errorf("alert %s %d: %s", a.Severity, a.Events, a.Why)
		}
		// Before the episode, a success from the source is nothing.
		acNone(t, acFeed(t, nil, rule(), append([]detect.Event{evs[10]}, evs[:9]...)))
	})
	t.Run("ten accounts from ten sources over a day do not", func(t *testing.T) {
		var evs []detect.Event
		for i := range 10 {
			evs = append(evs, acLogin(acT0.Add(time.Duration(i)*2*time.Hour), fmt.Sprintf("acc%d", i), fmt.Sprintf("203.0.113.%d", i), false))
		}
		acNone(t, acFeed(t, nil, rule(), evs))
	})
	t.Run("nine accounts from one source do not", func(t *testing.T) {
		var evs []detect.Event
		for i := range 9 {
			evs = append(evs, acLogin(acT0.Add(time.Duration(i)*20*time.Second), fmt.Sprintf("acc%d", i), "203.0.113.5", false))
		}
		acNone(t, acFeed(t, nil, rule(), evs))
	})
	t.Run("a shared proxy where most sign-ins succeed does not", func(t *testing.T) {
		var evs []detect.Event
		for i := range 120 {
			evs = append(evs, acLogin(acT0.Add(time.Duration(i)*10*time.Second), fmt.Sprintf("ok%d", i), "192.0.2.1", true))
			if i%10 == 0 {
				evs = append(evs, acLogin(acT0.Add(time.Duration(i)*10*time.Second+time.Second), fmt.Sprintf("typo%d", i), "192.0.2.1", false))
			}
		}
		acNone(t, acFeed(t, nil, rule(), evs))
	})
	t.Run("usernames that name no account alert", func(t *testing.T) {
		var evs []detect.Event
		for i := range 20 {
			evs = append(evs, acLogin(acT0.Add(time.Duration(i)*5*time.Second), "", "203.0.113.9", false))
		}
		acOne(t, acFeed(t, nil, rule(), evs), detect.RuleCredentialStuffing)
		acNone(t, acFeed(t, nil, rule(), evs[:19]))
	})
}

func TestPasswordSpraying(t *testing.T) {
	rule := func() []detect.Rule { return []detect.Rule{detect.NewPasswordSpraying()} }
	spray := func(accounts, perAccount, sources int) []detect.Event {
		var evs []detect.Event
		for round := range perAccount {
			for i := range accounts {
				at := acT0.Add(time.Duration(round)*20*time.Minute + time.Duration(i)*10*time.Second)
				evs = append(evs, acLogin(at, fmt.Sprintf("acc%d", i), fmt.Sprintf("203.0.113.%d", (i+round)%sources), false))
			}
		}
		return evs
	}
	t.Run("twenty accounts failing once or twice from four sources alert", func(t *testing.T) {
		evs := spray(20, 1, 4)
		evs = append(evs, spray(10, 2, 4)[10:]...) // ten of them fail a second time
		for i := 20; i < len(evs); i++ {
			evs[i].Time = evs[i].Time.Add(5 * time.Minute)
		}
		a := acOne(t, acFeed(t, nil, rule(), evs), detect.RulePasswordSpraying)
		if a.Severity != detect.SeverityHigh || !strings.Contains(a.Why, "from 4 source addresses") || !strings.Contains(a.Why, "10 once, 10 twice") {
			t.Errorf("alert %s: %s", a.Severity, a.Why)
		}
		if a.First != acT0.Add(140*time.Second) { // the 15th thin account
			t.Errorf("first %v", a.First)
		}
	})
	t.Run("typos followed by a success do not", func(t *testing.T) {
		var evs []detect.Event
		for _, ev := range spray(20, 1, 4) {
			ok := ev
			ok.Action, ok.OK, ok.Outcome = phivault.ActionLogin, true, "ok"
			ok.Time = ok.Time.Add(5 * time.Second)
			evs = append(evs, ev, ok)
		}
		acNone(t, acFeed(t, nil, rule(), evs))
	})
	t.Run("fourteen accounts do not", func(t *testing.T) {
		acNone(t, acFeed(t, nil, rule(), spray(14, 1, 4)))
	})
	t.Run("one source does not", func(t *testing.T) {
		acNone(t, acFeed(t, nil, rule(), spray(20, 1, 1)))
	})
	t.Run("accounts failing many times are not thin", func(t *testing.T) {
		var evs []detect.Event // each account fails three times in a row
		for i := range 20 {
			for j := range 3 {
				evs = append(evs, acLogin(acT0.Add(time.Duration(3*i+j)*time.Second), fmt.Sprintf("acc%d", i), fmt.Sprintf("203.0.113.%d", j), false))
			}
		}
		acNone(t, acFeed(t, nil, rule(), evs))
	})
	t.Run("twenty accounts over a day do not", func(t *testing.T) {
		evs := spray(20, 1, 4)
		for i := range evs {
			evs[i].Time = acT0.Add(time.Duration(i) * time.Hour)
		}
		acNone(t, acFeed(t, nil, rule(), evs))
	})
}

func TestNewSource(t *testing.T) {
	history := func(days int) []detect.Event {
		var evs []detect.Event
		for d := range days {
			evs = append(evs, acLogin(acT0.Add(time.Duration(d)*24*time.Hour), "acc1", fmt.Sprintf("10.1.2.%d", d+1), true))
		}
		return evs
	}
	rule := func() []detect.Rule { return []detect.Rule{detect.NewNewSource()} }
	t.Run("a new network after learning alerts low", func(t *testing.T) {
		evs := append(history(8), acLogin(acT0.Add(9*24*time.Hour), "acc1", "203.0.113.77", true))
		a := acOne(t, acFeed(t, nil, rule(), evs), detect.RuleNewSource)
		if a.Severity != detect.SeverityLow || a.Key != "acc1|203.0.113.0/24" || !strings.Contains(a.Why, "8 sign-ins") {
			t.Errorf("alert %s %q: %s", a.Severity, a.Key, a.Why)
		}
	})
	t.Run("another host of a known network does not", func(t *testing.T) {
		acNone(t, acFeed(t, nil, rule(), append(history(8), acLogin(acT0.Add(9*24*time.Hour), "acc1", "10.1.2.200", true))))
	})
	t.Run("a new network while learning does not", func(t *testing.T) {
		acNone(t, acFeed(t, nil, rule(), append(history(3), acLogin(acT0.Add(3*24*time.Hour), "acc1", "203.0.113.77", true))))
	})
	t.Run("a failed sign-in from a new network does not", func(t *testing.T) {
		acNone(t, acFeed(t, nil, rule(), append(history(8), acLogin(acT0.Add(9*24*time.Hour), "acc1", "203.0.113.77", false))))
	})
	// Peer networks: acc1 is a float nurse (department float) working on
	// ward-b today, as the event states.
	peerDir := func() *detect.Directory {
		dir := detect.NewDirectory()
		dir.PutUser(&detect.User{ID: "acc1", Roles: []string{"nurse"}, Department: "float"})
		for _, id := range []string{"wb1", "wb2", "wb3"} {
			dir.PutUser(&detect.User{ID: id, Roles: []string{"nurse"}, Department: "ward-b"})
		}
		return dir
	}
	peers := func(source string, n int) []detect.Event {
		var evs []detect.Event
		for i, id := range []string{"wb1", "wb2", "wb3"}[:n] {
			evs = append(evs, acLogin(acT0.Add(8*24*time.Hour+time.Duration(i)*time.Hour), id, source, true))
		}
		return evs
	}
	onWard := func(source string) detect.Event {
		ev := acLogin(acT0.Add(9*24*time.Hour), "acc1", source, true)
		ev.Department = "ward-b"
		return ev
	}
	t.Run("an internal network two of the department use is not new", func(t *testing.T) {
		evs := append(append(history(8), peers("10.3.4.5", 2)...), onWard("10.3.4.99"))
		acNone(t, acFeed(t, peerDir(), rule(), evs))
	})
	t.Run("an internal network one of the department uses is new", func(t *testing.T) {
		evs := append(append(history(8), peers("10.3.4.5", 1)...), onWard("10.3.4.99"))
		acOne(t, acFeed(t, peerDir(), rule(), evs), detect.RuleNewSource)
	})
	t.Run("a public network the department uses is new", func(t *testing.T) {
		evs := append(append(history(8), peers("203.0.113.5", 3)...), onWard("203.0.113.99"))
		acOne(t, acFeed(t, peerDir(), rule(), evs), detect.RuleNewSource)
	})
	t.Run("IPv6 networks are /48", func(t *testing.T) {
		var evs []detect.Event
		for d := range 8 {
			evs = append(evs, acLogin(acT0.Add(time.Duration(d)*24*time.Hour), "acc1", fmt.Sprintf("2001:db8:1:%x::1", d), true))
		}
		acNone(t, acFeed(t, nil, rule(), evs))
		evs = append(evs, acLogin(acT0.Add(9*24*time.Hour), "acc1", "2001:db8:2::1", true))
		if a := acOne(t, acFeed(t, nil, rule(), evs), detect.RuleNewSource); a.Key != "acc1|2001:db8:2::/48" {
			t.Errorf("key %q", a.Key)
		}
	})
}

type acLocator map[netip.Addr][2]float64

func (l acLocator) Locate(a netip.Addr) (float64, float64, bool) {
	p, ok := l[a]
	return p[0], p[1], ok
}

func TestImpossibleTravel(t *testing.T) {
	pair := func(a, b string, gap time.Duration) []detect.Event {
		return []detect.Event{acLogin(acT0, "acc1", a, true), acLogin(acT0.Add(gap), "acc1", b, true)}
	}
	rule := func() []detect.Rule { return []detect.Rule{detect.NewImpossibleTravel()} }
	for _, c := range []struct {
		name, a, b string
		gap        time.Duration
		want       bool
	}{
		{"different /16 within minutes", "198.51.100.1", "203.0.113.9", 2 * time.Minute, true},
		{"private then public", "10.0.0.5", "203.0.113.9", time.Minute, true},
		{"different IPv6 /32", "2001:db8::1", "2001:db9::1", time.Minute, true},
		{"different /16 after the window", "198.51.100.1", "203.0.113.9", 6 * time.Minute, false},
		{"same /16", "198.51.100.1", "198.51.7.9", time.Minute, false},
		{"two private networks", "10.1.0.5", "192.168.3.4", time.Minute, false},
		{"IPv4 and IPv6", "198.51.100.1", "2001:db8::1", time.Minute, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := acFeed(t, nil, rule(), pair(c.a, c.b, c.gap))
			if !c.want {
				acNone(t, got)
				return
			}
			a := acOne(t, got, detect.RuleImpossibleTravel)
			if a.Severity != detect.SeverityHigh || a.Key != "acc1|2026-11-30" || !strings.Contains(a.Why, "proxy") || len(a.Evidence) != 1 {
				t.Errorf("alert %s %q %v: %s", a.Severity, a.Key, a.Evidence, a.Why)
			}
		})
	}
	t.Run("a trusted VPN is ignored", func(t *testing.T) {
		r := detect.NewImpossibleTravel()
		r.Trusted = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
		acNone(t, acFeed(t, nil, []detect.Rule{r}, pair("198.51.100.1", "203.0.113.9", time.Minute)))
	})
	t.Run("a locator decides when it places both", func(t *testing.T) {
		oslo, sydney, bergen := [2]float64{59.91, 10.75}, [2]float64{-33.87, 151.21}, [2]float64{60.39, 5.32}
		loc := acLocator{netip.MustParseAddr("198.51.100.1"): oslo, netip.MustParseAddr("203.0.113.9"): sydney, netip.MustParseAddr("192.0.2.1"): bergen, netip.MustParseAddr("100.20.0.1"): oslo}
		rule := func() []detect.Rule {
			r := detect.NewImpossibleTravel()
			r.Locator = loc
			return []detect.Rule{r}
		}
		a := acOne(t, acFeed(t, nil, rule(), pair("198.51.100.1", "203.0.113.9", 3*time.Hour)), detect.RuleImpossibleTravel)
		if !strings.Contains(a.Why, "km/h") {
			t.Errorf("why %q", a.Why)
		}
		// Oslo to Bergen (about 300 km) in 3 hours: a plausible trip.
		acNone(t, acFeed(t, nil, rule(), pair("198.51.100.1", "192.0.2.1", 3*time.Hour)))
		// Two providers in Oslo two minutes apart: networks far apart, but
		// the locator overrides the network proxy.
		acNone(t, acFeed(t, nil, rule(), pair("198.51.100.1", "100.20.0.1", 2*time.Minute)))
	})
}

func TestSuspendedSignIn(t *testing.T) {
	dir := detect.NewDirectory()
	dir.PutUser(&detect.User{ID: "gone", Status: phivault.AccountDeprovisioned})
	dir.PutUser(&detect.User{ID: "away", Status: phivault.AccountSuspended})
	dir.PutUser(&detect.User{ID: "here", Status: phivault.AccountActive})
	rule := func() []detect.Rule { return []detect.Rule{detect.NewSuspendedSignIn()} }
	t.Run("a successful sign-in is critical", func(t *testing.T) {
		a := acOne(t, acFeed(t, dir, rule(), []detect.Event{acLogin(acT0, "gone", "203.0.113.1", true)}), detect.RuleSuspendedSignIn)
		if a.Severity != detect.SeverityCritical || !strings.Contains(a.Why, "deprovisioned") {
			t.Errorf("alert %s: %s", a.Severity, a.Why)
		}
	})
	t.Run("a token use is critical", func(t *testing.T) {
		ev := detect.Event{Time: acT0, User: "away", Action: phivault.ActionRead, ResourceType: "Patient", ResourceID: "p1", Patients: []string{"p1"}, OK: true, Outcome: "ok"}
		a := acOne(t, acFeed(t, dir, rule(), []detect.Event{ev}), detect.RuleSuspendedSignIn)
		if a.Severity != detect.SeverityCritical || len(a.Patients) != 1 {
			t.Errorf("alert %s %v", a.Severity, a.Patients)
		}
	})
	t.Run("a refused attempt is medium", func(t *testing.T) {
		en := &phivault.AuditEntry{Time: acT0, Actor: "away", Action: phivault.ActionLogin, Outcome: phivault.EFORBIDDEN, Decision: "deny: account not active"}
		a := acOne(t, acFeed(t, dir, rule(), []detect.Event{detect.FromEntry(1, en)}), detect.RuleSuspendedSignIn)
		if a.Severity != detect.SeverityMedium {
			t.Errorf("severity %s", a.Severity)
		}
	})
	t.Run("active and unknown accounts do not", func(t *testing.T) {
		acNone(t, acFeed(t, dir, rule(), []detect.Event{acLogin(acT0, "here", "203.0.113.1", true), acLogin(acT0, "stranger", "203.0.113.1", true)}))
	})
}
