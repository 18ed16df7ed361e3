package detect_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/storetest"
)

func TestMemStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) detect.Store { return detect.NewMemStore() })
}

// A roster entry costs the same whatever the roster already holds: the
// last of 100,000 users commits about as fast as the first (a search of
// the roster for each entry made it 40 times slower).
func TestMemStore_Commit_constantPerEntry(t *testing.T) {
	ctx := context.Background()
	m := detect.NewMemStore()
	const n, batch = 100_000, 5_000
	commit := func(from int) time.Duration {
		start := time.Now()
		for i := from; i < from+batch; i++ {
			id := fmt.Sprintf("u%d", i)
			c := &detect.Commit{Users: []*detect.User{{ID: id}}, Patients: []*detect.Patient{{ID: id}}}
			if err := m.Commit(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	first := commit(0)
	for from := batch; from < n-batch; from += batch {
		commit(from)
	}
	last := commit(n - batch)
	if last > 8*first+50*time.Millisecond {
		t.Errorf("the last %d entries took %v, the first %v", batch, last, first)
	}
	// An entry seen again replaces the one saved.
	if err := m.Commit(ctx, &detect.Commit{Users: []*detect.User{{ID: "u7", Department: "ed"}}}); err != nil {
		t.Fatal(err)
	}
	s, err := m.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Users[len(s.Users)-1]; u.ID != "u7" || u.Department != "ed" || len(s.Users) != n || len(s.Patients) != n {
		t.Errorf("last user %+v of %d, %d patients; want u7 in ed, of %d, %d", u, len(s.Users), len(s.Patients), n, n)
	}
}

// Entries changed again and again keep the order of their latest change.
func TestMemStore_Commit_order(t *testing.T) {
	ctx := context.Background()
	m := detect.NewMemStore()
	for _, id := range []string{"a", "b", "c", "b", "b", "b", "b", "a", "d", "b"} {
		if err := m.Commit(ctx, &detect.Commit{Users: []*detect.User{{ID: id}}}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := m.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range s.Users {
		got = append(got, u.ID)
	}
	if fmt.Sprint(got) != "[c a d b]" {
		t.Errorf("users %v, want [c a d b]", got)
	}
}
