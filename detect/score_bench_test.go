package detect_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// BenchmarkScorerObserve observes a hospital of 1,000 users in 20
// departments and 20,000 patients: about 100 accesses a user a day, a
// fifth of them searches, over days that roll over. In "ward" each user
// opens a day's care load of 12 patients again and again; in "distinct",
// the worst case, every read opens a patient not yet opened that day.
func BenchmarkScorerObserve(b *testing.B) {
	b.Run("ward", func(b *testing.B) { benchmarkScorerObserve(b, 12) })
	b.Run("distinct", func(b *testing.B) { benchmarkScorerObserve(b, 0) })
}

func benchmarkScorerObserve(b *testing.B, load int) {
	h := newBenchHospital(20, load)
	b.ReportAllocs()
	b.ResetTimer()
	i := h.warm()
	for b.Loop() {
		h.s.Observe(h.dir, h.decode(i))
		i++
	}
}

// BenchmarkScorerTopUsers ranks the users active today or yesterday (the
// console's overview asks for the top 10 on each load) in hospitals of
// 1,000 and 2,000 users (detect.MaxRanked), each after four days of
// about 100 accesses a user a day.
func BenchmarkScorerTopUsers(b *testing.B) {
	for _, depts := range []int{20, 40} {
		b.Run(fmt.Sprintf("users=%d", depts*50), func(b *testing.B) {
			h := newBenchHospital(depts, 12)
			h.warm()
			if n := len(h.s.TopUsers(detect.MaxRanked)); n != depts*50 {
				b.Fatalf("%d users ranked, want %d", n, depts*50)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.s.TopUsers(10)
			}
		})
	}
}

// benchHospital is a scorer and the accesses of a synthetic hospital.
type benchHospital struct {
	s        *detect.RiskScorer
	dir      *detect.Directory
	decode   func(i int) *detect.Event // the i-th access (cycling), as one reused Event
	accesses int
}

// warm observes every access once and returns the index of the next.
func (h *benchHospital) warm() int {
	for i := range h.accesses {
		h.s.Observe(h.dir, h.decode(i))
	}
	return h.accesses
}

// newBenchHospital makes a hospital of depts departments of 50 users and
// 1,000 patients each, over four days of about 100 accesses a user a day,
// a fifth of them searches. With load > 0 each user opens a day's care
// load of that many patients again and again; with 0, every read opens a
// patient not yet opened that day.
func newBenchHospital(depts, load int) *benchHospital {
	const (
		usersPerDept = 50
		patsPerDept  = 1000
		days         = 4
		perUserDay   = 100
	)
	rng := rand.New(rand.NewPCG(1, 2))
	dir := detect.NewDirectory()
	users := make([]string, 0, depts*usersPerDept)
	patients := make([]string, 0, depts*patsPerDept)
	for d := range depts {
		dept := fmt.Sprintf("dept-%d", d)
		for i := range patsPerDept {
			id := fmt.Sprintf("p-%d-%d", d, i)
			dir.PutPatient(&detect.Patient{ID: id, Department: dept})
			patients = append(patients, id)
		}
		var rels []detect.Relationship
		for i := range usersPerDept {
			id := fmt.Sprintf("u-%d-%d", d, i)
			dir.PutUser(&detect.User{ID: id, Roles: []string{"nurse"}, Department: dept})
			users = append(users, id)
			for range 100 {
				rels = append(rels, detect.Relationship{User: id, Patient: patients[d*patsPerDept+rng.IntN(patsPerDept)], Kind: detect.KindCareTeam})
			}
		}
		dir.SetRelationships("ward:"+dept, rels)
	}
	// The events, compact: who opens which patient (-1: a search), in
	// time order over days; Observe sees them decoded into one Event,
	// as a pipeline's decoder would hand them over.
	type access struct{ user, patient int32 }
	per := len(users) * perUserDay
	accesses := make([]access, 0, days*per)
	care := make([][]int32, len(users))
	for range days {
		for u := range care {
			care[u] = care[u][:0]
			for range load {
				care[u] = append(care[u], int32(u/usersPerDept*patsPerDept+rng.IntN(patsPerDept)))
			}
		}
		for range per {
			u := rng.IntN(len(users))
			a := access{user: int32(u), patient: -1}
			switch {
			case rng.IntN(5) == 0:
			case load > 0:
				a.patient = care[u][rng.IntN(load)]
			default:
				a.patient = int32(u/usersPerDept*patsPerDept + rng.IntN(patsPerDept))
			}
			accesses = append(accesses, a)
		}
	}
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	step := 24 * time.Hour / time.Duration(per)
	roles := []string{"nurse"}
	var ev detect.Event
	pats := make([]string, 1)
	decode := func(i int) {
		a := accesses[i%len(accesses)]
		ev = detect.Event{
			Stream: detect.StreamTrail, Seq: int64(i), Time: start.Add(time.Duration(i) * step),
			User: users[a.user], Roles: roles, Action: phivault.ActionRead, OK: true,
		}
		if a.patient < 0 {
			ev.Action = phivault.ActionSearch
		} else {
			pats[0] = patients[a.patient]
			ev.Patients = pats
		}
	}
	return &benchHospital{s: detect.NewRiskScorer(), dir: dir, accesses: len(accesses),
		decode: func(i int) *detect.Event { decode(i); return &ev }}
}
