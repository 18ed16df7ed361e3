package detect_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// hospital is a synthetic hospital: departments of users (nurses and
// doctors) who open patients of their department, all of whom they
// have a care relationship with except the last reserve of each
// department.
type hospital struct {
	dir      *detect.Directory
	rng      *rand.Rand
	users    [][]string // by department
	patients [][]string // by department
	related  int        // patients 0..related-1 of a department are related to its users
	start    time.Time
	seq      int64
}

func newHospital(seed uint64, depts, usersPerDept, patientsPerDept, reserve int) *hospital {
	h := &hospital{
		dir:     detect.NewDirectory(),
		rng:     rand.New(rand.NewPCG(seed, 13)),
		related: patientsPerDept - reserve,
		start:   time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
	}
	for d := range depts {
		dept := fmt.Sprintf("dept-%d", d)
		var users, patients []string
		for i := range usersPerDept {
			id := fmt.Sprintf("u-%d-%d", d, i)
			role := "nurse"
			if i%3 == 2 {
				role = "doctor"
			}
			h.dir.PutUser(&detect.User{ID: id, Roles: []string{role}, Department: dept})
			users = append(users, id)
		}
		for i := range patientsPerDept {
			id := fmt.Sprintf("p-%d-%d", d, i)
			h.dir.PutPatient(&detect.Patient{ID: id, Department: dept})
			patients = append(patients, id)
		}
		var rels []detect.Relationship
		for _, u := range users {
			for _, p := range patients[:h.related] {
				rels = append(rels, detect.Relationship{User: u, Patient: p, Kind: detect.KindCareTeam})
			}
		}
		h.dir.SetRelationships("ward:"+dept, rels)
		h.users = append(h.users, users)
		h.patients = append(h.patients, patients)
	}
	return h
}

// event returns an event of user on day at hour (plus a random minute).
func (h *hospital) event(user string, day, hour int, action string, patients ...string) detect.Event {
	h.seq++
	at := h.start.Add(time.Duration(day)*24*time.Hour + time.Duration(hour)*time.Hour + time.Duration(h.rng.IntN(3600))*time.Second)
	return detect.Event{Stream: detect.StreamTrail, Seq: h.seq, Time: at, User: user, Action: action, Patients: patients, OK: true}
}

// normalDay returns a usual day of user of department d: 5 to 9
// related patients, 2 to 4 reads each, a few searches, 08:00 to 16:00.
func (h *hospital) normalDay(user string, d, day int) []detect.Event {
	var evs []detect.Event
	n := 5 + h.rng.IntN(5)
	for _, i := range h.rng.Perm(h.related)[:n] {
		p := h.patients[d][i]
		for range 2 + h.rng.IntN(3) {
			evs = append(evs, h.event(user, day, 8+h.rng.IntN(8), phivault.ActionRead, p))
		}
	}
	for range 1 + h.rng.IntN(3) {
		evs = append(evs, h.event(user, day, 8+h.rng.IntN(8), phivault.ActionSearch))
	}
	return evs
}

// days returns the normal days first..last-1 of every user, in time
// order.
func (h *hospital) days(first, last int) []detect.Event {
	var evs []detect.Event
	for day := first; day < last; day++ {
		for d, users := range h.users {
			for _, u := range users {
				evs = append(evs, h.normalDay(u, d, day)...)
			}
		}
	}
	sortEvents(evs)
	return evs
}

func sortEvents(evs []detect.Event) {
	slices.SortStableFunc(evs, func(a, b detect.Event) int { return a.Time.Compare(b.Time) })
}

func observe(s *detect.RiskScorer, dir *detect.Directory, evs []detect.Event) {
	for i := range evs {
		s.Observe(dir, &evs[i])
	}
}

// alert returns an alert of a rule scoring 50 about user at t.
func alert(user string, t time.Time, patients ...string) *detect.Alert {
	return &detect.Alert{Rule: "test-rule", Key: user, User: user, Score: 50, Severity: detect.SeverityMedium, First: t, Last: t, Patients: patients}
}

var seeds = []uint64{1, 2, 3}

func TestRiskScorer_Score(t *testing.T) {
	const today = 15
	tests := []struct {
		name string
		// day returns the target's day (user u-0-0 of dept-0).
		day  func(h *hospital) []detect.Event
		want string // in the top factor
	}{
		{
			name: "Volume",
			day: func(h *hospital) []detect.Event {
				var evs []detect.Event
				for _, p := range h.patients[0][:41] {
					evs = append(evs, h.event("u-0-0", today, 8+h.rng.IntN(8), phivault.ActionRead, p))
				}
				return evs
			},
			want: "opened 41 patients today",
		},
		{
			name: "Unrelated",
			day: func(h *hospital) []detect.Event {
				var evs []detect.Event
				for _, p := range h.patients[0][h.related:] {
					for range 3 {
						evs = append(evs, h.event("u-0-0", today, 8+h.rng.IntN(8), phivault.ActionRead, p))
					}
				}
				return evs
			},
			want: "100% of the patients opened today have no care relationship",
		},
		{
			name: "OffHours",
			day: func(h *hospital) []detect.Event {
				var evs []detect.Event
				for _, p := range h.patients[0][:7] {
					for range 3 {
						evs = append(evs, h.event("u-0-0", today, 1+h.rng.IntN(3), phivault.ActionRead, p))
					}
				}
				return evs
			},
			want: "fell in hours they are rarely active",
		},
	}
	for _, tt := range tests {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", tt.name, seed), func(t *testing.T) {
				h := newHospital(seed, 4, 6, 60, 7)
				s := detect.NewRiskScorer()
				observe(s, h.dir, h.days(0, today))
				evs := tt.day(h)
				evs = append(evs, h.normalDay("u-0-1", 0, today)...)
				sortEvents(evs)
				observe(s, h.dir, evs)
				at := evs[len(evs)-1].Time

				got, factors := s.Score(h.dir, alert("u-0-0", at))
				normal, normalFactors := s.Score(h.dir, alert("u-0-1", at))
				if got <= normal || got <= 50 {
					t.Errorf("Score(target) = %d, Score(normal) = %d, want target > normal and > 50", got, normal)
				}
				if len(factors) == 0 || !strings.Contains(factors[0], tt.want) {
					t.Errorf("Score(target) factors = %q, want the first to contain %q", factors, tt.want)
				}
				if len(factors) > 3 {
					t.Errorf("Score(target) gave %d factors, want at most 3", len(factors))
				}
				for _, f := range normalFactors {
					if strings.Contains(f, "today") {
						t.Errorf("Score(normal) factors = %q, want no feature of today named", normalFactors)
					}
				}
				if normal > 50 {
					t.Errorf("Score(normal) = %d, want at most the rule's 50", normal)
				}
			})
		}
	}
}

// A day slightly busier than usual is not called out.
func TestRiskScorer_Score_nearMiss(t *testing.T) {
	const today = 15
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := newHospital(seed, 4, 6, 60, 7)
			s := detect.NewRiskScorer()
			observe(s, h.dir, h.days(0, today))
			var evs []detect.Event
			for _, p := range h.patients[0][:10] {
				for range 3 {
					evs = append(evs, h.event("u-0-0", today, 8+h.rng.IntN(8), phivault.ActionRead, p))
				}
			}
			sortEvents(evs)
			observe(s, h.dir, evs)
			got, factors := s.Score(h.dir, alert("u-0-0", evs[len(evs)-1].Time))
			if got > 50 {
				t.Errorf("Score = %d, %q, want at most the rule's 50", got, factors)
			}
			for _, f := range factors {
				if strings.Contains(f, "today") {
					t.Errorf("Score factors = %q, want no feature of today named", factors)
				}
			}
		})
	}
}

// The outsider opens two patients of each team; every insider opens
// patients of their own team only. All on one day, so only the graph
// tells them apart.
func TestRiskScorer_Score_graph(t *testing.T) {
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := newHospital(seed, 4, 5, 20, 0)
			var evs []detect.Event
			for d, users := range h.users {
				for _, u := range users {
					for _, i := range h.rng.Perm(20)[:12] {
						evs = append(evs, h.event(u, 0, 8+h.rng.IntN(8), phivault.ActionRead, h.patients[d][i]))
					}
				}
			}
			var mine []string
			for d := range h.users {
				for _, i := range h.rng.Perm(20)[:2] {
					mine = append(mine, h.patients[d][i])
					evs = append(evs, h.event("outsider", 0, 8+h.rng.IntN(8), phivault.ActionRead, h.patients[d][i]))
				}
			}
			sortEvents(evs)
			s := detect.NewRiskScorer()
			observe(s, h.dir, evs)
			at := evs[len(evs)-1].Time

			out, factors := s.Score(h.dir, alert("outsider", at, mine[0]))
			if !strings.Contains(factors[0], "graph score") {
				t.Errorf("Score(outsider) factors = %q, want the graph score first", factors)
			}
			for d, users := range h.users {
				for _, u := range users {
					in, inFactors := s.Score(h.dir, alert(u, at, h.patients[d][0]))
					if in >= out {
						t.Errorf("Score(%s) = %d %q, want below the outsider's %d", u, in, inFactors, out)
					}
				}
			}
			outRisk, _ := s.UserRisk("outsider")
			inRisk, _ := s.UserRisk("u-1-1")
			if outRisk <= inRisk {
				t.Errorf("UserRisk(outsider) = %d, UserRisk(u-1-1) = %d, want outsider above", outRisk, inRisk)
			}
		})
	}
}

// An insider who opens a patient of another team: the alert's patient
// is seen by none of their collaborators.
func TestRiskScorer_Score_graphAlertPatient(t *testing.T) {
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := newHospital(seed, 4, 5, 20, 0)
			var evs []detect.Event
			for d, users := range h.users {
				for _, u := range users {
					for _, i := range h.rng.Perm(20)[:12] {
						evs = append(evs, h.event(u, 0, 8+h.rng.IntN(8), phivault.ActionRead, h.patients[d][i]))
					}
				}
			}
			// u-0-0 looks at a patient of team 3 that team 3 sees.
			var other, own string
			for _, p := range h.patients[3] {
				if slices.ContainsFunc(evs, func(e detect.Event) bool { return e.Patients[0] == p }) {
					other = p
					break
				}
			}
			for _, e := range evs {
				if e.User == "u-0-0" {
					own = e.Patients[0]
				}
			}
			evs = append(evs, h.event("u-0-0", 0, 17, phivault.ActionRead, other))
			s := detect.NewRiskScorer()
			observe(s, h.dir, evs)
			at := evs[len(evs)-1].Time
			snoop, factors := s.Score(h.dir, alert("u-0-0", at, other))
			usual, usualFactors := s.Score(h.dir, alert("u-0-0", at, own))
			if snoop <= usual {
				t.Errorf("Score(other team's patient) = %d %q, Score(own team's) = %d %q, want the first higher", snoop, factors, usual, usualFactors)
			}
			if !strings.Contains(factors[0], "1 of the alert's 1 patients are seen by none of their") {
				t.Errorf("Score(other team's patient) factors = %q, want the uncovered patient named first", factors)
			}
		})
	}
}

func TestRiskScorer_Score_neutralPrior(t *testing.T) {
	h := newHospital(1, 1, 1, 20, 0)
	s := detect.NewRiskScorer()
	evs := h.normalDay("u-0-0", 0, 0)
	observe(s, h.dir, evs)
	for _, give := range []int{10, 50, 80} {
		a := alert("u-0-0", evs[len(evs)-1].Time)
		a.Score = give
		if got, factors := s.Score(h.dir, a); got != give {
			t.Errorf("Score(rule score %d) = %d %q, want %d", give, got, factors, give)
		}
	}
	if got, factors := s.UserRisk("nobody"); got != 22 || factors[0] != "no history yet" {
		t.Errorf("UserRisk(nobody) = %d %q, want 22 [no history yet]", got, factors)
	}
}

// A critical finding keeps at least 90, however ordinary the user's day.
func TestRiskScorer_Score_critical(t *testing.T) {
	h := newHospital(2, 4, 6, 60, 7)
	s := detect.NewRiskScorer()
	observe(s, h.dir, h.days(0, 15))
	at := h.start.Add(14 * 24 * time.Hour)
	for _, give := range []int{0, 40, 95} {
		a := alert("u-0-0", at, h.patients[0][0])
		a.Score, a.Severity = give, detect.SeverityCritical
		got, factors := s.Score(h.dir, a)
		if got < 90 || got < give {
			t.Errorf("Score(critical, rule score %d) = %d, want ≥ 90 and ≥ %d", give, got, give)
		}
		if give < 90 && !strings.Contains(factors[0], "never scored below 90") {
			t.Errorf("Score(critical, rule score %d) factors = %q, want the floor named first", give, factors)
		}
		a.Severity = detect.SeverityHigh
		if got, _ := s.Score(h.dir, a); give == 40 && got >= 90 {
			t.Errorf("Score(high, rule score 40) = %d, want below 90", got)
		}
	}
}

func TestRiskScorer_UserRisk(t *testing.T) {
	const today = 15
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := newHospital(seed, 4, 6, 60, 7)
			s := detect.NewRiskScorer()
			observe(s, h.dir, h.days(0, today))
			var evs []detect.Event
			for _, p := range h.patients[1][:41] {
				evs = append(evs, h.event("u-1-2", today, 8+h.rng.IntN(8), phivault.ActionRead, p))
			}
			for d, users := range h.users {
				for _, u := range users {
					if u != "u-1-2" {
						evs = append(evs, h.normalDay(u, d, today)...)
					}
				}
			}
			sortEvents(evs)
			observe(s, h.dir, evs)
			top, factors := s.UserRisk("u-1-2")
			if !strings.Contains(factors[0], "opened 41 patients today") {
				t.Errorf("UserRisk(u-1-2) factors = %q, want the patients opened first", factors)
			}
			for _, users := range h.users {
				for _, u := range users {
					if got, f := s.UserRisk(u); u != "u-1-2" && got >= top {
						t.Errorf("UserRisk(%s) = %d %q, want below u-1-2's %d", u, got, f, top)
					}
				}
			}
		})
	}
}

func TestRiskScorer_MarshalState(t *testing.T) {
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := newHospital(seed, 3, 5, 40, 5)
			s := detect.NewRiskScorer()
			observe(s, h.dir, h.days(0, 8))
			// Halfway through a day: the day in progress is state too.
			more := h.days(8, 10)
			observe(s, h.dir, more[:len(more)/4])
			state, err := s.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			r := detect.NewRiskScorer()
			if err := r.UnmarshalState(state); err != nil {
				t.Fatal(err)
			}
			again, err := r.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(state, again) {
				t.Errorf("MarshalState after UnmarshalState differs from the state restored")
			}
			compare := func(when string) {
				t.Helper()
				at := more[len(more)-1].Time
				for _, users := range h.users {
					for _, u := range users {
						a, b := alert(u, at, h.patients[0][1]), alert(u, at, h.patients[0][1])
						s1, f1 := s.Score(h.dir, a)
						s2, f2 := r.Score(h.dir, b)
						if s1 != s2 || !slices.Equal(f1, f2) {
							t.Errorf("%s: Score(%s) = %d %q, restored %d %q", when, u, s1, f1, s2, f2)
						}
						u1, g1 := s.UserRisk(u)
						u2, g2 := r.UserRisk(u)
						if u1 != u2 || !slices.Equal(g1, g2) {
							t.Errorf("%s: UserRisk(%s) = %d %q, restored %d %q", when, u, u1, g1, u2, g2)
						}
					}
				}
			}
			compare("restored")
			rest := more[len(more)/4:]
			observe(s, h.dir, rest)
			observe(r, h.dir, rest)
			compare("after more events")
		})
	}
}

func TestRiskScorer_UnmarshalState_bad(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{"NotJSON", `{`},
		{"Version", `{"version":99}`},
		{"UserPatient", `{"version":1,"users":[{"id":"u","recent":[3]}]}`},
		{"PatientUser", `{"version":1,"patients":[{"id":"p","accessors":[1]}]}`},
		{"RingNext", `{"version":1,"patients":[{"id":"p","next":-1}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := detect.NewRiskScorer().UnmarshalState([]byte(tt.give)); err == nil {
				t.Errorf("UnmarshalState(%s) = nil, want an error", tt.give)
			}
		})
	}
}

// Once warm, observing an event allocates nothing.
func TestRiskScorer_Observe_allocs(t *testing.T) {
	h := newHospital(1, 2, 4, 40, 5)
	s := detect.NewRiskScorer()
	evs := h.days(0, 3)
	observe(s, h.dir, evs)
	today := h.days(3, 4)
	observe(s, h.dir, today)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		s.Observe(h.dir, &today[i%len(today)])
		i++
	})
	if allocs != 0 {
		t.Errorf("Observe allocates %v times an event, want 0", allocs)
	}
	// A later day's first openings of each patient by each user (after
	// the rollover, which the day's first event makes), once the rings
	// of the access graph are full and the day maps as large as they get.
	observe(s, h.dir, h.days(4, 30))
	next := h.days(30, 31)
	observe(s, h.dir, next[:1])
	var firsts []detect.Event
	opened := map[string]bool{}
	for _, ev := range next[1:] {
		if k := ev.User + "|" + strings.Join(ev.Patients, ","); ev.Action == phivault.ActionRead && !opened[k] {
			opened[k] = true
			firsts = append(firsts, ev)
		}
	}
	if len(firsts) < 20 {
		t.Fatalf("%d first openings, want 20 or more", len(firsts))
	}
	// Counted in total, not on average as AllocsPerRun does (rounding a
	// few allocations among many events down to 0).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range firsts {
		s.Observe(h.dir, &firsts[i])
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n != 0 {
		t.Errorf("Observe allocates %d times in %d first openings, want 0", n, len(firsts))
	}
}

// readRule reports every read as a finding of score 50.
type readRule struct{}

func (readRule) Name() string { return "every-read" }
func (readRule) Observe(x *detect.Context, ev *detect.Event) {
	if ev.Action == phivault.ActionRead {
		x.Report(detect.Finding{Rule: "every-read", Key: ev.User, Severity: detect.SeverityLow, Score: 50, User: ev.User, Patients: ev.Patients, Why: "read"})
	}
}

func TestRiskScorer_engine(t *testing.T) {
	h := newHospital(3, 2, 4, 40, 5)
	e := detect.NewEngine(h.dir, []detect.Rule{readRule{}}, nil)
	s := detect.NewRiskScorer()
	e.Scorer = s
	for _, ev := range h.days(0, 10) {
		e.Replay(&ev)
	}
	ev := h.event("u-0-0", 10, 9, phivault.ActionRead, h.patients[0][0])
	e.Observe(&ev)
	alerts := e.Drain()
	if len(alerts) != 1 {
		t.Fatalf("Drain() = %d alerts, want 1", len(alerts))
	}
	if a := alerts[0]; a.Score == 0 || len(a.Factors) == 0 {
		t.Errorf("Drain() alert score %d %q, want it scored with factors", a.Score, a.Factors)
	}
	state, err := e.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(state, []byte("#scorer")) {
		t.Errorf("Engine.MarshalState() = %.80s…, want the scorer's state in it", state)
	}
}

// The engine keeps an alert's last score in Alert.Score: scoring it
// again must start from the rule's score, not compound.
func TestRiskScorer_Score_again(t *testing.T) {
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := newHospital(seed, 4, 6, 60, 7)
			s := detect.NewRiskScorer()
			observe(s, h.dir, h.days(0, 15))
			var evs []detect.Event
			for _, p := range h.patients[0][:41] {
				evs = append(evs, h.event("u-0-0", 15, 8+h.rng.IntN(8), phivault.ActionRead, p))
			}
			observe(s, h.dir, evs)
			a := alert("u-0-0", evs[len(evs)-1].Time)
			a.ID = detect.AlertID(a.Rule, a.Key)
			a.RuleScore = a.Score // as the engine keeps it
			first, _ := s.Score(h.dir, a)
			a.Score = first
			if again, factors := s.Score(h.dir, a); again != first {
				t.Errorf("Score again = %d %q, want %d", again, factors, first)
			}
			a.RuleScore = 80 // a later finding of the rule scored higher
			if raised, _ := s.Score(h.dir, a); raised <= first {
				t.Errorf("Score after a finding of 80 = %d, want above %d", raised, first)
			}
		})
	}
}

// A user the scorer never saw (a failed sign-in's name, say) keeps the
// rule's score and is not remembered.
func TestRiskScorer_Score_unknownUser(t *testing.T) {
	h := newHospital(1, 2, 4, 40, 5)
	s := detect.NewRiskScorer()
	observe(s, h.dir, h.days(0, 5))
	before, err := s.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	a := alert("stranger", h.start.Add(4*24*time.Hour))
	a.Score = 35
	if got, factors := s.Score(h.dir, a); got != 35 {
		t.Errorf("Score(stranger) = %d %q, want the rule's 35", got, factors)
	}
	after, err := s.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(after, []byte("stranger")) || len(after) != len(before) {
		t.Errorf("Score(stranger) changed the state by %d bytes, want it not remembered", len(after)-len(before))
	}
}

// UserRisk may be called while the engine's goroutine observes (run
// with -race).
func TestRiskScorer_UserRisk_concurrent(t *testing.T) {
	h := newHospital(2, 2, 4, 40, 5)
	s := detect.NewRiskScorer()
	evs := h.days(0, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			for _, u := range h.users[0] {
				if got, factors := s.UserRisk(u); got < 0 || got > 100 || len(factors) == 0 {
					t.Errorf("UserRisk(%s) = %d %q, want 0–100 with a factor", u, got, factors)
				}
			}
		}
	}()
	observe(s, h.dir, evs)
	<-done
}
