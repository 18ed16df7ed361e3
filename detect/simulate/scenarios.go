package simulate

import (
	"fmt"
	"slices"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// The detectors the scenarios target, by the names the simulator expects
// (Options.Aliases maps them to other names).
const (
	RuleHoneytoken     = "honeytoken"
	RuleSelf           = "self-access"
	RuleFamily         = "family-access"
	RuleNeighbour      = "neighbour-access"
	RuleCoworker       = "coworker-access"
	RuleVIP            = "vip-access"
	RuleDeceased       = "deceased-access"
	RuleNoRelationship = "no-relationship"
	RuleVolume         = "volume-spike"
	RulePeer           = "peer-deviation"
	RuleAfterHours     = "after-hours"
	RuleNameSearch     = "name-search-browsing"
	RuleBulkExport     = "bulk-access"
	RuleFailedLogins   = "failed-login-burst"
	RuleStuffing       = "credential-stuffing"
	RuleSpraying       = "password-spraying"
	RuleNewSource      = "new-source"
	RuleTravel         = "impossible-travel"
	RuleSuspended      = "suspended-signin"
	RuleRoleGrant      = "role-grant"
	RulePolicy         = "policy-reload"
	RuleKeyOperation   = "key-operation"
	RuleSealUnseal     = "seal-unseal"
	RuleBreakGlass     = "break-glass-overuse"
	RuleMassUpdate     = "mass-change"
)

// ChangeWindowSpecs returns the change windows the simulated hospital
// declares, in the form detect.ParseChangeWindows reads (UTC): policy
// reloads, key operations and role grants of the ordinary background
// happen inside them.
func ChangeWindowSpecs() []string { return []string{"Tue 18:00-22:00", "Thu 18:00-22:00"} }

// Settings returns what the simulated hospital declares to the detectors,
// as a site would with "phivault serve -detect-change-windows": its
// change windows (UTC).
func Settings() detect.Settings {
	w, err := detect.ParseChangeWindows(time.UTC, ChangeWindowSpecs()...)
	if err != nil {
		panic("simulate: bad change windows: " + err.Error())
	}
	return detect.Settings{ChangeWindows: w}
}

// ScenarioInfo describes a scenario.
type ScenarioInfo struct {
	Name  string
	About string
	Mixed bool // several behaviours at once
}

type scenario struct {
	ScenarioInfo
	run func(g *gen, name string)
}

func scenarios() []*scenario {
	s := func(name, about string, mixed bool, run func(*gen, string)) *scenario {
		return &scenario{ScenarioInfo{name, about, mixed}, run}
	}
	return []*scenario{
		s("honeytoken", "a nurse opens a decoy; a name search returns one", false, (*gen).scHoneytoken),
		s("self", "an employee opens their own record", false, (*gen).scSelf),
		s("family", "a nurse opens a relative's record (same family name and address); near miss: same family name elsewhere, on the care team", false, (*gen).scFamily),
		s("neighbour", "a physician opens a neighbour's record (same street); near miss: same street name in another postal code, on the care team", false, (*gen).scNeighbour),
		s("coworker", "a nurse opens a colleague's record; near miss: a colleague admitted to the nurse's ward", false, (*gen).scCoworker),
		s("vip", "a clerk opens a VIP's record; near miss: the VIP's care team", false, (*gen).scVIP),
		s("deceased", "a nurse opens the record of a patient who died before; near miss: billing after a death in hospital", false, (*gen).scDeceased),
		s("snooping", "a nurse opens patients she has no relationship with; near miss: a look just before an admission", false, (*gen).scSnooping),
		s("volume-spike", "a physician reads ten times their usual volume in an afternoon; near miss: a nurse's double shift", false, (*gen).scVolume),
		s("peer-deviation", "a billing clerk reads clinical results across departments", false, (*gen).scPeer),
		s("after-hours", "a day physician works at 02:30 for the first time; near miss: night nurses", false, (*gen).scAfterHours),
		s("name-search", "a nurse searches by name and opens results she has no relationship with; near miss: front-desk check-in", false, (*gen).scNameSearch),
		s("bulk-export", "a physician exports thousands of records and runs a huge search; near miss: the nightly billing batch", false, (*gen).scBulkExport),
		s("failed-logins", "25 failed sign-ins on one account in minutes; near miss: a few typos", false, (*gen).scFailedLogins),
		s("credential-stuffing", "one address tries 80 accounts once each", false, (*gen).scStuffing),
		s("password-spraying", "a dozen addresses try 50 accounts, slowly", false, (*gen).scSpraying),
		s("new-source", "a nurse signs in from an address never seen; near miss: a new workstation on her floor", false, (*gen).scNewSource),
		s("impossible-travel", "a physician signs in on the ward and, 3 minutes later, from abroad; near miss: two floors", false, (*gen).scTravel),
		s("suspended-signin", "a suspended account signs in; near miss: reactivated, then signs in", false, (*gen).scSuspended),
		s("role-grant", "an admin grants security-admin at 23:40 on a Saturday; near miss: grants in the change window", false, (*gen).scRoleGrant),
		s("policy-reload", "an admin reloads policies at 03:10 on a Sunday; near miss: reloads in the change window", false, (*gen).scPolicyReload),
		s("key-seal", "an admin rotates a key, seals and unseals at 02:40 on a Sunday; near miss: rotations in the change window", false, (*gen).scKeySeal),
		s("break-glass-overuse", "a physician breaks the glass on eight patients in a day; near miss: emergency break-the-glass", false, (*gen).scBreakGlass),
		s("mass-update", "a nurse's account updates and deletes 400 records in minutes; near miss: a medication round", false, (*gen).scMassUpdate),
		s("curious-clerk", "a front-desk clerk browses a neighbour, a colleague, a VIP and strangers over three days", true, (*gen).scCuriousClerk),
		s("stolen-account", "a nurse's password used at 02:00 from abroad: failures, success, browsing, export", true, (*gen).scStolen),
		s("departing-employee", "a physician exports and prints records on their last days, including decoys, then signs in after leaving", true, (*gen).scDeparting),
		s("celebrity", "a celebrity is admitted; dozens of staff from other departments look", true, (*gen).scCelebrity),
	}
}

// Scenarios returns the scenarios the simulator can inject, in the order
// it injects them.
func Scenarios() []ScenarioInfo {
	var out []ScenarioInfo
	for _, s := range scenarios() {
		out = append(out, s.ScenarioInfo)
	}
	return out
}

// ScenarioNames returns the names of Scenarios.
func ScenarioNames() []string {
	var out []string
	for _, s := range scenarios() {
		out = append(out, s.Name)
	}
	return out
}

func scenarioByName(name string) *scenario {
	for _, s := range scenarios() {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// pick returns a random staffer matching ok, preferring one not yet used
// by a scenario, and marks it used; nil if there is none.
func (g *gen) pick(ok func(*staffer) bool) *staffer {
	var c, usedToo []*staffer
	for _, s := range g.staff {
		if s.status == phivault.AccountActive && ok(s) {
			if !g.used[s.id] {
				c = append(c, s)
			}
			usedToo = append(usedToo, s)
		}
	}
	if len(c) == 0 {
		c = usedToo
	}
	if len(c) == 0 {
		return nil
	}
	s := c[g.r.IntN(len(c))]
	g.used[s.id] = true
	return s
}

func clinical(s *staffer) bool {
	return (s.role == roleNurse || s.role == rolePhysician) && s.dept != nil && s.dept.kind == kindWard
}

func wardNurse(s *staffer) bool {
	return s.role == roleNurse && !s.float && s.dept != nil && s.dept.kind == kindWard
}

// onShift returns a random time at least an hour into a shift s works
// after the warm-up, on the day returned; ok false if s has none.
func (g *gen) onShift(s *staffer) (time.Time, int, bool) {
	var days []int
	for d := g.cfg.Warmup; d < g.cfg.Days; d++ {
		if _, b := g.shiftWindow(s, d); g.works(s, d) && !b.After(g.day(g.cfg.Days)) {
			days = append(days, d)
		}
	}
	if len(days) == 0 {
		return time.Time{}, 0, false
	}
	d := days[g.r.IntN(len(days))]
	a, b := g.shiftWindow(s, d)
	return g.between(a.Add(time.Hour), b.Add(-2*time.Hour)), d, true
}

// pickOnShift picks a staffer matching ok (pick) and a time on one of
// their shifts after the warm-up (onShift); ok false if there is none.
func (g *gen) pickOnShift(match func(*staffer) bool) (s *staffer, t time.Time, day int, ok bool) {
	if s = g.pick(match); s == nil {
		return nil, time.Time{}, 0, false
	}
	t, day, ok = g.onShift(s)
	return s, t, day, ok
}

// scenarioDay returns a random day after the warm-up.
func (g *gen) scenarioDay() int { return g.cfg.Warmup + g.r.IntN(g.cfg.Days-g.cfg.Warmup) }

// stranger returns a random living patient who is not a decoy, VIP,
// employee, or ever in s's department or cared for by s; nil if none.
func (g *gen) stranger(s *staffer) *pat {
	for range 200 {
		p := g.patients[g.r.IntN(len(g.patients))]
		if p.deceased || p.employee != nil || len(p.labels) > 0 || g.everRelated(s, p) {
			continue
		}
		return p
	}
	return nil
}

// everRelated reports whether p ever stayed in a department s works in,
// or has a relationship with s.
func (g *gen) everRelated(s *staffer, p *pat) bool {
	for _, d := range g.depts {
		if d != s.dept && !s.float && !s.resident && s.role != roleBilling {
			continue
		}
		for _, st := range d.stays {
			if st.p == p {
				return true
			}
		}
	}
	return p.home != nil && slices.Contains(p.home.staff, s)
}

func (g *gen) mal(scn string, s *staffer, p *pat, t time.Time, rules ...string) {
	pid := ""
	if p != nil {
		pid = p.id
	}
	g.truth.label(Pair{s.id, pid}, scn, true, t, rules...)
}

func (g *gen) near(scn string, s *staffer, p *pat, t time.Time, rules ...string) {
	pid := ""
	if p != nil {
		pid = p.id
	}
	g.truth.label(Pair{s.id, pid}, scn, false, t, rules...)
}

// look emits a read of p's record and a result or two.
func (g *gen) look(t time.Time, s *staffer, src string, p *pat) {
	g.emit(g.event(t, s, src, "read", "Patient", p))
	g.emit(g.event(t.Add(40*time.Second), s, src, "read", "Observation", p))
	if g.r.IntN(2) == 0 {
		g.emit(g.event(t.Add(95*time.Second), s, src, "read", "DiagnosticReport", p))
	}
}

// careFor admits p to s's ward around t and emits s's legitimate look:
// a near miss for rules.
func (g *gen) careFor(scn string, s *staffer, p *pat, t time.Time, rules ...string) {
	if s.dept == nil || p == nil {
		return
	}
	start := t.Add(-3 * time.Hour)
	g.admit(p, s.dept, start, t.Add(2*24*time.Hour), start)
	if !slices.Contains(s.dept.nurses, s) && !slices.Contains(s.dept.physicians, s) {
		g.rel(s.id, p, detect.KindCareTeam, start, t.Add(48*time.Hour), "ingest:"+g.cfg.System+"/care/"+s.id+"/"+p.id, start)
	}
	g.look(t, s, s.ws, p)
	g.near(scn, s, p, t, rules...)
}

func (g *gen) scHoneytoken(name string) {
	s := g.pick(wardNurse)
	if s == nil || len(g.honey) == 0 {
		return
	}
	t, _, ok := g.onShift(s)
	if !ok {
		return
	}
	h := g.honey[g.r.IntN(len(g.honey))]
	g.emit(g.event(t, s, s.ws, "read", "Patient", h))
	g.mal(name, s, h, t, RuleHoneytoken)
	// A front-desk search whose results include a decoy: a touch too.
	f, t2, _, ok := g.pickOnShift(func(s *staffer) bool { return s.role == roleFrontDesk })
	if !ok {
		return
	}
	h2 := g.honey[g.r.IntN(len(g.honey))]
	ev := g.event(t2, f, f.ws, "search", "Patient", h2)
	if p := g.stranger(f); p != nil {
		ev.Patients = append(ev.Patients, p.id)
		g.mal(name, f, p, t2)
	}
	ev.Count = len(ev.Patients)
	ev.Params = []string{"family"}
	g.emit(ev)
	g.mal(name, f, h2, t2, RuleHoneytoken)
}

func (g *gen) scSelf(name string) {
	s := g.pick(func(s *staffer) bool { return clinical(s) && s.patient != nil })
	if s == nil {
		return
	}
	if t, _, ok := g.onShift(s); ok {
		g.look(t, s, s.ws, s.patient)
		g.mal(name, s, s.patient, t, RuleSelf, RuleNoRelationship)
	}
}

// relative returns a patient of s's household who is not s, or nil.
func relative(s *staffer) *pat {
	if s.household == nil {
		return nil
	}
	for _, p := range s.household.people {
		if p != s.patient && p.employee == nil && !p.deceased && !p.honey && len(p.labels) == 0 {
			return p
		}
	}
	return nil
}

// householdOf returns where s lives, if among the patients' streets.
func householdOf(s *staffer) *household { return s.household }

func (g *gen) scFamily(name string) {
	s := g.pick(func(s *staffer) bool { return wardNurse(s) && relative(s) != nil })
	if s == nil {
		return
	}
	if t, _, ok := g.onShift(s); ok {
		p := relative(s)
		g.look(t, s, s.ws, p)
		g.mal(name, s, p, t, RuleFamily, RuleNoRelationship)
	}
	// Near miss: a nurse caring for a patient who shares her (common)
	// family name but lives elsewhere.
	n := g.pick(wardNurse)
	if n == nil {
		return
	}
	for _, p := range g.patients {
		if p.person.family == n.person.family && p.home != householdOf(n) && p.employee == nil && !p.deceased && len(p.labels) == 0 && !p.busy.After(g.day(g.cfg.Warmup)) {
			if t, _, ok := g.onShift(n); ok {
				g.careFor(name, n, p, t, RuleFamily, RuleNoRelationship)
			}
			return
		}
	}
}

// neighbourOf returns a patient on s's street, in another household.
func (g *gen) neighbourOf(s *staffer) *pat {
	h := householdOf(s)
	if h == nil {
		return nil
	}
	for _, x := range h.street.households {
		if x == h {
			continue
		}
		for _, p := range x.people {
			if p.employee == nil && !p.deceased && !p.honey && len(p.labels) == 0 && p.person.family != s.person.family && p.person.phone != s.person.phone {
				return p
			}
		}
	}
	return nil
}

func (g *gen) scNeighbour(name string) {
	s := g.pick(func(s *staffer) bool {
		return s.role == rolePhysician && clinical(s) && g.neighbourOf(s) != nil
	})
	if s == nil {
		return
	}
	if t, _, ok := g.onShift(s); ok {
		p := g.neighbourOf(s)
		g.look(t, s, s.ws, p)
		g.mal(name, s, p, t, RuleNeighbour, RuleNoRelationship)
	}
	// Near miss: same street name, another postal code: another street.
	n := g.pick(func(s *staffer) bool { return wardNurse(s) && householdOf(s) != nil })
	if n == nil {
		return
	}
	home := householdOf(n).street
	for _, st := range g.streets {
		if st.name == home.name && st.postal != home.postal {
			for _, h := range st.households {
				for _, p := range h.people {
					if p.employee == nil && !p.deceased && !p.honey && len(p.labels) == 0 && p.person.family != n.person.family && !p.busy.After(g.day(g.cfg.Warmup)) {
						if t, _, ok := g.onShift(n); ok {
							g.careFor(name, n, p, t, RuleNeighbour, RuleNoRelationship)
						}
						return
					}
				}
			}
		}
	}
}

func (g *gen) colleague(s *staffer) *pat {
	for _, p := range g.patients {
		if p.employee != nil && p.employee != s && p.home != householdOf(s) && p.person.family != s.person.family && !p.busy.After(g.day(g.cfg.Warmup)) && (s.household == nil || p.home.street != s.household.street) {
			return p
		}
	}
	return nil
}

func (g *gen) scCoworker(name string) {
	s := g.pick(wardNurse)
	if s == nil {
		return
	}
	if t, _, ok := g.onShift(s); ok {
		if p := g.colleague(s); p != nil {
			g.look(t, s, s.ws, p)
			g.mal(name, s, p, t, RuleCoworker, RuleNoRelationship)
		}
	}
	n := g.pick(wardNurse)
	if n == nil {
		return
	}
	if t, _, ok := g.onShift(n); ok {
		if p := g.colleague(n); p != nil && p.employee != nil {
			p.busy = t.Add(48 * time.Hour)
			g.careFor(name, n, p, t, RuleCoworker, RuleNoRelationship)
		}
	}
}

func (g *gen) vip(exclude *pat) *pat {
	for _, p := range g.patients {
		if p.hasLabel(detect.LabelVIP) && p != exclude && !p.deceased && p.busy.Before(g.day(g.cfg.Warmup)) {
			return p
		}
	}
	return nil
}

func (p *pat) hasLabel(l string) bool { return slices.Contains(p.labels, l) }

func (g *gen) scVIP(name string) {
	s := g.pick(func(s *staffer) bool { return s.role == roleBilling && s != g.billing[0] })
	p := g.vip(nil)
	if s == nil || p == nil {
		return
	}
	if t, _, ok := g.onShift(s); ok {
		g.emit(g.event(t, s, s.ws, "read", "Patient", p))
		g.emit(g.event(t.Add(time.Minute), s, s.ws, "read", "Encounter", p))
		g.mal(name, s, p, t, RuleVIP, RuleNoRelationship)
	}
	n := g.pick(wardNurse)
	q := g.vip(p)
	if n == nil || q == nil {
		return
	}
	if t, _, ok := g.onShift(n); ok {
		q.busy = t.Add(48 * time.Hour)
		g.careFor(name, n, q, t, RuleVIP, RuleNoRelationship)
	}
}

func (g *gen) scDeceased(name string) {
	s := g.pick(wardNurse)
	if s == nil {
		return
	}
	for _, p := range g.patients {
		if p.deceased && p.busy.IsZero() && !g.everRelated(s, p) {
			if t, _, ok := g.onShift(s); ok {
				g.look(t, s, s.ws, p)
				g.mal(name, s, p, t, RuleDeceased, RuleNoRelationship)
			}
			break
		}
	}
	// The near miss is in the background: billing opens the claims of
	// patients who died in intensive care (labelled there).
}

func (g *gen) scSnooping(name string) {
	s := g.pick(wardNurse)
	if s == nil {
		return
	}
	for range 3 {
		t, _, ok := g.onShift(s)
		p := g.stranger(s)
		if !ok || p == nil {
			continue
		}
		g.look(t, s, s.ws, p)
		g.mal(name, s, p, t, RuleNoRelationship)
	}
	// Near miss: a physician reviews a patient twenty minutes before the
	// admission is registered.
	n := g.pick(func(s *staffer) bool { return s.role == rolePhysician && clinical(s) && s.dept.id != "emergency" })
	if n == nil {
		return
	}
	t, _, ok := g.onShift(n)
	p := g.stranger(n)
	if !ok || p == nil {
		return
	}
	start := t.Add(20 * time.Minute)
	p.busy = start.Add(48 * time.Hour)
	g.admit(p, n.dept, start, start.Add(48*time.Hour), start)
	g.look(t, n, n.ws, p)
	g.near(name, n, p, t, RuleNoRelationship)
}

// strangers returns n distinct strangers to s.
func (g *gen) strangers(s *staffer, n int) []*pat {
	seen := map[*pat]bool{}
	var out []*pat
	for range n * 3 {
		if p := g.stranger(s); p != nil && !seen[p] {
			seen[p] = true
			out = append(out, p)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

func (g *gen) scVolume(name string) {
	s, t, _, ok := g.pickOnShift(func(s *staffer) bool { return s.role == rolePhysician && clinical(s) && s.shift == shiftOffice })
	if !ok {
		return
	}
	g.mal(name, s, nil, t, RuleVolume)
	ps := g.strangers(s, 120+g.r.IntN(80))
	for i, p := range ps {
		at := t.Add(time.Duration(i) * 50 * time.Second)
		g.emit(g.event(at, s, s.ws, "read", "Patient", p))
		g.emit(g.event(at.Add(15*time.Second), s, s.ws, "read", "Observation", p))
		g.mal(name, s, p, at)
	}
	// Near miss: a nurse covers the evening after her day shift, with
	// her ward's patients.
	n, _, day, ok := g.pickOnShift(func(s *staffer) bool { return wardNurse(s) && s.shift == shiftDay && s.dept.id != "emergency" })
	if !ok {
		return
	}
	a, b := g.at(day, 15, 0), g.at(day, 23, 0)
	stays := overlapping(n.dept.stays, a, b)
	if len(stays) == 0 {
		return
	}
	for range poisson(g.r, n.rate*4) {
		st := stays[g.r.IntN(len(stays))]
		from, to := later(st.teamFrom, a), earlier(st.end, b)
		if to.After(from) {
			g.access(g.between(from, to), n, n.ws, st.p)
		}
	}
	g.near(name, n, nil, a, RuleVolume, RuleAfterHours)
}

func (g *gen) scPeer(name string) {
	s, t, day, ok := g.pickOnShift(func(s *staffer) bool { return s.role == roleBilling && s != g.billing[0] })
	if !ok {
		return
	}
	g.mal(name, s, nil, t, RulePeer)
	i := 0
	for _, w := range g.wards {
		for _, st := range overlapping(w.stays, g.day(day), g.day(day+1)) {
			if i >= 30 {
				break
			}
			at := t.Add(time.Duration(i) * 3 * time.Minute)
			for _, rt := range []string{"Observation", "DiagnosticReport", "Condition"} {
				g.emit(g.event(at, s, s.ws, "read", rt, st.p))
				at = at.Add(20 * time.Second)
			}
			g.mal(name, s, st.p, at)
			i++
		}
	}
}

func (g *gen) scAfterHours(name string) {
	s := g.pick(func(s *staffer) bool {
		return s.role == rolePhysician && clinical(s) && s.shift == shiftOffice && s.vpn == "" && s.dept.id != "emergency"
	})
	if s == nil {
		return
	}
	day := g.scenarioDay()
	t := g.at(day, 2, 20+g.r.IntN(30))
	stays := overlapping(s.dept.stays, t, t.Add(time.Hour))
	if len(stays) == 0 {
		return
	}
	g.login(t, s, s.ws, true)
	g.mal(name, s, nil, t, RuleAfterHours)
	for i := range 6 {
		st := stays[g.r.IntN(len(stays))]
		at := t.Add(time.Duration(2+i*4) * time.Minute)
		g.access(at, s, s.ws, st.p)
		g.mal(name, s, st.p, at)
	}
	// Near miss: a night nurse at 03:00 is her usual self.
	n := g.pick(func(s *staffer) bool { return wardNurse(s) && s.shift == shiftNight })
	if n != nil {
		g.near(name, n, nil, g.at(g.cfg.Warmup, 23, 0), RuleAfterHours)
	}
}

func (g *gen) scNameSearch(name string) {
	s, t, _, ok := g.pickOnShift(wardNurse)
	if !ok {
		return
	}
	g.mal(name, s, nil, t, RuleNameSearch)
	for i := range 8 {
		at := t.Add(time.Duration(i) * 6 * time.Minute)
		hits := g.strangers(s, 2+g.r.IntN(3))
		if len(hits) == 0 {
			continue
		}
		ev := g.event(at, s, s.ws, "search", "Patient", nil)
		ev.Params = []string{"name"}
		for _, p := range hits {
			ev.Patients = append(ev.Patients, p.id)
			g.mal(name, s, p, at)
		}
		ev.Count = len(hits)
		g.emit(ev)
		if i%2 == 0 {
			g.look(at.Add(time.Minute), s, s.ws, hits[0])
			g.mal(name, s, hits[0], at, RuleNameSearch, RuleNoRelationship)
		}
	}
	// Near miss: check-in at a clinic desk is a search by name and an
	// open, with an appointment.
	f := g.pick(func(s *staffer) bool { return s.role == roleFrontDesk && s.dept.kind == kindClinic })
	if f == nil {
		return
	}
	day := g.scenarioDay()
	for !weekday(g.day(day)) {
		day = g.cfg.Warmup + (day-g.cfg.Warmup+1)%(g.cfg.Days-g.cfg.Warmup)
		if day == g.cfg.Warmup && !weekday(g.day(day)) {
			return
		}
	}
	p := g.stranger(f)
	if p == nil {
		return
	}
	at := g.at(day, 10, 0)
	g.rel(f.id, p, detect.KindAppointment, g.day(day), g.day(day+1), "ingest:"+g.cfg.System+"/Appointment/near-"+f.id, g.day(day-1))
	ev := g.event(at, f, f.ws, "search", "Patient", p)
	ev.Params = []string{"name"}
	g.emit(ev)
	g.emit(g.event(at.Add(30*time.Second), f, f.ws, "read", "Patient", p))
	g.near(name, f, p, at, RuleNameSearch, RuleNoRelationship)
}

// export emits an export of ps (and count records in all) by s at t.
func (g *gen) export(t time.Time, s *staffer, src, action string, ps []*pat, count int) *detect.Event {
	ev := g.event(t, s, src, action, "Patient", nil)
	for _, p := range ps {
		ev.Patients = append(ev.Patients, p.id)
	}
	ev.Count = count
	return g.emit(ev)
}

func (g *gen) scBulkExport(name string) {
	s, t, _, ok := g.pickOnShift(func(s *staffer) bool { return s.role == rolePhysician && clinical(s) && s.shift == shiftOffice })
	if !ok {
		return
	}
	ps := g.strangers(s, 150)
	g.export(t, s, s.ws, phivault.ActionExport, ps, 4000+g.r.IntN(2000))
	big := g.event(t.Add(20*time.Minute), s, s.ws, "search", "Observation", nil)
	big.Params, big.Count = []string{"code", "date"}, 2500+g.r.IntN(1000)
	for _, p := range ps[:min(len(ps), 60)] {
		big.Patients = append(big.Patients, p.id)
	}
	g.emit(big)
	g.mal(name, s, nil, t, RuleBulkExport)
	g.mal(name, s, nil, big.Time)
	for _, p := range ps {
		g.mal(name, s, p, t)
	}
}

func (g *gen) scFailedLogins(name string) {
	s, t, _, ok := g.pickOnShift(wardNurse)
	if !ok {
		return
	}
	src := "203.0.113.17"
	for i := range 25 {
		g.login(t.Add(time.Duration(i)*9*time.Second), s, src, false)
	}
	g.mal(name, s, nil, t, RuleFailedLogins)
	g.mal(name, s, nil, t.Add(24*9*time.Second))
	// Near miss: three typos, then in.
	n := g.pick(wardNurse)
	if n == nil {
		return
	}
	if t, _, ok := g.onShift(n); ok {
		for i := range 3 {
			g.login(t.Add(time.Duration(i)*20*time.Second), n, n.ws, false)
		}
		g.login(t.Add(70*time.Second), n, n.ws, true)
		g.near(name, n, nil, t, RuleFailedLogins)
	}
}

// ghost returns the id of an account that does not exist.
func (g *gen) ghost() *staffer {
	g.nGhost++
	return &staffer{id: g.ns(fmt.Sprintf("u%04d", 9000+g.nGhost)), roles: nil, status: phivault.AccountActive}
}

func (g *gen) scStuffing(name string) {
	day := g.scenarioDay()
	t := g.at(day, g.r.IntN(24), g.r.IntN(60))
	src := "203.0.113.77"
	targets := make([]*staffer, 0, 80)
	for _, i := range g.r.Perm(len(g.staff))[:min(60, len(g.staff))] {
		targets = append(targets, g.staff[i])
	}
	for len(targets) < 80 {
		targets = append(targets, g.ghost())
	}
	for i, s := range targets {
		at := t.Add(time.Duration(i) * 7 * time.Second)
		ev := g.event(at, s, src, detect.ActionLoginFailed, "", nil)
		ev.Roles, ev.Department, ev.OK, ev.Outcome = nil, "", false, phivault.EUNAUTHORIZED
		g.emit(ev)
		g.mal(name, s, nil, at, RuleStuffing)
	}
	// Near miss: a shift change through the remote-access gateway: many
	// accounts, one address, nearly all succeed.
	gw := "10.0.0.2"
	at := g.at(g.scenarioDay(), 6, 50)
	for i, k := range g.r.Perm(len(g.staff))[:min(30, len(g.staff))] {
		s := g.staff[k]
		if g.used[s.id] || s.status != phivault.AccountActive {
			continue
		}
		x := at.Add(time.Duration(i) * 11 * time.Second)
		if i%10 == 3 {
			g.login(x.Add(-20*time.Second), s, gw, false)
		}
		g.login(x, s, gw, true)
		g.near(name, s, nil, x, RuleStuffing, RuleNewSource)
	}
}

func (g *gen) scSpraying(name string) {
	day := g.scenarioDay()
	t := g.at(day, g.r.IntN(20), g.r.IntN(60))
	var targets []*staffer
	for _, i := range g.r.Perm(len(g.staff))[:min(50, len(g.staff))] {
		targets = append(targets, g.staff[i])
	}
	for round := range 3 {
		for i, s := range targets {
			src := fmt.Sprintf("192.0.2.%d", 10+(i+round)%12)
			at := t.Add(time.Duration(round)*time.Hour + time.Duration(i)*67*time.Second)
			ev := g.event(at, s, src, detect.ActionLoginFailed, "", nil)
			ev.OK, ev.Outcome = false, phivault.EUNAUTHORIZED
			g.emit(ev)
			g.mal(name, s, nil, at, RuleSpraying)
		}
	}
}

func (g *gen) scNewSource(name string) {
	s, t, day, ok := g.pickOnShift(wardNurse)
	if !ok {
		return
	}
	src := "203.0.113.50"
	g.login(t, s, src, true)
	g.mal(name, s, nil, t, RuleNewSource)
	a, b := g.shiftWindow(s, day)
	if stays := overlapping(s.dept.stays, a, b); len(stays) > 0 {
		for i := range 3 {
			st := stays[g.r.IntN(len(stays))]
			if at := t.Add(time.Duration(1+i*7) * time.Minute); !at.Before(st.teamFrom) && at.Before(st.end) {
				g.access(at, s, src, st.p)
			}
		}
	}
	// Near miss: a new workstation on her own floor.
	n := g.pick(wardNurse)
	if n == nil {
		return
	}
	if t, _, ok := g.onShift(n); ok {
		g.login(t, n, fmt.Sprintf("10.%d.%d.%d", n.dept.subnet, 9, 10+g.r.IntN(200)), true)
		g.near(name, n, nil, t, RuleNewSource)
	}
}

func (g *gen) scTravel(name string) {
	s, t, _, ok := g.pickOnShift(func(s *staffer) bool { return clinical(s) && s.role == rolePhysician && s.shift == shiftOffice })
	if !ok {
		return
	}
	g.login(t, s, s.ws, true)
	far := "192.0.2.200"
	g.login(t.Add(3*time.Minute), s, far, true)
	g.emit(g.event(t.Add(4*time.Minute), s, far, "search", "Observation", nil))
	g.mal(name, s, nil, t.Add(3*time.Minute), RuleTravel, RuleNewSource)
	// Near miss: the same physician's colleague moves between floors.
	n := g.pick(func(s *staffer) bool { return clinical(s) && s.role == rolePhysician })
	if n == nil {
		return
	}
	if t, _, ok := g.onShift(n); ok {
		g.login(t, n, n.ws, true)
		g.login(t.Add(10*time.Minute), n, fmt.Sprintf("10.%d.%d.%d", g.wards[1].subnet, 2, 20), true)
		g.near(name, n, nil, t, RuleTravel)
	}
}

func (g *gen) scSuspended(name string) {
	s := g.pick(wardNurse)
	if s == nil {
		return
	}
	day := g.scenarioDay()
	s.status = phivault.AccountSuspended
	g.add(g.at(day, 9, 0), prioRoster, detect.Record{Kind: detect.RecordStaff, User: g.user(s)})
	g.off(s, g.at(day, 9, 0), g.day(g.cfg.Days+1))
	t := g.at(day, 21, g.r.IntN(60))
	g.login(t, s, s.ws, true)
	g.emit(g.event(t.Add(2*time.Minute), s, s.ws, "search", "Patient", nil))
	g.mal(name, s, nil, t, RuleSuspended)
	// Near miss: suspended in the morning, reactivated at noon, back at
	// work in the afternoon.
	n, _, d2, ok := g.pickOnShift(func(s *staffer) bool { return wardNurse(s) && s.shift == shiftEvening })
	if !ok {
		return
	}
	n.status = phivault.AccountSuspended
	g.add(g.at(d2, 9, 0), prioRoster, detect.Record{Kind: detect.RecordStaff, User: g.user(n)})
	n.status = phivault.AccountActive
	g.add(g.at(d2, 12, 0), prioRoster, detect.Record{Kind: detect.RecordStaff, User: g.user(n)})
	g.off(n, g.at(d2, 9, 0), g.at(d2, 12, 0))
	g.near(name, n, nil, g.at(d2, 15, 0), RuleSuspended)
}

// oddHour returns hour:min of the first weekday wd after the warm-up, or
// of the last day.
func (g *gen) oddHour(wd time.Weekday, hour, min int) time.Time {
	for d := g.cfg.Warmup; d < g.cfg.Days; d++ {
		if g.day(d).Weekday() == wd {
			return g.at(d, hour, min)
		}
	}
	return g.at(g.cfg.Days-1, hour, min)
}

func (g *gen) scRoleGrant(name string) {
	a := g.pick(func(s *staffer) bool { return s.role == roleSecurityAdmin && s != g.admins[0] })
	n := g.pick(wardNurse)
	if a == nil || n == nil {
		return
	}
	t := g.oddHour(time.Saturday, 23, 40)
	g.login(t.Add(-3*time.Minute), a, a.ws, true)
	// The roster says what changed before the change's event arrives, as
	// the vault's directory does on an account change.
	n.roles = append(n.roles, roleSecurityAdmin)
	g.add(t, prioRoster, detect.Record{Kind: detect.RecordStaff, User: g.user(n)})
	ev := g.event(t, a, a.ws, phivault.ActionAccountChange, "Account", nil)
	ev.ResourceID, ev.Decision = n.id, "grant role "+roleSecurityAdmin
	g.emit(ev)
	g.mal(name, a, nil, t, RuleRoleGrant)
	g.mal(name, n, nil, t)
}

func (g *gen) scPolicyReload(name string) {
	a := g.pick(func(s *staffer) bool { return s.role == roleSecurityAdmin && s != g.admins[0] })
	if a == nil {
		return
	}
	t := g.oddHour(time.Sunday, 3, 10)
	g.login(t.Add(-4*time.Minute), a, a.ws, true)
	ev := g.event(t, a, a.ws, phivault.ActionPolicyChange, "Policy", nil)
	ev.Decision = "reload policies"
	g.emit(ev)
	g.mal(name, a, nil, t, RulePolicy)
}

func (g *gen) scBreakGlass(name string) {
	s, t, _, ok := g.pickOnShift(func(s *staffer) bool { return s.role == rolePhysician && clinical(s) && s.dept.id != "emergency" })
	if !ok {
		return
	}
	for i, p := range g.strangers(s, 8) {
		at := t.Add(time.Duration(i) * 25 * time.Minute)
		g.glass(at, s, s.ws, p)
		g.mal(name, s, p, at, RuleBreakGlass)
	}
}

func (g *gen) scMassUpdate(name string) {
	s, t, _, ok := g.pickOnShift(wardNurse)
	if !ok {
		return
	}
	ps := g.strangers(s, 150)
	if len(ps) == 0 {
		return
	}
	g.mal(name, s, nil, t, RuleMassUpdate)
	for i := range 400 {
		p := ps[i%len(ps)]
		action, rt := "update", []string{"Observation", "Condition", "MedicationRequest"}[i%3]
		if i%4 == 3 {
			action = "delete"
		}
		at := t.Add(time.Duration(i) * 1200 * time.Millisecond)
		g.emit(g.event(at, s, s.ws, action, rt, p))
		g.mal(name, s, p, at)
	}
	// Near miss: a medication round, thirty updates on her own ward.
	n, t2, day, ok := g.pickOnShift(func(s *staffer) bool { return wardNurse(s) && s.dept.id != "emergency" })
	if !ok {
		return
	}
	a, b := g.shiftWindow(n, day)
	stays := overlapping(n.dept.stays, a, b)
	if len(stays) == 0 {
		return
	}
	k := 0
	for i := range 30 {
		st := stays[g.r.IntN(len(stays))]
		at := t2.Add(time.Duration(i) * 40 * time.Second)
		if at.Before(st.teamFrom) || !at.Before(st.end) {
			continue
		}
		g.emit(g.event(at, n, n.ws, "update", "MedicationAdministration", st.p))
		k++
	}
	if k > 0 {
		g.near(name, n, nil, t2, RuleMassUpdate)
	}
}

func (g *gen) scCuriousClerk(name string) {
	f := g.pick(func(s *staffer) bool { return s.role == roleFrontDesk })
	if f == nil {
		return
	}
	var days []int
	for d := g.cfg.Warmup; d < g.cfg.Days && len(days) < 3; d++ {
		if g.works(f, d) {
			days = append(days, d)
		}
	}
	if len(days) == 0 {
		return
	}
	type target struct {
		p     *pat
		rules []string
	}
	var ts []target
	if p := g.neighbourOf(f); p != nil {
		ts = append(ts, target{p, []string{RuleNeighbour, RuleNoRelationship}})
	}
	if p := g.colleague(f); p != nil {
		ts = append(ts, target{p, []string{RuleCoworker, RuleNoRelationship}})
	}
	if p := g.vip(nil); p != nil {
		ts = append(ts, target{p, []string{RuleVIP, RuleNoRelationship}})
	}
	for _, p := range g.strangers(f, 3) {
		ts = append(ts, target{p, []string{RuleNoRelationship}})
	}
	for i, x := range ts {
		d := days[i%len(days)]
		a, b := g.shiftWindow(f, d)
		at := g.between(a.Add(time.Hour), b.Add(-time.Hour))
		ev := g.event(at, f, f.ws, "search", "Patient", x.p)
		ev.Params = []string{"name"}
		g.emit(ev)
		g.look(at.Add(40*time.Second), f, f.ws, x.p)
		g.mal(name, f, x.p, at, x.rules...)
	}
}

func (g *gen) scStolen(name string) {
	s := g.pick(func(s *staffer) bool { return wardNurse(s) && s.shift == shiftDay })
	if s == nil {
		return
	}
	day := g.scenarioDay()
	t := g.at(day, 2, g.r.IntN(30))
	src := "192.0.2.66"
	for i := range 4 {
		g.login(t.Add(time.Duration(i)*15*time.Second), s, src, false)
	}
	in := t.Add(70 * time.Second)
	g.login(in, s, src, true)
	g.mal(name, s, nil, in, RuleNewSource, RuleAfterHours)
	ps := g.strangers(s, 40)
	for i, p := range ps {
		at := in.Add(time.Duration(1+i) * 75 * time.Second)
		g.look(at, s, src, p)
		g.mal(name, s, p, at, RuleNoRelationship)
	}
	end := in.Add(time.Duration(len(ps)+2) * 75 * time.Second)
	g.export(end, s, src, phivault.ActionExport, ps, 600)
}

func (g *gen) scDeparting(name string) {
	s := g.pick(func(s *staffer) bool { return s.role == rolePhysician && clinical(s) && s.shift == shiftOffice })
	if s == nil {
		return
	}
	var days []int
	for d := g.cfg.Warmup; d < g.cfg.Days-1 && len(days) < 3; d++ {
		if weekday(g.day(d)) {
			days = append(days, d)
		}
	}
	if len(days) == 0 {
		return
	}
	var past []*pat
	for _, st := range s.dept.stays {
		if st.end.Before(g.day(days[0])) {
			past = append(past, st.p)
		}
	}
	first := g.at(days[0], 11, g.r.IntN(60))
	g.mal(name, s, nil, first, RuleBulkExport)
	for i, d := range days {
		at := g.at(d, 11, g.r.IntN(60))
		if i == 0 {
			at = first
		}
		n := min(len(past), 100+g.r.IntN(100))
		g.r.Shuffle(len(past), func(a, b int) { past[a], past[b] = past[b], past[a] })
		ps := slices.Clone(past[:n])
		if i == 1 {
			// "All my patients" also matched two decoys.
			ps = append(ps, g.honey[0], g.honey[len(g.honey)-1])
			g.mal(name, s, g.honey[0], at, RuleHoneytoken)
			g.mal(name, s, g.honey[len(g.honey)-1], at, RuleHoneytoken)
		}
		g.export(at, s, s.ws, phivault.ActionExport, ps, 300+len(ps)*4)
		for j, p := range ps[:min(len(ps), 20)] {
			pr := g.event(at.Add(time.Duration(10+j)*time.Minute), s, s.ws, detect.ActionPrint, "Patient", p)
			g.emit(pr)
		}
		for _, p := range ps {
			g.mal(name, s, p, at)
		}
	}
	// Gone: deprovisioned the evening after the last day, then a sign-in.
	last := days[len(days)-1]
	s.status = phivault.AccountDeprovisioned
	g.add(g.at(last, 18, 0), prioRoster, detect.Record{Kind: detect.RecordStaff, User: g.user(s)})
	g.off(s, g.at(last, 18, 0), g.day(g.cfg.Days+1))
	t := g.at(last+1, 10, g.r.IntN(60))
	g.login(t, s, s.ws, true)
	g.mal(name, s, nil, t, RuleSuspended)
}

func (g *gen) scCelebrity(name string) {
	p := g.vip(nil)
	if p == nil {
		return
	}
	day := g.scenarioDay()
	arrive := g.at(day, 9+g.r.IntN(8), g.r.IntN(60))
	ed, icu := g.wards[0], g.byID["icu"]
	g.admit(p, ed, arrive, arrive.Add(4*time.Hour), arrive)
	g.admit(p, icu, arrive.Add(4*time.Hour), arrive.Add(5*24*time.Hour), arrive.Add(4*time.Hour))
	// The care team looks, legitimately.
	for _, s := range append(slices.Clone(icu.nurses[:min(4, len(icu.nurses))]), icu.physicians[:min(2, len(icu.physicians))]...) {
		at := arrive.Add(time.Duration(5+g.r.IntN(40)) * time.Hour)
		g.look(at, s, s.ws, p)
		g.near(name, s, p, at, RuleVIP, RuleNoRelationship)
	}
	// Dozens of others look too, within two days.
	n := 0
	for _, k := range g.r.Perm(len(g.staff)) {
		s := g.staff[k]
		if n >= 30+g.r.IntN(15) {
			break
		}
		if s.dept == nil || s.dept == ed || s.dept == icu || s.status != phivault.AccountActive || (s.role != roleNurse && s.role != rolePhysician && s.role != roleFrontDesk && s.role != roleBilling) {
			continue
		}
		day := int(arrive.Sub(g.cfg.Start).Hours() / 24)
		var at time.Time
		for d := day; d <= day+2 && d < g.cfg.Days; d++ {
			if g.works(s, d) {
				a, b := g.shiftWindow(s, d)
				if b.After(arrive) && !b.After(g.day(g.cfg.Days)) {
					at = g.between(later(a, arrive.Add(30*time.Minute)), b)
					break
				}
			}
		}
		if at.IsZero() {
			continue
		}
		for i := range 1 + g.r.IntN(3) {
			g.look(at.Add(time.Duration(i)*17*time.Minute), s, s.ws, p)
		}
		g.mal(name, s, p, at, RuleVIP, RuleNoRelationship)
		n++
	}
}

func (g *gen) scKeySeal(name string) {
	a := g.pick(func(s *staffer) bool { return s.role == roleSecurityAdmin && s != g.admins[0] })
	if a == nil {
		return
	}
	t := g.oddHour(time.Sunday, 2, 40)
	g.login(t.Add(-2*time.Minute), a, a.ws, true)
	rot := g.event(t, a, a.ws, phivault.ActionKeyRotate, "Key", nil)
	rot.ResourceID = "kek"
	g.emit(rot)
	g.emit(g.event(t.Add(4*time.Minute), a, a.ws, phivault.ActionSeal, "", nil))
	g.emit(g.event(t.Add(9*time.Minute), a, a.ws, phivault.ActionUnseal, "", nil))
	g.mal(name, a, nil, t, RuleKeyOperation, RuleSealUnseal)
	g.mal(name, a, nil, t.Add(9*time.Minute))
}

// off takes s off work from from to to: the ordinary activity generated
// for s in that time is dropped (the scenarios' own stays).
func (g *gen) off(s *staffer, from, to time.Time) {
	g.offWork = append(g.offWork, offWork{s.id, from, to})
}

type offWork struct {
	user     string
	from, to time.Time
}

// working reports whether the ordinary record it may stay: it is not an
// event of someone off work.
func (g *gen) working(it *item) bool {
	if it.n >= g.nBackground || it.rec.Event == nil {
		return true
	}
	for _, o := range g.offWork {
		if it.rec.Event.User == o.user && !it.t.Before(o.from) && it.t.Before(o.to) {
			return false
		}
	}
	return true
}
