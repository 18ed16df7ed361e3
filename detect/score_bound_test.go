package detect

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

// The scorer remembers at most MaxUsers users: a new one makes it forget
// the least recently active, and the access graph keeps naming the
// right users.
func TestRiskScorer_MaxUsers(t *testing.T) {
	s := NewRiskScorer()
	s.MaxUsers = 8
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	open := func(day int, user, patient string) {
		s.Observe(nil, &Event{Time: t0.Add(time.Duration(day) * 24 * time.Hour), User: user, Roles: []string{"nurse"},
			Action: phivault.ActionRead, OK: true, Patients: []string{patient}})
	}
	for i := range 8 {
		open(0, fmt.Sprintf("u%d", i), "p")
	}
	for i := range 4 {
		open(1, fmt.Sprintf("u%d", i), "p")
	}
	open(2, "u8", "p")
	var ids []string
	for i, u := range s.users {
		ids = append(ids, u.id)
		if s.userIdx[u.id] != int32(i) {
			t.Errorf("user %s at %d, indexed at %d", u.id, i, s.userIdx[u.id])
		}
	}
	if want := []string{"u0", "u1", "u2", "u3", "u5", "u6", "u7", "u8"}; !slices.Equal(ids, want) || len(s.userIdx) != len(want) {
		t.Fatalf("users %v (%d indexed), want %v", ids, len(s.userIdx), want)
	}
	// p's accessors, oldest first, were u0…u7 then u0…u3 again: the
	// ring of 12 keeps u0…u7 (each once), less u4, and u8.
	var acc []string
	for _, v := range s.patients[s.patIdx["p"]].accessors {
		acc = append(acc, s.users[v].id)
	}
	slices.Sort(acc)
	if want := []string{"u0", "u1", "u2", "u3", "u5", "u6", "u7", "u8"}; !slices.Equal(acc, want) {
		t.Errorf("accessors of p %v, want %v", acc, want)
	}
}

// A full ring is renumbered oldest first, so that the next put replaces
// the oldest kept.
func TestRenumber(t *testing.T) {
	remap := []int32{-1, 0, 1, 2, -1, 3, 4}
	ring, next := renumber([]int32{5, 6, 3, 4}, 2, remap) // oldest first: 3 4 5 6
	if want := []int32{2, 3, 4}; !slices.Equal(ring, want) || next != 0 {
		t.Errorf("ring %v next %d, want %v next 0", ring, next, want)
	}
	ring, next = ringPut(ring, next, 9, 4)
	ring, next = ringPut(ring, next, 8, 4) // replaces 2, the oldest
	if want := []int32{8, 3, 4, 9}; !slices.Equal(ring, want) || next != 1 {
		t.Errorf("ring %v next %d, want %v next 1", ring, next, want)
	}
}
