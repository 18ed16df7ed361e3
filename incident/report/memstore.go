package report

import (
	"context"
	"sync"

	"github.com/phivault/phivault"
)

// MemStore is a Store in memory, for tests. It is safe for concurrent
// use.
type MemStore struct {
	mu      sync.Mutex
	reports map[string]*Report
	order   []string // ids, oldest submitted first
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{reports: map[string]*Report{}} }

var _ Store = (*MemStore)(nil)

var errChanged = phivault.Errorf(phivault.EPRECONDITION, "The report changed meanwhile; read it again and retry.")

// Create implements Store.
func (m *MemStore) Create(_ context.Context, r *Report) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.reports[r.ID]; ok {
		return phivault.Errorf(phivault.ECONFLICT, "A report with this id exists.")
	}
	m.reports[r.ID] = r.Clone()
	m.order = append(m.order, r.ID)
	return nil
}

// Update implements Store.
func (m *MemStore) Update(_ context.Context, r *Report) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.reports[r.ID]
	if !ok {
		return errNotFound
	}
	if old.Version != r.Version-1 {
		return errChanged
	}
	m.reports[r.ID] = r.Clone()
	return nil
}

// Get implements Store.
func (m *MemStore) Get(_ context.Context, id string) (*Report, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reports[id]
	if !ok {
		return nil, errNotFound
	}
	return r.Clone(), nil
}

// List implements Store.
func (m *MemStore) List(_ context.Context, f Filter) ([]*Report, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Report
	for i := len(m.order) - 1; i >= 0 && len(out) < limit; i-- {
		if r := m.reports[m.order[i]]; f.Match(r) {
			out = append(out, r.Clone())
		}
	}
	return out, nil
}
