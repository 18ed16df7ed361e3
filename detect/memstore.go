package detect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/phivault/phivault"
)

// MemStore is a Store in memory: for replays, dry runs and simulations,
// where nothing needs to outlive the process. It is safe for concurrent
// use by multiple goroutines.
type MemStore struct {
	mu       sync.Mutex
	saved    Saved // but for Users, Patients and Honeytokens
	users    roster[User]
	patients roster[Patient]
	tokens   map[string]struct{} // saved honeytokens, as a set
	alerts   map[string]*Alert
	ingest   []Record
	triages  []*Triage
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{alerts: map[string]*Alert{}, tokens: map[string]struct{}{}}
}

// Load implements Store.
func (m *MemStore) Load(ctx context.Context) (*Saved, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.saved
	s.Users = m.users.entries()
	s.Patients = m.patients.entries()
	s.Relationships = slices.Clone(s.Relationships)
	s.Honeytokens = slices.Clone(s.Honeytokens)
	return &s, nil
}

// Commit implements Store.
func (m *MemStore) Commit(ctx context.Context, c *Commit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saved.Cursor = c.Cursor
	for _, a := range c.Alerts {
		if old := m.alerts[a.ID]; old != nil {
			a.State = old.State // only Triage changes it; the caller learns it
		}
		m.alerts[a.ID] = a.Clone()
	}
	for _, u := range c.Users {
		m.users.put(u.ID, u)
	}
	for _, p := range c.Patients {
		m.patients.put(p.ID, p)
	}
	m.saved.Relationships = append(m.saved.Relationships, c.Relationships...)
	for _, h := range c.Honeytokens {
		if _, ok := m.tokens[h]; !ok {
			m.tokens[h] = struct{}{}
			m.saved.Honeytokens = append(m.saved.Honeytokens, h)
		}
	}
	if c.Snapshot != nil {
		m.saved.Snapshot, m.saved.SnapshotAt = slices.Clone(c.Snapshot), c.SnapshotAt
	}
	return nil
}

// roster holds entries by id in the order of their latest put (Store's
// contract: a changed entry moves last). A put costs O(1) amortised, where
// a search of the list would cost O(n) for each entry: a replaced entry
// leaves a hole, and the holes are squeezed out once they are half the
// list.
type roster[T any] struct {
	list  []*T // nil: a hole
	at    map[string]int
	holes int
}

// put makes v the entry of id, last.
func (r *roster[T]) put(id string, v *T) {
	if r.at == nil {
		r.at = map[string]int{}
	}
	if i, ok := r.at[id]; ok {
		r.list[i] = nil
		r.holes++
	}
	r.at[id] = len(r.list)
	r.list = append(r.list, v)
	if 2*r.holes > len(r.list) {
		r.squeeze()
	}
}

// squeeze drops the holes, keeping the order.
func (r *roster[T]) squeeze() {
	pos := make([]int, len(r.list)) // new positions, by old
	n := 0
	for i, v := range r.list {
		pos[i] = n
		if v != nil {
			r.list[n] = v
			n++
		}
	}
	clear(r.list[n:])
	r.list = r.list[:n]
	for id, i := range r.at {
		r.at[id] = pos[i]
	}
	r.holes = 0
}

// entries returns the entries in order, in a new slice (nil if none).
func (r *roster[T]) entries() []*T {
	var out []*T
	for _, v := range r.list {
		if v != nil {
			out = append(out, v)
		}
	}
	return out
}

// Alert implements Store.
func (m *MemStore) Alert(ctx context.Context, id string) (*Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.alerts[id]
	if a == nil {
		return nil, fmt.Errorf("alert %s: %w", id, phivault.ErrNotFound)
	}
	return a.Clone(), nil
}

// Alerts implements Store.
func (m *MemStore) Alerts(ctx context.Context, f AlertFilter) ([]*Alert, error) {
	m.mu.Lock()
	var out []*Alert
	for _, a := range m.alerts {
		if f.Match(a) {
			out = append(out, a.Clone())
		}
	}
	m.mu.Unlock()
	SortAlerts(out)
	if f.After != "" {
		i := slices.IndexFunc(out, func(a *Alert) bool { return a.ID == f.After })
		if i < 0 {
			return nil, nil
		}
		out = out[i+1:]
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// Match reports whether a passes f's conditions (not its paging).
func (f *AlertFilter) Match(a *Alert) bool {
	return (f.Since.IsZero() || !a.Detected.Before(f.Since)) &&
		(f.Rule == "" || a.Rule == f.Rule) &&
		(f.User == "" || a.User == f.User) &&
		(f.Patient == "" || slices.Contains(a.Patients, f.Patient)) &&
		(f.State == "" || a.State == f.State) &&
		a.Score >= f.MinScore
}

// SortAlerts orders alerts as Store.Alerts returns them: newest detection
// first, then by id.
func SortAlerts(alerts []*Alert) {
	slices.SortFunc(alerts, func(a, b *Alert) int {
		if c := b.Detected.Compare(a.Detected); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Ingest implements Store.
func (m *MemStore) Ingest(ctx context.Context, recs []Record) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		r.Seq = int64(len(m.ingest)) + 1
		m.ingest = append(m.ingest, r)
	}
	return int64(len(m.ingest)), nil
}

// ReadIngest implements Store.
func (m *MemStore) ReadIngest(ctx context.Context, after int64, limit int) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if after < 0 || after >= int64(len(m.ingest)) {
		return nil, nil
	}
	end := int64(len(m.ingest))
	if limit > 0 {
		end = min(end, after+int64(limit))
	}
	return slices.Clone(m.ingest[after:end]), nil
}

// IngestSize implements Store.
func (m *MemStore) IngestSize(ctx context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.ingest)), nil
}

// Triage implements Store.
func (m *MemStore) Triage(ctx context.Context, t *Triage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.alerts[t.Alert]
	if a == nil {
		return fmt.Errorf("alert %s: %w", t.Alert, phivault.ErrNotFound)
	}
	a.State = t.Decision
	cp := *t
	m.triages = append(m.triages, &cp)
	return nil
}

// Triages implements Store.
func (m *MemStore) Triages(ctx context.Context, alert string) ([]*Triage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Triage
	for _, t := range m.triages {
		if alert == "" || t.Alert == alert {
			cp := *t
			out = append(out, &cp)
		}
	}
	return out, nil
}

// Close implements Store.
func (m *MemStore) Close() error { return nil }
