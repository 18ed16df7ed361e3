package detect

import "sync"

// DefaultSuppressAfter is how many alerts of one user and rule must be
// triaged false-positive or benign, with none true-positive, before new
// alerts of that user and rule stop paging.
const DefaultSuppressAfter = 3

// TriageSuppressor is the Suppressor that learns from triage feedback:
// once After alerts of the same user and rule were triaged false-positive
// or benign, and none of that user and rule true-positive, it suppresses
// further alerts of that user and rule. A suppressed alert is still
// stored and counted; it just does not page. It never suppresses a
// critical alert, nor an alert without a user (such as credential
// stuffing from one source), whose pair would silence everyone.
//
// Only each alert's latest decision counts, so an alert triaged twice
// counts once, and a decision changed to true-positive lifts the
// suppression at once.
//
// Build it with NewTriageSuppressor from Store.Triages at start, and
// feed it each new triage with Observe (HandlerOptions.OnTriage). It is
// safe for concurrent use by multiple goroutines.
type TriageSuppressor struct {
	// After is the number of false-positive or benign alerts that
	// suppress a user and rule. Default DefaultSuppressAfter; set it
	// before use.
	After int

	mu    sync.Mutex
	last  map[string]*Triage // latest triage by alert id
	pairs map[pairKey]*pairCount
}

type pairKey struct{ user, rule string }

type pairCount struct{ benign, truePositive int }

var _ Suppressor = (*TriageSuppressor)(nil)

// NewTriageSuppressor returns a TriageSuppressor that has seen triages,
// oldest first.
func NewTriageSuppressor(triages []*Triage) *TriageSuppressor {
	s := &TriageSuppressor{After: DefaultSuppressAfter, last: map[string]*Triage{}, pairs: map[pairKey]*pairCount{}}
	for _, t := range triages {
		s.Observe(t)
	}
	return s
}

// Observe takes t, a decision newer than those seen before, into account.
func (s *TriageSuppressor) Observe(t *Triage) {
	if t == nil || t.User == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev := s.last[t.Alert]; prev != nil {
		s.count(prev, -1)
	}
	cp := *t
	cp.Note = nil // the suppressor needs the decision, not the sealed note
	s.last[t.Alert] = &cp
	s.count(&cp, 1)
}

func (s *TriageSuppressor) count(t *Triage, n int) {
	k := pairKey{t.User, t.Rule}
	c := s.pairs[k]
	if c == nil {
		c = &pairCount{}
		s.pairs[k] = c
	}
	switch t.Decision {
	case StateTruePositive:
		c.truePositive += n
	case StateFalsePositive, StateBenign:
		c.benign += n
	}
}

// Suppress implements Suppressor.
func (s *TriageSuppressor) Suppress(a *Alert) bool {
	if a.Severity >= SeverityCritical || a.User == "" {
		return false
	}
	after := s.After
	if after < 1 {
		after = DefaultSuppressAfter
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.pairs[pairKey{a.User, a.Rule}]
	return c != nil && c.truePositive == 0 && c.benign >= after
}
