package detect

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/phivault/phivault"
)

// Rules about behaviour: each compares what a user does with what the
// user, or the user's peers, usually do. Each keeps per-user day counters
// (never per-event lists), prunes history beyond its window, and saves its
// state with the pipeline's snapshots.
//
// Time comes from Event.Time only, never the clock, so a replay gives the
// same alerts. Days run from midnight to midnight in each rule's
// Location (UTC by default). An event of an earlier day than the user's
// latest one (possible only when one user's events come from two streams
// with skewed clocks) is left out of the day counters.

func behaviourRules() []Rule {
	return []Rule{
		NewVolumeSpike(),
		NewPeerDeviation(),
		NewAfterHours(),
		NewNameSearchBrowsing(),
		NewBulkAccess(),
	}
}

// Names of the behaviour rules.
const (
	RuleVolumeSpike        = "volume-spike"
	RulePeerDeviation      = "peer-deviation"
	RuleAfterHours         = "after-hours"
	RuleNameSearchBrowsing = "name-search-browsing"
	RuleBulkAccess         = "bulk-access"
)

// Defaults shared by the behaviour rules.
const (
	// DefaultBehaviourDays is the history the baselines learn from.
	DefaultBehaviourDays = 28
	// DefaultMaxUsers bounds the users a behaviour rule keeps state for;
	// users beyond it are not watched by that rule until others age out.
	DefaultMaxUsers = 100_000
	// DefaultMaxReports bounds the findings one alert of a behaviour rule
	// receives after the first (each adds evidence and patients); a
	// finding is still reported each time the count doubles.
	DefaultMaxReports = 20
	// maxDaySet bounds the distinct patients counted for one user in one
	// day; beyond it the count stops growing (the alert has long fired).
	maxDaySet = 100_000
)

// dataAction reports whether action reads or writes records.
func dataAction(action string) bool {
	switch action {
	case phivault.ActionRead, phivault.ActionVRead, phivault.ActionSearch, phivault.ActionHistory,
		phivault.ActionEverything, phivault.ActionBundle, phivault.ActionCreate, phivault.ActionUpdate,
		phivault.ActionDelete, phivault.ActionExport, ActionPrint:
		return true
	}
	return false
}

// splitTime returns the day number (days since 1970-01-01) and hour of t
// in loc (nil is UTC).
func splitTime(loc *time.Location, t time.Time) (day int32, hour int) {
	s := t.Unix()
	if loc != nil && loc != time.UTC {
		_, off := t.In(loc).Zone()
		s += int64(off)
	}
	d, r := s/86400, s%86400
	if r < 0 {
		d--
		r += 86400
	}
	return int32(d), int(r / 3600)
}

// shortDuration writes d as "1h" or "30 min" where it can.
func shortDuration(d time.Duration) string {
	switch {
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}

// advance returns a rule's sweeping day moved towards day, by at most
// one day: an event dated far in the future (another system's clock gone
// wrong) cannot make a rule forget every user at once.
func advance(cur, day int32) int32 {
	if cur == math.MinInt32 {
		return day
	}
	return min(day, cur+1)
}

// dayed is the state of one user in a behaviour rule, whose latest day
// is the day it counts now.
type dayed[U any] interface {
	*U
	latest() int32
}

// userOn is the prologue the day-counting behaviour rules share. It
// moves the rule's sweeping day *maxDay towards day, forgetting (after
// calling forget, if not nil) the users whose latest day fell out of the
// window of days; then it returns user's state, made by fresh unless
// users already holds maxUsers, and rolled to day by roll if it was of an
// earlier day. It returns nil for a user not watched, or for an event of
// an earlier day than the user's latest.
func userOn[U any, P dayed[U]](users map[string]P, maxDay *int32, day int32, days, maxUsers int,
	user string, fresh func() P, roll func(P), forget func(P)) P {
	if day > *maxDay {
		*maxDay = advance(*maxDay, day)
		sweepUsers(users, *maxDay-int32(days), forget)
	}
	u := users[user]
	if u == nil {
		if len(users) >= maxUsers {
			return nil
		}
		u = fresh()
		users[user] = u
	}
	switch {
	case day < u.latest():
		return nil
	case day > u.latest():
		roll(u)
	}
	return u
}

// sweepUsers forgets the users whose latest day is at or before last,
// calling forget (if not nil) on each first.
func sweepUsers[U any, P dayed[U]](users map[string]P, last int32, forget func(P)) {
	maps.DeleteFunc(users, func(_ string, u P) bool {
		if u.latest() > last {
			return false
		}
		if forget != nil {
			forget(u)
		}
		return true
	})
}

// usersState is a day-counting behaviour rule's state as saved: its
// sweeping day and each user's state S.
type usersState[S any] struct {
	MaxDay int32        `json:"maxDay"`
	Users  map[string]S `json:"users"`
}

// saveUsers returns the JSON of maxDay and users, each saved by save.
func saveUsers[U, S any](maxDay int32, users map[string]*U, save func(*U) S) ([]byte, error) {
	s := usersState[S]{MaxDay: maxDay, Users: make(map[string]S, len(users))}
	for id, u := range users {
		s.Users[id] = save(u)
	}
	return json.Marshal(s)
}

// loadUsers returns what saveUsers saved, each user made by load in the
// order of their ids (so peer groups list their members in one order,
// whatever the map's).
func loadUsers[U, S any](b []byte, rule string, load func(S) *U) (int32, map[string]*U, error) {
	var s usersState[S]
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, nil, fmt.Errorf("%s state: %w", rule, err)
	}
	users := make(map[string]*U, len(s.Users))
	for _, id := range slices.Sorted(maps.Keys(s.Users)) {
		users[id] = load(s.Users[id])
	}
	return s.MaxDay, users, nil
}

// trimWindow drops from hist (oldest first) the days at or before last,
// reusing its memory.
func trimWindow[D any](hist []D, last int32, dayOf func(D) int32) []D {
	i := 0
	for i < len(hist) && dayOf(hist[i]) <= last {
		i++
	}
	if i == 0 {
		return hist
	}
	return append(hist[:0], hist[i:]...)
}

// dayString returns day as YYYY-MM-DD.
func dayString(day int32) string {
	return time.Unix(int64(day)*86400, 0).UTC().Format(time.DateOnly)
}

// dayKey returns the alert key user|YYYY-MM-DD.
func dayKey(user string, day int32) string { return user + "|" + dayString(day) }

// hashID returns the 64-bit FNV-1a hash of s: distinct-patient sets keep
// hashes, not ids (a collision undercounts by one, once in 2^64).
func hashID(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// idSet is a set of id hashes: open addressing with linear probing,
// cheaper per event than a map. 0 stands for the hash 0, taken as 1.
type idSet struct {
	slots []uint64
	n     int
}

// add adds h and reports whether it was new.
func (s *idSet) add(h uint64) bool {
	if h == 0 {
		h = 1
	}
	if 2*(s.n+1) > len(s.slots) {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := (h ^ h>>29) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return false
		case 0:
			s.slots[i] = h
			s.n++
			return true
		}
	}
}

func (s *idSet) grow() {
	old := s.slots
	s.slots, s.n = make([]uint64, max(64, 2*len(old))), 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}

// has reports whether h is in s.
func (s *idSet) has(h uint64) bool {
	if s.n == 0 {
		return false
	}
	if h == 0 {
		h = 1
	}
	mask := uint64(len(s.slots) - 1)
	for i := (h ^ h>>29) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return true
		case 0:
			return false
		}
	}
}

// reset empties s, keeping its memory unless a burst grew it.
func (s *idSet) reset() {
	if len(s.slots) > 4096 {
		s.slots = nil
	} else {
		clear(s.slots)
	}
	s.n = 0
}

// MarshalJSON returns the hashes of s, sorted, as base64 of 8 bytes
// each (little-endian).
func (s idSet) MarshalJSON() ([]byte, error) {
	hs := make([]uint64, 0, s.n)
	for _, h := range s.slots {
		if h != 0 {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	b := make([]byte, 0, 8*len(hs))
	for _, h := range hs {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return json.Marshal(b)
}

// UnmarshalJSON sets s to what MarshalJSON returned.
func (s *idSet) UnmarshalJSON(data []byte) error {
	var b []byte
	if err := json.Unmarshal(data, &b); err != nil {
		return err
	}
	if len(b)%8 != 0 {
		return fmt.Errorf("id set of %d bytes", len(b))
	}
	*s = idSet{}
	for i := 0; i < len(b); i += 8 {
		s.add(binary.LittleEndian.Uint64(b[i:]))
	}
	return nil
}

// robust holds the median and median absolute deviation of some values.
type robust struct {
	n        int
	med, mad float64
	q        float64 // the quantile asked for
}

// robustStats returns the statistics of vals, with their q-quantile; it
// reorders vals. It is the one robust fit of the package: the behaviour
// rules' baselines and the risk scorer's models (fitRobust) both use it,
// so their medians agree (the lower middle value for an even count).
func robustStats(vals []float64, q float64) robust {
	if len(vals) == 0 {
		return robust{}
	}
	slices.Sort(vals)
	r := robust{n: len(vals), med: median(vals), q: stat.Quantile(q, stat.Empirical, vals, nil)}
	for i, v := range vals {
		vals[i] = math.Abs(v - r.med)
	}
	slices.Sort(vals)
	r.mad = median(vals)
	return r
}

// madScale makes the MAD estimate the standard deviation of normal data.
const madScale = 1.4826

// median returns the median of sorted with gonum's empirical quantile (the
// lower middle value for an even count).
func median(sorted []float64) float64 {
	return stat.Quantile(0.5, stat.Empirical, sorted, nil)
}

// ratioScore is 50 at the threshold, 75 at twice it, 100 at four times.
func ratioScore(x, thr float64) int {
	if thr <= 0 {
		return 100
	}
	s := 50 + 25*math.Log2(x/thr)
	return int(max(0, min(100, s)))
}

// Peer groups: every rule and the risk scorer that compares a user with
// peers takes the group from peerGroup and keys it with groupKey.

// peerGroup returns the role set and department that make user's peer
// group: the directory's, each where it has one, else the roles and
// dept the user's events state.
func peerGroup(dir *Directory, user string, roles []string, dept string) ([]string, string) {
	if dir != nil {
		if u := dir.User(user); u != nil {
			if len(u.Roles) > 0 {
				roles = u.Roles
			}
			if u.Department != "" {
				dept = u.Department
			}
		}
	}
	return roles, dept
}

// peerOf returns the peer group of ev's user (see peerGroup).
func peerOf(dir *Directory, ev *Event) ([]string, string) {
	return peerGroup(dir, ev.User, ev.Roles, ev.Department)
}

// groupRef caches a user's peer group key, recomputed only when the
// roles or department change.
type groupRef struct {
	roles []string
	dept  string
	key   string // "" when the user has neither role nor department
}

// set updates r to roles and dept and returns the group key.
func (r *groupRef) set(roles []string, dept string) string {
	if dept == r.dept && slices.Equal(roles, r.roles) {
		return r.key
	}
	r.roles, r.dept = slices.Clone(roles), dept
	r.key = groupKey(roles, dept)
	return r.key
}

// groupState is a groupRef as saved.
type groupState struct {
	Roles []string `json:"roles,omitempty"`
	Dept  string   `json:"dept,omitempty"`
}

func (r *groupRef) state() groupState { return groupState{Roles: r.roles, Dept: r.dept} }

// groupKey returns the key of the peer group of roles and dept:
// "role,role|department", roles sorted and distinct, or "" (no group)
// for neither roles nor department.
func groupKey(roles []string, dept string) string {
	if len(roles) == 0 && dept == "" {
		return ""
	}
	rs := slices.Clone(roles)
	slices.Sort(rs)
	return strings.Join(slices.Compact(rs), ",") + "|" + dept
}

// group is a peer group: its members and statistics cached for one day.
type group[S, C any] struct {
	members []*S
	day     int32 // the day stats were computed for; math.MinInt32 for none
	stats   C
}

// groups is a set of peer groups by key.
type groups[S, C any] map[string]*group[S, C]

// move takes s out of group from (if any) into group to (if any).
func (gs groups[S, C]) move(from, to string, s *S) {
	if from == to {
		return
	}
	if g := gs[from]; g != nil {
		g.members = slices.DeleteFunc(g.members, func(m *S) bool { return m == s })
		if len(g.members) == 0 {
			delete(gs, from)
		}
	}
	if to == "" {
		return
	}
	g := gs[to]
	if g == nil {
		g = &group[S, C]{day: math.MinInt32}
		gs[to] = g
	}
	g.members = append(g.members, s)
}

// join moves s, whose group ref holds, to the group of roles and dept.
func (gs groups[S, C]) join(ref *groupRef, roles []string, dept string, s *S) {
	from := ref.key
	gs.move(from, ref.set(roles, dept), s)
}

// dayCount counts one user's accesses in one day. It is saved as
// [day, patients, events], the shortest JSON for the many of them.
type dayCount struct {
	Day      int32
	Patients int32 // distinct patients
	Events   int32
}

func (d dayCount) MarshalJSON() ([]byte, error) {
	return json.Marshal([3]int32{d.Day, d.Patients, d.Events})
}

func (d *dayCount) UnmarshalJSON(b []byte) error {
	var a [3]int32
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	d.Day, d.Patients, d.Events = a[0], a[1], a[2]
	return nil
}

// patientDay counts distinct patients and accesses of one user's current
// day, and keeps the completed days of the window.
type patientDay struct {
	hist []dayCount // completed days within the window, oldest first
	cur  dayCount
	seen idSet
}

// roll starts day, keeping the day that ended if it had events and
// dropping days older than days.
func (p *patientDay) roll(day int32, days int) {
	if p.cur.Events > 0 {
		p.hist = append(p.hist, p.cur)
	}
	p.hist = trimWindow(p.hist, day-int32(days), func(d dayCount) int32 { return d.Day })
	p.cur = dayCount{Day: day}
	p.seen.reset()
}

func (p *patientDay) latest() int32 { return p.cur.Day }

// add counts ev's patients and returns how many are new today.
func (p *patientDay) add(ev *Event) int32 {
	p.cur.Events++
	var n int32
	for _, id := range ev.Patients {
		if p.seen.n >= maxDaySet {
			break
		}
		if p.seen.add(hashID(id)) {
			n++
		}
	}
	p.cur.Patients += n
	return n
}

// patientDayState is a patientDay as saved.
type patientDayState struct {
	Hist []dayCount `json:"hist,omitempty"`
	Cur  dayCount   `json:"cur"`
	Seen idSet      `json:"seen,omitzero"`
}

func (p *patientDay) state() patientDayState {
	return patientDayState{Hist: p.hist, Cur: p.cur, Seen: p.seen}
}

func (p *patientDay) restore(s patientDayState) {
	p.hist, p.cur, p.seen = s.Hist, s.Cur, s.Seen
}

// reporter paces the findings of one alert: the first, then up to max
// more, then one each time the count doubles.
type reporter struct {
	Reports int32   `json:"r,omitempty"`
	Next    float64 `json:"n,omitempty"` // count at which to report again beyond max
}

// due reports whether a finding at count (over threshold thr) should be
// reported, and notes it.
func (r *reporter) due(count, thr float64, maxReports int) bool {
	switch {
	case r.Reports == 0:
		r.Next = 2 * max(thr, 1)
	case int(r.Reports) <= maxReports:
	case count >= r.Next:
		r.Next *= 2
	default:
		return false
	}
	r.Reports++
	return true
}

// ---------------------------------------------------------------------
// volume-spike

// Defaults of VolumeSpike.
const (
	DefaultVolumeMinHistory    = 7
	DefaultVolumeK             = 5.0
	DefaultVolumeFactor        = 2.0
	DefaultVolumeMinPatients   = 20
	DefaultVolumeMinEvents     = 200
	DefaultVolumeBurstPatients = 50
	DefaultVolumePeakFactor    = 1.25
)

// VolumeSpike is the rule "volume-spike": a user who, in one day, opens
// far more distinct patients (or makes far more accesses) than the user's
// own baseline, or who opens a burst of new patients within one clock
// hour. The baseline is robust: the median and MAD of the user's active
// days in the window; no alert, day or burst, before MinHistory active
// days (peer-deviation speaks for new users). A day, or an hour, within
// PeakFactor of the user's busiest day of the window is no spike for
// them. Only successful reads and writes of records count.
// Key: user|day.
//
// Create it with NewVolumeSpike and change settings before the first
// event.
type VolumeSpike struct {
	// Days is the history window in days. Default DefaultBehaviourDays.
	Days int
	// MinHistory is the active days of history before a day alert.
	// Default DefaultVolumeMinHistory.
	MinHistory int
	// K: a day alerts above median + K·1.4826·MAD of the user's days.
	// Default DefaultVolumeK.
	K float64
	// Factor: and above Factor × the user's median. Default
	// DefaultVolumeFactor.
	Factor float64
	// MinPatients: and above this many distinct patients. Default
	// DefaultVolumeMinPatients.
	MinPatients int
	// PeakFactor: and above PeakFactor × the user's busiest day of the
	// window (a weekly peak, such as Monday's catch-up after a weekend,
	// recurs). Default DefaultVolumePeakFactor; 0 turns it off.
	PeakFactor float64
	// MinEvents: the accesses of a day alert only above this many (and
	// the same baseline rule). Default DefaultVolumeMinEvents.
	MinEvents int
	// BurstPatients: at least this many new patients within one clock
	// hour alert at once, history or not, when they are also more than
	// the user's median whole day. 0 turns bursts off. Default
	// DefaultVolumeBurstPatients.
	BurstPatients int
	// MaxReports bounds the findings of one alert (see
	// DefaultMaxReports).
	MaxReports int
	// MaxUsers bounds the users watched. Default DefaultMaxUsers.
	MaxUsers int
	// Location sets day and hour boundaries. Default nil: UTC.
	Location *time.Location

	users   map[string]*volumeUser
	maxDay  int32
	scratch []float64
}

type volumeUser struct {
	patientDay
	hour    int32 // absolute hour (day*24+h) hourNew counts
	hourNew int32 // new distinct patients in hour

	// baseline of the current day, from hist
	enough     bool
	medP, thrP float64
	maxP       float64 // the largest day of the window
	medE, thrE float64
	repP, repE reporter
	repB       reporter
	burstHour  int32 // hour of the latest burst finding
}

// NewVolumeSpike returns the rule with default settings.
func NewVolumeSpike() *VolumeSpike {
	return &VolumeSpike{
		Days: DefaultBehaviourDays, MinHistory: DefaultVolumeMinHistory, K: DefaultVolumeK,
		Factor: DefaultVolumeFactor, MinPatients: DefaultVolumeMinPatients, MinEvents: DefaultVolumeMinEvents,
		BurstPatients: DefaultVolumeBurstPatients, PeakFactor: DefaultVolumePeakFactor, MaxReports: DefaultMaxReports, MaxUsers: DefaultMaxUsers,
		users: map[string]*volumeUser{}, maxDay: math.MinInt32,
	}
}

// Name implements Rule.
func (r *VolumeSpike) Name() string { return RuleVolumeSpike }

// Observe implements Rule.
func (r *VolumeSpike) Observe(x *Context, ev *Event) {
	if ev.User == "" || !ev.OK || !dataAction(ev.Action) {
		return
	}
	day, hour := splitTime(r.Location, ev.Time)
	u := userOn(r.users, &r.maxDay, day, r.Days, r.MaxUsers, ev.User,
		func() *volumeUser { return &volumeUser{patientDay: patientDay{cur: dayCount{Day: day}}, hour: -1} },
		func(u *volumeUser) { u.roll(day, r.Days); r.baseline(u) }, nil)
	if u == nil {
		return
	}
	n := u.add(ev)
	if ah := day*24 + int32(hour); ah != u.hour {
		u.hour, u.hourNew = ah, 0
	}
	u.hourNew += n
	if n > 0 && r.BurstPatients > 0 && u.hourNew >= int32(r.BurstPatients) && u.enough && float64(u.hourNew) > r.PeakFactor*u.maxP {
		r.burst(x, ev, u, hour)
	}
	if !u.enough {
		return
	}
	if n > 0 && float64(u.cur.Patients) > u.thrP && u.repP.due(float64(u.cur.Patients), u.thrP, r.MaxReports) {
		sev := SeverityMedium
		if float64(u.cur.Patients) >= 2*u.thrP {
			sev = SeverityHigh
		}
		x.Report(Finding{
			Rule: RuleVolumeSpike, Key: dayKey(ev.User, day), Severity: sev,
			Score: ratioScore(float64(u.cur.Patients), u.thrP), User: ev.User, Patients: ev.Patients,
			Why: fmt.Sprintf("User %s opened %d distinct patients on %s, above the %.0f a day usual for them (threshold %.0f from %d days of history).",
				ev.User, u.cur.Patients, dayString(day), u.medP, u.thrP, len(u.hist)),
		})
	}
	if float64(u.cur.Events) > u.thrE && u.repE.due(float64(u.cur.Events), u.thrE, 0) {
		x.Report(Finding{
			Rule: RuleVolumeSpike, Key: dayKey(ev.User, day), Severity: SeverityMedium,
			Score: ratioScore(float64(u.cur.Events), u.thrE), User: ev.User,
			Why: fmt.Sprintf("User %s made %d accesses on %s, above the %.0f a day usual for them (threshold %.0f from %d days of history).",
				ev.User, u.cur.Events, dayString(day), u.medE, u.thrE, len(u.hist)),
		})
	}
}

func (r *VolumeSpike) burst(x *Context, ev *Event, u *volumeUser, hour int) {
	if u.burstHour != u.hour {
		u.burstHour, u.repB = u.hour, reporter{}
	}
	thr := float64(r.BurstPatients)
	if !u.repB.due(float64(u.hourNew), thr, r.MaxReports) {
		return
	}
	usual := fmt.Sprintf("more than on any whole day of their last %d, at most %.0f", len(u.hist), u.maxP)
	if r.PeakFactor > 1 {
		usual = fmt.Sprintf("more than %.4g × their busiest whole day of the last %d, %.0f", r.PeakFactor, len(u.hist), u.maxP)
	}
	x.Report(Finding{
		Rule: RuleVolumeSpike, Key: dayKey(ev.User, u.cur.Day), Severity: SeverityHigh,
		Score: max(75, ratioScore(float64(u.hourNew), thr)), User: ev.User, Patients: ev.Patients,
		Why: fmt.Sprintf("User %s opened %d new patients within the hour from %02d:00 on %s (%s).",
			ev.User, u.hourNew, hour, dayString(u.cur.Day), usual),
	})
}

// baseline sets u's thresholds for its current day from its history.
func (r *VolumeSpike) baseline(u *volumeUser) {
	u.repP, u.repE = reporter{}, reporter{}
	u.enough = len(u.hist) >= r.MinHistory
	if !u.enough {
		return
	}
	r.scratch = r.scratch[:0]
	for _, d := range u.hist {
		r.scratch = append(r.scratch, float64(d.Patients))
	}
	u.maxP = 0
	if len(r.scratch) > 0 {
		u.maxP = slices.Max(r.scratch) // before robustStats reorders it
	}
	p := robustStats(r.scratch, 0.5)
	u.medP = p.med
	// A day no busier than the user's busiest of the window is no spike
	// for them (a weekly peak: Monday's catch-up after a weekend).
	u.thrP = max(p.med+r.K*madScale*p.mad, r.Factor*p.med, float64(r.MinPatients), r.PeakFactor*u.maxP)
	r.scratch = r.scratch[:0]
	for _, d := range u.hist {
		r.scratch = append(r.scratch, float64(d.Events))
	}
	e := robustStats(r.scratch, 0.5)
	u.medE = e.med
	u.thrE = max(e.med+r.K*madScale*e.mad, r.Factor*e.med, float64(r.MinEvents))
}

type volumeUserState struct {
	patientDayState
	Hour      int32    `json:"h"`
	HourNew   int32    `json:"hn,omitempty"`
	RepP      reporter `json:"rp"`
	RepE      reporter `json:"re"`
	RepB      reporter `json:"rb"`
	BurstHour int32    `json:"bh,omitempty"`
}

// MarshalState implements Stateful.
func (r *VolumeSpike) MarshalState() ([]byte, error) {
	return saveUsers(r.maxDay, r.users, func(u *volumeUser) volumeUserState {
		return volumeUserState{patientDayState: u.state(), Hour: u.hour, HourNew: u.hourNew,
			RepP: u.repP, RepE: u.repE, RepB: u.repB, BurstHour: u.burstHour}
	})
}

// UnmarshalState implements Stateful.
func (r *VolumeSpike) UnmarshalState(b []byte) error {
	maxDay, users, err := loadUsers(b, RuleVolumeSpike, func(us volumeUserState) *volumeUser {
		u := &volumeUser{hour: us.Hour, hourNew: us.HourNew, burstHour: us.BurstHour}
		u.restore(us.patientDayState)
		r.baseline(u)
		u.repP, u.repE, u.repB = us.RepP, us.RepE, us.RepB
		return u
	})
	if err != nil {
		return err
	}
	r.maxDay, r.users = maxDay, users
	return nil
}

// ---------------------------------------------------------------------
// peer-deviation

// Defaults of PeerDeviation.
const (
	DefaultPeerMinPeers    = 5
	DefaultPeerZ           = 5.0
	DefaultPeerFactor      = 2.0
	DefaultPeerQuantile    = 0
	DefaultPeerMinPatients = 25
	DefaultPeerMinHistory  = 5 // one working week
	DefaultPeerMinDays     = 7
)

// PeerDeviation is the rule "peer-deviation": a user who, in one day,
// opens more distinct patients than the peer group (same roles and
// department, from the directory or else the event) does: above median
// + Z·1.4826·MAD of the group's user-days in the window (MAD at least
// 1), above Factor × their median, above MinPatients, and, if set, above
// their Quantile. The group needs MinPeers
// other users with history, spanning PeerMinDays days. A user whose own median day (over
// MinHistory days) is already above the threshold is left to
// volume-spike: the rule looks for the day a user leaves the pattern of
// the role, not for the users whose job is busier. Key: user|day.
type PeerDeviation struct {
	// Days is the history window in days. Default DefaultBehaviourDays.
	Days int
	// MinPeers is the other users with history the group needs. Default
	// DefaultPeerMinPeers.
	MinPeers int
	// Z is the robust z-score above which a day alerts. Default
	// DefaultPeerZ.
	Z float64
	// Quantile of the group's user-days a day must also exceed, e.g.
	// 0.99; 0 turns it off. Default DefaultPeerQuantile (off): a
	// quantile is not robust, so one chronically busy peer would raise
	// it for the whole group, where the median and MAD hold.
	Quantile float64
	// Factor: and Factor × the group's median. Default
	// DefaultPeerFactor.
	Factor float64
	// MinPatients: a day alerts only above this many distinct patients.
	// Default DefaultPeerMinPatients.
	MinPatients int
	// MinHistory is the user's own days needed for the busier-job check.
	// Default DefaultPeerMinHistory.
	MinHistory int
	// PeerMinDays is the distinct days, first to last, the group's
	// history must span before it is trusted. Default
	// DefaultPeerMinDays: a detector started on an empty history
	// otherwise compares the first days' busy jobs with a day or two of
	// their peers.
	PeerMinDays int
	// MaxReports bounds the findings of one alert (see
	// DefaultMaxReports).
	MaxReports int
	// MaxUsers bounds the users watched. Default DefaultMaxUsers.
	MaxUsers int
	// Location sets day boundaries. Default nil: UTC.
	Location *time.Location

	users   map[string]*peerUser
	groups  groups[peerUser, peerStats]
	maxDay  int32
	scratch []float64
}

type peerUser struct {
	patientDay
	grp    groupRef
	ownMed float64 // median of own history, if enough; else -1
	rep    reporter
}

type peerStats struct {
	thr, med float64
	peers    int   // members with history
	span     int32 // days from the first to the last of their history
}

// NewPeerDeviation returns the rule with default settings.
func NewPeerDeviation() *PeerDeviation {
	return &PeerDeviation{
		Days: DefaultBehaviourDays, MinPeers: DefaultPeerMinPeers, Z: DefaultPeerZ, Quantile: DefaultPeerQuantile, Factor: DefaultPeerFactor,
		MinPatients: DefaultPeerMinPatients, MinHistory: DefaultPeerMinHistory, PeerMinDays: DefaultPeerMinDays,
		MaxReports: DefaultMaxReports, MaxUsers: DefaultMaxUsers,
		users: map[string]*peerUser{}, groups: groups[peerUser, peerStats]{}, maxDay: math.MinInt32,
	}
}

// Name implements Rule.
func (r *PeerDeviation) Name() string { return RulePeerDeviation }

// Observe implements Rule.
func (r *PeerDeviation) Observe(x *Context, ev *Event) {
	if ev.User == "" || !ev.OK || !dataAction(ev.Action) {
		return
	}
	day, _ := splitTime(r.Location, ev.Time)
	u := userOn(r.users, &r.maxDay, day, r.Days, r.MaxUsers, ev.User,
		func() *peerUser {
			u := &peerUser{patientDay: patientDay{cur: dayCount{Day: day}}, ownMed: -1}
			r.join(x, ev, u)
			return u
		},
		func(u *peerUser) {
			u.roll(day, r.Days)
			u.rep = reporter{}
			r.own(u)
			r.join(x, ev, u)
		},
		r.leave)
	if u == nil || u.add(ev) == 0 || u.grp.key == "" || u.cur.Patients <= int32(r.MinPatients) {
		return
	}
	g := r.groups[u.grp.key]
	if g.day < day {
		r.stats(g, day)
	}
	peers := g.stats.peers
	if len(u.hist) > 0 {
		peers-- // u is not its own peer
	}
	n := float64(u.cur.Patients)
	if peers < r.MinPeers || g.stats.span < int32(r.PeerMinDays) || n <= g.stats.thr || u.ownMed > g.stats.thr {
		return
	}
	if !u.rep.due(n, g.stats.thr, r.MaxReports) {
		return
	}
	sev := SeverityMedium
	if n >= 2*g.stats.thr {
		sev = SeverityHigh
	}
	x.Report(Finding{
		Rule: RulePeerDeviation, Key: dayKey(ev.User, day), Severity: sev,
		Score: ratioScore(n, g.stats.thr), User: ev.User, Patients: ev.Patients,
		Why: fmt.Sprintf("User %s opened %d distinct patients on %s, where peers of group %s open a median of %.0f (threshold %.0f over %d peers).",
			ev.User, u.cur.Patients, dayString(day), u.grp.key, g.stats.med, g.stats.thr, peers),
	})
}

// join puts u in its peer group as of ev. The group is looked up on a
// user's first event of each day only: a change of role or department
// counts from the next day.
func (r *PeerDeviation) join(x *Context, ev *Event, u *peerUser) {
	roles, dept := peerOf(x.Dir, ev)
	r.groups.join(&u.grp, roles, dept, u)
}

// own sets u's own median, or -1 without enough history.
func (r *PeerDeviation) own(u *peerUser) {
	u.ownMed = -1
	if len(u.hist) < r.MinHistory {
		return
	}
	r.scratch = r.scratch[:0]
	for _, d := range u.hist {
		r.scratch = append(r.scratch, float64(d.Patients))
	}
	u.ownMed = robustStats(r.scratch, 0.5).med
}

// stats computes g's threshold for day from its members' days before it.
func (r *PeerDeviation) stats(g *group[peerUser, peerStats], day int32) {
	g.day = day
	r.scratch = r.scratch[:0]
	peers := 0
	from := day - int32(r.Days)
	first, last := day, from
	for _, m := range g.members {
		n := len(r.scratch)
		for _, d := range m.hist {
			if d.Day > from && d.Day < day {
				r.scratch = append(r.scratch, float64(d.Patients))
				first, last = min(first, d.Day), max(last, d.Day)
			}
		}
		if c := m.cur; c.Day > from && c.Day < day && c.Events > 0 {
			r.scratch = append(r.scratch, float64(c.Patients))
			first, last = min(first, c.Day), max(last, c.Day)
		}
		if len(r.scratch) > n {
			peers++
		}
	}
	st := robustStats(r.scratch, max(r.Quantile, 0))
	g.stats = peerStats{
		med:   st.med,
		peers: peers,
		span:  max(last-first+1, 0),
		thr:   max(st.q, st.med+r.Z*madScale*max(st.mad, 1), r.Factor*st.med, float64(r.MinPatients)),
	}
}

// leave takes u out of its peer group.
func (r *PeerDeviation) leave(u *peerUser) { r.groups.move(u.grp.key, "", u) }

type peerUserState struct {
	patientDayState
	groupState
	Rep reporter `json:"r"`
}

// MarshalState implements Stateful.
func (r *PeerDeviation) MarshalState() ([]byte, error) {
	return saveUsers(r.maxDay, r.users, func(u *peerUser) peerUserState {
		return peerUserState{patientDayState: u.state(), groupState: u.grp.state(), Rep: u.rep}
	})
}

// UnmarshalState implements Stateful. Group statistics are recomputed
// from the members' days, as they were.
func (r *PeerDeviation) UnmarshalState(b []byte) error {
	gs := groups[peerUser, peerStats]{}
	maxDay, users, err := loadUsers(b, RulePeerDeviation, func(us peerUserState) *peerUser {
		u := &peerUser{rep: us.Rep}
		u.restore(us.patientDayState)
		r.own(u)
		gs.join(&u.grp, us.Roles, us.Dept, u)
		return u
	})
	if err != nil {
		return err
	}
	r.maxDay, r.users, r.groups = maxDay, users, gs
	return nil
}

// ---------------------------------------------------------------------
// after-hours

// Defaults of AfterHours.
const (
	DefaultAfterHoursMinHistory   = 10
	DefaultAfterHoursMaxShare     = 0.05
	DefaultAfterHoursNeighbour    = 1
	DefaultAfterHoursNightStart   = 0
	DefaultAfterHoursNightEnd     = 5
	DefaultAfterHoursMinPeers     = 5
	DefaultAfterHoursPeerMaxShare = 0.01
	DefaultAfterHoursPeerMinDays  = 7
)

// AfterHours is the rule "after-hours": access to records at an hour of
// the day the user almost never works. It learns, per user, on which of
// the last Days active days each hour was worked. An hour alerts when
// it, or an hour within Neighbour of it, was worked on at most MaxShare of
// the user's active days (at least MinHistory of them). Before that much
// history, an hour in the night window [NightStart, NightEnd) alerts when
// the user's peer group (MinPeers users with history spanning PeerMinDays
// days) worked it on at most PeerMaxShare of their days; without such
// peers, it does not. Failed
// attempts count: a stolen password tried at night is as telling as a
// successful one. Key: user|day.
type AfterHours struct {
	// Days is the history window in days. Default DefaultBehaviourDays.
	Days int
	// MinHistory is the active days needed to judge by the user's own
	// pattern. Default DefaultAfterHoursMinHistory.
	MinHistory int
	// MaxShare of active days an hour may have been worked and still be
	// unusual. Default DefaultAfterHoursMaxShare.
	MaxShare float64
	// Neighbour hours either side that count as the same habit. Default
	// DefaultAfterHoursNeighbour.
	Neighbour int
	// NightStart and NightEnd (hours, end excluded, may wrap past
	// midnight) are the fallback night window. Defaults
	// DefaultAfterHoursNightStart and DefaultAfterHoursNightEnd.
	NightStart, NightEnd int
	// MinPeers is the peers with history the fallback needs. Default
	// DefaultAfterHoursMinPeers.
	MinPeers int
	// PeerMaxShare of the peers' days an hour may have been worked and
	// still count as never. Default DefaultAfterHoursPeerMaxShare.
	PeerMaxShare float64
	// PeerMinDays is the distinct days (at most 64) the peers' history
	// must span before the fallback trusts it. Default
	// DefaultAfterHoursPeerMinDays.
	PeerMinDays int
	// MaxReports bounds the findings of one alert (see
	// DefaultMaxReports).
	MaxReports int
	// MaxUsers bounds the users watched. Default DefaultMaxUsers.
	MaxUsers int
	// Location sets day and hour boundaries. Default nil: UTC.
	Location *time.Location

	users  map[string]*hoursUser
	groups groups[hoursUser, hoursStats]
	maxDay int32
}

// hourDay is the hours one user worked in one day, a bit each. It is
// saved as [day, hours].
type hourDay struct {
	Day   int32
	Hours uint32
}

func (d hourDay) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]int64{int64(d.Day), int64(d.Hours)})
}

func (d *hourDay) UnmarshalJSON(b []byte) error {
	var a [2]int64
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if a[0] < math.MinInt32 || a[0] > math.MaxInt32 || a[1] < 0 || a[1] >= 1<<24 {
		return fmt.Errorf("hours of day %d out of range", a[0])
	}
	d.Day, d.Hours = int32(a[0]), uint32(a[1])
	return nil
}

type hoursUser struct {
	hist    []hourDay // completed active days in the window, oldest first
	cur     hourDay
	flagged uint32 // hours of cur found unusual
	grp     groupRef
	rep     reporter
}

func (u *hoursUser) latest() int32 { return u.cur.Day }

type hoursStats struct {
	days   int32     // member-days
	counts [24]int32 // member-days with each hour worked
	peers  int
	span   uint64 // bit i: some member worked on the day i+1 days before
}

// NewAfterHours returns the rule with default settings.
func NewAfterHours() *AfterHours {
	return &AfterHours{
		Days: DefaultBehaviourDays, MinHistory: DefaultAfterHoursMinHistory, MaxShare: DefaultAfterHoursMaxShare,
		Neighbour: DefaultAfterHoursNeighbour, NightStart: DefaultAfterHoursNightStart, NightEnd: DefaultAfterHoursNightEnd,
		MinPeers: DefaultAfterHoursMinPeers, PeerMaxShare: DefaultAfterHoursPeerMaxShare,
		PeerMinDays: DefaultAfterHoursPeerMinDays,
		MaxReports:  DefaultMaxReports, MaxUsers: DefaultMaxUsers,
		users: map[string]*hoursUser{}, groups: groups[hoursUser, hoursStats]{}, maxDay: math.MinInt32,
	}
}

// Name implements Rule.
func (r *AfterHours) Name() string { return RuleAfterHours }

// Observe implements Rule.
func (r *AfterHours) Observe(x *Context, ev *Event) {
	if ev.User == "" || !dataAction(ev.Action) {
		return
	}
	day, hour := splitTime(r.Location, ev.Time)
	u := userOn(r.users, &r.maxDay, day, r.Days, r.MaxUsers, ev.User,
		func() *hoursUser { return &hoursUser{cur: hourDay{Day: day}} },
		func(u *hoursUser) { r.roll(u, day) }, r.leave)
	if u == nil {
		return
	}
	bit := uint32(1) << hour
	if u.flagged&bit != 0 {
		if u.rep.due(0, 0, r.MaxReports) {
			r.report(x, ev, u, day, hour, "")
		}
		return
	}
	if u.cur.Hours&bit != 0 {
		return
	}
	u.cur.Hours |= bit
	roles, dept := peerOf(x.Dir, ev)
	r.groups.join(&u.grp, roles, dept, u)
	if len(u.hist) >= r.MinHistory {
		mask := r.around(hour)
		worked := 0
		for _, d := range u.hist {
			if d.Hours&mask != 0 {
				worked++
			}
		}
		if float64(worked) > r.MaxShare*float64(len(u.hist)) {
			return
		}
		u.flagged |= bit
		u.rep.due(0, 0, r.MaxReports)
		r.report(x, ev, u, day, hour, fmt.Sprintf("an hour they worked on %d of their last %d active days", worked, len(u.hist)))
		return
	}
	if !r.night(hour) || u.grp.key == "" {
		return
	}
	g := r.groups[u.grp.key]
	if g.day < day {
		r.stats(g, day)
	}
	st := &g.stats
	peers := st.peers
	if len(u.hist) > 0 {
		peers--
	}
	if peers < r.MinPeers || bits.OnesCount64(st.span) < r.PeerMinDays ||
		float64(st.counts[hour]) > r.PeerMaxShare*float64(st.days) {
		return
	}
	u.flagged |= bit
	u.rep.due(0, 0, r.MaxReports)
	r.report(x, ev, u, day, hour, fmt.Sprintf("a night hour their peer group %s worked on %d of %d days, and they have too little history of their own", u.grp.key, st.counts[hour], st.days))
}

func (r *AfterHours) report(x *Context, ev *Event, u *hoursUser, day int32, hour int, why string) {
	if why == "" {
		why = "an hour unusual for them"
	}
	x.Report(Finding{
		Rule: RuleAfterHours, Key: dayKey(ev.User, day), Severity: SeverityMedium, Score: 60,
		User: ev.User, Patients: ev.Patients,
		Why: fmt.Sprintf("User %s accessed records at %02d:00 on %s, %s.", ev.User, hour, dayString(day), why),
	})
}

// around returns the mask of hour and its neighbours.
func (r *AfterHours) around(hour int) uint32 {
	var m uint32
	for d := -r.Neighbour; d <= r.Neighbour; d++ {
		m |= 1 << (((hour+d)%24 + 24) % 24)
	}
	return m
}

// night reports whether hour is in the night window.
func (r *AfterHours) night(hour int) bool {
	if r.NightStart <= r.NightEnd {
		return hour >= r.NightStart && hour < r.NightEnd
	}
	return hour >= r.NightStart || hour < r.NightEnd
}

func (r *AfterHours) roll(u *hoursUser, day int32) {
	if u.cur.Hours != 0 {
		u.hist = append(u.hist, u.cur)
	}
	u.hist = trimWindow(u.hist, day-int32(r.Days), func(d hourDay) int32 { return d.Day })
	u.cur, u.flagged, u.rep = hourDay{Day: day}, 0, reporter{}
}

func (r *AfterHours) stats(g *group[hoursUser, hoursStats], day int32) {
	st := hoursStats{}
	from := day - int32(r.Days)
	add := func(d hourDay) bool {
		if d.Day <= from || d.Day >= day || d.Hours == 0 {
			return false
		}
		st.days++
		if back := day - d.Day - 1; back < 64 {
			st.span |= 1 << back
		}
		for h := range 24 {
			if d.Hours&(1<<h) != 0 {
				st.counts[h]++
			}
		}
		return true
	}
	for _, m := range g.members {
		has := false
		for _, d := range m.hist {
			has = add(d) || has
		}
		has = add(m.cur) || has
		if has {
			st.peers++
		}
	}
	g.day, g.stats = day, st
}

// leave takes u out of its peer group.
func (r *AfterHours) leave(u *hoursUser) { r.groups.move(u.grp.key, "", u) }

type hoursUserState struct {
	Hist    []hourDay `json:"hist,omitempty"`
	Cur     hourDay   `json:"cur"`
	Flagged uint32    `json:"f,omitempty"`
	groupState
	Rep reporter `json:"r"`
}

// MarshalState implements Stateful.
func (r *AfterHours) MarshalState() ([]byte, error) {
	return saveUsers(r.maxDay, r.users, func(u *hoursUser) hoursUserState {
		return hoursUserState{Hist: u.hist, Cur: u.cur, Flagged: u.flagged, groupState: u.grp.state(), Rep: u.rep}
	})
}

// UnmarshalState implements Stateful.
func (r *AfterHours) UnmarshalState(b []byte) error {
	gs := groups[hoursUser, hoursStats]{}
	maxDay, users, err := loadUsers(b, RuleAfterHours, func(us hoursUserState) *hoursUser {
		u := &hoursUser{hist: us.Hist, cur: us.Cur, flagged: us.Flagged, rep: us.Rep}
		gs.join(&u.grp, us.Roles, us.Dept, u)
		return u
	})
	if err != nil {
		return err
	}
	r.maxDay, r.users, r.groups = maxDay, users, gs
	return nil
}

// ---------------------------------------------------------------------
// name-search-browsing

// Defaults of NameSearchBrowsing.
const (
	DefaultBrowsingWindow       = time.Hour
	DefaultBrowsingPatients     = 3
	DefaultBrowsingRelatedSlack = 24 * time.Hour
	// maxBrowsed bounds the patients one episode remembers.
	maxBrowsed = 64
)

// NameSearchBrowsing is the rule "name-search-browsing": a user who
// searches patients by name (parameters name, family, given or
// phonetic, with or without a modifier or chain) and then, within Window
// of the latest such search, opens (read, vread, $everything) Patients
// or more patients with no care relationship to the user (Directory.
// Related, with RelatedSlack), nor, if SameDepartment, managed by the
// user's department. A patient judged related stays so for the rest of
// the day. The user's own Patient record does not count. Users
// with a role in ExemptRoles (e.g. registration desks) are not watched.
// Key: user|hour of the episode's first name search.
type NameSearchBrowsing struct {
	// Window after the latest name search in which opened patients
	// count. Default DefaultBrowsingWindow.
	Window time.Duration
	// Patients without relationship that alert. Default
	// DefaultBrowsingPatients.
	Patients int
	// RelatedSlack is allowed before a relationship starts and after it
	// ends. Default DefaultBrowsingRelatedSlack.
	RelatedSlack time.Duration
	// SameDepartment counts a patient managed by the user's department as
	// related. Default true.
	SameDepartment bool
	// ExemptRoles are roles whose users are not watched. Default none.
	ExemptRoles []string
	// MaxReports bounds the findings of one alert (see
	// DefaultMaxReports).
	MaxReports int
	// MaxUsers bounds the users watched. Default DefaultMaxUsers.
	MaxUsers int
	// Location sets the hour of the key. Default nil: UTC.
	Location *time.Location

	users    map[string]*browseUser
	free     []*browseUser // forgotten users' memory, for the next ones
	lastHour int64
}

// maxFree bounds the forgotten users' memory kept for reuse.
const maxFree = 256

type browseUser struct {
	start   int64    // unix seconds of the episode's first name search
	last    int64    // unix seconds of its latest name search
	opened  []string // patients without relationship opened since start
	day     int32    // the day of related
	related idSet    // patients judged related on day
	rep     reporter
}

// maxRelated bounds the patients judged related one user's day
// remembers; beyond it, patients are judged again at each open.
const maxRelated = 4096

// NewNameSearchBrowsing returns the rule with default settings.
func NewNameSearchBrowsing() *NameSearchBrowsing {
	return &NameSearchBrowsing{
		Window: DefaultBrowsingWindow, Patients: DefaultBrowsingPatients, RelatedSlack: DefaultBrowsingRelatedSlack,
		SameDepartment: true, MaxReports: DefaultMaxReports, MaxUsers: DefaultMaxUsers,
		users: map[string]*browseUser{},
	}
}

// Name implements Rule.
func (r *NameSearchBrowsing) Name() string { return RuleNameSearchBrowsing }

// nameSearch reports whether params search by a person's name.
func nameSearch(params []string) bool {
	for _, p := range params {
		if i := strings.IndexByte(p, ':'); i >= 0 {
			p = p[:i]
		}
		if i := strings.LastIndexByte(p, '.'); i >= 0 {
			p = p[i+1:]
		}
		switch p {
		case "name", "family", "given", "phonetic":
			return true
		}
	}
	return false
}

// Observe implements Rule.
func (r *NameSearchBrowsing) Observe(x *Context, ev *Event) {
	if ev.User == "" || !ev.OK {
		return
	}
	t := ev.Time.Unix()
	win := int64(r.Window / time.Second)
	if h := t / 3600; h > r.lastHour {
		// Like advance, by hours.
		if r.lastHour == 0 {
			r.lastHour = h
		} else {
			r.lastHour = min(h, r.lastHour+1)
		}
		now := time.Unix(r.lastHour*3600, 0)
		day, _ := splitTime(r.Location, now)
		r.sweep(now.Unix()-win, day)
	}
	switch ev.Action {
	case phivault.ActionSearch:
		if (ev.ResourceType != "" && ev.ResourceType != "Patient") || !nameSearch(ev.Params) {
			return
		}
		u := r.users[ev.User]
		if u == nil {
			if len(r.users) >= r.MaxUsers || r.exempt(x.Dir, ev) {
				return
			}
			if n := len(r.free); n > 0 {
				u, r.free = r.free[n-1], r.free[:n-1]
			} else {
				u = &browseUser{}
			}
			r.users[ev.User] = u
		}
		if u.start == 0 || t-u.last > win {
			u.start, u.opened, u.rep = t, u.opened[:0], reporter{}
		}
		u.last = max(u.last, t)
		if day, _ := splitTime(r.Location, ev.Time); day != u.day {
			u.day = day
			u.related.reset()
		}
	case phivault.ActionRead, phivault.ActionVRead, phivault.ActionEverything:
		u := r.users[ev.User]
		if u == nil || u.start == 0 || t < u.start || t-u.last > win {
			return
		}
		r.opened(x, ev, u)
	}
}

func (r *NameSearchBrowsing) exempt(dir *Directory, ev *Event) bool {
	if len(r.ExemptRoles) == 0 {
		return false
	}
	roles, _ := peerOf(dir, ev)
	for _, role := range roles {
		if slices.Contains(r.ExemptRoles, role) {
			return true
		}
	}
	return false
}

// opened judges the patients of ev. A patient judged related stays so
// for the rest of the day: the directory is asked once per user, patient
// and day.
func (r *NameSearchBrowsing) opened(x *Context, ev *Event, u *browseUser) {
	if day, _ := splitTime(r.Location, ev.Time); day != u.day {
		u.day = day
		u.related.reset()
	}
	var du *User
	before := len(u.opened)
	for _, p := range ev.Patients {
		h := hashID(p)
		if x.Dir == nil || len(u.opened) >= maxBrowsed || u.related.has(h) || slices.Contains(u.opened, p) {
			continue
		}
		related := x.Dir.Related(ev.User, p, ev.Time, r.RelatedSlack) != nil
		if !related {
			if du == nil {
				if du = x.Dir.User(ev.User); du == nil {
					du = &User{Department: ev.Department}
				}
			}
			related = p == du.Patient
			if !related && r.SameDepartment && du.Department != "" {
				pt := x.Dir.Patient(p)
				related = pt != nil && pt.Department == du.Department
			}
		}
		if !related {
			u.opened = append(u.opened, p)
		} else if u.related.n < maxRelated {
			u.related.add(h)
		}
	}
	n := len(u.opened)
	if n == before || n < r.Patients || !u.rep.due(float64(n), float64(r.Patients), r.MaxReports) {
		return
	}
	patients := slices.Clone(u.opened[before:])
	if u.rep.Reports == 1 {
		patients = slices.Clone(u.opened) // the first finding names every patient so far
	}
	sev := SeverityMedium
	if n >= 2*r.Patients {
		sev = SeverityHigh
	}
	start := time.Unix(u.start, 0).UTC()
	if r.Location != nil {
		start = start.In(r.Location)
	}
	x.Report(Finding{
		Rule: RuleNameSearchBrowsing, Key: ev.User + "|" + start.Format("2006-01-02T15"), Severity: sev,
		Score: ratioScore(float64(n), float64(r.Patients)), User: ev.User, Patients: patients,
		Why: fmt.Sprintf("User %s searched patients by name and then opened %d patients without a care relationship, within %s of a name search.",
			ev.User, n, shortDuration(r.Window)),
	})
}

// sweep forgets users whose episode ended before since, and whose
// related patients are of a day before day.
func (r *NameSearchBrowsing) sweep(since int64, day int32) {
	maps.DeleteFunc(r.users, func(_ string, u *browseUser) bool {
		if u.last >= since || u.day >= day {
			return false
		}
		if len(r.free) < maxFree {
			u.start, u.last, u.opened, u.rep = 0, 0, u.opened[:0], reporter{}
			u.related.reset()
			r.free = append(r.free, u)
		}
		return true
	})
}

type browseUserState struct {
	Start   int64    `json:"start"`
	Last    int64    `json:"last"`
	Opened  []string `json:"opened,omitempty"`
	Day     int32    `json:"day"`
	Related idSet    `json:"related,omitzero"`
	Rep     reporter `json:"rep"`
}

type browseState struct {
	LastHour int64                      `json:"lastHour"`
	Users    map[string]browseUserState `json:"users"`
}

// MarshalState implements Stateful.
func (r *NameSearchBrowsing) MarshalState() ([]byte, error) {
	s := browseState{LastHour: r.lastHour, Users: make(map[string]browseUserState, len(r.users))}
	for id, u := range r.users {
		s.Users[id] = browseUserState{Start: u.start, Last: u.last, Opened: u.opened, Day: u.day, Related: u.related, Rep: u.rep}
	}
	return json.Marshal(s)
}

// UnmarshalState implements Stateful.
func (r *NameSearchBrowsing) UnmarshalState(b []byte) error {
	var s browseState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("name-search-browsing state: %w", err)
	}
	r.lastHour, r.users = s.LastHour, make(map[string]*browseUser, len(s.Users))
	for id, us := range s.Users {
		u := &browseUser{start: us.Start, last: us.Last, opened: us.Opened, day: us.Day, related: us.Related, rep: us.Rep}
		r.users[id] = u
	}
	return nil
}

// ---------------------------------------------------------------------
// bulk-access

// Defaults of BulkAccess.
const (
	DefaultBulkLargeResult        = 1000
	DefaultBulkLargePatients      = 100
	DefaultBulkExportPatients     = 10
	DefaultBulkEverythingPatients = 20
	DefaultBulkPrintPatients      = 20
	DefaultBulkLearning           = 7 // days
	DefaultBulkRoutineDays        = 3
	DefaultBulkRoutineFactor      = 2.0
	DefaultBulkDays               = 28
)

// BulkAccess is the rule "bulk-access": one search, $everything or
// Bundle returning LargeResult or more resources (or LargePatients or
// more patients); and, per user and day, record exports (export events
// that name patients, or come from another system), $everything, or
// prints reaching their thresholds, counted in patients (an event
// without patient counts one). An export or $everything by a staff
// account (one the directory knows, or whose events state roles) is of
// high severity; others are medium. Users in ExemptUsers (e.g. a billing
// service's account) are not watched.
//
// The daily counts learn from the user's own history: in a user's first
// Learning days a day below LargeResult patients is not reported, and
// afterwards a day is routine, and not reported, when the user reached
// the same threshold on at least RoutineDays days of the last Days and
// today's count, per day since the last such day, is at most
// RoutineFactor times the largest of them (a billing clerk's daily batch,
// Monday's covering the weekend). Key: user|day.
type BulkAccess struct {
	// LargeResult is the resources one search, $everything or Bundle
	// returns that alert. Default DefaultBulkLargeResult.
	LargeResult int
	// LargePatients is the patients one of them touches that alert.
	// Default DefaultBulkLargePatients.
	LargePatients int
	// ExportPatients a day by export alert. Default
	// DefaultBulkExportPatients.
	ExportPatients int
	// EverythingPatients a day by $everything alert. Default
	// DefaultBulkEverythingPatients.
	EverythingPatients int
	// PrintPatients a day by print alert. Default
	// DefaultBulkPrintPatients.
	PrintPatients int
	// Learning is the days, from the first access the rule sees of a
	// user, in which daily counts below LargeResult are learned, not
	// reported. Default DefaultBulkLearning; 0 reports
	// from the first day.
	Learning int
	// RoutineDays is the past days reaching a threshold that make a day
	// like them routine. Default DefaultBulkRoutineDays; 0 turns the
	// routine check off.
	RoutineDays int
	// RoutineFactor is how much more than the largest routine day, per
	// day since the last one, is still routine. Default
	// DefaultBulkRoutineFactor.
	RoutineFactor float64
	// Days is the window of past days remembered. Default
	// DefaultBulkDays.
	Days int
	// ExemptUsers are user ids not watched. Default none.
	ExemptUsers []string
	// MaxReports bounds the findings of one alert (see
	// DefaultMaxReports).
	MaxReports int
	// MaxUsers bounds the users watched. Default DefaultMaxUsers.
	MaxUsers int
	// Location sets day boundaries. Default nil: UTC.
	Location *time.Location

	users  map[string]*bulkUser
	maxDay int32
}

type bulkUser struct {
	Day        int32     `json:"d"`
	First      int32     `json:"f"`
	Exports    int32     `json:"x,omitempty"`
	Everything int32     `json:"e,omitempty"`
	Prints     int32     `json:"p,omitempty"`
	Hist       []bulkDay `json:"h,omitempty"` // past days with a count, oldest first
	Rep        reporter  `json:"r"`
}

func (u *bulkUser) latest() int32 { return u.Day }

// bulkDay is a past day's counts.
type bulkDay struct {
	Day        int32 `json:"d"`
	Exports    int32 `json:"x,omitempty"`
	Everything int32 `json:"e,omitempty"`
	Prints     int32 `json:"p,omitempty"`
}

// NewBulkAccess returns the rule with default settings.
func NewBulkAccess() *BulkAccess {
	return &BulkAccess{
		LargeResult: DefaultBulkLargeResult, LargePatients: DefaultBulkLargePatients,
		ExportPatients: DefaultBulkExportPatients, EverythingPatients: DefaultBulkEverythingPatients,
		PrintPatients: DefaultBulkPrintPatients, Learning: DefaultBulkLearning, RoutineDays: DefaultBulkRoutineDays,
		RoutineFactor: DefaultBulkRoutineFactor, Days: DefaultBulkDays,
		MaxReports: DefaultMaxReports, MaxUsers: DefaultMaxUsers,
		users: map[string]*bulkUser{}, maxDay: math.MinInt32,
	}
}

// Name implements Rule.
func (r *BulkAccess) Name() string { return RuleBulkAccess }

// Observe implements Rule.
func (r *BulkAccess) Observe(x *Context, ev *Event) {
	if ev.User == "" || !ev.OK || !dataAction(ev.Action) {
		return
	}
	var large, export, everything, print bool
	switch ev.Action {
	case phivault.ActionSearch, phivault.ActionBundle:
		large = ev.Count >= r.LargeResult || len(ev.Patients) >= r.LargePatients
	case phivault.ActionEverything:
		large = ev.Count >= r.LargeResult || len(ev.Patients) >= r.LargePatients
		everything = true
	case phivault.ActionExport:
		export = len(ev.Patients) > 0 || ev.System != ""
	case ActionPrint:
		print = true
	}
	day, _ := splitTime(r.Location, ev.Time)
	// Every access counts for the learning period's start.
	u := userOn(r.users, &r.maxDay, day, r.days(), r.MaxUsers, ev.User,
		func() *bulkUser { return &bulkUser{Day: day, First: day} },
		func(u *bulkUser) { u.roll(day, r.days()) }, nil)
	if u == nil || !large && !export && !everything && !print {
		return
	}
	if slices.Contains(r.ExemptUsers, ev.User) {
		return
	}
	n := int32(max(1, len(ev.Patients)))
	staff := len(ev.Roles) > 0
	if !staff && x.Dir != nil {
		staff = x.Dir.User(ev.User) != nil
	}
	what := "records"
	if staff {
		what = "staff account"
	}
	report := func(sev Severity, score int, why string) {
		if !u.Rep.due(0, 0, r.MaxReports) {
			return
		}
		x.Report(Finding{Rule: RuleBulkAccess, Key: dayKey(ev.User, day), Severity: sev, Score: score,
			User: ev.User, Patients: ev.Patients, Why: why})
	}
	if large {
		sev, thr, got := SeverityMedium, float64(r.LargeResult), float64(ev.Count)
		if len(ev.Patients) >= r.LargePatients && float64(len(ev.Patients))/float64(r.LargePatients) > got/thr {
			thr, got = float64(r.LargePatients), float64(len(ev.Patients))
		}
		if got >= 10*thr {
			sev = SeverityHigh
		}
		report(sev, ratioScore(got, thr), fmt.Sprintf("User %s received %d resources of %d patients from one %s on %s.",
			ev.User, ev.Count, len(ev.Patients), ev.Action, dayString(day)))
	}
	sevOf := func() Severity {
		if staff {
			return SeverityHigh
		}
		return SeverityMedium
	}
	switch {
	case export:
		u.Exports += n
		if r.unusual(u, u.Exports, r.ExportPatients, func(d bulkDay) int32 { return d.Exports }) {
			report(sevOf(), ratioScore(float64(u.Exports), float64(r.ExportPatients)),
				fmt.Sprintf("User %s (%s) exported records of %d patients on %s (threshold %d).", ev.User, what, u.Exports, dayString(day), r.ExportPatients))
		}
	case everything:
		u.Everything += n
		if r.unusual(u, u.Everything, r.EverythingPatients, func(d bulkDay) int32 { return d.Everything }) {
			report(sevOf(), ratioScore(float64(u.Everything), float64(r.EverythingPatients)),
				fmt.Sprintf("User %s (%s) read the whole record ($everything) of %d patients on %s (threshold %d).", ev.User, what, u.Everything, dayString(day), r.EverythingPatients))
		}
	case print:
		u.Prints += n
		if r.unusual(u, u.Prints, r.PrintPatients, func(d bulkDay) int32 { return d.Prints }) {
			report(SeverityMedium, ratioScore(float64(u.Prints), float64(r.PrintPatients)),
				fmt.Sprintf("User %s printed records of %d patients on %s (threshold %d).", ev.User, u.Prints, dayString(day), r.PrintPatients))
		}
	}
}

func (r *BulkAccess) days() int {
	if r.Days <= 0 {
		return DefaultBulkDays
	}
	return r.Days
}

// unusual reports whether today's count n of a kind (of per day in the
// history) alerts: at its threshold thr, past the learning period or ten
// times thr, and not routine for u.
func (r *BulkAccess) unusual(u *bulkUser, n int32, thr int, of func(bulkDay) int32) bool {
	if n < int32(thr) {
		return false
	}
	if u.Day-u.First < int32(r.Learning) {
		// Still learning this user: only a day as large as one large
		// result alerts.
		return n >= int32(r.LargeResult)
	}
	if r.RoutineDays <= 0 {
		return true
	}
	// A batch covers the days since the previous one (at most a week):
	// compare counts per day since the previous day reaching thr.
	perDay := func(c, day, last int32) float64 {
		if last == math.MinInt32 {
			return float64(c)
		}
		return float64(c) / float64(min(max(day-last, 1), 7))
	}
	days, largest, last := 0, 0.0, int32(math.MinInt32)
	for _, d := range u.Hist {
		if c := of(d); c >= int32(thr) {
			days++
			largest, last = max(largest, perDay(c, d.Day, last)), d.Day
		}
	}
	if days < r.RoutineDays {
		return true
	}
	return perDay(n, u.Day, last) > r.RoutineFactor*largest
}

// roll closes u's day and starts day, keeping the past days with a count
// within the window of days.
func (u *bulkUser) roll(day int32, days int) {
	if u.Exports > 0 || u.Everything > 0 || u.Prints > 0 {
		u.Hist = append(u.Hist, bulkDay{Day: u.Day, Exports: u.Exports, Everything: u.Everything, Prints: u.Prints})
	}
	u.Hist = trimWindow(u.Hist, day-int32(days), func(d bulkDay) int32 { return d.Day })
	*u = bulkUser{Day: day, First: u.First, Hist: u.Hist}
}

// MarshalState implements Stateful.
func (r *BulkAccess) MarshalState() ([]byte, error) {
	return saveUsers(r.maxDay, r.users, func(u *bulkUser) *bulkUser { return u })
}

// UnmarshalState implements Stateful.
func (r *BulkAccess) UnmarshalState(b []byte) error {
	maxDay, users, err := loadUsers(b, RuleBulkAccess, func(u *bulkUser) *bulkUser {
		if u == nil {
			return &bulkUser{} // saved as null: a user of day 0, soon swept
		}
		return u
	})
	if err != nil {
		return err
	}
	r.maxDay, r.users = maxDay, users
	return nil
}
