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
	for d := range depts {
		dept := fmt.Sprintf("dept-%d", d)
		for i := range patsPerDept {
			dir.PutPatient(&detect.Patient{ID: fmt.Sprintf("p-%d-%d", d, i), Department: dept})
		}
		var rels []detect.Relationship
		for i := range usersPerDept {
			id := fmt.Sprintf("u-%d-%d", d, i)
			dir.PutUser(&detect.User{ID: id, Roles: []string{"nurse"}, Department: dept})
			users = append(users, id)
			for range 100 {
				rels = append(rels, detect.Relationship{User: id, Patient: fmt.Sprintf("p-%d-%d", d, rng.IntN(patsPerDept)), Kind: detect.KindCareTeam})
			}
		}
		dir.SetRelationships("ward:"+dept, rels)
	}
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	per := len(users) * perUserDay
	evs := make([]detect.Event, 0, days*per)
	care := make([][]string, len(users))
	for day := range days {
		for u := range care {
			care[u] = care[u][:0]
			for range load {
				care[u] = append(care[u], fmt.Sprintf("p-%d-%d", u/usersPerDept, rng.IntN(patsPerDept)))
			}
		}
		for i := range per {
			u := rng.IntN(len(users))
			d := u / usersPerDept
			ev := detect.Event{
				Stream: detect.StreamTrail, Seq: int64(len(evs)),
				Time: start.Add(time.Duration(day)*24*time.Hour + time.Duration(i)*24*time.Hour/time.Duration(per)),
				User: users[u], Roles: []string{"nurse"}, Action: phivault.ActionRead, OK: true,
			}
			switch {
			case rng.IntN(5) == 0:
				ev.Action = phivault.ActionSearch
			case load > 0:
				ev.Patients = []string{care[u][rng.IntN(load)]}
			default:
				ev.Patients = []string{fmt.Sprintf("p-%d-%d", d, rng.IntN(patsPerDept))}
			}
			evs = append(evs, ev)
		}
	}
	s := detect.NewRiskScorer()
	for i := range evs {
		s.Observe(dir, &evs[i])
	}
	shift := func() {
		for i := range evs {
			evs[i].Time = evs[i].Time.Add(days * 24 * time.Hour)
		}
	}
	shift()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == len(evs) {
			shift()
			i = 0
		}
		s.Observe(dir, &evs[i])
		i++
	}
}
