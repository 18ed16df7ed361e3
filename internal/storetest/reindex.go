package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

func reindexPending(tb testing.TB, s phivault.Store) []string {
	tb.Helper()
	types, err := view(tb, s, func(tx phivault.StoreTx) ([]string, error) { return tx.ReindexPending(context.Background()) })
	if err != nil {
		tb.Fatalf("ReindexPending() = %v", err)
	}
	return types
}

// testReindexPending checks that the migrations ask for the care-team
// types, and ReindexDone.
func testReindexPending(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	want := []string{"CareTeam", "Encounter", "EpisodeOfCare"}
	if got := reindexPending(t, s); !slices.Equal(got, want) {
		t.Fatalf("ReindexPending() of a new store = %q, want %q", got, want)
	}
	err := s.View(ctx, func(tx phivault.StoreTx) error { return tx.ReindexDone(ctx, "Encounter") })
	if err == nil {
		t.Error("ReindexDone in View = nil error")
	}
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.ReindexDone(ctx, "Encounter") })
	// Done again, or never pending: nothing to do.
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.ReindexDone(ctx, "Encounter") })
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.ReindexDone(ctx, "Patient") })
	if got := reindexPending(t, s); !slices.Equal(got, []string{"CareTeam", "EpisodeOfCare"}) {
		t.Errorf("ReindexPending() after ReindexDone(Encounter) = %q", got)
	}
	// A rolled-back ReindexDone leaves the type pending.
	errRollback := errors.New("roll back")
	err = s.Update(ctx, func(tx phivault.StoreTx) error {
		if err := tx.ReindexDone(ctx, "CareTeam"); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update = %v, want the rollback error", err)
	}
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.ReindexDone(ctx, "EpisodeOfCare") })
	if got := reindexPending(t, s); !slices.Equal(got, []string{"CareTeam"}) {
		t.Errorf("ReindexPending() = %q, want [CareTeam]", got)
	}
}

// retoken runs Retoken in its own Update and returns its error; the
// Update itself must succeed, so a failed Retoken must have written
// nothing for the check after it to hold.
func retoken(tb testing.TB, s phivault.Store, typ, id string, version int64, tokens ...string) error {
	tb.Helper()
	var err error
	MustUpdate(tb, s, func(tx phivault.StoreTx) error {
		var ts []phivault.Token
		for _, tok := range tokens {
			ts = append(ts, Tok(tok))
		}
		err = tx.Retoken(context.Background(), typ, id, version, ts)
		return nil
	})
	return err
}

// testRetoken checks that Retoken replaces exactly the tokens of the
// current version and nothing else.
func testRetoken(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	rng := newRNG(t)
	c1 := Resource(rng, "CareTeam", "c1", 1, t0, "p1")
	c2 := Resource(rng, "CareTeam", "c2", 1, t0.Add(time.Second), "p1")
	MustPut(t, s, []phivault.Token{Tok("a"), Tok("b")}, c1, c2)

	if err := retoken(t, s, "CareTeam", "c1", 1, "b", "new", "new"); err != nil {
		t.Fatalf("Retoken(c1) = %v", err)
	}
	checkRefs(t, "Find(a)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"a"})}), "CareTeam/c2/1")
	checkRefs(t, "Find(b)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"b"})}), "CareTeam/c2/1", "CareTeam/c1/1")
	checkRefs(t, "Find(new)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"new"})}), "CareTeam/c1/1")
	checkRefs(t, "Find(new, b)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"new"}, []string{"b"})}), "CareTeam/c1/1")
	// The version itself, and which one is current, are untouched.
	got, err := current(t, s, "CareTeam", "c1")
	if err != nil {
		t.Fatalf("Current(c1) = %v", err)
	}
	checkEqual(t, "Current(c1) after Retoken", got, c1)
	checkHistory(t, s, phivault.HistoryFilter{Type: "CareTeam", ID: "c1"}, 1, "CareTeam/c1/1")

	// The next Put replaces the retokened tokens, not the ones before.
	MustPut(t, s, []phivault.Token{Tok("v2")}, Resource(rng, "CareTeam", "c1", 2, t0.Add(2*time.Second), "p1"))
	for _, tok := range []string{"b", "new"} {
		checkRefs(t, fmt.Sprintf("Find(%s) after Put", tok), find(t, s, phivault.ResourceFilter{Tokens: toks([]string{tok})}), refsOf(tok == "b", "CareTeam/c2/1")...)
	}
	checkRefs(t, "Find(v2)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"v2"})}), "CareTeam/c1/2")

	// No tokens at all is a replacement too.
	if err := retoken(t, s, "CareTeam", "c1", 2); err != nil {
		t.Fatalf("Retoken(c1, none) = %v", err)
	}
	checkRefs(t, "Find(v2) after Retoken(none)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"v2"})}))
	checkRefs(t, "Find(CareTeam)", find(t, s, phivault.ResourceFilter{Types: []string{"CareTeam"}}), "CareTeam/c1/2", "CareTeam/c2/1")

	err = s.View(ctx, func(tx phivault.StoreTx) error { return tx.Retoken(ctx, "CareTeam", "c2", 1, nil) })
	if err == nil {
		t.Error("Retoken in View = nil error")
	}
}

func refsOf(ok bool, refs ...string) []string {
	if !ok {
		return nil
	}
	return refs
}

// testRetokenErrConflict checks the compare and swap: Retoken of a version
// that is not current and live writes nothing.
func testRetokenErrConflict(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	rng := newRNG(t)
	MustPut(t, s, []phivault.Token{Tok("a")}, Resource(rng, "CareTeam", "c1", 1, t0, "p1"))
	v2 := Resource(rng, "CareTeam", "c1", 2, t0.Add(time.Second), "p1")
	MustPut(t, s, []phivault.Token{Tok("b")}, v2)

	for _, version := range []int64{1, 3} {
		err := retoken(t, s, "CareTeam", "c1", version, "x")
		checkCode(t, fmt.Sprintf("Retoken(c1, version %d of 2)", version), err, phivault.ECONFLICT)
	}
	checkRefs(t, "Find(x) after conflicts", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"x"})}))
	checkRefs(t, "Find(b) after conflicts", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"b"})}), "CareTeam/c1/2")
	got, err := current(t, s, "CareTeam", "c1")
	if err != nil {
		t.Fatalf("Current(c1) = %v", err)
	}
	checkEqual(t, "Current(c1) after conflicts", got, v2)

	err = retoken(t, s, "CareTeam", "none", 1, "x")
	if !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Retoken(missing) = %v, want ErrNotFound", err)
	}

	// A tombstone keeps no tokens.
	MustPut(t, s, nil, &phivault.SealedResource{Type: "CareTeam", ID: "c1", Version: 3, LastUpdated: t0.Add(2 * time.Second), Compartment: "p1", Deleted: true})
	err = retoken(t, s, "CareTeam", "c1", 3, "x")
	checkCode(t, "Retoken(tombstone)", err, phivault.ECONFLICT)
	checkRefs(t, "Find(x) after Retoken(tombstone)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"x"})}))

	// Nor does a shredded compartment's resource.
	MustPut(t, s, []phivault.Token{Tok("a")}, Resource(rng, "CareTeam", "c2", 1, t0.Add(3*time.Second), "p2"))
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.Shred(ctx, "p2", t0.Add(time.Hour)) })
	err = retoken(t, s, "CareTeam", "c2", 1, "x")
	checkCode(t, "Retoken(shredded)", err, phivault.ECONFLICT)
	checkRefs(t, "Find(x) after Retoken(shredded)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"x"})}))
	checkRefs(t, "Find(CareTeam) after Retoken(shredded)", find(t, s, phivault.ResourceFilter{Types: []string{"CareTeam"}}))
}

// testRetokenRace runs Retoken of a version against a concurrent Put of
// the next one, many times: whichever commits last, the resource must end
// with exactly the Put's tokens, never with a token only Retoken wrote.
func testRetokenRace(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	rng := newRNG(t)
	const rounds = 50
	MustPut(t, s, []phivault.Token{Tok("v1")}, Resource(rng, "CareTeam", "c1", 1, t0, "p1"))
	var conflicts int
	for v := int64(1); v <= rounds; v++ {
		next := Resource(rng, "CareTeam", "c1", v+1, t0.Add(time.Duration(v)*time.Second), "p1")
		var wg sync.WaitGroup
		var putErr, retokenErr error
		wg.Go(func() {
			putErr = s.Update(ctx, func(tx phivault.StoreTx) error {
				return tx.Put(ctx, next, []phivault.Token{Tok(fmt.Sprint("v", v+1))})
			})
		})
		wg.Go(func() {
			retokenErr = s.Update(ctx, func(tx phivault.StoreTx) error {
				return tx.Retoken(ctx, "CareTeam", "c1", v, []phivault.Token{Tok(fmt.Sprint("v", v)), Tok(fmt.Sprint("r", v))})
			})
		})
		wg.Wait()
		if putErr != nil {
			t.Fatalf("round %d: Put = %v", v, putErr)
		}
		if phivault.ErrorCode(retokenErr) == phivault.ECONFLICT {
			conflicts++
		} else if retokenErr != nil {
			t.Fatalf("round %d: Retoken = %v", v, retokenErr)
		}
		for _, tok := range []string{fmt.Sprint("v", v), fmt.Sprint("r", v)} {
			checkRefs(t, fmt.Sprintf("round %d: Find(%s)", v, tok), find(t, s, phivault.ResourceFilter{Tokens: toks([]string{tok})}))
		}
		checkRefs(t, fmt.Sprintf("round %d: Find(v%d)", v, v+1), find(t, s, phivault.ResourceFilter{Tokens: toks([]string{fmt.Sprint("v", v+1)})}), fmt.Sprintf("CareTeam/c1/%d", v+1))
	}
	t.Logf("%d of %d Retokens lost the race", conflicts, rounds)
}
