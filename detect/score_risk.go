package detect

import (
	"fmt"
	"math"
	"slices"
)

// How the learned parts move a rule's score: the behaviour risk and the
// graph risk, each taken from its neutral value, times their points;
// the sum bounded to [-maxDown, +maxUp].
const (
	behaviourPoints = 40
	graphPoints     = 30
	maxDown         = 20
	maxUp           = 40
	unscoredRule    = 50 // a rule's score when it gave none
	criticalFloor   = 90 // a critical finding never scores below
	alertMemoryDays = 7  // days an alert's score counts in UserRisk
	userBehaviour   = 0.65
	userGraph       = 0.35
	maxFactors      = 3
)

// Score implements Scorer: a's score moved by the user's behaviour model
// and graph score, and its top factors in words. A user without history
// keeps the rule's score; a critical finding is never lowered, and
// never scores below 90. A user the scorer has not seen keeps the rule's
// score.
func (s *RiskScorer) Score(dir *Directory, a *Alert) (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Score from the rule's own score, never from a learned one (which
	// would compound); an alert from before RuleScore existed has only
	// Score.
	rule := a.RuleScore
	if rule == 0 {
		rule = a.Score
	}
	base := float64(rule)
	if rule <= 0 {
		base = unscoredRule
	}
	at := a.Last
	if at.IsZero() {
		at = a.First
	}
	day, _ := s.clock(at)
	var fs []factor
	adj := 0.0
	var u *scoreUser
	if ui, ok := s.userIdx[a.User]; ok {
		u = s.users[ui]
		b := s.behaviour(dir, u, day)
		var pats []int32
		for _, id := range a.Patients {
			if i, ok := s.patIdx[id]; ok {
				pats = append(pats, i)
			}
		}
		g := s.graph(ui, pats)
		bp := behaviourPoints * (b.risk - neutralBehaviour)
		gp := graphPoints * (g.risk - neutralGraph)
		adj = bp + gp
		if bp > 0 {
			fs = append(fs, b.factors(bp)...)
		}
		if t := g.text(); t != "" && gp > 0 {
			fs = append(fs, factor{points: gp, text: t})
		}
	}
	adj = min(max(adj, -maxDown), maxUp)
	if adj < -5 {
		fs = append(fs, factor{points: adj, text: fmt.Sprintf("behaviour within their usual pattern (lowered by %.0f)", -adj)})
	}
	score := int(math.Round(min(max(base+adj, 0), 100)))
	if floor := max(criticalFloor, min(rule, 100)); a.Severity == SeverityCritical && score < floor {
		score = floor
		fs = append(fs, factor{points: math.Inf(1), text: fmt.Sprintf("critical finding of rule %s: never lowered, never scored below %d", a.Rule, criticalFloor)})
	}
	if u != nil && (day > u.alertDay || day == u.alertDay && score > u.alertScore) {
		u.alertScore, u.alertDay = score, day
	}
	out := topFactors(fs)
	if len(out) < maxFactors {
		out = append(out, fmt.Sprintf("rule %s scored %d", a.Rule, rule))
	}
	return score, out
}

// topFactors returns the texts of the maxFactors largest factors.
func topFactors(fs []factor) []string {
	slices.SortStableFunc(fs, func(a, b factor) int {
		switch {
		case math.Abs(a.points) > math.Abs(b.points):
			return -1
		case math.Abs(a.points) < math.Abs(b.points):
			return 1
		}
		return 0
	})
	out := make([]string, 0, maxFactors)
	for _, f := range fs[:min(len(fs), maxFactors)] {
		out = append(out, f.text)
	}
	return out
}

// UserRisk returns user's risk 0–100 and its top factors in words: the
// user's latest active day against their own history and peers, their
// graph score, and their highest alert score of the last week. A user
// the scorer has not seen gets the neutral prior.
func (s *RiskScorer) UserRisk(user string) (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	neutral := int(math.Round(100 * (userBehaviour*neutralBehaviour + userGraph*neutralGraph)))
	ui, ok := s.userIdx[user]
	if !ok {
		return neutral, []string{"no history yet"}
	}
	u := s.users[ui]
	day := s.day
	if u.cur.events == 0 && len(u.hist) > 0 {
		day = u.hist[len(u.hist)-1].Day
	}
	// The directory is not at hand outside the engine: the peer group
	// comes from the roles and department the user's events stated.
	b := s.behaviour(nil, u, day)
	g := s.graph(ui, nil)
	risk := 100 * (userBehaviour*b.risk + userGraph*g.risk)
	var fs []factor
	fs = append(fs, b.factors(100*userBehaviour*b.risk)...)
	if t := g.text(); t != "" {
		fs = append(fs, factor{points: 100 * userGraph * g.risk, text: t})
	}
	if u.alertScore > 0 && s.day-u.alertDay < alertMemoryDays && float64(u.alertScore) > risk {
		risk = float64(u.alertScore)
		fs = append(fs, factor{points: math.Inf(1), text: fmt.Sprintf("an alert scored %d in the last %d days", u.alertScore, alertMemoryDays)})
	}
	out := topFactors(fs)
	if len(out) == 0 {
		if b.own == nil && b.peer == nil && g.userN < minGraphPatients {
			out = append(out, "too little history yet")
		} else {
			out = append(out, "behaviour within their usual pattern")
		}
	}
	return int(math.Round(min(max(risk, 0), 100))), out
}
