package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

func putKeys(tb testing.TB, s phivault.Store, ks ...*phivault.WrappedKey) {
	tb.Helper()
	MustUpdate(tb, s, func(tx phivault.StoreTx) error {
		for _, k := range ks {
			if _, err := tx.PutKey(context.Background(), k); err != nil {
				return err
			}
		}
		return nil
	})
}

func keyIDs(ks []*phivault.WrappedKey) []string {
	out := []string{}
	for _, k := range ks {
		out = append(out, k.ID)
	}
	return out
}

func testReplaceKey(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	old := &phivault.WrappedKey{ID: "patient/p1", KEKID: "kek:1", Wrapped: []byte("old"), Created: t0}
	putKeys(t, s, old)
	repl := &phivault.WrappedKey{ID: "patient/p1", KEKID: "kek:2", Wrapped: []byte("new"), Created: t0.Add(time.Hour)}
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.ReplaceKey(ctx, old, repl) })
	got, err := view(t, s, func(tx phivault.StoreTx) (*phivault.WrappedKey, error) { return tx.Key(ctx, "patient/p1") })
	if err != nil || got.KEKID != repl.KEKID || !bytes.Equal(got.Wrapped, repl.Wrapped) || !got.Created.Equal(repl.Created) {
		t.Fatalf("Key() after ReplaceKey = %+v, %v; want %+v", got, err, repl)
	}
	// The compare fails now: old is no longer stored, and nothing changes.
	other := &phivault.WrappedKey{ID: "patient/p1", KEKID: "kek:3", Wrapped: []byte("other"), Created: t0}
	err = s.Update(ctx, func(tx phivault.StoreTx) error { return tx.ReplaceKey(ctx, old, other) })
	checkCode(t, "ReplaceKey(stale old)", err, phivault.ECONFLICT)
	got, _ = view(t, s, func(tx phivault.StoreTx) (*phivault.WrappedKey, error) { return tx.Key(ctx, "patient/p1") })
	if got == nil || got.KEKID != repl.KEKID {
		t.Errorf("Key() after a failed ReplaceKey = %+v, want %+v", got, repl)
	}
	// Same KEK, other bytes: also a conflict.
	stale := &phivault.WrappedKey{ID: "patient/p1", KEKID: "kek:2", Wrapped: []byte("nope"), Created: t0}
	err = s.Update(ctx, func(tx phivault.StoreTx) error { return tx.ReplaceKey(ctx, stale, other) })
	checkCode(t, "ReplaceKey(other bytes)", err, phivault.ECONFLICT)
	missing := &phivault.WrappedKey{ID: "patient/none", KEKID: "kek:2", Wrapped: []byte("x"), Created: t0}
	err = s.Update(ctx, func(tx phivault.StoreTx) error { return tx.ReplaceKey(ctx, missing, missing) })
	if !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("ReplaceKey(missing) = %v, want ErrNotFound", err)
	}
	err = s.View(ctx, func(tx phivault.StoreTx) error { return tx.ReplaceKey(ctx, repl, other) })
	if err == nil {
		t.Error("ReplaceKey in View = nil error")
	}
}

func testKeysPaging(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	var ks []*phivault.WrappedKey
	for i := range 7 {
		kek := phivault.KeyID("kek:1")
		if i%3 == 0 {
			kek = "kek:2"
		}
		ks = append(ks, &phivault.WrappedKey{ID: fmt.Sprintf("patient/p%d", i), KEKID: kek, Wrapped: []byte{byte(i)}, Created: t0})
	}
	putKeys(t, s, ks...)
	keys := func(f phivault.KeyFilter) []string {
		t.Helper()
		got, err := view(t, s, func(tx phivault.StoreTx) ([]*phivault.WrappedKey, error) { return tx.Keys(ctx, f) })
		if err != nil {
			t.Fatalf("Keys(%+v) = %v", f, err)
		}
		return keyIDs(got)
	}
	checkRefs(t, "Keys(all)", keys(phivault.KeyFilter{}), "patient/p0", "patient/p1", "patient/p2", "patient/p3", "patient/p4", "patient/p5", "patient/p6")
	checkRefs(t, "Keys(except kek:2)", keys(phivault.KeyFilter{ExceptKEK: "kek:2"}), "patient/p1", "patient/p2", "patient/p4", "patient/p5")
	checkRefs(t, "Keys(except kek:2, limit 2)", keys(phivault.KeyFilter{ExceptKEK: "kek:2", Limit: 2}), "patient/p1", "patient/p2")
	checkRefs(t, "Keys(except kek:2, after p2)", keys(phivault.KeyFilter{ExceptKEK: "kek:2", After: "patient/p2", Limit: 2}), "patient/p4", "patient/p5")
	got, err := view(t, s, func(tx phivault.StoreTx) ([]*phivault.WrappedKey, error) {
		return tx.Keys(ctx, phivault.KeyFilter{After: "patient/p5"})
	})
	if err != nil || len(got) != 1 || got[0].KEKID != "kek:2" || !bytes.Equal(got[0].Wrapped, []byte{6}) || !got[0].Created.Equal(t0) {
		t.Errorf("Keys(after p5) = %+v, %v", got, err)
	}
	counts, err := view(t, s, func(tx phivault.StoreTx) (map[phivault.KeyID]int, error) { return tx.KeyCounts(ctx) })
	if err != nil || len(counts) != 2 || counts["kek:1"] != 4 || counts["kek:2"] != 3 {
		t.Errorf("KeyCounts() = %v, %v; want kek:1 4, kek:2 3", counts, err)
	}
}

func testShred(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	rng := newRNG(t)
	at := t0.Add(24 * time.Hour)
	p1 := Resource(rng, "Patient", "p1", 1, t0, "p1")
	o1 := Resource(rng, "Observation", "o1", 1, t0.Add(time.Second), "p1")
	o1v2 := Resource(rng, "Observation", "o1", 2, t0.Add(2*time.Second), "p1")
	o2 := Resource(rng, "Observation", "o2", 1, t0.Add(3*time.Second), "p2")
	MustPut(t, s, []phivault.Token{Tok("code"), Tok("p1")}, p1, o1, o1v2)
	MustPut(t, s, []phivault.Token{Tok("code"), Tok("p2")}, o2)
	putKeys(t, s,
		&phivault.WrappedKey{ID: "patient/p1", KEKID: "kek", Wrapped: []byte("k1"), Created: t0},
		&phivault.WrappedKey{ID: "patient/p2", KEKID: "kek", Wrapped: []byte("k2"), Created: t0})

	if ok, err := view(t, s, func(tx phivault.StoreTx) (bool, error) {
		_, ok, err := tx.Shredded(ctx, "p1")
		return ok, err
	}); err != nil || ok {
		t.Fatalf("Shredded(p1) before = %v, %v; want false", ok, err)
	}
	if err := s.View(ctx, func(tx phivault.StoreTx) error { return tx.Shred(ctx, "p1", at) }); err == nil {
		t.Error("Shred in View = nil error")
	}
	err := s.Update(ctx, func(tx phivault.StoreTx) error { return tx.Shred(ctx, "", at) })
	checkCode(t, "Shred(\"\")", err, phivault.EINVALID)

	// A shred that rolls back leaves everything.
	errRollback := errors.New("roll back")
	err = s.Update(ctx, func(tx phivault.StoreTx) error {
		if err := tx.Shred(ctx, "p1", at); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update = %v, want the rollback error", err)
	}
	checkRefs(t, "Find(token p1) after a rolled-back shred", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"p1"})}), "Observation/o1/2", "Patient/p1/1")

	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.Shred(ctx, "p1", at) })
	// Shredding again keeps the first time.
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.Shred(ctx, "p1", at.Add(time.Hour)) })

	type shredState struct {
		at time.Time
		ok bool
	}
	st, err := view(t, s, func(tx phivault.StoreTx) (shredState, error) {
		at, ok, err := tx.Shredded(ctx, "p1")
		return shredState{at, ok}, err
	})
	if err != nil || !st.ok || !st.at.Equal(at) {
		t.Errorf("Shredded(p1) = %v, %v, %v; want %v, true", st.at, st.ok, err, at)
	}
	st, err = view(t, s, func(tx phivault.StoreTx) (shredState, error) {
		at, ok, err := tx.Shredded(ctx, "p2")
		return shredState{at, ok}, err
	})
	if err != nil || st.ok {
		t.Errorf("Shredded(p2) = %v, %v; want false", st.ok, err)
	}
	// The key is gone, the other patient's stays.
	if _, err := view(t, s, func(tx phivault.StoreTx) (*phivault.WrappedKey, error) { return tx.Key(ctx, "patient/p1") }); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Key(patient/p1) after shred = %v, want ErrNotFound", err)
	}
	if _, err := view(t, s, func(tx phivault.StoreTx) (*phivault.WrappedKey, error) { return tx.Key(ctx, "patient/p2") }); err != nil {
		t.Errorf("Key(patient/p2) after shred of p1 = %v", err)
	}
	// Tokens and search: the compartment is gone from Find and Count.
	checkRefs(t, "Find(token p1)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"p1"})}))
	checkRefs(t, "Find(token code)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"code"})}), "Observation/o2/1")
	checkRefs(t, "Find(compartment p1)", find(t, s, phivault.ResourceFilter{Compartments: []string{"p1"}}))
	checkRefs(t, "Find(ids)", find(t, s, phivault.ResourceFilter{Types: []string{"Observation"}, IDs: []string{"o1", "o2"}}), "Observation/o2/1")
	checkRefs(t, "Find(all)", find(t, s, phivault.ResourceFilter{}), "Observation/o2/1")
	if n := count(t, s, phivault.ResourceFilter{}); n != 1 {
		t.Errorf("Count(all) after shred = %d, want 1", n)
	}
	// Versions stay, ciphertext and all: reads see them (and fail to open).
	got, err := current(t, s, "Observation", "o1")
	if err != nil {
		t.Fatalf("Current(o1) after shred = %v", err)
	}
	checkEqual(t, "Current(o1) after shred", got, o1v2)
	checkHistory(t, s, phivault.HistoryFilter{Type: "Observation", ID: "o1"}, 2, "Observation/o1/2", "Observation/o1/1")
}

// testKeysBound checks that a key's Bound survives the store, that Keys
// selects unbound keys and keys of one KEK, and that ReplaceKey compares
// Bound too: a rewrap binding a key replaces only the unbound row it read.
func testKeysBound(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	putKeys(t, s,
		&phivault.WrappedKey{ID: "patient/p1", KEKID: "kek:1", Wrapped: []byte("a"), Created: t0},
		&phivault.WrappedKey{ID: "patient/p2", KEKID: "kek:1", Wrapped: []byte("b"), Created: t0, Bound: true},
		&phivault.WrappedKey{ID: "patient/p3", KEKID: "kek:2", Wrapped: []byte("c"), Created: t0},
		&phivault.WrappedKey{ID: "patient/p4", KEKID: "kek:2", Wrapped: []byte("d"), Created: t0, Bound: true})
	keys := func(f phivault.KeyFilter) []*phivault.WrappedKey {
		t.Helper()
		ks, err := view(t, s, func(tx phivault.StoreTx) ([]*phivault.WrappedKey, error) { return tx.Keys(ctx, f) })
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	for _, k := range keys(phivault.KeyFilter{}) {
		if want := k.ID == "patient/p2" || k.ID == "patient/p4"; k.Bound != want {
			t.Errorf("Keys(): %s Bound = %v, want %v", k.ID, k.Bound, want)
		}
	}
	got, err := view(t, s, func(tx phivault.StoreTx) (*phivault.WrappedKey, error) { return tx.Key(ctx, "patient/p2") })
	if err != nil || !got.Bound {
		t.Errorf("Key(p2) = %+v, %v; want Bound", got, err)
	}
	vs, err := view(t, s, func(tx phivault.StoreTx) ([]*phivault.WrappedKey, error) { return tx.KeyVersions(ctx, "patient/p4") })
	if err != nil || len(vs) != 1 || !vs[0].Bound {
		t.Errorf("KeyVersions(p4) = %v, %v; want one bound key", vs, err)
	}
	checkRefs(t, "Keys(unbound)", keyIDs(keys(phivault.KeyFilter{Unbound: true})), "patient/p1", "patient/p3")
	checkRefs(t, "Keys(kek:1)", keyIDs(keys(phivault.KeyFilter{KEK: "kek:1"})), "patient/p1", "patient/p2")
	checkRefs(t, "Keys(kek:2, unbound)", keyIDs(keys(phivault.KeyFilter{KEK: "kek:2", Unbound: true})), "patient/p3")

	old := &phivault.WrappedKey{ID: "patient/p1", KEKID: "kek:1", Wrapped: []byte("a"), Created: t0}
	bound := &phivault.WrappedKey{ID: "patient/p1", KEKID: "kek:1", Wrapped: []byte("a2"), Created: t0, Bound: true}
	stale := *old
	stale.Bound = true // the same bytes, read as bound: not what is stored
	err = s.Update(ctx, func(tx phivault.StoreTx) error { return tx.ReplaceKey(ctx, &stale, bound) })
	checkCode(t, "ReplaceKey(old with another Bound)", err, phivault.ECONFLICT)
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.ReplaceKey(ctx, old, bound) })
	checkRefs(t, "Keys(unbound) after binding p1", keyIDs(keys(phivault.KeyFilter{Unbound: true})), "patient/p3")
}
