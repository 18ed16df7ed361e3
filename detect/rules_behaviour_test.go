package detect_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// bhvT0 is midnight UTC of day 0 of the behaviour tests (a Monday).
var bhvT0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// at returns the time of day d, hour h, minute m.
func bhvAt(d, h, m int) time.Time {
	return bhvT0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// bhvBench is an engine over some rules, fed events in order.
type bhvBench struct {
	t   *testing.T
	dir *detect.Directory
	eng *detect.Engine
	seq int64
}

func newBhvBench(t *testing.T, rules ...detect.Rule) *bhvBench {
	dir := detect.NewDirectory()
	eng := detect.NewEngine(dir, rules, nil)
	eng.Now = func() time.Time { return bhvT0 }
	return &bhvBench{t: t, dir: dir, eng: eng}
}

// do observes an event of user at time tm.
func (b *bhvBench) do(user, action string, tm time.Time, patients ...string) *detect.Event {
	b.seq++
	ev := &detect.Event{Stream: detect.StreamTrail, Seq: b.seq, Time: tm, User: user, Action: action,
		ResourceType: "Patient", Patients: patients, Count: len(patients), OK: true, Outcome: "ok"}
	b.eng.Observe(ev)
	return ev
}

// observe observes ev as given.
func (b *bhvBench) observe(ev detect.Event) {
	b.seq++
	ev.Stream, ev.Seq = detect.StreamTrail, b.seq
	if ev.Outcome == "" {
		ev.OK, ev.Outcome = true, "ok"
	}
	b.eng.Observe(&ev)
}

// alerts drains the engine and returns the alerts of rule for user.
func (b *bhvBench) alerts(rule, user string) []*detect.Alert {
	var out []*detect.Alert
	for _, a := range b.eng.Drain() {
		if a.Rule == rule && a.User == user {
			out = append(out, a)
		}
	}
	return out
}

// day reads n distinct patients (prefix pN) from hour 8, one every 6
// minutes.
func (b *bhvBench) day(user string, d, n int, prefix string) {
	for i := range n {
		b.do(user, phivault.ActionRead, bhvAt(d, 8, 0).Add(time.Duration(i)*6*time.Minute), fmt.Sprintf("%s%d", prefix, i))
	}
}

func bhvOne(t *testing.T, got []*detect.Alert, what string) *detect.Alert {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("%s: %d alerts, want 1", what, len(got))
	}
	return got[0]
}

func bhvNone(t *testing.T, got []*detect.Alert, what string) {
	t.Helper()
	if len(got) != 0 {
		t.Fatalf("%s: %d alerts, want none; first: %s", what, len(got), got[0].Why)
	}
}

func TestBehaviourRulesAreDefault(t *testing.T) {
	var names []string
	for _, r := range detect.DefaultRules() {
		names = append(names, r.Name())
		if _, ok := r.(detect.Stateful); !ok && strings.Contains("volume-spike peer-deviation after-hours name-search-browsing bulk-access", r.Name()) {
			t.Errorf("%s is not Stateful", r.Name())
		}
	}
	for _, want := range []string{"volume-spike", "peer-deviation", "after-hours", "name-search-browsing", "bulk-access"} {
		if !slices.Contains(names, want) {
			t.Errorf("DefaultRules lacks %s", want)
		}
	}
}

func TestVolumeSpike(t *testing.T) {
	b := newBhvBench(t, detect.NewVolumeSpike())
	for d := range 10 {
		b.day("u-usual", d, 18+d%5, "p") // about 20 a day
		b.day("u-busy", d, 58+d%5, "p")  // about 60 a day
		if d >= 7 {
			b.day("u-new", d, 20, "p") // 3 days of history only
		}
	}
	bhvNone(t, b.alerts("volume-spike", "u-usual"), "baseline days")
	b.day("u-usual", 10, 60, "q") // 3× baseline at day 10
	b.day("u-busy", 10, 60, "q")  // the same, for a user whose baseline it is
	b.day("u-new", 10, 60, "q")   // 3×, but too little history
	all := b.eng.Drain()
	var got = map[string][]*detect.Alert{}
	for _, a := range all {
		got[a.User] = append(got[a.User], a)
	}
	a := bhvOne(t, got["u-usual"], "3× baseline")
	if a.Key != "u-usual|2026-11-12" || a.Severity < detect.SeverityMedium || !strings.Contains(a.Why, "distinct patients") {
		t.Errorf("alert = %+v", a)
	}
	if len(a.Patients) == 0 || len(a.Evidence) == 0 {
		t.Errorf("alert without patients or evidence: %+v", a)
	}
	bhvNone(t, got["u-busy"], "busy baseline")
	bhvNone(t, got["u-new"], "too little history")
}

func TestVolumeSpikeEvents(t *testing.T) {
	b := newBhvBench(t, detect.NewVolumeSpike())
	reads := func(user string, d, patients, times int) {
		for i := range patients * times {
			b.do(user, phivault.ActionRead, bhvAt(d, 8, 0).Add(time.Duration(i)*time.Minute), fmt.Sprint("p", i%patients))
		}
	}
	for d := range 10 {
		reads("u-loop", d, 20, 1)
		reads("u-near", d, 20, 1)
	}
	reads("u-loop", 10, 20, 15) // the same 20 patients, 300 accesses
	reads("u-near", 10, 19, 10) // 190: below MinEvents
	a := bhvOne(t, b.alerts("volume-spike", "u-loop"), "300 accesses")
	if !strings.Contains(a.Why, "201 accesses") {
		t.Errorf("alert = %+v", a)
	}
	bhvNone(t, b.alerts("volume-spike", "u-near"), "190 accesses")
}

func TestVolumeSpikeBurst(t *testing.T) {
	b := newBhvBench(t, detect.NewVolumeSpike())
	// A week of history: 10 patients a day; u-batch opens 60 in one hour
	// every day (a batch job).
	for d := range 7 {
		for _, u := range []string{"u-burst", "u-calm", "u-spread"} {
			b.day(u, d, 10, "h")
		}
		for i := range 60 {
			b.do("u-batch", phivault.ActionRead, bhvAt(d, 17, 0).Add(time.Duration(i)*time.Second), fmt.Sprint("b", d, "-", i))
		}
	}
	b.eng.Drain()
	for i := range 55 { // 55 new patients within one hour
		b.do("u-burst", phivault.ActionRead, bhvAt(7, 14, 0).Add(time.Duration(i)*time.Minute), fmt.Sprint("p", i))
	}
	for i := range 45 { // 45: a near miss
		b.do("u-calm", phivault.ActionRead, bhvAt(7, 14, 0).Add(time.Duration(i)*time.Minute), fmt.Sprint("p", i))
	}
	for i := range 55 { // 55, but over two clock hours
		b.do("u-spread", phivault.ActionRead, bhvAt(7, 14, 30).Add(time.Duration(i)*time.Minute), fmt.Sprint("p", i))
	}
	for i := range 55 { // 55, fewer than the user's busiest day
		b.do("u-batch", phivault.ActionRead, bhvAt(7, 17, 0).Add(time.Duration(i)*time.Second), fmt.Sprint("p", i))
	}
	for i := range 55 { // 55 without a week of history: still learning
		b.do("u-new", phivault.ActionRead, bhvAt(7, 14, 0).Add(time.Duration(i)*time.Minute), fmt.Sprint("p", i))
	}
	all := b.eng.Drain()
	by := map[string]int{}
	for _, a := range all {
		if !strings.Contains(a.Why, "within the hour") {
			continue // the day's count (u-calm's 45 is a day spike)
		}
		by[a.User]++
		if a.User == "u-burst" && a.Severity != detect.SeverityHigh {
			t.Errorf("burst severity %s", a.Severity)
		}
	}
	if by["u-burst"] != 1 || len(by) != 1 {
		t.Fatalf("bursts by user = %v, want only u-burst", by)
	}
}

// staff puts n users with roles and department into b's directory.
func (b *bhvBench) staff(prefix string, n int, role, dept string) []string {
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i)
		b.dir.PutUser(&detect.User{ID: id, Roles: []string{role}, Department: dept})
		ids = append(ids, id)
	}
	return ids
}

func TestPeerDeviation(t *testing.T) {
	b := newBhvBench(t, detect.NewPeerDeviation())
	nurses := b.staff("nurse", 8, "nurse", "ward-a")
	doctors := b.staff("doc", 6, "physician", "radiology")
	few := b.staff("few", 3, "dietitian", "ward-a")
	b.dir.PutUser(&detect.User{ID: "busy", Roles: []string{"nurse"}, Department: "ward-a"})
	for d := range 10 {
		for i, u := range nurses {
			b.day(u, d, 18+(i+d)%5, "p") // about 20
		}
		b.day("busy", d, 80, "p") // a nurse whose job is busier
		for i, u := range doctors {
			b.day(u, d, 75+(i+d)%10, "p") // about 80
		}
		for _, u := range few {
			b.day(u, d, 5, "p")
		}
	}
	for _, a := range b.eng.Drain() {
		if a.User != "busy" {
			t.Fatalf("alert during the usual days: %s", a.Why)
		}
	}
	b.day(nurses[0], 10, 80, "q") // 4× the peers
	b.day(nurses[1], 10, 30, "q") // above MinPatients, within the peers' spread
	b.day(doctors[0], 10, 80, "q")
	b.day("busy", 10, 80, "q") // the busy nurse's usual
	b.day(few[0], 10, 80, "q") // too few peers
	// A nurse known only from events, stating role and department.
	for i := range 80 {
		b.observe(detect.Event{User: "ext:n9", Roles: []string{"nurse"}, Department: "ward-a", Action: phivault.ActionRead,
			Time: bhvAt(10, 8, 0).Add(time.Duration(i) * 6 * time.Minute), Patients: []string{fmt.Sprint("r", i)}})
	}
	by := map[string][]*detect.Alert{}
	for _, a := range b.eng.Drain() {
		by[a.User] = append(by[a.User], a)
	}
	a := bhvOne(t, by[nurses[0]], "nurse at 4× peers")
	if a.Key != nurses[0]+"|2026-11-12" || !strings.Contains(a.Why, "nurse|ward-a") {
		t.Errorf("alert = %+v", a)
	}
	bhvOne(t, by["ext:n9"], "ingested nurse at 4× peers")
	bhvNone(t, by[nurses[1]], "nurse within spread")
	bhvNone(t, by[doctors[0]], "physician at the physicians' usual")
	bhvNone(t, by["busy"], "nurse at her own usual")
	bhvNone(t, by[few[0]], "group of three")
}

// shift reads one patient every 20 minutes from hour from for hours
// hours (may run past midnight).
func (b *bhvBench) shift(user string, d, from, hours int) {
	for m := 0; m < hours*60; m += 20 {
		b.do(user, phivault.ActionRead, bhvAt(d, from, m), "p1")
	}
}

func TestAfterHoursOwnPattern(t *testing.T) {
	b := newBhvBench(t, detect.NewAfterHours())
	b.staff("clerk", 1, "clerk", "admissions")
	b.staff("night", 1, "nurse", "icu")
	for d := range 12 {
		b.shift("clerk0", d, 9, 8)  // 09:00–17:00
		b.shift("night0", d, 22, 8) // 22:00–06:00
	}
	bhvNone(t, b.alerts("after-hours", "clerk0"), "usual days")
	b.do("clerk0", phivault.ActionRead, bhvAt(12, 3, 10), "p7")  // a daytime clerk at 03:00
	b.do("clerk0", phivault.ActionRead, bhvAt(12, 3, 20), "p8")  // more of the same hour: same alert
	b.do("night0", phivault.ActionRead, bhvAt(12, 3, 10), "p7")  // a night nurse at 03:00
	b.do("clerk0", phivault.ActionRead, bhvAt(12, 17, 30), "p9") // next to the usual hours
	by := map[string][]*detect.Alert{}
	for _, a := range b.eng.Drain() {
		by[a.User] = append(by[a.User], a)
	}
	a := bhvOne(t, by["clerk0"], "clerk at 03:00")
	if a.Key != "clerk0|2026-11-14" || a.Events != 2 || !strings.Contains(a.Why, "03:00") ||
		!slices.Equal(a.Patients, []string{"p7", "p8"}) {
		t.Errorf("alert = %+v", a)
	}
	bhvNone(t, by["night0"], "night nurse at 03:00")
}

func TestAfterHoursPeerFallback(t *testing.T) {
	b := newBhvBench(t, detect.NewAfterHours())
	clerks := b.staff("clerk", 6, "clerk", "admissions")
	nurses := b.staff("nurse", 6, "nurse", "icu")
	b.staff("newclerk", 1, "clerk", "admissions")
	b.staff("newnurse", 1, "nurse", "icu")
	for d := range 8 {
		for _, c := range clerks {
			b.shift(c, d, 9, 8)
		}
		for i, n := range nurses {
			if i%2 == 0 {
				b.shift(n, d, 22, 8)
			} else {
				b.shift(n, d, 7, 8)
			}
		}
	}
	if n := len(b.alerts("after-hours", "newclerk0")); n != 0 {
		t.Fatal("alert before the new clerk's first access")
	}
	b.do("newclerk0", phivault.ActionRead, bhvAt(8, 3, 0), "p1") // no history; clerks never work at 03
	b.do("newnurse0", phivault.ActionRead, bhvAt(8, 3, 0), "p1") // no history; nurses do
	b.do("newclerk0", phivault.ActionRead, bhvAt(8, 7, 0), "p1") // outside the night window
	b.do("stranger", phivault.ActionRead, bhvAt(8, 3, 0), "p1")  // no peer group
	by := map[string][]*detect.Alert{}
	for _, a := range b.eng.Drain() {
		by[a.User] = append(by[a.User], a)
	}
	a := bhvOne(t, by["newclerk0"], "new clerk at 03:00")
	if !strings.Contains(a.Why, "peer group") || a.Events != 1 {
		t.Errorf("alert = %+v", a)
	}
	bhvNone(t, by["newnurse0"], "new nurse at 03:00")
	bhvNone(t, by["stranger"], "user without peers")

	// A group whose history spans fewer than PeerMinDays days is not
	// trusted yet.
	c := newBhvBench(t, detect.NewAfterHours())
	for d := range 3 {
		for _, u := range c.staff("clerk", 6, "clerk", "admissions") {
			c.shift(u, d, 9, 8)
		}
	}
	c.staff("newclerk", 1, "clerk", "admissions")
	c.do("newclerk0", phivault.ActionRead, bhvAt(3, 3, 0), "p1")
	bhvNone(t, c.alerts("after-hours", "newclerk0"), "peers with 3 days of history")
}

func TestNameSearchBrowsing(t *testing.T) {
	b := newBhvBench(t, detect.NewNameSearchBrowsing())
	b.staff("nurse", 3, "nurse", "ward-a")
	for _, p := range []string{"c1", "c2", "c3"} {
		b.dir.AddRelationship(detect.Relationship{User: "nurse1", Patient: p, Kind: detect.KindCareTeam, Origin: "CareTeam/t1"})
	}
	b.dir.PutPatient(&detect.Patient{ID: "w1", Department: "ward-a"})
	b.dir.PutPatient(&detect.Patient{ID: "w2", Department: "ward-a"})
	b.dir.PutPatient(&detect.Patient{ID: "w3", Department: "ward-a"})
	search := func(user string, tm time.Time, params ...string) {
		b.observe(detect.Event{User: user, Action: phivault.ActionSearch, ResourceType: "Patient", Params: params, Time: tm})
	}
	// nurse0: a name search, then three strangers' charts.
	search("nurse0", bhvAt(0, 10, 0), "family:exact", "birthdate")
	b.do("nurse0", phivault.ActionRead, bhvAt(0, 10, 5), "s1")
	b.do("nurse0", phivault.ActionRead, bhvAt(0, 10, 9), "s2")
	b.do("nurse0", phivault.ActionRead, bhvAt(0, 10, 9), "s2") // the same patient again
	b.do("nurse0", phivault.ActionRead, bhvAt(0, 10, 40), "s3")
	// nurse1: the same, but the patients are on nurse1's care team.
	search("nurse1", bhvAt(0, 10, 0), "name")
	for i, p := range []string{"c1", "c2", "c3"} {
		b.do("nurse1", phivault.ActionRead, bhvAt(0, 10, 5+i), p)
	}
	// nurse2: an identifier search, then strangers; then a name search,
	// patients of the own ward, and strangers after the window.
	search("nurse2", bhvAt(0, 10, 0), "identifier")
	b.do("nurse2", phivault.ActionRead, bhvAt(0, 10, 5), "s1", "s2", "s3")
	search("nurse2", bhvAt(0, 12, 0), "given")
	b.do("nurse2", phivault.ActionRead, bhvAt(0, 12, 5), "w1", "w2", "w3")
	b.do("nurse2", phivault.ActionRead, bhvAt(0, 13, 1), "s4", "s5", "s6")
	by := map[string][]*detect.Alert{}
	for _, a := range b.eng.Drain() {
		by[a.User] = append(by[a.User], a)
	}
	a := bhvOne(t, by["nurse0"], "name search then strangers")
	if a.Key != "nurse0|2026-11-02T10" || !slices.Equal(a.Patients, []string{"s1", "s2", "s3"}) || a.Events != 1 {
		t.Errorf("alert = %+v", a)
	}
	bhvNone(t, by["nurse1"], "name search then own care team")

	// A later episode counts the same strangers again, as another alert.
	search("nurse0", bhvAt(0, 15, 0), "name:contains")
	b.do("nurse0", phivault.ActionRead, bhvAt(0, 15, 5), "s1", "s2", "s3")
	a = bhvOne(t, b.alerts("name-search-browsing", "nurse0"), "second episode")
	if a.Key != "nurse0|2026-11-02T15" {
		t.Errorf("second alert key = %s", a.Key)
	}
	bhvNone(t, by["nurse2"], "no name search, own ward, or after the window")
}

func TestBulkAccess(t *testing.T) {
	r := detect.NewBulkAccess()
	r.Learning = 0 // thresholds from the first day
	b := newBhvBench(t, r)
	b.staff("clerk", 2, "clerk", "billing")
	many := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprint(prefix, i))
		}
		return out
	}
	b.observe(detect.Event{User: "clerk0", Action: phivault.ActionSearch, ResourceType: "Observation", Count: 5000, Patients: many("p", 40), Time: bhvAt(0, 9, 0)})
	b.observe(detect.Event{User: "clerk1", Action: phivault.ActionSearch, ResourceType: "Observation", Count: 999, Patients: many("p", 40), Time: bhvAt(0, 9, 0)})
	// Exports by a staff account (known to the directory) and by a system.
	for i := range 10 {
		b.observe(detect.Event{User: "clerk0", System: "", Action: phivault.ActionExport, ResourceType: "Patient", Patients: []string{fmt.Sprint("x", i)}, Time: bhvAt(0, 11, i)})
		b.observe(detect.Event{User: "ehr:batch", System: "ehr", Action: phivault.ActionExport, ResourceType: "Patient", Patients: []string{fmt.Sprint("x", i)}, Time: bhvAt(0, 11, i)})
	}
	// Prints from another system: 19 is below the threshold, 20 alerts.
	for i := range 20 {
		b.observe(detect.Event{User: "ehr:printer", System: "ehr", Action: detect.ActionPrint, Patients: []string{fmt.Sprint("y", i)}, Time: bhvAt(0, 12, i)})
		if i < 19 {
			b.observe(detect.Event{User: "ehr:almost", System: "ehr", Action: detect.ActionPrint, Patients: []string{fmt.Sprint("y", i)}, Time: bhvAt(0, 12, i)})
		}
	}
	// Audit exports name no patients: not record exports.
	b.observe(detect.Event{User: "clerk1", Action: phivault.ActionExport, ResourceType: "AuditEvent", Time: bhvAt(0, 13, 0)})
	by := map[string][]*detect.Alert{}
	for _, a := range b.eng.Drain() {
		by[a.User] = append(by[a.User], a)
	}
	a := bhvOne(t, by["clerk0"], "large search and staff export")
	if a.Severity != detect.SeverityHigh || a.Key != "clerk0|2026-11-02" {
		t.Errorf("staff export alert = %+v", a)
	}
	if e := bhvOne(t, by["ehr:batch"], "system export"); e.Severity != detect.SeverityMedium {
		t.Errorf("system export severity = %s", e.Severity)
	}
	bhvOne(t, by["ehr:printer"], "20 prints")
	bhvNone(t, by["clerk1"], "999 resources and an audit export")
	bhvNone(t, by["ehr:almost"], "19 prints")

	// 9 exports of the next day do not reach the threshold: the day's
	// counters start afresh.
	for i := range 9 {
		b.observe(detect.Event{User: "ehr:batch", System: "ehr", Action: phivault.ActionExport, Patients: []string{fmt.Sprint("x", i)}, Time: bhvAt(1, 11, i)})
	}
	bhvNone(t, b.alerts("bulk-access", "ehr:batch"), "9 exports the next day")
}

// TestBulkAccess_LearningAndRoutine checks a user's first days are
// learned, and a daily export batch like the user's own past ones is
// routine, while a first export after the learning period, or a batch
// far larger than usual, alerts.
func TestBulkAccess_LearningAndRoutine(t *testing.T) {
	b := newBhvBench(t, detect.NewBulkAccess())
	export := func(user string, d, n int) {
		for i := range n {
			b.do(user, phivault.ActionExport, bhvAt(d, 17, 30).Add(time.Duration(i)*time.Second), fmt.Sprintf("%s-%d-%d", user, d, i))
		}
	}
	// Day 0: a new user's export of 30, or 999, is learned; 1,000 (as
	// many as one large result) alerts even so.
	export("batch", 0, 30)
	export("newbig", 0, 999)
	bhvNone(t, b.alerts(detect.RuleBulkAccess, "batch"), "30 exports on a user's first day")
	b.do("reader", phivault.ActionRead, bhvAt(0, 9, 0), "r0")
	bhvNone(t, b.alerts(detect.RuleBulkAccess, "newbig"), "999 exports on a user's first day")
	export("newbig", 1, 1000)
	bhvOne(t, b.alerts(detect.RuleBulkAccess, "newbig"), "1,000 exports on a user's second day")
	// A daily batch of about 30 through the learning period, then on:
	// routine. Weekends off; Monday's batch covers three days.
	for d := 1; d <= 11; d++ {
		if d%7 == 5 || d%7 == 6 {
			continue
		}
		export("batch", d, 30+d%3)
	}
	export("batch", 14, 150) // Monday after a weekend: 50 a day
	bhvNone(t, b.alerts(detect.RuleBulkAccess, "batch"), "a daily batch like the user's past ones")
	export("batch", 15, 120) // more than twice the largest day's 50
	bhvOne(t, b.alerts(detect.RuleBulkAccess, "batch"), "a batch twice the usual")
	// Past the learning period, a user who never exported: alerts.
	export("reader", 8, 30)
	bhvOne(t, b.alerts(detect.RuleBulkAccess, "reader"), "first export after the learning period")
}

// bhvWorkload returns a deterministic month of a small hospital's events
// with some anomalies in it, for the restart test.
func bhvWorkload(dir *detect.Directory, days int, seed uint64) []detect.Event {
	rng := rand.New(rand.NewPCG(seed, 1))
	type person struct {
		id, role, dept string
		start          int
	}
	var staff []person
	for i := range 40 {
		p := person{id: fmt.Sprint("u", i), role: []string{"nurse", "physician", "clerk"}[i%3], dept: []string{"ward-a", "ward-b"}[i%2/1], start: 8}
		if i%7 == 0 {
			p.start = 22
		}
		staff = append(staff, p)
		dir.PutUser(&detect.User{ID: p.id, Roles: []string{p.role}, Department: p.dept})
	}
	var out []detect.Event
	for d := range days {
		var day []detect.Event
		for _, p := range staff {
			n := 15 + rng.IntN(10)
			if d == days-3 && p.id == "u4" {
				n = 90 // a spike
			}
			for i := range n {
				tm := bhvAt(d, p.start, 0).Add(time.Duration(rng.IntN(8*60)) * time.Minute)
				act := phivault.ActionRead
				var params []string
				switch k := rng.IntN(10); {
				case k == 0:
					act, params = phivault.ActionSearch, []string{"family"}
				case k == 1:
					act = phivault.ActionEverything
				}
				day = append(day, detect.Event{User: p.id, Action: act, Params: params, ResourceType: "Patient",
					Patients: []string{fmt.Sprint("pt", rng.IntN(300))}, Time: tm, Count: 1 + i%3, OK: true, Outcome: "ok"})
			}
		}
		if d == days-2 { // a clerk at 03:00, a print run
			day = append(day, detect.Event{User: "u2", Action: phivault.ActionRead, Patients: []string{"pt1"}, Time: bhvAt(d, 3, 0), OK: true})
			for i := range 25 {
				day = append(day, detect.Event{User: "u5", Action: detect.ActionPrint, Patients: []string{fmt.Sprint("pt", i)}, Time: bhvAt(d, 10, i), OK: true})
			}
		}
		slices.SortStableFunc(day, func(a, b detect.Event) int { return a.Time.Compare(b.Time) })
		out = append(out, day...)
	}
	for i := range out {
		out[i].Stream, out[i].Seq = detect.StreamTrail, int64(i)
	}
	return out
}

func bhvRules() []detect.Rule {
	return []detect.Rule{detect.NewVolumeSpike(), detect.NewPeerDeviation(), detect.NewAfterHours(),
		detect.NewNameSearchBrowsing(), detect.NewBulkAccess()}
}

// TestBehaviourRestart checks that state saved and restored into fresh
// rules gives the same next findings as the rules that kept running.
func TestBehaviourRestart(t *testing.T) {
	for _, split := range []int{18, 26, 28} { // split day: before the spikes, between, at the last day
		t.Run(fmt.Sprint("day", split), func(t *testing.T) {
			dir := detect.NewDirectory()
			evs := bhvWorkload(dir, 30, 7)
			cut, _ := slices.BinarySearchFunc(evs, bhvAt(split, 12, 0), func(e detect.Event, t time.Time) int { return e.Time.Compare(t) })
			live := detect.NewEngine(dir, bhvRules(), nil)
			for i := range evs[:cut] {
				live.Observe(&evs[i])
			}
			live.Drain()
			state, err := live.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			restored := detect.NewEngine(dir, bhvRules(), nil)
			if err := restored.UnmarshalState(state); err != nil {
				t.Fatal(err)
			}
			again, err := restored.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(state) {
				t.Errorf("state changed by a round trip")
			}
			var a, b []*detect.Alert
			for i := range evs[cut:] {
				live.Observe(&evs[cut+i])
				restored.Observe(&evs[cut+i])
				a = append(a, live.Drain()...)
				b = append(b, restored.Drain()...)
			}
			if len(a) == 0 {
				t.Fatal("no alerts after the cut: the test cannot tell")
			}
			rules := map[string]bool{}
			for i := range a {
				a[i].Detected, b[i].Detected = time.Time{}, time.Time{}
				rules[a[i].Rule] = true
			}
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				t.Errorf("findings differ after restore:\n live %s\n restored %s", ja, jb)
			}
			if split == 18 && len(rules) < 3 {
				t.Errorf("only rules %v alerted after the cut", rules)
			}
		})
	}
}

// TestBehaviourFutureEvent checks that one event dated far ahead does
// not make the rules forget everyone's baseline.
func TestBehaviourFutureEvent(t *testing.T) {
	b := newBhvBench(t, detect.NewVolumeSpike())
	for d := range 10 {
		b.day("u-usual", d, 20, "p")
	}
	b.do("ext:clock", phivault.ActionRead, bhvAt(400, 9, 0), "p1") // a year ahead
	b.day("u-usual", 10, 60, "q")
	bhvOne(t, b.alerts("volume-spike", "u-usual"), "3× baseline after a bad clock")
}

// TestBehaviourStateBounded checks that users idle beyond the window are
// forgotten.
func TestBehaviourStateBounded(t *testing.T) {
	rules := bhvRules()
	b := newBhvBench(t, rules...)
	for i := range 50 {
		b.do(fmt.Sprint("old", i), phivault.ActionRead, bhvAt(0, 9, i), "p1")
	}
	b.observe(detect.Event{User: "old0", Action: phivault.ActionSearch, Params: []string{"name"}, Time: bhvAt(0, 10, 0)})
	for d := 1; d <= 40; d++ { // days pass
		b.do("new", phivault.ActionRead, bhvAt(d, 9, 0), "p1")
	}
	for _, r := range rules {
		s, err := r.(detect.Stateful).MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(s), `"old`) {
			t.Errorf("%s still holds idle users: %.200s", r.Name(), s)
		}
	}
}

func TestBehaviourMaxUsers(t *testing.T) {
	r := detect.NewVolumeSpike()
	r.MaxUsers, r.BurstPatients, r.MinHistory = 2, 3, 1
	b := newBhvBench(t, r)
	for _, u := range []string{"a", "b", "c"} {
		b.do(u, phivault.ActionRead, bhvAt(0, 9, 0), "p0") // a day of history
	}
	for _, u := range []string{"a", "b", "c"} {
		for i := range 3 {
			b.do(u, phivault.ActionRead, bhvAt(1, 9, i), fmt.Sprint("p", i))
		}
	}
	var users []string
	for _, a := range b.eng.Drain() {
		users = append(users, a.User)
	}
	if !slices.Equal(users, []string{"a", "b"}) && !slices.Equal(users, []string{"b", "a"}) {
		t.Errorf("bursts of %v, want a and b only (c is beyond MaxUsers)", users)
	}
}

func TestBehaviourLocation(t *testing.T) {
	loc := time.FixedZone("UTC+10", 10*3600)
	r := detect.NewAfterHours()
	r.Location = loc
	b := newBhvBench(t, r)
	for d := range 12 {
		b.shift("clerk", d, 23, 8) // 23:00–07:00 UTC is 09:00–17:00 at UTC+10
	}
	b.do("clerk", phivault.ActionRead, bhvAt(12, 10, 0), "p1") // 20:00 local
	b.do("clerk", phivault.ActionRead, bhvAt(13, 1, 0), "p1")  // 11:00 local, usual
	a := bhvOne(t, b.alerts("after-hours", "clerk"), "20:00 local")
	if !strings.Contains(a.Why, "20:00") || a.Key != "clerk|2026-11-14" {
		t.Errorf("alert = %+v", a)
	}
}

// bhvDay returns one day of a 1,000-user hospital's events, in time
// order, with dir filled: 20 departments, nurses, physicians and clerks,
// a sixth of them on nights, each with a panel of patients on their care
// team; reads, searches (some by name), writes, $everything, prints and
// sign-ins.
func bhvDay(dir *detect.Directory) []detect.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	const users, perUser = 1000, 100
	roles := []string{"nurse", "nurse", "physician", "clerk", "pharmacist"}
	patients := make([]string, 30000)
	for i := range patients {
		patients[i] = fmt.Sprintf("pat-%05d", i)
		dir.PutPatient(&detect.Patient{ID: patients[i], Department: fmt.Sprint("dept-", i%20)})
	}
	one := make([][]string, len(patients)) // one-patient slices, shared
	for i := range one {
		one[i] = patients[i : i+1]
	}
	var evs []detect.Event
	for u := range users {
		id := fmt.Sprintf("user-%04d", u)
		dept := fmt.Sprint("dept-", u%20)
		dir.PutUser(&detect.User{ID: id, Roles: []string{roles[u%len(roles)]}, Department: dept})
		panel := rng.IntN(len(patients) - 40)
		var rels []detect.Relationship
		for p := range 30 {
			rels = append(rels, detect.Relationship{User: id, Patient: patients[panel+p], Kind: detect.KindCareTeam})
		}
		dir.SetRelationships("CareTeam/"+id, rels)
		start := 7
		if u%6 == 0 {
			start = 19
		}
		for range perUser {
			ev := detect.Event{User: id, OK: true, Outcome: "ok", ResourceType: "Observation",
				Time: bhvAt(0, start, 0).Add(time.Duration(rng.IntN(12*3600)) * time.Second)}
			p := panel + rng.IntN(33) // mostly the panel, one in ten beyond
			ev.Patients, ev.Count = one[p], 1
			switch k := rng.IntN(100); {
			case k < 60:
				ev.Action, ev.ResourceID = phivault.ActionRead, "r"
			case k < 70:
				ev.Action, ev.Params, ev.Count = phivault.ActionSearch, []string{"patient", "code"}, 12
			case k < 75:
				ev.Action, ev.ResourceType, ev.Params = phivault.ActionSearch, "Patient", []string{"family", "birthdate"}
			case k < 83:
				ev.Action = phivault.ActionVRead
			case k < 90:
				ev.Action = phivault.ActionUpdate
			case k < 93:
				ev.Action, ev.ResourceType, ev.Count = phivault.ActionEverything, "Patient", 150
			case k < 95:
				ev.Action = detect.ActionPrint
			case k < 98:
				ev.Action, ev.Patients = phivault.ActionLogin, nil
			default:
				ev.Action, ev.Count = phivault.ActionHistory, 4
			}
			evs = append(evs, ev)
		}
	}
	slices.SortStableFunc(evs, func(a, b detect.Event) int { return a.Time.Compare(b.Time) })
	for i := range evs {
		evs[i].Stream, evs[i].Seq = detect.StreamTrail, int64(i)
	}
	return evs
}

// bhvCPUTime returns the process's user and system CPU time, in ns.
func bhvCPUTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkBehaviourRules runs the behaviour rules over a realistic mix
// of 1,000 users' events, day after day, all together and each alone;
// one op is one event.
func BenchmarkBehaviourRules(b *testing.B) {
	dir := detect.NewDirectory()
	day := bhvDay(dir)
	run := func(b *testing.B, rules []detect.Rule) {
		eng := detect.NewEngine(dir, rules, nil)
		evs := slices.Clone(day)
		shift := func() {
			for i := range evs {
				evs[i].Time = evs[i].Time.Add(24 * time.Hour)
			}
		}
		// Warm up a fortnight, so baselines exist and maps are grown.
		for range 14 {
			for i := range evs {
				eng.Observe(&evs[i])
			}
			eng.Drain()
			shift()
		}
		b.ReportAllocs()
		cpu0 := bhvCPUTime()
		b.ResetTimer()
		i := 0
		for range b.N {
			eng.Observe(&evs[i])
			if i++; i == len(evs) {
				b.StopTimer()
				eng.Drain()
				shift()
				i = 0
				b.StartTimer()
			}
		}
		b.StopTimer()
		// CPU time, unlike wall time, holds steady on a shared machine;
		// it includes the shifts between days and the GC.
		b.ReportMetric(float64(bhvCPUTime()-cpu0)/float64(b.N), "cpu-ns/event")
		eng.Drain()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("all", func(b *testing.B) { run(b, bhvRules()) })
	for _, r := range bhvRules() {
		b.Run(r.Name(), func(b *testing.B) { run(b, []detect.Rule{r}) })
	}
}

// TestVolumeSpikePeak checks a day no busier than a quarter above the
// user's busiest day of the window (a weekly catch-up) does not alert,
// and a day past that does.
func TestVolumeSpikePeak(t *testing.T) {
	b := newBhvBench(t, detect.NewVolumeSpike())
	// Two weeks: 20 patients a day, 60 on each Monday (days 0 and 7).
	for d := range 14 {
		n := 20
		if d%7 == 0 {
			n = 60
		}
		for _, u := range []string{"u-peak", "u-more"} {
			b.day(u, d, n, fmt.Sprint("d", d, "-"))
		}
	}
	b.eng.Drain()
	b.day("u-peak", 14, 70, "m") // Monday: 70, within 1.25 × 60
	b.day("u-more", 14, 80, "m") // 80: above 75
	got := b.eng.Drain()
	if len(got) != 1 || got[0].User != "u-more" {
		t.Fatalf("%d alerts, want one of u-more (u-peak's 70 is a Monday like the past ones)", len(got))
	}
}

// TestPeerDeviationPeerMinDays checks the peers' history must span
// PeerMinDays days before a day is compared with it: a detector started
// on an empty history does not flag the busy jobs of its first days.
func TestPeerDeviationPeerMinDays(t *testing.T) {
	b := newBhvBench(t, detect.NewPeerDeviation())
	clerks := b.staff("clerk", 8, "billing", "billing")
	for d := range 8 {
		for i, u := range clerks[1:] {
			b.day(u, d, 4+(i+d)%3, "p")
		}
		b.day(clerks[0], d, 80, "b") // busy from the start: a batch
	}
	var days []string
	for _, a := range b.eng.Drain() {
		days = append(days, a.Key)
	}
	// Days 0–6: peers span fewer than 7 days; day 7 spans 7, but the
	// clerk's own median of 7 days is already above the threshold.
	if len(days) != 0 {
		t.Fatalf("alerts %v, want none", days)
	}
	b.day(clerks[1], 8, 80, "q") // a peer leaving the pattern: alerts
	bhvOne(t, b.alerts(detect.RulePeerDeviation, clerks[1]), "a clerk at 80 among clerks at 5 after a week")
}

// Each day-counting rule watches at most MaxUsers users; the first come
// are watched.
func TestBehaviourMaxUsers_everyRule(t *testing.T) {
	vs, pd, ah, ba := detect.NewVolumeSpike(), detect.NewPeerDeviation(), detect.NewAfterHours(), detect.NewBulkAccess()
	vs.MaxUsers, pd.MaxUsers, ah.MaxUsers, ba.MaxUsers = 2, 2, 2, 2
	for _, r := range []detect.Rule{vs, pd, ah, ba} {
		t.Run(r.Name(), func(t *testing.T) {
			b := newBhvBench(t, r)
			for _, u := range []string{"user-a", "user-b", "user-c"} {
				b.do(u, phivault.ActionRead, bhvAt(0, 9, 0), "p0")
			}
			s, err := r.(detect.Stateful).MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(s), `"user-a"`) || !strings.Contains(string(s), `"user-b"`) || strings.Contains(string(s), `"user-c"`) {
				t.Errorf("state %.300s: want user-a and user-b, not user-c", s)
			}
		})
	}
}
