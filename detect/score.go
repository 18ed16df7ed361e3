package detect

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/phivault/phivault"
)

// Defaults of a RiskScorer's settings.
const (
	DefaultScoreSlack       = 7 * 24 * time.Hour // RiskScorer.Slack
	DefaultScoreHistoryDays = 28                 // RiskScorer.HistoryDays
	DefaultPatientAccessors = 12                 // RiskScorer.PatientAccessors
	DefaultRecentPatients   = 128                // RiskScorer.RecentPatients
	DefaultCollaborators    = 8                  // RiskScorer.Collaborators
	DefaultScoreMaxUsers    = 100_000            // RiskScorer.MaxUsers
)

// RiskScorer is the learned scoring on top of the rules (docs/detection.md,
// "Risk scores"). It keeps, for every user, the features of the current
// user-day and of past days, and a bounded access graph: the last few
// accessors of each patient and the recent patients of each user. From
// these it scores each alert 0–100 against the user's own history, the
// user's peer group (role + department) and the user's collaborators.
//
// Days are calendar days in Location, read from events' times only: the
// day rolls over when the first event of a later day arrives.
//
// Create it with NewRiskScorer and set its fields before the first Observe.
// Observe and Score are called by one Engine; UserRisk may be called at
// the same time from other goroutines: a RiskScorer is safe for concurrent
// use by multiple goroutines.
type RiskScorer struct {
	// Slack is how far before a care relationship's start or after its
	// end an access still counts as related. Default DefaultScoreSlack.
	Slack time.Duration
	// Location gives days and hours. Default (and nil) UTC.
	Location *time.Location
	// HistoryDays is how many active days of each user the model keeps.
	// Default DefaultScoreHistoryDays.
	HistoryDays int
	// PatientAccessors is how many recent accessors the graph keeps per
	// patient. Default DefaultPatientAccessors.
	PatientAccessors int
	// RecentPatients is how many recent patients the graph keeps per
	// user. Default DefaultRecentPatients.
	RecentPatients int
	// Collaborators is how many of a user's closest collaborators the
	// graph score compares the user's patients with. Default
	// DefaultCollaborators.
	Collaborators int
	// MaxUsers bounds the users remembered. A new user beyond it makes
	// the scorer forget the eighth of its users least recently active
	// (their history and their place in the access graph), in one pass
	// over the graph. Default DefaultScoreMaxUsers.
	MaxUsers int

	mu        sync.Mutex
	started   bool
	day       int64 // current day, days since 1970-01-01 in Location
	userIdx   map[string]int32
	users     []*scoreUser
	patIdx    map[string]int32
	patients  []scorePatient
	deptIdx   map[string]int32
	depts     []string
	peerCache map[string]*robustModel // fitted lazily, cleared at each rollover
	lastUser  int32                   // index of the latest event's user

	// graph's scratch, kept between calls so that scoring allocates
	// nothing once warm.
	shared     userCounts
	graphCands []cand
}

var (
	_ Scorer   = (*RiskScorer)(nil)
	_ Stateful = (*RiskScorer)(nil)
)

// NewRiskScorer returns a RiskScorer with default settings.
func NewRiskScorer() *RiskScorer {
	return &RiskScorer{
		Slack:            DefaultScoreSlack,
		Location:         time.UTC,
		HistoryDays:      DefaultScoreHistoryDays,
		PatientAccessors: DefaultPatientAccessors,
		RecentPatients:   DefaultRecentPatients,
		Collaborators:    DefaultCollaborators,
		MaxUsers:         DefaultScoreMaxUsers,
		userIdx:          map[string]int32{},
		patIdx:           map[string]int32{},
		deptIdx:          map[string]int32{},
		peerCache:        map[string]*robustModel{},
	}
}

// scoreUser is one user's state: the day in progress, past days, hours
// and recent patients.
type scoreUser struct {
	id    string
	roles []string // from the directory at rollover, or the latest event
	role  string   // the least of roles: the role-wide peer model's key
	dept  string
	group string // peer group (groupKey), set at rollover

	cur   userDay
	hist  []dayFeatures // oldest first, at most HistoryDays
	hours [24]float64   // decayed hour histogram of past days
	off   uint32        // hours (bits) the user is rarely active in

	last       string  // the patient of the latest opening, counted in cur.seen
	recent     []int32 // recent patients (ring), indexes into RiskScorer.patients
	recentNext int

	alertScore int   // highest alert score of alertDay
	alertDay   int64 // day of alertScore
}

// userDay counts one user's current day. Its map and slice keep their
// room across days, so counting allocates nothing once warm.
type userDay struct {
	events    int32
	searches  int32
	patients  int32 // distinct patients opened
	unrelated int32 // of those, without a care relationship
	off       int32 // events in the user's rare hours
	hours     [24]int32
	depts     []int32             // departments of the patients opened, distinct
	seen      map[string]struct{} // patients opened, by id: one lookup for a repeat
}

// scorePatient is a patient in the access graph.
type scorePatient struct {
	id        string
	accessors []int32 // recent accessors (ring), indexes into RiskScorer.users
	next      int
	dept      int32 // department index, or -1; read from the directory once a day
	deptDay   int64 // day dept was read, plus one (0: never)
}

// Observe implements Scorer. It counts ev into its user's current day
// and the access graph. Events without a user, and sign-ins and control
// changes, are not counted.
func (s *RiskScorer) Observe(dir *Directory, ev *Event) {
	if ev.User == "" {
		return
	}
	kind := accessKind(ev.Action)
	if kind == kindNone {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	day, hour := s.clock(ev.Time)
	if !s.started {
		s.started, s.day = true, day
	} else if day > s.day {
		s.rollover(dir, day)
	}
	ui, u := s.user(ev.User)
	if len(ev.Roles) > 0 {
		u.setRoles(ev.Roles)
	}
	if ev.Department != "" {
		u.dept = ev.Department
	}
	c := &u.cur
	c.events++
	c.hours[hour]++
	if u.off&(1<<hour) != 0 {
		c.off++
	}
	if kind == kindSearch {
		c.searches++
		// A search's hits are not opened; a search within one patient's
		// compartment is how clients read a chart, so it counts.
		if len(ev.Patients) != 1 {
			return
		}
	}
	for _, pid := range ev.Patients {
		if pid == u.last {
			continue // a chart is read in bursts
		}
		u.last = pid
		if _, ok := c.seen[pid]; ok {
			continue
		}
		if c.seen == nil {
			c.seen = map[string]struct{}{}
		}
		c.seen[pid] = struct{}{}
		pi := s.patient(pid)
		c.patients++
		if dir != nil {
			if dir.Related(ev.User, pid, ev.Time, s.Slack) == nil {
				c.unrelated++
			}
			if d := s.patientDept(dir, pi); d >= 0 {
				c.addDept(d)
			}
		}
		s.link(ui, u, pi)
	}
}

const (
	kindNone = iota
	kindSearch
	kindOpen
)

// accessKind sorts actions into searches, openings of records, and the
// rest (sign-ins, control changes), which the model does not count.
func accessKind(action string) int {
	switch {
	case action == phivault.ActionSearch:
		return kindSearch
	case peopleAccess(action):
		return kindOpen
	}
	return kindNone
}

func (c *userDay) addDept(d int32) {
	for _, x := range c.depts {
		if x == d {
			return
		}
	}
	c.depts = append(c.depts, d)
}

// clock returns the day (since 1970-01-01) and hour of t in Location.
func (s *RiskScorer) clock(t time.Time) (day int64, hour int) {
	d, hour := splitTime(s.Location, t)
	return int64(d), hour
}

// user returns the index and state of user id, added if new.
func (s *RiskScorer) user(id string) (int32, *scoreUser) {
	if s.lastUser < int32(len(s.users)) && s.users[s.lastUser].id == id {
		return s.lastUser, s.users[s.lastUser] // a user's events come in bursts
	}
	if i, ok := s.userIdx[id]; ok {
		s.lastUser = i
		return i, s.users[i]
	}
	limit := s.MaxUsers
	if limit <= 0 {
		limit = DefaultScoreMaxUsers
	}
	if len(s.users) >= limit {
		s.evict()
	}
	i := int32(len(s.users))
	s.lastUser = i
	u := &scoreUser{id: id, off: defaultOffHours}
	s.userIdx[id] = i
	s.users = append(s.users, u)
	return i, u
}

// evict forgets the eighth of the users least recently active (at least
// one), the earliest added first among equals, and renumbers the others
// in the access graph: O(users + patients) once for every users/8 new
// users.
func (s *RiskScorer) evict() {
	n := len(s.users)
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		return cmp.Compare(s.lastActive(s.users[a]), s.lastActive(s.users[b]))
	})
	remap := make([]int32, n) // new index by old; -1: forgotten
	for _, i := range order[:max(1, n/8)] {
		remap[i] = -1
	}
	kept := s.users[:0]
	for i, u := range s.users {
		if remap[i] < 0 {
			delete(s.userIdx, u.id)
			continue
		}
		remap[i] = int32(len(kept))
		s.userIdx[u.id] = remap[i]
		kept = append(kept, u)
	}
	clear(s.users[len(kept):])
	s.users, s.lastUser = kept, 0
	for pi := range s.patients {
		p := &s.patients[pi]
		p.accessors, p.next = renumber(p.accessors, p.next, remap)
	}
	clear(s.peerCache)
}

// lastActive returns the latest day u was active.
func (s *RiskScorer) lastActive(u *scoreUser) int64 {
	switch {
	case u.cur.events > 0:
		return s.day
	case len(u.hist) > 0:
		return u.hist[len(u.hist)-1].Day
	}
	return math.MinInt64
}

// renumber returns the ring (oldest at next once full) with its indexes
// renumbered by remap, those mapped to -1 dropped, oldest first.
func renumber(ring []int32, next int, remap []int32) ([]int32, int) {
	if next > 0 && next < len(ring) {
		slices.Reverse(ring[:next])
		slices.Reverse(ring[next:])
		slices.Reverse(ring)
	}
	out := ring[:0]
	for _, v := range ring {
		if w := remap[v]; w >= 0 {
			out = append(out, w)
		}
	}
	return out, 0
}

// patient returns the index of patient id, added if new.
func (s *RiskScorer) patient(id string) int32 {
	return intern(s.patIdx, &s.patients, id, func(id string) scorePatient { return scorePatient{id: id} })
}

// intern returns the index in *list of the element named name (idx
// holds them), appending mk(name) if there is none.
func intern[T any](idx map[string]int32, list *[]T, name string, mk func(string) T) int32 {
	if i, ok := idx[name]; ok {
		return i
	}
	i := int32(len(*list))
	idx[name] = i
	*list = append(*list, mk(name))
	return i
}

// patientDept returns the department index of patient pi, or -1, as the
// directory had it at the first look of the day.
func (s *RiskScorer) patientDept(dir *Directory, pi int32) int32 {
	p := &s.patients[pi]
	if p.deptDay != s.day+1 {
		p.dept, p.deptDay = -1, s.day+1
		if dp := dir.Patient(p.id); dp != nil && dp.Department != "" {
			p.dept = s.dept(dp.Department)
		}
	}
	return p.dept
}

// dept returns the index of department name, added if new.
func (s *RiskScorer) dept(name string) int32 {
	return intern(s.deptIdx, &s.depts, name, func(name string) string { return name })
}

// link records that user ui (u) opened patient pi, once a day: it
// becomes one of the patient's recent accessors and the patient one of
// the user's recent patients.
func (s *RiskScorer) link(ui int32, u *scoreUser, pi int32) {
	p := &s.patients[pi]
	if !containsIdx(p.accessors, ui) {
		p.accessors, p.next = ringPut(p.accessors, p.next, ui, max(s.PatientAccessors, 1))
	}
	if !containsIdx(u.recent, pi) {
		u.recent, u.recentNext = ringPut(u.recent, u.recentNext, pi, max(s.RecentPatients, 1))
	}
}

func containsIdx(list []int32, x int32) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

// ringPut adds x to the ring of capacity n whose oldest element is at
// next once full.
func ringPut(ring []int32, next int, x int32, n int) ([]int32, int) {
	if len(ring) < n {
		return append(ring, x), 0
	}
	if next >= len(ring) {
		next = 0
	}
	ring[next] = x
	return ring, (next + 1) % len(ring)
}

// defaultOffHours are the rare hours of a user without enough history:
// 22:00 to 06:00.
const defaultOffHours uint32 = 1<<22 | 1<<23 | 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5

// Hour histogram settings: a day's hours are added to a histogram that
// decays by hourDecay each active day; once it holds minHourWeight
// events, hours with less than rareHourShare of them are rare.
const (
	hourDecay     = 0.95
	minHourWeight = 40
	rareHourShare = 0.02
)

// rollover closes every user's current day: its features join the
// user's history, its hours the user's histogram, and peer models are
// refitted lazily from then on.
func (s *RiskScorer) rollover(dir *Directory, day int64) {
	keep := max(s.HistoryDays, 1)
	for _, u := range s.users {
		c := &u.cur
		if c.events == 0 {
			continue
		}
		if len(u.hist) >= keep {
			n := copy(u.hist, u.hist[len(u.hist)-keep+1:])
			u.hist = u.hist[:n]
		}
		u.hist = append(u.hist, dayFeatures{Day: s.day, X: c.features()})
		var total float64
		for h := range u.hours {
			u.hours[h] = u.hours[h]*hourDecay + float64(c.hours[h])
			total += u.hours[h]
		}
		if total >= minHourWeight {
			u.off = 0
			for h := range u.hours {
				if u.hours[h] < rareHourShare*total {
					u.off |= 1 << h
				}
			}
		}
		s.setGroup(dir, u)
		u.last = ""
		seen := c.seen
		clear(seen)
		depts := c.depts[:0]
		*c = userDay{seen: seen, depts: depts}
	}
	clear(s.peerCache)
	s.day = day
}

// setGroup sets u's peer group from the directory, or from what its
// events stated (see peerGroup).
func (s *RiskScorer) setGroup(dir *Directory, u *scoreUser) {
	roles, dept := peerGroup(dir, u.id, u.roles, u.dept)
	u.setRoles(roles)
	u.dept = dept
	u.group = groupKey(u.roles, u.dept)
}

// setRoles sets u's roles (copied, when they change) and role: the
// least, as the order roles are listed in is no peer group.
func (u *scoreUser) setRoles(roles []string) {
	if !slices.Equal(u.roles, roles) {
		u.roles = slices.Clone(roles)
	}
	u.role = leastRole(roles)
}

// leastRole returns the least of roles, or "": the key of the role-wide
// peer model.
func leastRole(roles []string) string {
	if len(roles) == 0 {
		return ""
	}
	return slices.Min(roles)
}

// features returns the feature vector of the day counted in c.
func (c *userDay) features() [nFeatures]float64 {
	var x [nFeatures]float64
	x[fEvents] = float64(c.events)
	x[fPatients] = float64(c.patients)
	if c.patients > 0 {
		x[fUnrelated] = float64(c.unrelated) / float64(c.patients)
	}
	var mask uint32
	for h, n := range c.hours {
		if n > 0 {
			mask |= 1 << h
		}
	}
	x[fHours] = float64(bits.OnesCount32(mask))
	if c.events > 0 {
		x[fOffHours] = float64(c.off) / float64(c.events)
		x[fSearch] = float64(c.searches) / float64(c.events)
	}
	x[fDepts] = float64(len(c.depts))
	return x
}
