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
	return s.date(s.day), hours
}

// UserDay is one active day of a user as the scorer counted it.
type UserDay struct {
	Day      time.Time `json:"day"`      // midnight, in the scorer's Location
	Accesses int       `json:"accesses"` // searches and openings
	Patients int       `json:"patients"` // distinct patients opened
}

// UserDays returns the active days the scorer keeps of user (at most
// HistoryDays past days and the current one), oldest first: the baseline
// the user's behaviour is scored against. An unseen user has none.
func (s *RiskScorer) UserDays(user string) []UserDay {
	s.mu.Lock()
	defer s.mu.Unlock()
	ui, ok := s.userIdx[user]
	if !ok {
		return nil
	}
	u := s.users[ui]
	out := make([]UserDay, 0, len(u.hist)+1)
	for _, d := range u.hist {
		out = append(out, UserDay{Day: s.date(d.Day), Accesses: int(d.X[fEvents]), Patients: int(d.X[fPatients])})
	}
	if u.cur.events > 0 {
		out = append(out, UserDay{Day: s.date(s.day), Accesses: int(u.cur.events), Patients: int(u.cur.patients)})
	}
	return out
}

// date returns the midnight of day (days since 1970-01-01) in Location.
func (s *RiskScorer) date(day int64) time.Time {
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	return time.Date(1970, time.January, 1+int(day), 0, 0, 0, 0, loc)
}
