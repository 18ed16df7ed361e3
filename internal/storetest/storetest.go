// Package storetest provides the conformance suite that every
// [phivault.Store] implementation runs, and shared benchmarks.
//
// The suite uses fake ciphertexts (random bytes) and fake tokens: a Store
// never interprets either, so no cryptography is involved here.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
)

// T0 is the base time of the suite's resources.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 123456000, time.UTC)

// Run runs the conformance suite against the Store returned by open. open is
// called once per subtest and must return a new, empty store; it should
// arrange for the store to be closed when the test ends.
func Run(t *testing.T, open func(t *testing.T) phivault.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s phivault.Store)
	}{
		{"Put/OK", testPutOK},
		{"Put/NewVersion", testPutNewVersion},
		{"Put/ErrConflict", testPutErrConflict},
		{"Put/Tombstone", testPutTombstone},
		{"Put/ReplacesTokens", testPutReplacesTokens},
		{"Current/ErrNotFound", testCurrentErrNotFound},
		{"Version/ErrNotFound", testVersionErrNotFound},
		{"History/Instance", testHistoryInstance},
		{"History/Type", testHistoryType},
		{"History/Empty", testHistoryEmpty},
		{"Find/Tokens", testFindTokens},
		{"Find/Types", testFindTypes},
		{"Find/IDs", testFindIDs},
		{"Find/Compartment", testFindCompartment},
		{"Find/LastUpdated", testFindLastUpdated},
		{"Find/Order", testFindOrder},
		{"Find/Paging", testFindPaging},
		{"Update/Rollback", testUpdateRollback},
		{"Update/Canceled", testUpdateCanceled},
		{"Update/GroupCommit", testUpdateGroupCommit},
		{"Update/NoLostUpdate", testUpdateNoLostUpdate},
		{"View/ReadOnly", testViewReadOnly},
		{"View/Canceled", testViewCanceled},
		{"Key/ErrNotFound", testKeyErrNotFound},
		{"PutKey/FirstWriterWins", testPutKeyFirstWriterWins},
		{"ReplaceKey", testReplaceKey},
		{"Keys/Paging", testKeysPaging},
		{"Keys/Bound", testKeysBound},
		{"Shred", testShred},
		{"KeyVersions", testKeyVersions},
		{"KeyVersionID", testKeyVersionID},
		{"SealedUnder", testSealedUnder},
		{"Reseal", testReseal},
		{"DeleteKey", testDeleteKey},
		{"DeleteKey/Race", testDeleteKeyRace},
		{"ReindexPending", testReindexPending},
		{"Retoken", testRetoken},
		{"Retoken/ErrConflict", testRetokenErrConflict},
		{"Retoken/Race", testRetokenRace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// Tok returns a fake token for s.
func Tok(s string) phivault.Token {
	h := sha256.Sum256([]byte(s))
	return phivault.Token(h[:16])
}

// Resource returns a version with a random ciphertext.
func Resource(rng *rand.Rand, typ, id string, version int64, lastUpdated time.Time, compartment string) *phivault.SealedResource {
	ct := make([]byte, 64+rng.IntN(64))
	for i := range ct {
		ct[i] = byte(rng.Uint32())
	}
	return &phivault.SealedResource{
		Type: typ, ID: id, Version: version, LastUpdated: lastUpdated,
		Compartment: compartment, KeyID: "patient/" + compartment, Ciphertext: ct,
	}
}

func newRNG(t testing.TB) *rand.Rand {
	h := sha256.Sum256([]byte(t.Name()))
	return rand.New(rand.NewPCG(uint64(h[0])<<8|uint64(h[1]), 1))
}

// MustUpdate runs fn in s.Update and fails the test on error.
func MustUpdate(tb testing.TB, s phivault.Store, fn func(tx phivault.StoreTx) error) {
	tb.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		tb.Fatalf("Update() = %v", err)
	}
}

// MustPut stores the versions, each with tokens, in one Update.
func MustPut(tb testing.TB, s phivault.Store, tokens []phivault.Token, rs ...*phivault.SealedResource) {
	tb.Helper()
	MustUpdate(tb, s, func(tx phivault.StoreTx) error {
		for _, r := range rs {
			if err := tx.Put(context.Background(), r, tokens); err != nil {
				return fmt.Errorf("put %s/%s/%d: %w", r.Type, r.ID, r.Version, err)
			}
		}
		return nil
	})
}

func view[T any](tb testing.TB, s phivault.Store, fn func(tx phivault.StoreTx) (T, error)) (T, error) {
	tb.Helper()
	var out T
	err := s.View(context.Background(), func(tx phivault.StoreTx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}

func current(tb testing.TB, s phivault.Store, typ, id string) (*phivault.SealedResource, error) {
	return view(tb, s, func(tx phivault.StoreTx) (*phivault.SealedResource, error) {
		return tx.Current(context.Background(), typ, id)
	})
}

func find(tb testing.TB, s phivault.Store, f phivault.ResourceFilter) []string {
	tb.Helper()
	rs, err := view(tb, s, func(tx phivault.StoreTx) ([]*phivault.SealedResource, error) {
		return tx.Find(context.Background(), f)
	})
	if err != nil {
		tb.Fatalf("Find(%+v) = %v", f, err)
	}
	return refs(rs)
}

func count(tb testing.TB, s phivault.Store, f phivault.ResourceFilter) int {
	tb.Helper()
	n, err := view(tb, s, func(tx phivault.StoreTx) (int, error) {
		return tx.Count(context.Background(), f)
	})
	if err != nil {
		tb.Fatalf("Count(%+v) = %v", f, err)
	}
	return n
}

func compartments(tb testing.TB, s phivault.Store, f phivault.ResourceFilter) []string {
	tb.Helper()
	counts, err := view(tb, s, func(tx phivault.StoreTx) (map[string]int, error) {
		return tx.CountCompartments(context.Background(), f)
	})
	if err != nil {
		tb.Fatalf("CountCompartments(%+v) = %v", f, err)
	}
	var out []string
	for c, n := range counts {
		out = append(out, fmt.Sprintf("%s:%d", c, n))
	}
	slices.Sort(out)
	return out
}

// refs returns "Type/id/version" of each resource.
func refs(rs []*phivault.SealedResource) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s/%s/%d", r.Type, r.ID, r.Version))
	}
	return out
}

func checkEqual(tb testing.TB, what string, got, want *phivault.SealedResource) {
	tb.Helper()
	if got == nil {
		tb.Fatalf("%s = nil, want %s", what, refs([]*phivault.SealedResource{want}))
	}
	if got.Type != want.Type || got.ID != want.ID || got.Version != want.Version ||
		!got.LastUpdated.Equal(want.LastUpdated) || got.Compartment != want.Compartment ||
		got.Deleted != want.Deleted || got.KeyID != want.KeyID || !bytes.Equal(got.Ciphertext, want.Ciphertext) {
		tb.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
	if got.LastUpdated.Location() != time.UTC {
		tb.Errorf("%s: LastUpdated location = %v, want UTC", what, got.LastUpdated.Location())
	}
	if want.Deleted && got.Ciphertext != nil {
		tb.Errorf("%s: tombstone Ciphertext = %d bytes, want nil", what, len(got.Ciphertext))
	}
}

func checkRefs(tb testing.TB, what string, got []string, want ...string) {
	tb.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		tb.Errorf("%s = %q, want %q", what, got, want)
	}
}

func checkCode(tb testing.TB, what string, err error, code string) {
	tb.Helper()
	if got := phivault.ErrorCode(err); got != code {
		tb.Errorf("%s = %v (code %q), want code %q", what, err, got, code)
	}
}

func testPutOK(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	r := Resource(rng, "Patient", "p1", 1, t0, "p1")
	MustPut(t, s, []phivault.Token{Tok("a")}, r)
	got, err := current(t, s, "Patient", "p1")
	if err != nil {
		t.Fatalf("Current() = %v", err)
	}
	checkEqual(t, "Current()", got, r)
	got, err = view(t, s, func(tx phivault.StoreTx) (*phivault.SealedResource, error) {
		return tx.Version(context.Background(), "Patient", "p1", 1)
	})
	if err != nil {
		t.Fatalf("Version() = %v", err)
	}
	checkEqual(t, "Version(1)", got, r)

	// Reads in the same transaction see the write.
	MustUpdate(t, s, func(tx phivault.StoreTx) error {
		r2 := Resource(rng, "Observation", "o1", 1, t0, "p1")
		if err := tx.Put(context.Background(), r2, nil); err != nil {
			return err
		}
		got, err := tx.Current(context.Background(), "Observation", "o1")
		if err != nil {
			return err
		}
		checkEqual(t, "Current() in Update", got, r2)
		return nil
	})
}

func testPutNewVersion(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	v1 := Resource(rng, "Patient", "p1", 1, t0, "p1")
	v2 := Resource(rng, "Patient", "p1", 2, t0.Add(time.Second), "p1")
	MustPut(t, s, nil, v1)
	MustPut(t, s, nil, v2)
	got, err := current(t, s, "Patient", "p1")
	if err != nil {
		t.Fatalf("Current() = %v", err)
	}
	checkEqual(t, "Current()", got, v2)
	got, err = view(t, s, func(tx phivault.StoreTx) (*phivault.SealedResource, error) {
		return tx.Version(context.Background(), "Patient", "p1", 1)
	})
	if err != nil {
		t.Fatalf("Version(1) = %v", err)
	}
	checkEqual(t, "Version(1)", got, v1)
}

func testPutErrConflict(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	v1 := Resource(rng, "Patient", "p1", 1, t0, "p1")
	MustPut(t, s, []phivault.Token{Tok("a")}, v1)
	for _, r := range []*phivault.SealedResource{
		Resource(rng, "Patient", "p1", 1, t0.Add(time.Second), "p1"), // exists
		Resource(rng, "Patient", "p1", 3, t0.Add(time.Second), "p1"), // skips 2
		Resource(rng, "Patient", "p2", 2, t0.Add(time.Second), "p2"), // new resource must be 1
	} {
		// fn swallows the conflict and returns nil: Put itself must have
		// written nothing.
		var putErr error
		MustUpdate(t, s, func(tx phivault.StoreTx) error {
			putErr = tx.Put(context.Background(), r, []phivault.Token{Tok("b")})
			return nil
		})
		checkCode(t, fmt.Sprintf("Put(%s/%d)", r.ID, r.Version), putErr, phivault.ECONFLICT)
	}
	got, err := current(t, s, "Patient", "p1")
	if err != nil {
		t.Fatalf("Current(p1) = %v", err)
	}
	checkEqual(t, "Current(p1)", got, v1)
	if _, err := current(t, s, "Patient", "p2"); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Current(p2) = %v, want ErrNotFound", err)
	}
	checkRefs(t, "Find(b)", find(t, s, phivault.ResourceFilter{Tokens: [][]phivault.Token{{Tok("b")}}}))
	checkRefs(t, "Find(a)", find(t, s, phivault.ResourceFilter{Tokens: [][]phivault.Token{{Tok("a")}}}), "Patient/p1/1")
	_, total, err := history(t, s, phivault.HistoryFilter{Type: "Patient"})
	if err != nil || total != 1 {
		t.Errorf("History(Patient) total = %d, %v; want 1", total, err)
	}
}

func testPutTombstone(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	a := []phivault.Token{Tok("a")}
	v1 := Resource(rng, "Patient", "p1", 1, t0, "p1")
	MustPut(t, s, a, v1)
	v2 := &phivault.SealedResource{Type: "Patient", ID: "p1", Version: 2, LastUpdated: t0.Add(time.Second),
		Compartment: "p1", Deleted: true}
	MustPut(t, s, a, v2) // a tombstone keeps no tokens, whatever it is given

	got, err := current(t, s, "Patient", "p1")
	if err != nil {
		t.Fatalf("Current() = %v", err)
	}
	checkEqual(t, "Current()", got, v2)
	for _, f := range []phivault.ResourceFilter{
		{Tokens: [][]phivault.Token{a}},
		{Types: []string{"Patient"}},
		{IDs: []string{"p1"}},
		{Compartments: []string{"p1"}},
		{},
	} {
		checkRefs(t, fmt.Sprintf("Find(%+v)", f), find(t, s, f))
		if n := count(t, s, f); n != 0 {
			t.Errorf("Count(%+v) = %d, want 0", f, n)
		}
	}
	got, err = view(t, s, func(tx phivault.StoreTx) (*phivault.SealedResource, error) {
		return tx.Version(context.Background(), "Patient", "p1", 1)
	})
	if err != nil {
		t.Fatalf("Version(1) = %v", err)
	}
	checkEqual(t, "Version(1)", got, v1)

	// Recreating after deletion continues the version sequence.
	v3 := Resource(rng, "Patient", "p1", 3, t0.Add(2*time.Second), "p1")
	MustPut(t, s, a, v3)
	checkRefs(t, "Find(a) after recreate", find(t, s, phivault.ResourceFilter{Tokens: [][]phivault.Token{a}}), "Patient/p1/3")
}

func testPutReplacesTokens(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	MustPut(t, s, []phivault.Token{Tok("a"), Tok("b")}, Resource(rng, "Patient", "p1", 1, t0, "p1"))
	MustPut(t, s, []phivault.Token{Tok("b"), Tok("c"), Tok("c")}, Resource(rng, "Patient", "p1", 2, t0, "p1"))
	checkRefs(t, "Find(a)", find(t, s, phivault.ResourceFilter{Tokens: [][]phivault.Token{{Tok("a")}}}))
	checkRefs(t, "Find(b)", find(t, s, phivault.ResourceFilter{Tokens: [][]phivault.Token{{Tok("b")}}}), "Patient/p1/2")
	checkRefs(t, "Find(c)", find(t, s, phivault.ResourceFilter{Tokens: [][]phivault.Token{{Tok("c")}}}), "Patient/p1/2")
	MustPut(t, s, nil, Resource(rng, "Patient", "p1", 3, t0, "p1"))
	checkRefs(t, "Find(b) after untokened version", find(t, s, phivault.ResourceFilter{Tokens: [][]phivault.Token{{Tok("b")}}}))
}

func testCurrentErrNotFound(t *testing.T, s phivault.Store) {
	MustPut(t, s, nil, Resource(newRNG(t), "Patient", "p1", 1, t0, "p1"))
	for _, ref := range [][2]string{{"Patient", "p2"}, {"Observation", "p1"}} {
		if _, err := current(t, s, ref[0], ref[1]); !errors.Is(err, phivault.ErrNotFound) {
			t.Errorf("Current(%s/%s) = %v, want ErrNotFound", ref[0], ref[1], err)
		}
	}
}

func testVersionErrNotFound(t *testing.T, s phivault.Store) {
	MustPut(t, s, nil, Resource(newRNG(t), "Patient", "p1", 1, t0, "p1"))
	for _, v := range []struct {
		id      string
		version int64
	}{{"p1", 2}, {"p1", 0}, {"p2", 1}} {
		_, err := view(t, s, func(tx phivault.StoreTx) (*phivault.SealedResource, error) {
			return tx.Version(context.Background(), "Patient", v.id, v.version)
		})
		if !errors.Is(err, phivault.ErrNotFound) {
			t.Errorf("Version(%s, %d) = %v, want ErrNotFound", v.id, v.version, err)
		}
	}
}

func history(tb testing.TB, s phivault.Store, f phivault.HistoryFilter) ([]string, int, error) {
	type result struct {
		rs    []*phivault.SealedResource
		total int
	}
	res, err := view(tb, s, func(tx phivault.StoreTx) (result, error) {
		rs, total, err := tx.History(context.Background(), f)
		return result{rs, total}, err
	})
	return refs(res.rs), res.total, err
}

func checkHistory(tb testing.TB, s phivault.Store, f phivault.HistoryFilter, wantTotal int, want ...string) {
	tb.Helper()
	got, total, err := history(tb, s, f)
	if err != nil {
		tb.Fatalf("History(%+v) = %v", f, err)
	}
	checkRefs(tb, fmt.Sprintf("History(%+v)", f), got, want...)
	if total != wantTotal {
		tb.Errorf("History(%+v) total = %d, want %d", f, total, wantTotal)
	}
}

func testHistoryInstance(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	for v := int64(1); v <= 5; v++ {
		MustPut(t, s, nil, Resource(rng, "Patient", "p1", v, t0.Add(time.Duration(v)*time.Second), "p1"))
	}
	MustPut(t, s, nil, Resource(rng, "Patient", "p2", 1, t0.Add(10*time.Second), "p2"))
	f := phivault.HistoryFilter{Type: "Patient", ID: "p1"}
	checkHistory(t, s, f, 5, "Patient/p1/5", "Patient/p1/4", "Patient/p1/3", "Patient/p1/2", "Patient/p1/1")
	f.Offset, f.Limit = 1, 2
	checkHistory(t, s, f, 5, "Patient/p1/4", "Patient/p1/3")
	f.Offset, f.Limit = 4, 0
	checkHistory(t, s, f, 5, "Patient/p1/1")
	f = phivault.HistoryFilter{Type: "Patient", ID: "p1", Since: t0.Add(3 * time.Second)} // inclusive
	checkHistory(t, s, f, 3, "Patient/p1/5", "Patient/p1/4", "Patient/p1/3")
}

func testHistoryType(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	MustPut(t, s, nil, Resource(rng, "Patient", "a", 1, at(1), "a"))
	MustPut(t, s, nil, Resource(rng, "Patient", "b", 1, at(2), "b"))
	MustPut(t, s, nil, Resource(rng, "Observation", "a", 1, at(3), "a"))
	MustPut(t, s, nil, Resource(rng, "Patient", "a", 2, at(4), "a"))
	MustPut(t, s, nil, &phivault.SealedResource{Type: "Patient", ID: "b", Version: 2, LastUpdated: at(5), Compartment: "b", Deleted: true})
	f := phivault.HistoryFilter{Type: "Patient"}
	checkHistory(t, s, f, 4, "Patient/b/2", "Patient/a/2", "Patient/b/1", "Patient/a/1")
	f.Limit = 3
	checkHistory(t, s, f, 4, "Patient/b/2", "Patient/a/2", "Patient/b/1")
	f = phivault.HistoryFilter{Type: "Patient", Since: at(2)}
	checkHistory(t, s, f, 3, "Patient/b/2", "Patient/a/2", "Patient/b/1")
}

func testHistoryEmpty(t *testing.T, s phivault.Store) {
	checkHistory(t, s, phivault.HistoryFilter{Type: "Patient", ID: "nope"}, 0)
	checkHistory(t, s, phivault.HistoryFilter{Type: "Patient"}, 0)
}

// putSet stores resources with the given tokens, each at t0 plus its index
// in seconds.
func putSet(tb testing.TB, s phivault.Store, rs []*phivault.SealedResource, tokens [][]string) {
	tb.Helper()
	MustUpdate(tb, s, func(tx phivault.StoreTx) error {
		for i, r := range rs {
			var toks []phivault.Token
			if i < len(tokens) {
				for _, v := range tokens[i] {
					toks = append(toks, Tok(v))
				}
			}
			if err := tx.Put(context.Background(), r, toks); err != nil {
				return err
			}
		}
		return nil
	})
}

func toks(groups ...[]string) [][]phivault.Token {
	out := [][]phivault.Token{}
	for _, g := range groups {
		tg := []phivault.Token{}
		for _, v := range g {
			tg = append(tg, Tok(v))
		}
		out = append(out, tg)
	}
	return out
}

func testFindTokens(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	var rs []*phivault.SealedResource
	for i, id := range []string{"r1", "r2", "r3", "r4"} {
		rs = append(rs, Resource(rng, "Observation", id, 1, t0.Add(time.Duration(i)*time.Second), "p1"))
	}
	putSet(t, s, rs, [][]string{{"A", "B"}, {"A", "C"}, {"B", "C"}, {"D"}})
	// Default order is newest first, so r4, r3, r2, r1.
	for _, tt := range []struct {
		give [][]phivault.Token
		want []string
	}{
		{toks([]string{"A"}), []string{"Observation/r2/1", "Observation/r1/1"}},
		{toks([]string{"A"}, []string{"B"}), []string{"Observation/r1/1"}},
		{toks([]string{"A", "B"}, []string{"C"}), []string{"Observation/r3/1", "Observation/r2/1"}},
		{toks([]string{"A", "D"}), []string{"Observation/r4/1", "Observation/r2/1", "Observation/r1/1"}},
		{toks([]string{"A"}, []string{"B"}, []string{"C"}), nil},
		{toks([]string{"E"}), nil},
		{toks([]string{"A"}, []string{}), nil},
		{toks([]string{"C", "B"}, []string{"B", "C"}), []string{"Observation/r3/1", "Observation/r2/1", "Observation/r1/1"}},
	} {
		f := phivault.ResourceFilter{Tokens: tt.give}
		checkRefs(t, fmt.Sprintf("Find(%v)", tt.give), find(t, s, f), tt.want...)
		if n := count(t, s, f); n != len(tt.want) {
			t.Errorf("Count(%v) = %d, want %d", tt.give, n, len(tt.want))
		}
	}
	// Tokens combine with other filters.
	f := phivault.ResourceFilter{Tokens: toks([]string{"A", "B"}), Types: []string{"Observation"}, IDs: []string{"r1", "r3"}}
	checkRefs(t, "Find(A|B, ids r1 r3)", find(t, s, f), "Observation/r3/1", "Observation/r1/1")
	f = phivault.ResourceFilter{Tokens: toks([]string{"A"}), Types: []string{"Patient"}}
	checkRefs(t, "Find(A, Patient)", find(t, s, f))
}

func testFindTypes(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	putSet(t, s, []*phivault.SealedResource{
		Resource(rng, "Patient", "x", 1, t0, "x"),
		Resource(rng, "Observation", "x", 1, t0.Add(time.Second), "x"),
		Resource(rng, "Encounter", "y", 1, t0.Add(2*time.Second), "x"),
	}, [][]string{{"t"}, {"t"}, {"t"}})
	checkRefs(t, "Find(Observation)", find(t, s, phivault.ResourceFilter{Types: []string{"Observation"}}), "Observation/x/1")
	checkRefs(t, "Find(Patient, Encounter)", find(t, s, phivault.ResourceFilter{Types: []string{"Patient", "Encounter"}}),
		"Encounter/y/1", "Patient/x/1")
	checkRefs(t, "Find(any)", find(t, s, phivault.ResourceFilter{}), "Encounter/y/1", "Observation/x/1", "Patient/x/1")
	checkRefs(t, "Find(Observation, t)", find(t, s, phivault.ResourceFilter{Types: []string{"Observation"}, Tokens: toks([]string{"t"})}),
		"Observation/x/1")
	if n := count(t, s, phivault.ResourceFilter{Types: []string{"Patient", "Observation"}}); n != 2 {
		t.Errorf("Count(Patient, Observation) = %d, want 2", n)
	}
}

func testFindIDs(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	putSet(t, s, []*phivault.SealedResource{
		Resource(rng, "Patient", "a", 1, t0, "a"),
		Resource(rng, "Patient", "b", 1, t0.Add(time.Second), "b"),
		Resource(rng, "Patient", "c", 1, t0.Add(2*time.Second), "c"),
	}, nil)
	checkRefs(t, "Find(ids a c)", find(t, s, phivault.ResourceFilter{Types: []string{"Patient"}, IDs: []string{"a", "c", "zz"}}),
		"Patient/c/1", "Patient/a/1")
	checkRefs(t, "Find(ids b, any type)", find(t, s, phivault.ResourceFilter{IDs: []string{"b"}}), "Patient/b/1")
}

func testFindCompartment(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	putSet(t, s, []*phivault.SealedResource{
		Resource(rng, "Patient", "p1", 1, t0, "p1"),
		Resource(rng, "Observation", "o1", 1, t0.Add(time.Second), "p1"),
		Resource(rng, "Observation", "o2", 1, t0.Add(2*time.Second), "p2"),
		Resource(rng, "Practitioner", "d1", 1, t0.Add(3*time.Second), ""),
		Resource(rng, "Observation", "o3", 1, t0.Add(4*time.Second), "p1"),
	}, [][]string{nil, {"a", "b"}, {"a", "b"}, nil, {"a"}})
	checkRefs(t, "Find(p1)", find(t, s, phivault.ResourceFilter{Compartments: []string{"p1"}}), "Observation/o3/1", "Observation/o1/1", "Patient/p1/1")
	checkRefs(t, "Find(p1, Observation)", find(t, s, phivault.ResourceFilter{Compartments: []string{"p1"}, Types: []string{"Observation"}}),
		"Observation/o3/1", "Observation/o1/1")
	if n := count(t, s, phivault.ResourceFilter{Compartments: []string{"p2"}}); n != 1 {
		t.Errorf("Count(p2) = %d, want 1", n)
	}
	// A compartment with token groups: every group must match, inside the
	// compartment only (the compartment drives such a search).
	ab := phivault.ResourceFilter{Compartments: []string{"p1"}, Types: []string{"Observation"}, Tokens: [][]phivault.Token{{Tok("a")}, {Tok("b"), Tok("c")}}}
	checkRefs(t, "Find(p1, a, b|c)", find(t, s, ab), "Observation/o1/1")
	if n := count(t, s, ab); n != 1 {
		t.Errorf("Count(p1, a, b|c) = %d, want 1", n)
	}
	checkRefs(t, "Find(p2, a)", find(t, s, phivault.ResourceFilter{Compartments: []string{"p2"}, Tokens: [][]phivault.Token{{Tok("a")}}}), "Observation/o2/1")
	checkRefs(t, "Find(p1, z)", find(t, s, phivault.ResourceFilter{Compartments: []string{"p1"}, Tokens: [][]phivault.Token{{Tok("z")}}}))
	// Several compartments (a clinician's bound): any of them, none else,
	// with and without tokens (the tokens drive such a search).
	checkRefs(t, "Find(p1 p2, Observation)", find(t, s, phivault.ResourceFilter{Compartments: []string{"p1", "p2"}, Types: []string{"Observation"}}),
		"Observation/o3/1", "Observation/o2/1", "Observation/o1/1")
	checkRefs(t, "Find(p2 p9, a, b)", find(t, s, phivault.ResourceFilter{Compartments: []string{"p2", "p9"}, Tokens: [][]phivault.Token{{Tok("a")}, {Tok("b")}}}),
		"Observation/o2/1")
	if n := count(t, s, phivault.ResourceFilter{Compartments: []string{"p1", "p9"}, Tokens: [][]phivault.Token{{Tok("a")}}}); n != 2 {
		t.Errorf("Count(p1 p9, a) = %d, want 2", n)
	}
	checkRefs(t, "Find(p8 p9)", find(t, s, phivault.ResourceFilter{Compartments: []string{"p8", "p9"}}))
	// How many matches each compartment holds, "" for none.
	for _, tt := range []struct {
		f    phivault.ResourceFilter
		want []string
	}{
		{phivault.ResourceFilter{Tokens: [][]phivault.Token{{Tok("a")}}}, []string{"p1:2", "p2:1"}},
		{phivault.ResourceFilter{Tokens: [][]phivault.Token{{Tok("b")}}, Compartments: []string{"p2", "p9"}}, []string{"p2:1"}},
		{phivault.ResourceFilter{Types: []string{"Practitioner", "Patient"}}, []string{":1", "p1:1"}},
		{phivault.ResourceFilter{Types: []string{"Observation"}, Compartments: []string{"p1"}}, []string{"p1:2"}},
		{phivault.ResourceFilter{Tokens: [][]phivault.Token{{Tok("z")}}}, nil},
	} {
		if got := compartments(t, s, tt.f); !slices.Equal(got, tt.want) {
			t.Errorf("CountCompartments(%+v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func testFindLastUpdated(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	var rs []*phivault.SealedResource
	for i := range 5 {
		rs = append(rs, Resource(rng, "Patient", fmt.Sprintf("p%d", i), 1, t0.Add(time.Duration(i)*time.Second), ""))
	}
	putSet(t, s, rs, nil)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	checkRefs(t, "Find(from 1 to 3)", find(t, s, phivault.ResourceFilter{From: at(1), To: at(3)}), "Patient/p2/1", "Patient/p1/1")
	checkRefs(t, "Find(from 3)", find(t, s, phivault.ResourceFilter{From: at(3)}), "Patient/p4/1", "Patient/p3/1")
	checkRefs(t, "Find(to 1)", find(t, s, phivault.ResourceFilter{To: at(1)}), "Patient/p0/1")
	// Microsecond precision survives the round trip.
	checkRefs(t, "Find(from 1µs after p3)", find(t, s, phivault.ResourceFilter{From: at(3).Add(time.Microsecond)}), "Patient/p4/1")
	if n := count(t, s, phivault.ResourceFilter{From: at(1), To: at(4)}); n != 3 {
		t.Errorf("Count(from 1 to 4) = %d, want 3", n)
	}
}

func testFindOrder(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	putSet(t, s, []*phivault.SealedResource{
		Resource(rng, "Patient", "b", 1, t0, ""),
		Resource(rng, "Patient", "a", 1, t0, ""), // same time: id breaks the tie
		Resource(rng, "Patient", "c", 1, t0.Add(time.Second), ""),
		Resource(rng, "Patient", "d", 1, t0.Add(-time.Second), ""),
	}, nil)
	checkRefs(t, "Find(newest first)", find(t, s, phivault.ResourceFilter{}), "Patient/c/1", "Patient/b/1", "Patient/a/1", "Patient/d/1")
	checkRefs(t, "Find(ascending)", find(t, s, phivault.ResourceFilter{Ascending: true}), "Patient/d/1", "Patient/a/1", "Patient/b/1", "Patient/c/1")
	// An update moves a resource to the front.
	MustPut(t, s, nil, Resource(rng, "Patient", "d", 2, t0.Add(2*time.Second), ""))
	checkRefs(t, "Find(after update)", find(t, s, phivault.ResourceFilter{}), "Patient/d/2", "Patient/c/1", "Patient/b/1", "Patient/a/1")
}

func testFindPaging(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	var rs []*phivault.SealedResource
	var tokens [][]string
	for i := range 7 {
		rs = append(rs, Resource(rng, "Patient", fmt.Sprintf("p%d", i), 1, t0.Add(time.Duration(i)*time.Second), ""))
		tokens = append(tokens, []string{"all"})
	}
	putSet(t, s, rs, tokens)
	for _, tt := range []struct {
		give phivault.ResourceFilter
		want []string
	}{
		{phivault.ResourceFilter{Limit: 2}, []string{"Patient/p6/1", "Patient/p5/1"}},
		{phivault.ResourceFilter{Offset: 2, Limit: 2}, []string{"Patient/p4/1", "Patient/p3/1"}},
		{phivault.ResourceFilter{Offset: 5}, []string{"Patient/p1/1", "Patient/p0/1"}},
		{phivault.ResourceFilter{Offset: 7}, nil},
		{phivault.ResourceFilter{Offset: 1, Limit: 2, Ascending: true}, []string{"Patient/p1/1", "Patient/p2/1"}},
		{phivault.ResourceFilter{Offset: 6, Limit: 5, Tokens: toks([]string{"all"})}, []string{"Patient/p0/1"}},
	} {
		checkRefs(t, fmt.Sprintf("Find(%+v)", tt.give), find(t, s, tt.give), tt.want...)
		if n := count(t, s, tt.give); n != 7 {
			t.Errorf("Count(%+v) = %d, want 7 (paging ignored)", tt.give, n)
		}
	}
}

func testUpdateRollback(t *testing.T, s phivault.Store) {
	rng := newRNG(t)
	MustPut(t, s, []phivault.Token{Tok("old")}, Resource(rng, "Patient", "p0", 1, t0, "p0"))
	errBoom := errors.New("boom")
	err := s.Update(context.Background(), func(tx phivault.StoreTx) error {
		ctx := context.Background()
		if err := tx.Put(ctx, Resource(rng, "Patient", "p1", 1, t0, "p1"), []phivault.Token{Tok("new")}); err != nil {
			return err
		}
		if err := tx.Put(ctx, Resource(rng, "Patient", "p0", 2, t0, "p0"), []phivault.Token{Tok("new")}); err != nil {
			return err
		}
		if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: "patient/p1", KEKID: "k1", Wrapped: []byte{1}, Created: t0}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update() = %v, want %v", err, errBoom)
	}
	if _, err := current(t, s, "Patient", "p1"); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Current(p1) = %v, want ErrNotFound", err)
	}
	if r, err := current(t, s, "Patient", "p0"); err != nil || r.Version != 1 {
		t.Errorf("Current(p0) = %v, %v; want version 1", r, err)
	}
	checkRefs(t, "Find(new)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"new"})}))
	checkRefs(t, "Find(old)", find(t, s, phivault.ResourceFilter{Tokens: toks([]string{"old"})}), "Patient/p0/1")
	_, err = view(t, s, func(tx phivault.StoreTx) (*phivault.WrappedKey, error) {
		return tx.Key(context.Background(), "patient/p1")
	})
	if !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Key(patient/p1) = %v, want ErrNotFound", err)
	}
}

func testUpdateCanceled(t *testing.T, s phivault.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(ctx, func(tx phivault.StoreTx) error {
		return tx.Put(ctx, Resource(newRNG(t), "Patient", "p1", 1, t0, ""), nil)
	})
	if err == nil {
		t.Fatalf("Update(canceled) = nil, want error")
	}
	if _, err := current(t, s, "Patient", "p1"); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Current(p1) = %v, want ErrNotFound", err)
	}
}

// testViewCanceled checks that a read stopped by its context keeps the
// context's error in the chain, so that the API tells a client that went
// away from a failure of the store.
func testViewCanceled(t *testing.T, s phivault.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 8 { // the store may notice the context before or after BEGIN
		err := s.View(ctx, func(tx phivault.StoreTx) error {
			_, err := tx.Current(ctx, "Patient", "p1")
			return err
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("View(canceled) = %v, want context.Canceled in the chain", err)
		}
	}
}

// testUpdateGroupCommit sends many concurrent updates, some failing, and
// checks every successful one is visible and no failed one is.
func testUpdateGroupCommit(t *testing.T, s phivault.Store) {
	const n = 64
	errOdd := errors.New("odd")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			errs[i] = s.Update(context.Background(), func(tx phivault.StoreTx) error {
				r := Resource(rng, "Observation", fmt.Sprintf("o%02d", i), 1, t0, "p1")
				if err := tx.Put(context.Background(), r, []phivault.Token{Tok("all"), Tok(r.ID)}); err != nil {
					return err
				}
				if i%8 == 7 {
					return errOdd
				}
				return nil
			})
		})
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		if i%8 == 7 {
			if !errors.Is(err, errOdd) {
				t.Errorf("Update(%d) = %v, want %v", i, err, errOdd)
			}
			continue
		}
		want++
		if err != nil {
			t.Errorf("Update(%d) = %v", i, err)
		}
	}
	if got := count(t, s, phivault.ResourceFilter{Tokens: toks([]string{"all"})}); got != want {
		t.Errorf("Count(all) = %d, want %d", got, want)
	}
	for i := range n {
		id := fmt.Sprintf("o%02d", i)
		_, err := current(t, s, "Observation", id)
		if i%8 == 7 {
			if !errors.Is(err, phivault.ErrNotFound) {
				t.Errorf("Current(%s) of failed update = %v, want ErrNotFound", id, err)
			}
		} else if err != nil {
			t.Errorf("Current(%s) = %v", id, err)
		}
	}
}

// testUpdateNoLostUpdate has goroutines increment one resource's version by
// read-current, Put(version+1), retrying on ECONFLICT.
func testUpdateNoLostUpdate(t *testing.T, s phivault.Store) {
	const workers, increments = 16, 25
	MustPut(t, s, nil, Resource(newRNG(t), "Patient", "p1", 1, t0, "p1"))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for range increments {
				for {
					err := s.Update(context.Background(), func(tx phivault.StoreTx) error {
						cur, err := tx.Current(context.Background(), "Patient", "p1")
						if err != nil {
							return err
						}
						r := Resource(rng, "Patient", "p1", cur.Version+1, t0.Add(time.Duration(cur.Version)*time.Millisecond), "p1")
						return tx.Put(context.Background(), r, []phivault.Token{Tok(fmt.Sprint(w))})
					})
					if phivault.ErrorCode(err) == phivault.ECONFLICT {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Update() = %v", err)
	}
	const want = 1 + workers*increments
	cur, err := current(t, s, "Patient", "p1")
	if err != nil {
		t.Fatalf("Current() = %v", err)
	}
	if cur.Version != want {
		t.Errorf("Current().Version = %d, want %d", cur.Version, want)
	}
	_, total, err := history(t, s, phivault.HistoryFilter{Type: "Patient", ID: "p1"})
	if err != nil || total != want {
		t.Errorf("History total = %d, %v; want %d", total, err, want)
	}
	for v := int64(1); v <= want; v += 50 {
		if _, err := view(t, s, func(tx phivault.StoreTx) (*phivault.SealedResource, error) {
			return tx.Version(context.Background(), "Patient", "p1", v)
		}); err != nil {
			t.Errorf("Version(%d) = %v", v, err)
		}
	}
	if n := count(t, s, phivault.ResourceFilter{}); n != 1 {
		t.Errorf("Count() = %d, want 1", n)
	}
}

func testViewReadOnly(t *testing.T, s phivault.Store) {
	err := s.View(context.Background(), func(tx phivault.StoreTx) error {
		return tx.Put(context.Background(), Resource(newRNG(t), "Patient", "p1", 1, t0, ""), nil)
	})
	if err == nil {
		t.Errorf("View(Put) = nil, want error")
	}
	err = s.View(context.Background(), func(tx phivault.StoreTx) error {
		_, err := tx.PutKey(context.Background(), &phivault.WrappedKey{ID: "shared", KEKID: "k", Wrapped: []byte{1}, Created: t0})
		return err
	})
	if err == nil {
		t.Errorf("View(PutKey) = nil, want error")
	}
	if _, err := current(t, s, "Patient", "p1"); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Current(p1) = %v, want ErrNotFound", err)
	}
}

func testKeyErrNotFound(t *testing.T, s phivault.Store) {
	_, err := view(t, s, func(tx phivault.StoreTx) (*phivault.WrappedKey, error) {
		return tx.Key(context.Background(), "shared")
	})
	if !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Key(shared) = %v, want ErrNotFound", err)
	}
}

func testPutKeyFirstWriterWins(t *testing.T, s phivault.Store) {
	first := &phivault.WrappedKey{ID: "patient/p1", KEKID: "kek1", Wrapped: []byte("first"), Created: t0}
	second := &phivault.WrappedKey{ID: "patient/p1", KEKID: "kek2", Wrapped: []byte("second"), Created: t0.Add(time.Hour)}
	check := func(what string, got *phivault.WrappedKey) {
		t.Helper()
		if got == nil || got.ID != first.ID || got.KEKID != first.KEKID || !bytes.Equal(got.Wrapped, first.Wrapped) || !got.Created.Equal(first.Created) {
			t.Errorf("%s = %+v, want %+v", what, got, first)
		}
	}
	for _, k := range []*phivault.WrappedKey{first, second} {
		MustUpdate(t, s, func(tx phivault.StoreTx) error {
			got, err := tx.PutKey(context.Background(), k)
			if err != nil {
				return err
			}
			check(fmt.Sprintf("PutKey(%s)", k.Wrapped), got)
			return nil
		})
	}
	got, err := view(t, s, func(tx phivault.StoreTx) (*phivault.WrappedKey, error) {
		return tx.Key(context.Background(), "patient/p1")
	})
	if err != nil {
		t.Fatalf("Key() = %v", err)
	}
	check("Key()", got)

	// Concurrent writers all get the winner's key, and it is the one stored.
	var wg sync.WaitGroup
	got2 := make([]*phivault.WrappedKey, 8)
	errs := make([]error, len(got2))
	for i := range got2 {
		wg.Go(func() {
			errs[i] = s.Update(context.Background(), func(tx phivault.StoreTx) error {
				k, err := tx.PutKey(context.Background(), &phivault.WrappedKey{ID: "shared", KEKID: "kek", Wrapped: []byte{byte(i)}, Created: t0})
				got2[i] = k
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent PutKey %d: Update() = %v", i, err)
		}
	}
	stored, err := view(t, s, func(tx phivault.StoreTx) (*phivault.WrappedKey, error) {
		return tx.Key(context.Background(), "shared")
	})
	if err != nil {
		t.Fatalf("Key(shared) = %v", err)
	}
	for i, k := range got2 {
		if k == nil || !bytes.Equal(k.Wrapped, stored.Wrapped) {
			t.Errorf("concurrent PutKey %d = %+v, want the stored %+v", i, k, stored)
		}
	}
}
