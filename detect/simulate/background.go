package simulate

import (
	"fmt"
	"slices"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// works reports whether s is on the rota on day d.
func (g *gen) works(s *staffer, d int) bool {
	if s.status != phivault.AccountActive {
		return false
	}
	wd := g.day(d).Weekday()
	weekend := wd == time.Saturday || wd == time.Sunday
	switch s.shift {
	case shiftOffice, shiftResident:
		if weekend {
			return s.weekendCall && (d/7+s.idx)%2 == 0
		}
		return true
	}
	return (d+s.offset)%7 < 5
}

// shiftWindow returns when s's shift on day d starts and ends.
func (g *gen) shiftWindow(s *staffer, d int) (time.Time, time.Time) {
	switch s.shift {
	case shiftDay:
		return g.at(d, 7, 0), g.at(d, 15, 0)
	case shiftEvening:
		return g.at(d, 15, 0), g.at(d, 23, 0)
	case shiftNight:
		return g.at(d, 23, 0), g.at(d+1, 7, 0)
	case shiftResident:
		return g.at(d, 7, 0), g.at(d, 17, 0)
	}
	return g.at(d, 8, 0), g.at(d, 17, 0)
}

// rotation is the ward resident r works in during week w, and when.
func (g *gen) rotation(r *staffer, week int) (*dept, time.Time, time.Time) {
	d := g.wards[(r.idx+week)%len(g.wards)]
	return d, g.day(week * 7), g.day(week*7 + 7)
}

// deptOn returns the department s works in on day d, or nil.
func (g *gen) deptOn(s *staffer, d int) *dept {
	switch {
	case s.resident:
		dp, _, _ := g.rotation(s, d/7)
		return dp
	case s.float:
		return g.floatDept[[2]int{s.idx, d}]
	}
	return s.dept
}

// workingIn returns the department s works in at t: the home department,
// or for residents and float nurses the one of the shift t falls in.
func (g *gen) workingIn(s *staffer, t time.Time) *dept {
	if s.dept != nil || (!s.resident && !s.float) {
		return s.dept
	}
	day := int(t.Sub(g.cfg.Start) / (24 * time.Hour))
	if s.shift == shiftNight && t.Sub(g.day(day)) < 12*time.Hour {
		day-- // the night shift that started the evening before
	}
	return g.deptOn(s, max(day, 0))
}

// background simulates the hospital's ordinary days.
func (g *gen) background() {
	days := g.cfg.Days
	// Float nurses get a ward for every day they work.
	for _, s := range g.floats {
		for d := range days {
			g.floatDept[[2]int{s.idx, d}] = g.wards[1+g.r.IntN(len(g.wards)-1)]
		}
	}
	var totalWeight float64
	for _, d := range g.wards[1:] {
		totalWeight += d.weight
	}
	admits := float64(g.cfg.Patients) / 45
	edVisits := float64(g.cfg.Patients) / 50
	for day := range days {
		for _, w := range g.wards[1:] {
			for range poisson(g.r, admits*w.weight/totalWeight) {
				start := g.at(day, 6+g.r.IntN(16), g.r.IntN(60))
				p := g.freePatient(start, w)
				if p == nil {
					continue
				}
				los := time.Duration((0.3 + g.r.ExpFloat64()*w.los) * 24 * float64(time.Hour))
				st := g.admit(p, w, start, start.Add(los), start)
				if st.dies = w.id == "icu" && g.r.Float64() < 0.04; st.dies {
					p.busy = g.day(g.cfg.Days + 365) // never admitted again
				}
			}
		}
		ed := g.wards[0]
		for range poisson(g.r, edVisits) {
			start := g.at(day, 0, g.r.IntN(24*60))
			p := g.freePatient(start, ed)
			if p == nil {
				continue
			}
			end := start.Add(time.Duration(2+g.r.IntN(6)) * time.Hour)
			teamFrom := start
			btg := g.r.Float64() < 0.04
			if btg {
				teamFrom = start.Add(20 * time.Minute) // registered once stabilised
			}
			st := g.admit(p, ed, start, end, teamFrom)
			if btg {
				g.breakGlass(st)
			}
			if w := g.wards[1+g.r.IntN(len(g.wards)-1)]; g.r.Float64() < 0.2 && !g.worksIn(p.home, w) {
				los := time.Duration((0.5 + g.r.ExpFloat64()*w.los) * 24 * float64(time.Hour))
				g.admit(p, w, end, end.Add(los), end)
			}
		}
		if weekday(g.day(day)) {
			for _, c := range g.clinics {
				for range poisson(g.r, admits*1.2*c.weight) {
					g.appointment(c, day)
				}
			}
		}
	}
	for _, d := range g.depts {
		slices.SortFunc(d.stays, func(a, b *stay) int { return a.start.Compare(b.start) })
	}
	g.rotations()
	g.floatTeams()
	g.consults()
	for _, s := range g.staff {
		for day := range days {
			if g.works(s, day) {
				g.shiftWork(s, day)
			}
		}
		if s.vpn != "" {
			g.homeWork(s)
		}
	}
	g.billingWork()
	g.adminWork()
}

// freePatient returns a living, real patient not in hospital at t, or
// nil. Staff and their households are cared for elsewhere than in their
// own department (a hospital's usual practice; the scenarios break it).
func (g *gen) freePatient(t time.Time, d *dept) *pat {
	for range 20 {
		p := g.patients[g.r.IntN(len(g.patients))]
		if !p.deceased && !p.busy.After(t) && !slices.Contains(p.labels, detect.LabelVIP) && !g.worksIn(p.home, d) {
			return p
		}
	}
	return nil
}

// worksIn reports whether someone of household h works in d (or floats,
// rotates or bills, and so may see patients of any department).
func (g *gen) worksIn(h *household, d *dept) bool {
	for _, s := range h.staff {
		if s.dept == d || s.float || s.resident || s.role == roleBilling {
			return true
		}
	}
	return false
}

// admit makes a stay of p in d and the care team's relationships, from
// teamFrom to the end of the stay.
func (g *gen) admit(p *pat, d *dept, start, end, teamFrom time.Time) *stay {
	g.nStay++
	st := &stay{id: fmt.Sprintf("e%06d", g.nStay), p: p, dept: d, start: start, end: end, teamFrom: teamFrom}
	p.busy = end
	d.stays = append(d.stays, st)
	origin := "ingest:" + g.cfg.System + "/Encounter/" + st.id
	for _, s := range d.nurses {
		g.rel(s.id, p, detect.KindCareTeam, teamFrom, end, origin, teamFrom)
	}
	for _, s := range d.physicians {
		g.rel("Practitioner/"+s.practitioner, p, detect.KindEncounter, teamFrom, end, origin, teamFrom)
	}
	for _, s := range d.desk {
		g.rel(s.id, p, detect.KindEncounter, start, end, origin, start)
	}
	return st
}

// rel emits a relationship at sendAt.
func (g *gen) rel(user string, p *pat, kind string, start, end time.Time, origin string, sendAt time.Time) {
	g.add(sendAt, prioRelationship, detect.Record{Kind: detect.RecordRelationship, Relationship: &detect.Relationship{
		User: user, Patient: p.id, Kind: kind, Start: start, End: end, Origin: origin,
	}})
}

// rotations gives each resident the patients of the ward they rotate
// through, for the weeks they are there.
func (g *gen) rotations() {
	for _, r := range g.resident {
		for week := 0; week*7 < g.cfg.Days; week++ {
			d, from, to := g.rotation(r, week)
			origin := fmt.Sprintf("ingest:%s/rotation/%s/%d", g.cfg.System, r.id, week)
			for _, st := range overlapping(d.stays, from, to) {
				a, b := later(st.teamFrom, from), earlier(st.end, to)
				g.rel("Practitioner/"+r.practitioner, st.p, detect.KindCareTeam, a, b, origin, a)
			}
		}
	}
}

// floatTeams puts float nurses on the care teams of the ward they float
// to, for their shift.
func (g *gen) floatTeams() {
	for _, s := range g.floats {
		for day := range g.cfg.Days {
			if !g.works(s, day) {
				continue
			}
			d := g.deptOn(s, day)
			a, b := g.shiftWindow(s, day)
			origin := fmt.Sprintf("ingest:%s/float/%s/%d", g.cfg.System, s.id, day)
			for _, st := range overlapping(d.stays, a, b) {
				from, to := later(st.teamFrom, a), earlier(st.end, b)
				g.rel(s.id, st.p, detect.KindCareTeam, from, to, origin, from)
			}
		}
	}
}

func overlapping(stays []*stay, a, b time.Time) []*stay {
	var out []*stay
	for _, st := range stays {
		if st.start.After(b) {
			break
		}
		if st.teamFrom.Before(b) && st.end.After(a) {
			out = append(out, st)
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// event returns an access event of s at t from src.
func (g *gen) event(t time.Time, s *staffer, src, action, rtype string, p *pat) *detect.Event {
	ev := &detect.Event{
		Stream: detect.StreamIngest, Time: t.UTC(), System: g.cfg.System,
		User: s.id, Roles: slices.Clone(s.roles), Source: src,
		Action: action, ResourceType: rtype, OK: true, Outcome: "ok",
	}
	if d := g.workingIn(s, t); d != nil {
		ev.Department = d.id
	}
	if p != nil {
		ev.Patients = []string{p.id}
		ev.Count = 1
		if rtype == "Patient" && action != phivault.ActionSearch {
			ev.ResourceID = p.id
		}
	}
	if action == phivault.ActionSearch {
		ev.Params = []string{"patient", "code"}
		if rtype == "Patient" {
			ev.Params = []string{"family", "given", "birthdate"}
		}
	}
	return ev
}

func (g *gen) emit(ev *detect.Event) *detect.Event {
	g.add(ev.Time, prioEvent, detect.Record{Kind: detect.RecordAccess, Event: ev})
	return ev
}

// login emits a sign-in of s at t from src, and returns its event.
func (g *gen) login(t time.Time, s *staffer, src string, ok bool) *detect.Event {
	ev := g.event(t, s, src, phivault.ActionLogin, "", nil)
	if !ok {
		ev.Action, ev.OK, ev.Outcome = detect.ActionLoginFailed, false, phivault.EUNAUTHORIZED
	}
	return g.emit(ev)
}

// access emits what a clinician does with one patient: one to three
// reads, searches and writes.
func (g *gen) access(t time.Time, s *staffer, src string, p *pat) {
	type act struct{ action, rtype string }
	var acts []act
	switch s.role {
	case roleNurse:
		acts = []act{{"read", "Observation"}, {"read", "Observation"}, {"read", "Patient"}, {"create", "Observation"}, {"update", "MedicationAdministration"}, {"search", "Observation"}}
	case rolePhysician:
		acts = []act{{"read", "Patient"}, {"read", "Observation"}, {"search", "Observation"}, {"create", "MedicationRequest"}, {"update", "Condition"}, {"read", "DiagnosticReport"}}
	default:
		acts = []act{{"read", "Patient"}, {"read", "Encounter"}}
	}
	for i := range 1 + g.r.IntN(3) {
		a := acts[g.r.IntN(len(acts))]
		ev := g.event(t.Add(time.Duration(i*(20+g.r.IntN(90)))*time.Second), s, src, a.action, a.rtype, p)
		if a.action == "search" {
			ev.Count = 1 + g.r.IntN(12)
		}
		g.emit(ev)
	}
}

// shiftWork is s's sign-in and the patients s looks at on day d.
func (g *gen) shiftWork(s *staffer, day int) {
	a, b := g.shiftWindow(s, day)
	src := s.ws
	if s.resident || s.float {
		// Residents and float nurses sign in wherever they work.
		src = fmt.Sprintf("10.%d.%d.%d", g.deptOn(s, day).subnet, 1+s.idx%8, 10+s.idx%200)
	}
	t := a.Add(-time.Duration(g.r.IntN(10)) * time.Minute)
	if g.r.Float64() < 0.04 { // a typo first
		g.login(t.Add(-40*time.Second), s, src, false)
	}
	g.login(t, s, src, true)
	d := g.deptOn(s, day)
	if d == nil || d.kind == kindOffice || (s.role != roleNurse && s.role != rolePhysician) {
		return
	}
	if d.kind == kindClinic {
		return // clinic work follows the appointments
	}
	stays := overlapping(d.stays, a, b)
	if len(stays) == 0 {
		return
	}
	n := poisson(g.r, s.rate*b.Sub(a).Hours()/2)
	for range n {
		st := stays[g.r.IntN(len(stays))]
		from, to := later(st.teamFrom, a), earlier(st.end, b)
		if !to.After(from) {
			continue
		}
		g.access(g.between(from, to), s, src, st.p)
	}
}

// homeWork is a physician's evening look at their patients from home,
// a few times a week, from the same address every time.
func (g *gen) homeWork(s *staffer) {
	for day := range g.cfg.Days {
		if !weekday(g.day(day)) || g.r.Float64() > 0.35 {
			continue
		}
		t := g.at(day, 20, g.r.IntN(120))
		stays := overlapping(s.dept.stays, t, t.Add(time.Hour))
		if s.dept.kind != kindWard || len(stays) == 0 {
			continue
		}
		g.login(t, s, s.vpn, true)
		for i := range 1 + g.r.IntN(3) {
			st := stays[g.r.IntN(len(stays))]
			if st.teamFrom.After(t) || st.end.Before(t.Add(time.Hour)) {
				continue
			}
			g.access(t.Add(time.Duration(1+i*5)*time.Minute), s, s.vpn, st.p)
		}
	}
}

// breakGlass is the emergency physician on duty opening an unregistered
// patient's chart under break-the-glass: legitimate, and reviewed.
func (g *gen) breakGlass(st *stay) {
	day := int(st.start.Sub(g.cfg.Start).Hours() / 24)
	var on []*staffer
	for _, s := range st.dept.physicians {
		for _, d := range []int{day - 1, day} {
			if d >= 0 && g.works(s, d) {
				if a, b := g.shiftWindow(s, d); !st.start.Before(a) && st.start.Before(b) {
					on = append(on, s)
				}
			}
		}
	}
	if len(on) == 0 {
		return
	}
	s := on[g.r.IntN(len(on))]
	t := st.start.Add(time.Duration(1+g.r.IntN(3)) * time.Minute)
	g.glass(t, s, s.ws, st.p)
	g.truth.label(Pair{s.id, st.p.id}, "background-break-glass", false, t, RuleNoRelationship, RuleBreakGlass)
}

// glass emits a break-the-glass and the reads under it.
func (g *gen) glass(t time.Time, s *staffer, src string, p *pat) {
	ev := g.event(t, s, src, phivault.ActionBreakGlass, "Patient", p)
	ev.Purpose, ev.Decision = "ETREAT", "permit: break-glass-access"
	g.emit(ev)
	for i := range 2 + g.r.IntN(3) {
		rd := g.event(t.Add(time.Duration(1+i*2)*time.Minute), s, src, "read", []string{"Patient", "Observation", "AllergyIntolerance", "MedicationStatement"}[i%4], p)
		rd.Purpose, rd.Decision = "ETREAT", "break-glass permit: break-glass-access"
		g.emit(rd)
	}
}

// appointment books a clinic appointment on day and emits what the
// front desk, nurse and physician do with it.
func (g *gen) appointment(c *dept, day int) {
	slot := g.at(day, 8, 20*g.r.IntN(26))
	p := g.freePatient(slot, c)
	if p == nil || len(c.physicians) == 0 {
		return
	}
	phys := c.physicians[g.r.IntN(len(c.physicians))]
	booked := later(slot.AddDate(0, 0, -1-g.r.IntN(14)), g.cfg.Start.Add(-30*time.Minute))
	g.nStay++
	origin := fmt.Sprintf("ingest:%s/Appointment/a%06d", g.cfg.System, g.nStay)
	from, to := g.day(day), g.day(day+1)
	g.rel("Practitioner/"+phys.practitioner, p, detect.KindAppointment, from, to, origin, booked)
	for _, s := range c.desk {
		g.rel(s.id, p, detect.KindAppointment, from, to, origin, booked)
	}
	for _, s := range c.nurses {
		g.rel(s.id, p, detect.KindAppointment, from, to, origin, booked)
	}
	if len(c.desk) > 0 {
		// Check-in: a search by name, then the patient's record.
		s := c.desk[g.r.IntN(len(c.desk))]
		if g.works(s, day) {
			t := slot.Add(-time.Duration(5+g.r.IntN(10)) * time.Minute)
			g.emit(g.event(t, s, s.ws, "search", "Patient", p))
			g.emit(g.event(t.Add(30*time.Second), s, s.ws, "read", "Patient", p))
		}
	}
	if len(c.nurses) > 0 {
		s := c.nurses[g.r.IntN(len(c.nurses))]
		if g.works(s, day) {
			g.emit(g.event(slot.Add(time.Duration(g.r.IntN(5))*time.Minute), s, s.ws, "create", "Observation", p))
		}
	}
	if g.works(phys, day) {
		g.access(slot.Add(-time.Duration(g.r.IntN(15))*time.Minute), phys, phys.ws, p)
		g.access(slot.Add(time.Duration(5+g.r.IntN(15))*time.Minute), phys, phys.ws, p)
	}
}

// billingWork assigns discharged stays to clerks, who open them within a
// few working days, and exports each weekday's discharges in one batch.
func (g *gen) billingWork() {
	if len(g.billing) == 0 {
		return
	}
	batch := g.billing[0]
	type dis struct {
		st *stay
		at time.Time
	}
	var discharged []dis
	for _, d := range g.wards {
		for _, st := range d.stays {
			if !st.end.Before(g.day(g.cfg.Days)) {
				continue
			}
			clerk := g.billing[1+g.r.IntN(len(g.billing)-1)]
			origin := "ingest:" + g.cfg.System + "/Claim/" + st.id
			g.rel(clerk.id, st.p, detect.KindEncounter, st.end, st.end.AddDate(0, 0, 10), origin, st.end)
			g.rel(batch.id, st.p, detect.KindEncounter, st.end, st.end.AddDate(0, 0, 10), origin, st.end)
			discharged = append(discharged, dis{st, st.end})
			// The clerk opens it on one of the next working days.
			for k := 1; k <= 7; k++ {
				day := int(st.end.Sub(g.cfg.Start).Hours()/24) + k
				if day >= g.cfg.Days {
					break
				}
				if g.works(clerk, day) {
					g.access(g.at(day, 9, g.r.IntN(7*60)), clerk, clerk.ws, st.p)
					if st.dies {
						g.truth.label(Pair{clerk.id, st.p.id}, "background-billing-deceased", false, g.at(day, 9, 0), RuleDeceased)
					}
					break
				}
			}
			if st.dies {
				st.p.deceased = true
				g.add(st.end, prioRoster, detect.Record{Kind: detect.RecordPatient, Patient: g.patient(st.p)})
			}
		}
	}
	for day := range g.cfg.Days {
		if !weekday(g.day(day)) || !g.works(batch, day) {
			continue
		}
		at := g.at(day, 17, 30)
		var ids []string
		for _, x := range discharged {
			if x.at.Before(at) && !x.at.Before(at.Add(-24*time.Hour)) || (g.day(day).Weekday() == time.Monday && x.at.Before(at) && !x.at.Before(at.Add(-72*time.Hour))) {
				ids = append(ids, x.st.p.id)
			}
		}
		if len(ids) == 0 {
			continue
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		ev := g.event(at, batch, batch.ws, phivault.ActionExport, "Claim", nil)
		ev.Patients, ev.Count = ids, len(ids)*3
		g.emit(ev)
		// A look-alike for the volume and export detectors: scheduled,
		// expected, every weekday.
		g.truth.label(Pair{batch.id, ""}, "background-billing-batch", false, at, RuleBulkExport, RuleVolume, RulePeer)
		for _, id := range ids {
			g.truth.label(Pair{batch.id, id}, "background-billing-batch", false, at, RuleBulkExport, RuleVolume, RulePeer)
		}
	}
}

// adminWork is the security team's day: account changes in office hours,
// and policy reloads and role grants in the declared change window
// (Tuesdays and Thursdays, 18:00–22:00 UTC).
func (g *gen) adminWork() {
	change := g.admins[0]
	for day := range g.cfg.Days {
		wd := g.day(day).Weekday()
		if weekday(g.day(day)) {
			for _, s := range g.admins {
				for range g.r.IntN(3) {
					ev := g.event(g.at(day, 9, g.r.IntN(8*60)), s, s.ws, phivault.ActionAccountChange, "Account", nil)
					ev.ResourceID, ev.Decision = g.staff[g.r.IntN(len(g.staff))].id, "update account"
					g.emit(ev)
				}
			}
		}
		if wd == time.Tuesday || wd == time.Thursday {
			t := g.at(day, 18, 30+g.r.IntN(120))
			g.login(t.Add(-5*time.Minute), change, change.ws, true)
			ev := g.event(t, change, change.ws, phivault.ActionPolicyChange, "Policy", nil)
			ev.Decision = "reload policies"
			g.emit(ev)
			if wd == time.Tuesday {
				rot := g.event(t.Add(20*time.Minute), change, change.ws, phivault.ActionKeyRotate, "Key", nil)
				rot.ResourceID = "kek"
				g.emit(rot)
			}
			if wd == time.Thursday {
				target := g.staff[g.r.IntN(len(g.staff))]
				gr := g.event(t.Add(10*time.Minute), change, change.ws, phivault.ActionAccountChange, "Account", nil)
				gr.ResourceID, gr.Decision = target.id, "grant role "+target.role
				g.emit(gr)
			}
			if day >= g.cfg.Warmup {
				g.truth.label(Pair{change.id, ""}, "background-change-window", false, t, RulePolicy, RuleRoleGrant, RuleKeyOperation)
			}
		}
	}
}

// consults asks a physician of another department to see one ward
// patient in eight: an order relationship, and the consultant's looks
// at the chart, the same day and perhaps the next.
func (g *gen) consults() {
	var consultants []*staffer
	for _, d := range g.depts {
		if d.id != "emergency" && d.kind != kindOffice {
			consultants = append(consultants, d.physicians...)
		}
	}
	if len(consultants) == 0 {
		return
	}
	for _, w := range g.wards[1:] {
		for _, st := range w.stays {
			if g.r.IntN(8) != 0 {
				continue
			}
			c := consultants[g.r.IntN(len(consultants))]
			if c.dept == w || slices.Contains(st.p.home.staff, c) {
				continue
			}
			day := int(st.start.Sub(g.cfg.Start).Hours() / 24)
			for d := day; d < g.cfg.Days && d <= day+3; d++ {
				a, b := g.shiftWindow(c, d)
				a, b = later(a, st.start.Add(time.Hour)), earlier(b, st.end)
				if !g.works(c, d) || !b.After(a.Add(30*time.Minute)) {
					continue
				}
				t := g.between(a, b.Add(-30*time.Minute))
				g.nStay++
				origin := fmt.Sprintf("ingest:%s/ServiceRequest/c%06d", g.cfg.System, g.nStay)
				g.rel("Practitioner/"+c.practitioner, st.p, detect.KindOrder, t.Add(-10*time.Minute), earlier(t.Add(48*time.Hour), st.end.Add(12*time.Hour)), origin, t.Add(-10*time.Minute))
				g.access(t, c, c.ws, st.p)
				if next := t.Add(24 * time.Hour); next.Before(st.end) && g.works(c, d+1) && g.r.IntN(2) == 0 {
					g.access(next, c, c.ws, st.p)
				}
				break
			}
		}
	}
}
