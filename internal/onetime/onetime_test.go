package onetime_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/onetime"
)

func TestStore(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := onetime.New[string](2)
	if !s.Put("a", "A", now.Add(time.Minute), now) || !s.Put("b", "B", now.Add(2*time.Minute), now) {
		t.Fatal("Put refused below the limit")
	}
	if s.Put("c", "C", now.Add(time.Minute), now) {
		t.Fatal("Put stored over the limit with nothing expired")
	}
	if v, ok := s.Take("a", now); !ok || v != "A" {
		t.Fatalf("Take(a) = %q, %v", v, ok)
	}
	if _, ok := s.Take("a", now); ok {
		t.Fatal("Take(a) succeeded twice")
	}
	if _, ok := s.Take("nope", now); ok {
		t.Fatal("Take of an unknown key succeeded")
	}

	// Expired values cannot be taken, but are removed all the same.
	later := now.Add(2 * time.Minute)
	if _, ok := s.Take("b", later); ok {
		t.Fatal("Take returned an expired value")
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d after taking an expired value", s.Len())
	}

	// A full store makes room by dropping expired values only.
	s.Put("x", "X", now.Add(time.Minute), now)
	s.Put("y", "Y", now.Add(time.Hour), now)
	if !s.Put("z", "Z", later.Add(time.Minute), later) {
		t.Fatal("Put refused although a value had expired")
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d, want 2", s.Len())
	}
	if v, ok := s.Take("y", later); !ok || v != "Y" {
		t.Fatalf("Take(y) = %q, %v: an unexpired value was dropped", v, ok)
	}
}

// TestStore_concurrent takes every value exactly once from many goroutines
// (run with -race).
func TestStore_concurrent(t *testing.T) {
	now := time.Now()
	s := onetime.New[int](1000)
	for i := range 100 {
		s.Put(fmt.Sprint(i), i, now.Add(time.Hour), now)
	}
	var mu sync.Mutex
	taken := map[int]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 100 {
				if v, ok := s.Take(fmt.Sprint(i), now); ok {
					mu.Lock()
					taken[v]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(taken) != 100 {
		t.Fatalf("%d values taken, want 100", len(taken))
	}
	for v, n := range taken {
		if n != 1 {
			t.Errorf("value %d taken %d times", v, n)
		}
	}
}

// TestStore_getDeleteReplay covers Get, Delete and the refusal to replace
// a live value.
func TestStore_getDeleteReplay(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := onetime.New[string](10)
	s.Put("a", "A", now.Add(time.Minute), now)
	if s.Put("a", "B", now.Add(time.Minute), now) {
		t.Fatal("Put replaced a live value")
	}
	if v, ok := s.Get("a", now); !ok || v != "A" {
		t.Fatalf("Get(a) = %q, %v", v, ok)
	}
	if v, ok := s.Get("a", now); !ok || v != "A" {
		t.Fatalf("second Get(a) = %q, %v: Get took the value", v, ok)
	}
	later := now.Add(time.Minute)
	if _, ok := s.Get("a", later); ok {
		t.Fatal("Get returned an expired value")
	}
	if !s.Put("a", "C", later.Add(time.Minute), later) {
		t.Fatal("Put refused to replace an expired value")
	}
	s.Delete("a")
	if _, ok := s.Get("a", later); ok || s.Len() != 0 {
		t.Fatalf("Delete left the value (Len %d)", s.Len())
	}
}
