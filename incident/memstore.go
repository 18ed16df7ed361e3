package incident

import (
	"context"
	"slices"
	"sync"

	"github.com/phivault/phivault"
)

// MemStore is a Store in memory, for tests and drills on throw-away
// vaults. It is safe for concurrent use.
type MemStore struct {
	mu        sync.Mutex
	incidents map[string]*Incident
	timelines map[string][]*Event
	order     []string // ids, oldest opened first
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{incidents: map[string]*Incident{}, timelines: map[string][]*Event{}}
}

var _ Store = (*MemStore)(nil)

// Create implements Store.
func (m *MemStore) Create(_ context.Context, in *Incident, ev *Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.incidents[in.ID]; ok {
		return phivault.Errorf(phivault.ECONFLICT, "An incident with this id exists.")
	}
	m.incidents[in.ID] = in.Clone()
	m.timelines[in.ID] = []*Event{cloneEvent(ev)}
	m.order = append(m.order, in.ID)
	return nil
}

// Update implements Store.
func (m *MemStore) Update(_ context.Context, in *Incident, evs []*Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.incidents[in.ID]
	if !ok {
		return errNotFound
	}
	if old.Version != in.Version-1 {
		return errChanged
	}
	m.incidents[in.ID] = in.Clone()
	for _, ev := range evs {
		m.timelines[in.ID] = append(m.timelines[in.ID], cloneEvent(ev))
	}
	return nil
}

// Get implements Store.
func (m *MemStore) Get(_ context.Context, id string) (*Incident, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, ok := m.incidents[id]
	if !ok {
		return nil, errNotFound
	}
	return in.Clone(), nil
}

// List implements Store.
func (m *MemStore) List(_ context.Context, f Filter) ([]*Incident, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Incident
	for _, id := range slices.Backward(m.order) {
		if in := m.incidents[id]; f.Match(in) {
			out = append(out, in.Clone())
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// Timeline implements Store.
func (m *MemStore) Timeline(_ context.Context, id string) ([]*Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs, ok := m.timelines[id]
	if !ok {
		return nil, errNotFound
	}
	out := make([]*Event, len(evs))
	for i, ev := range evs {
		out[i] = cloneEvent(ev)
	}
	return out, nil
}

func cloneEvent(ev *Event) *Event {
	c := *ev
	c.Note = slices.Clone(ev.Note)
	return &c
}

var (
	errNotFound = phivault.Errorf(phivault.ENOTFOUND, "No such incident.")
	errChanged  = phivault.Errorf(phivault.EPRECONDITION, "The incident changed meanwhile; read it again and retry.")
)
