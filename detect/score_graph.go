package detect

import (
	"fmt"
	"math"
	"slices"
)

// Graph settings. A user's collaborators are the Collaborators users
// most similar to the user: cosine similarity of their recent patient
// sets. The user's cohesion is the mean similarity of those
// collaborators (a missing one counts 0); at cohesionRef or above the
// user is a typical team member, at 0 an outsider.
const (
	cohesionRef      = 0.3
	minGraphPatients = 3 // patients seen by others before the graph counts
	fullGraphPatient = 8 // patients seen by others for the graph's full weight
	alertGraphWeight = 0.6
)

// graphResult is a user's place in the access graph, after Chen and
// Malin's CADS ("Detection of anomalous insiders in collaborative
// environments via relational analysis of access logs", 2011): users
// who open the same patients collaborate; a user whose patients have
// few accessors in common with the user's collaborators is anomalous.
type graphResult struct {
	risk           float64 // 0–1; neutralGraph when too little is known
	cohesion       float64 // mean similarity of the collaborators
	collaborators  int
	userN          int     // recent patients that others also opened
	alertN         int     // alert's patients that others also opened
	alertUncovered int     // of those, seen by no collaborator
	alertGap       float64 // of those, mean of 1 - closest collaborator's similarity / cohesionRef
}

// graph scores user ui, and the patients of an alert (indexes), which
// do not count towards finding collaborators: an alert's patient is as
// well covered as the similarity of the closest collaborator who also
// opened it.
func (s *RiskScorer) graph(ui int32, alertPats []int32) graphResult {
	g := graphResult{risk: neutralGraph}
	u := s.users[ui]
	shared := s.sharedCounts()
	mine := 0
	for _, p := range u.recent {
		if slices.Contains(alertPats, p) {
			continue
		}
		mine++
		others := false
		for _, v := range s.patients[p].accessors {
			if v != ui {
				shared.add(v)
				others = true
			}
		}
		if others {
			g.userN++
		}
	}
	k := max(s.Collaborators, 1)
	cands := s.graphCands[:0]
	for _, v := range shared.users {
		sim := float64(shared.n[v]) / math.Sqrt(float64(mine)*float64(max(len(s.users[v].recent), 1)))
		cands = topCands(cands, cand{v, sim}, k)
	}
	shared.reset()
	s.graphCands = cands
	for _, c := range cands {
		g.cohesion += c.sim
	}
	g.cohesion /= float64(k)
	g.collaborators = len(cands)
	for _, p := range alertPats {
		others, cover := false, 0.0
		for _, v := range s.patients[p].accessors {
			if v == ui {
				continue
			}
			others = true
			if i := slices.IndexFunc(cands, func(c cand) bool { return c.v == v }); i >= 0 {
				cover = max(cover, cands[i].sim)
			}
		}
		if others {
			g.alertN++
			g.alertGap += max(0, 1-cover/cohesionRef)
			if cover == 0 {
				g.alertUncovered++
			}
		}
	}
	if g.userN < minGraphPatients {
		return g
	}
	raw := max(0, 1-g.cohesion/cohesionRef)
	if g.alertN > 0 {
		g.alertGap /= float64(g.alertN)
		raw = alertGraphWeight*g.alertGap + (1-alertGraphWeight)*raw
	}
	conf := min(1, float64(g.userN)/fullGraphPatient)
	g.risk = conf*raw + (1-conf)*neutralGraph
	return g
}

// text says in words why the graph scores g.risk, or "".
func (g *graphResult) text() string {
	switch {
	case g.alertUncovered > 0 && g.collaborators == 0:
		return fmt.Sprintf("shares no patients with colleagues; the alert's patients are seen by others (graph score %.2f)", g.risk)
	case g.alertUncovered > 0:
		return fmt.Sprintf("%d of the alert's %d patients are seen by none of their %d usual collaborators (graph score %.2f)",
			g.alertUncovered, g.alertN, g.collaborators, g.risk)
	case g.risk >= 0.5:
		return fmt.Sprintf("shares few patients with colleagues (graph score %.2f, cohesion %.2f)", g.risk, g.cohesion)
	}
	return ""
}

// cand is a candidate collaborator: a user and their similarity.
type cand struct {
	v   int32
	sim float64
}

// before orders collaborators: the most similar first, then by index.
func (a cand) before(b cand) bool {
	return a.sim > b.sim || a.sim == b.sim && a.v < b.v
}

// topCands adds c to top, the k first candidates in order, if it is one
// of them.
func topCands(top []cand, c cand, k int) []cand {
	i := len(top)
	for i > 0 && c.before(top[i-1]) {
		i--
	}
	if i >= k {
		return top
	}
	if len(top) < k {
		top = append(top, cand{})
	}
	copy(top[i+1:], top[i:])
	top[i] = c
	return top
}

// userCounts counts users by index without a map: n is zero but at the
// indexes listed in users, in the order first counted.
type userCounts struct {
	n     []int32
	users []int32
}

func (c *userCounts) add(v int32) {
	if c.n[v] == 0 {
		c.users = append(c.users, v)
	}
	c.n[v]++
}

// reset zeroes the counts for the next use.
func (c *userCounts) reset() {
	for _, v := range c.users {
		c.n[v] = 0
	}
	c.users = c.users[:0]
}

// sharedCounts returns the scorer's userCounts, zero and as large as its
// users, for graph (called with s.mu held) to reuse.
func (s *RiskScorer) sharedCounts() *userCounts {
	if len(s.shared.n) < len(s.users) {
		s.shared.n = make([]int32, len(s.users))
	}
	return &s.shared
}
