// Package tail keeps the latest items appended to a numbered log in
// memory, so that a reader tailing the log (the detectors, after the
// audit trail and the ingest stream) can take what was just written
// without reading it back from storage and decoding it.
package tail

import "sync"

// Tail is a ring of the latest items appended, by position. It is safe
// for concurrent use by multiple goroutines.
type Tail[T any] struct {
	mu    sync.Mutex
	size  int
	ring  []T // slot i%size holds position i, for i in [first, next)
	first int64
	next  int64
}

// New returns a Tail keeping the latest size items.
func New[T any](size int) *Tail[T] {
	if size < 1 {
		panic("tail: size must be positive")
	}
	return &Tail[T]{size: size}
}

// Add records items as the ones at positions start onward. A gap or an
// overlap with what it holds (items appended by someone else) restarts
// the ring at start.
func (t *Tail[T]) Add(start int64, items []T) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ring == nil {
		t.ring = make([]T, t.size)
	}
	if start != t.next || t.next == t.first {
		t.first, t.next = start, start
	}
	for _, it := range items {
		t.ring[t.next%int64(t.size)] = it
		t.next++
	}
	if t.next-t.first > int64(t.size) {
		t.first = t.next - int64(t.size)
	}
}

// Get returns the items at positions [start, end) if it holds them all.
func (t *Tail[T]) Get(start, end int64) ([]T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if start < t.first || end > t.next || start > end {
		return nil, false
	}
	out := make([]T, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, t.ring[i%int64(t.size)])
	}
	return out, true
}
