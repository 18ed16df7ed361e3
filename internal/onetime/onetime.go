// Package onetime keeps short-lived server-side state in memory: values
// stored under a key until they expire, each taken at most once, and at
// most a fixed number at a time, so that unfinished ceremonies cannot fill
// the memory.
package onetime

import (
	"sync"
	"time"
)

// A Store holds values of type T under string keys. It is safe for
// concurrent use.
type Store[T any] struct {
	mu  sync.Mutex
	m   map[string]entry[T]
	max int
}

type entry[T any] struct {
	v       T
	expires time.Time
}

// New returns an empty store that holds at most max values.
func New[T any](max int) *Store[T] {
	return &Store[T]{m: make(map[string]entry[T]), max: max}
}

// Put stores v under key until expires. It stores nothing and returns
// false if key holds a value not expired at now (so a store of seen ids
// refuses a replay), or if the store is full even after dropping the
// values expired at now.
func (s *Store[T]) Put(key string, v T, expires, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && now.Before(e.expires) {
		return false
	}
	if len(s.m) >= s.max {
		for k, e := range s.m {
			if !now.Before(e.expires) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= s.max {
			return false
		}
	}
	s.m[key] = entry[T]{v, expires}
	return true
}

// Take removes the value under key and returns it if it has not expired
// at now. A value can be taken once, whatever the caller does next.
func (s *Store[T]) Take(key string, now time.Time) (v T, ok bool) {
	s.mu.Lock()
	e, found := s.m[key]
	delete(s.m, key)
	s.mu.Unlock()
	if !found || !now.Before(e.expires) {
		return v, false
	}
	return e.v, true
}

// Get returns the value under key, leaving it in place, if it has not
// expired at now.
func (s *Store[T]) Get(key string, now time.Time) (v T, ok bool) {
	s.mu.Lock()
	e, found := s.m[key]
	s.mu.Unlock()
	if !found || !now.Before(e.expires) {
		return v, false
	}
	return e.v, true
}

// Delete removes the value under key, if any.
func (s *Store[T]) Delete(key string) {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

// Len returns how many values the store holds, expired ones included.
func (s *Store[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
