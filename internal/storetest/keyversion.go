package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

func keyVersions(tb testing.TB, s phivault.Store, id string) []string {
	tb.Helper()
	ks, err := view(tb, s, func(tx phivault.StoreTx) ([]*phivault.WrappedKey, error) {
		return tx.KeyVersions(context.Background(), id)
	})
	if err != nil {
		tb.Fatalf("KeyVersions(%q) = %v", id, err)
	}
	return keyIDs(ks)
}

func testKeyVersions(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	wk := func(id string) *phivault.WrappedKey {
		return &phivault.WrappedKey{ID: id, KEKID: "kek:1", Wrapped: []byte(id), Created: t0}
	}
	checkRefs(t, "KeyVersions(none)", keyVersions(t, s, "patient/p1"))
	// Neighbours that are not versions of patient/p1: another patient whose
	// id extends p1's, malformed version suffixes, and ids sorting just
	// before and after.
	putKeys(t, s, wk("patient/p1#10"), wk("patient/p1"), wk("patient/p1#2"), wk("patient/p10"),
		wk("patient/p1#10#2"), wk("patient/p1#02"), wk("patient/p1#x"), wk("patient/p1!"), wk("patient/p0"), wk("patient/p1$"))
	checkRefs(t, "KeyVersions(patient/p1)", keyVersions(t, s, "patient/p1"), "patient/p1", "patient/p1#2", "patient/p1#10")
	checkRefs(t, "KeyVersions(patient/p10)", keyVersions(t, s, "patient/p10"), "patient/p10")
	// A compartment whose first version is gone (rotated away).
	putKeys(t, s, wk("patient/p2#3"))
	checkRefs(t, "KeyVersions(patient/p2)", keyVersions(t, s, "patient/p2"), "patient/p2#3")
	ks, err := view(t, s, func(tx phivault.StoreTx) ([]*phivault.WrappedKey, error) { return tx.KeyVersions(ctx, "patient/p1") })
	if err != nil || len(ks) != 3 || ks[1].KEKID != "kek:1" || !bytes.Equal(ks[1].Wrapped, []byte("patient/p1#2")) || !ks[1].Created.Equal(t0) {
		t.Errorf("KeyVersions(patient/p1)[1] = %+v, %v", ks, err)
	}
	// Read-write transactions see them too.
	MustUpdate(t, s, func(tx phivault.StoreTx) error {
		ks, err := tx.KeyVersions(ctx, "patient/p1")
		if err == nil && len(ks) != 3 {
			t.Errorf("KeyVersions in Update = %q, want 3 keys", keyIDs(ks))
		}
		return err
	})
}

func testKeyVersionID(t *testing.T, s phivault.Store) {
	for _, tt := range []struct {
		give string
		base string
		n    int
		ok   bool
	}{
		{"patient/p1", "patient/p1", 1, true},
		{"patient/p1#2", "patient/p1", 2, true},
		{"patient/p1#17", "patient/p1", 17, true},
		{"patient/p1#1", "", 0, false},
		{"patient/p1#02", "", 0, false},
		{"patient/p1#", "", 0, false},
		{"patient/p1#-3", "", 0, false},
		{"patient/p1#2#3", "", 0, false},
	} {
		base, n, ok := phivault.ParseKeyVersionID(tt.give)
		if base != tt.base || n != tt.n || ok != tt.ok {
			t.Errorf("ParseKeyVersionID(%q) = %q, %d, %v; want %q, %d, %v", tt.give, base, n, ok, tt.base, tt.n, tt.ok)
		}
		if tt.ok {
			if got := phivault.KeyVersionID(tt.base, tt.n); got != tt.give {
				t.Errorf("KeyVersionID(%q, %d) = %q, want %q", tt.base, tt.n, got, tt.give)
			}
		}
	}
}

// sealedUnder returns the refs sealed under keyID, sorted, and the total.
func sealedUnder(tb testing.TB, s phivault.Store, keyID string, limit int) ([]string, int) {
	tb.Helper()
	type page struct {
		rs    []*phivault.SealedResource
		total int
	}
	p, err := view(tb, s, func(tx phivault.StoreTx) (page, error) {
		rs, total, err := tx.SealedUnder(context.Background(), keyID, limit)
		return page{rs, total}, err
	})
	if err != nil {
		tb.Fatalf("SealedUnder(%q, %d) = %v", keyID, limit, err)
	}
	got := refs(p.rs)
	slices.Sort(got)
	return got, p.total
}

func testSealedUnder(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	rng := newRNG(t)
	o1 := Resource(rng, "Observation", "o1", 1, t0, "p1")
	o1v2 := Resource(rng, "Observation", "o1", 2, t0.Add(time.Second), "p1")
	o1v3 := &phivault.SealedResource{Type: "Observation", ID: "o1", Version: 3, LastUpdated: t0.Add(2 * time.Second), Compartment: "p1", Deleted: true}
	p1 := Resource(rng, "Patient", "p1", 1, t0, "p1")
	p1.KeyID = "patient/p1#2"
	o2 := Resource(rng, "Observation", "o2", 1, t0, "p2")
	MustPut(t, s, nil, o1, o1v2, o1v3, p1, o2)

	got, total := sealedUnder(t, s, "patient/p1", 0)
	checkRefs(t, "SealedUnder(patient/p1)", got, "Observation/o1/1", "Observation/o1/2")
	if total != 2 {
		t.Errorf("SealedUnder(patient/p1) total = %d, want 2", total)
	}
	got, total = sealedUnder(t, s, "patient/p1", 1)
	if len(got) != 1 || total != 2 {
		t.Errorf("SealedUnder(patient/p1, limit 1) = %q, total %d; want 1 of 2", got, total)
	}
	got, _ = sealedUnder(t, s, "patient/p1#2", 0)
	checkRefs(t, "SealedUnder(patient/p1#2)", got, "Patient/p1/1")
	got, total = sealedUnder(t, s, "patient/none", 10)
	checkRefs(t, "SealedUnder(patient/none)", got)
	if total != 0 {
		t.Errorf("SealedUnder(patient/none) total = %d, want 0", total)
	}
	rs, err := view(t, s, func(tx phivault.StoreTx) ([]*phivault.SealedResource, error) {
		rs, _, err := tx.SealedUnder(ctx, "patient/p1#2", 0)
		return rs, err
	})
	if err != nil || len(rs) != 1 {
		t.Fatalf("SealedUnder(patient/p1#2) = %v, %v", rs, err)
	}
	checkEqual(t, "SealedUnder(patient/p1#2)[0]", rs[0], p1)
	err = s.View(ctx, func(tx phivault.StoreTx) error { _, _, err := tx.SealedUnder(ctx, "", 0); return err })
	checkCode(t, "SealedUnder(\"\")", err, phivault.EINVALID)
}

func testReseal(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	rng := newRNG(t)
	o1 := Resource(rng, "Observation", "o1", 1, t0, "p1")
	o1v2 := Resource(rng, "Observation", "o1", 2, t0.Add(time.Second), "p1")
	del := &phivault.SealedResource{Type: "Observation", ID: "o2", Version: 1, LastUpdated: t0, Compartment: "p1", Deleted: true}
	MustPut(t, s, []phivault.Token{Tok("code")}, o1, o1v2, del)

	resealed := func(r *phivault.SealedResource) *phivault.SealedResource {
		c := *r
		c.KeyID = "patient/p1#2"
		c.Ciphertext = append([]byte("resealed:"), r.Ciphertext...)
		return &c
	}
	n1 := resealed(o1)
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.Reseal(ctx, o1, n1) })
	got, err := view(t, s, func(tx phivault.StoreTx) (*phivault.SealedResource, error) {
		return tx.Version(ctx, "Observation", "o1", 1)
	})
	if err != nil {
		t.Fatalf("Version(o1, 1) after Reseal = %v", err)
	}
	checkEqual(t, "Version(o1, 1) after Reseal", got, n1)
	// The current version, its tokens and search are untouched.
	cur, err := current(t, s, "Observation", "o1")
	if err != nil {
		t.Fatalf("Current(o1) = %v", err)
	}
	checkEqual(t, "Current(o1) after resealing version 1", cur, o1v2)
	checkRefs(t, "Find(token code) after Reseal", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"code"})}), "Observation/o1/2")

	// Compare and swap: o1 is no longer under patient/p1.
	err = s.Update(ctx, func(tx phivault.StoreTx) error { return tx.Reseal(ctx, o1, resealed(o1)) })
	checkCode(t, "Reseal(stale)", err, phivault.ECONFLICT)
	got, _ = view(t, s, func(tx phivault.StoreTx) (*phivault.SealedResource, error) {
		return tx.Version(ctx, "Observation", "o1", 1)
	})
	checkEqual(t, "Version(o1, 1) after a failed Reseal", got, n1)

	missing := Resource(rng, "Observation", "none", 1, t0, "p1")
	err = s.Update(ctx, func(tx phivault.StoreTx) error { return tx.Reseal(ctx, missing, resealed(missing)) })
	if !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Reseal(missing) = %v, want ErrNotFound", err)
	}
	// Only the key and the ciphertext may change.
	for name, change := range map[string]func(r *phivault.SealedResource){
		"type":        func(r *phivault.SealedResource) { r.Type = "Patient" },
		"id":          func(r *phivault.SealedResource) { r.ID = "o9" },
		"version":     func(r *phivault.SealedResource) { r.Version = 1 },
		"time":        func(r *phivault.SealedResource) { r.LastUpdated = r.LastUpdated.Add(time.Microsecond) },
		"compartment": func(r *phivault.SealedResource) { r.Compartment = "p2" },
		"no key":      func(r *phivault.SealedResource) { r.KeyID = "" },
		"no body":     func(r *phivault.SealedResource) { r.Ciphertext = nil },
		"tombstone":   func(r *phivault.SealedResource) { r.Deleted = true },
	} {
		r := resealed(o1v2)
		change(r)
		err := s.Update(ctx, func(tx phivault.StoreTx) error { return tx.Reseal(ctx, o1v2, r) })
		checkCode(t, "Reseal(changed "+name+")", err, phivault.EINVALID)
	}
	delKeyed := *del
	delKeyed.KeyID = "patient/p1"
	err = s.Update(ctx, func(tx phivault.StoreTx) error { return tx.Reseal(ctx, &delKeyed, resealed(o1v2)) })
	checkCode(t, "Reseal(tombstone)", err, phivault.EINVALID)
	cur, _ = current(t, s, "Observation", "o1")
	checkEqual(t, "Current(o1) after rejected Reseals", cur, o1v2)

	if err := s.View(ctx, func(tx phivault.StoreTx) error { return tx.Reseal(ctx, o1v2, resealed(o1v2)) }); err == nil {
		t.Error("Reseal in View = nil error")
	}
	// A Reseal that rolls back changes nothing.
	errRollback := errors.New("roll back")
	err = s.Update(ctx, func(tx phivault.StoreTx) error {
		if err := tx.Reseal(ctx, o1v2, resealed(o1v2)); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update = %v, want the rollback error", err)
	}
	cur, _ = current(t, s, "Observation", "o1")
	checkEqual(t, "Current(o1) after a rolled-back Reseal", cur, o1v2)
}

func testDeleteKey(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	rng := newRNG(t)
	o1 := Resource(rng, "Observation", "o1", 1, t0, "p1")
	MustPut(t, s, nil, o1)
	putKeys(t, s,
		&phivault.WrappedKey{ID: "patient/p1", KEKID: "kek:1", Wrapped: []byte("k1"), Created: t0},
		&phivault.WrappedKey{ID: "patient/p1#2", KEKID: "kek:1", Wrapped: []byte("k2"), Created: t0})

	err := s.Update(ctx, func(tx phivault.StoreTx) error { return tx.DeleteKey(ctx, "patient/p1") })
	checkCode(t, "DeleteKey(in use)", err, phivault.ECONFLICT)
	checkRefs(t, "KeyVersions after a refused DeleteKey", keyVersions(t, s, "patient/p1"), "patient/p1", "patient/p1#2")

	n1 := *o1
	n1.KeyID, n1.Ciphertext = "patient/p1#2", []byte("new")
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.Reseal(ctx, o1, &n1) })
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.DeleteKey(ctx, "patient/p1") })
	checkRefs(t, "KeyVersions after DeleteKey", keyVersions(t, s, "patient/p1"), "patient/p1#2")
	err = s.Update(ctx, func(tx phivault.StoreTx) error { return tx.DeleteKey(ctx, "patient/p1") })
	if !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("DeleteKey(deleted) = %v, want ErrNotFound", err)
	}
	if err := s.View(ctx, func(tx phivault.StoreTx) error { return tx.DeleteKey(ctx, "patient/p1#2") }); err == nil {
		t.Error("DeleteKey in View = nil error")
	}

	// Shred deletes every version of the compartment's key, not a
	// neighbour's.
	putKeys(t, s, &phivault.WrappedKey{ID: "patient/p1#3", KEKID: "kek:1", Wrapped: []byte("k3"), Created: t0},
		&phivault.WrappedKey{ID: "patient/p10", KEKID: "kek:1", Wrapped: []byte("k10"), Created: t0})
	MustUpdate(t, s, func(tx phivault.StoreTx) error { return tx.Shred(ctx, "p1", t0) })
	checkRefs(t, "KeyVersions(patient/p1) after Shred", keyVersions(t, s, "patient/p1"))
	checkRefs(t, "KeyVersions(patient/p10) after Shred of p1", keyVersions(t, s, "patient/p10"), "patient/p10")
}

// testDeleteKeyRace checks that a key read with KeyVersions in a read-write
// transaction is not deleted under a version that transaction stores:
// DeleteKey, started while the writer is in flight, either waits and sees
// the version (ECONFLICT), or runs first and the writer no longer sees the
// key.
func testDeleteKeyRace(t *testing.T, s phivault.Store) {
	ctx := context.Background()
	rng := newRNG(t)
	putKeys(t, s, &phivault.WrappedKey{ID: "patient/p1", KEKID: "kek:1", Wrapped: []byte("k1"), Created: t0})
	o1 := Resource(rng, "Observation", "o1", 1, t0, "p1")

	read := make(chan struct{})
	writer := make(chan error, 1)
	go func() {
		var once bool
		writer <- s.Update(ctx, func(tx phivault.StoreTx) error {
			ks, err := tx.KeyVersions(ctx, "patient/p1")
			if err != nil {
				return err
			}
			if !once {
				once = true
				close(read)
				// Give DeleteKey time to start; if it has not, the test
				// passes without exercising the race, never falsely fails.
				time.Sleep(50 * time.Millisecond)
			}
			if len(ks) == 0 {
				return nil // the key is gone: a writer would seal under another
			}
			return tx.Put(ctx, o1, nil)
		})
	}()
	<-read
	delErr := s.Update(ctx, func(tx phivault.StoreTx) error { return tx.DeleteKey(ctx, "patient/p1") })
	if err := <-writer; err != nil {
		t.Fatalf("writer Update = %v", err)
	}
	_, err := current(t, s, "Observation", "o1")
	stored := err == nil
	left := len(keyVersions(t, s, "patient/p1")) == 1
	switch {
	case stored && !left:
		t.Errorf("DeleteKey = %v: the key was deleted although a version sealed under it was stored", delErr)
	case stored && phivault.ErrorCode(delErr) != phivault.ECONFLICT:
		t.Errorf("DeleteKey = %v, want ECONFLICT (a version is sealed under the key)", delErr)
	case !stored && (delErr != nil || left):
		t.Errorf("DeleteKey = %v with the key left %v and no version stored", delErr, left)
	}
}
