package detect

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

// The restored scorer holds exactly the state of the one saved: every
// field, not only those today's scores read.
func TestRiskScorer_UnmarshalState_complete(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			dir := NewDirectory()
			for i := range 60 {
				dir.PutPatient(&Patient{ID: fmt.Sprintf("p%d", i), Department: fmt.Sprintf("d%d", i%3)})
				dir.AddRelationship(Relationship{User: fmt.Sprintf("u%d", i%9), Patient: fmt.Sprintf("p%d", i), Kind: KindCareTeam, Origin: "x"})
			}
			s := NewRiskScorer()
			start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
			for i := range 3000 {
				ev := Event{
					Time: start.Add(time.Duration(i) * 4 * time.Minute), User: fmt.Sprintf("u%d", rng.IntN(9)),
					Roles: []string{"nurse"}, Action: phivault.ActionRead, Patients: []string{fmt.Sprintf("p%d", rng.IntN(60))},
				}
				if rng.IntN(4) == 0 {
					ev.Action, ev.Patients = phivault.ActionSearch, nil
				}
				s.Observe(dir, &ev)
			}
			for i := range 9 {
				s.Score(dir, &Alert{ID: fmt.Sprintf("a%d", i), User: fmt.Sprintf("u%d", i), Score: 40, Last: start.Add(200 * time.Hour)})
			}
			state, err := s.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			r := NewRiskScorer()
			if err := r.UnmarshalState(state); err != nil {
				t.Fatal(err)
			}
			if len(r.users) != len(s.users) || len(s.users) != 9 {
				t.Fatalf("restored %d users, want %d (9)", len(r.users), len(s.users))
			}
			for i, u := range s.users {
				want, got := *u, *r.users[i]
				want.last, got.last = "", "" // a shortcut into cur.seen
				if len(want.cur.seen) == 0 && len(got.cur.seen) == 0 {
					want.cur.seen, got.cur.seen = nil, nil
				}
				if len(want.cur.depts) == 0 && len(got.cur.depts) == 0 {
					want.cur.depts, got.cur.depts = nil, nil
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("restored user %d = %+v, want %+v", i, got, want)
				}
			}
			if len(r.patients) != len(s.patients) || !reflect.DeepEqual(r.patIdx, s.patIdx) {
				t.Fatalf("restored %d patients, want %d", len(r.patients), len(s.patients))
			}
			for i, p := range s.patients {
				want, got := p, r.patients[i]
				want.dept, want.deptDay = 0, 0 // a cache of the directory, read again once a day
				if !reflect.DeepEqual(got, want) {
					t.Errorf("restored patient %d = %+v, want %+v", i, got, want)
				}
			}
			if r.day != s.day || r.started != s.started || !reflect.DeepEqual(r.depts, s.depts) ||
				!reflect.DeepEqual(r.deptIdx, s.deptIdx) {
				t.Errorf("restored scorer differs: day %d/%d, depts %q/%q", r.day, s.day, r.depts, s.depts)
			}
		})
	}
}

// The scorer's models and the rules' baselines share one robust fit: the
// median of an even count is the lower middle value in both (gonum's
// empirical quantile).
func TestFitRobust_sameMedianAsRules(t *testing.T) {
	vals := []float64{1, 2, 10, 20}
	samples := make([][nFeatures]float64, len(vals))
	for i, v := range vals {
		samples[i][fEvents] = v
	}
	m := fitRobust(samples)
	st := robustStats(slices.Clone(vals), 0.5)
	if m.med[fEvents] != 2 || st.med != 2 {
		t.Fatalf("medians: scorer %v, rules %v, want 2 both", m.med[fEvents], st.med)
	}
	// |v-2| = 1 0 8 18: MAD 1.
	if want := max(madScale*st.mad, scaleFloor[fEvents], relFloor[fEvents]*2); m.scale[fEvents] != want || st.mad != 1 {
		t.Fatalf("scale %v, MAD %v; want %v, 1", m.scale[fEvents], st.mad, want)
	}
}

// A state saved before the scorer kept every role (only the least, as
// role) restores that role as the user's roles.
func TestRiskScorer_UnmarshalState_roleOnly(t *testing.T) {
	s := NewRiskScorer()
	s.Observe(nil, &Event{Time: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), User: "u1", Roles: []string{"nurse", "charge"},
		Action: phivault.ActionRead, OK: true, Patients: []string{"p1"}})
	state, err := s.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		state func(st *scorerState)
		want  []string
	}{
		{"roles saved", func(st *scorerState) {}, []string{"nurse", "charge"}},
		{"role only", func(st *scorerState) { st.Users[0].Roles = nil }, []string{"charge"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var st scorerState
			if err := json.Unmarshal(state, &st); err != nil {
				t.Fatal(err)
			}
			c.state(&st)
			b, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			r := NewRiskScorer()
			if err := r.UnmarshalState(b); err != nil {
				t.Fatal(err)
			}
			if u := r.users[0]; !slices.Equal(u.roles, c.want) || u.role != "charge" {
				t.Errorf("roles %v, role %q; want %v, charge", u.roles, u.role, c.want)
			}
		})
	}
}
