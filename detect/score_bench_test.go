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
	const (
		depts        = 20
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
	s := detect.NewRiskScorer()
	i := 0
	for ; i < len(accesses); i++ {
		decode(i)
		s.Observe(dir, &ev)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		decode(i)
		s.Observe(dir, &ev)
		i++
	}
}
