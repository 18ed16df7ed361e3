package detect

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// UserScore is a user's risk score and its top factors in words.
type UserScore struct {
	User    string   `json:"user"`
	Score   int      `json:"score"`
	Factors []string `json:"factors"`
}

// MaxRanked bounds the users TopUsers scores: the most recently active.
const MaxRanked = 2000

// TopUsers returns the n users active on the scorer's current day or the
// day before with the highest risk scores (UserRisk), highest first,
// then by id. Of more than MaxRanked such users, the most recently
// active are scored.
func (s *RiskScorer) TopUsers(n int) []UserScore {
	s.mu.Lock()
	type active struct {
		id   string
		last int64
	}
	var cands []active
	for _, u := range s.users {
		if last := s.lastActive(u); s.started && last >= s.day-1 {
			cands = append(cands, active{u.id, last})
		}
	}
	s.mu.Unlock()
	if len(cands) > MaxRanked {
		slices.SortFunc(cands, func(a, b active) int { return cmp.Compare(b.last, a.last) })
		cands = cands[:MaxRanked]
	}
	out := make([]UserScore, 0, len(cands))
	for _, c := range cands {
		score, factors := s.UserRisk(c.id)
		out = append(out, UserScore{User: c.id, Score: score, Factors: factors})
	}
	slices.SortFunc(out, func(a, b UserScore) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.User, b.User)
	})
	return out[:min(n, len(out))]
}

// HourlyAccesses returns the scorer's current day (in Location) and the
// accesses (reads, searches and exports by users; no sign-ins or control
// changes) counted in each of its hours, summed over users. Before the
// first event, the day is zero.
func (s *RiskScorer) HourlyAccesses() (time.Time, [24]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hours [24]int
	if !s.started {
		return time.Time{}, hours
	}
	for _, u := range s.users {
		if s.lastActive(u) != s.day || u.cur.events == 0 {
			continue
		}
		for h, n := range u.cur.hours {
			hours[h] += int(n)
		}
	}
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	return time.Date(1970, time.January, 1+int(s.day), 0, 0, 0, 0, loc), hours
}
