package detect

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTopCands checks that topCands keeps the same k first candidates,
// in the same order, as sorting them all would, ties included.
func TestTopCands(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n, k := rng.IntN(40), 1+rng.IntN(10)
		all := make([]cand, n)
		for i := range all {
			// few distinct similarities, so that ties are common
			all[i] = cand{v: int32(rng.IntN(1000)), sim: float64(rng.IntN(4)) / 4}
		}
		all = slices.CompactFunc(all, func(a, b cand) bool { return a.v == b.v }) // users are distinct
		var top []cand
		for _, c := range all {
			top = topCands(top, c, k)
		}
		want := slices.Clone(all)
		slices.SortFunc(want, func(a, b cand) int {
			if a.before(b) {
				return -1
			}
			if b.before(a) {
				return 1
			}
			return 0
		})
		want = want[:min(len(want), k)]
		if !slices.Equal(top, want) {
			t.Fatalf("round %d (k %d): topCands kept %v, want %v", round, k, top, want)
		}
	}
}

// TestRiskScorer_graphScratch checks that graph gives the same result
// for a user whatever it computed before: its reused counts start from
// zero each time.
func TestRiskScorer_graphScratch(t *testing.T) {
	build := func() *RiskScorer {
		s := NewRiskScorer()
		// users 0–3; patients 0–5 with their accessors
		s.users = []*scoreUser{
			{recent: []int32{0, 1, 2, 3}},
			{recent: []int32{0, 1, 2, 4}},
			{recent: []int32{3, 4, 5}},
			{recent: []int32{5}},
		}
		s.patients = []scorePatient{
			{accessors: []int32{0, 1}},
			{accessors: []int32{0, 1}},
			{accessors: []int32{0, 1, 3}},
			{accessors: []int32{0, 2}},
			{accessors: []int32{1, 2}},
			{accessors: []int32{2, 3}},
		}
		return s
	}
	for ui := range int32(4) {
		fresh := build().graph(ui, nil)
		s := build()
		for other := range int32(4) {
			s.graph(other, []int32{5})
		}
		if got := s.graph(ui, nil); got != fresh {
			t.Errorf("graph(%d) after the others = %+v, want %+v as on a fresh scorer", ui, got, fresh)
		}
	}
}
