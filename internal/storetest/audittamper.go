package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/phivault/phivault/auditlog"
	"golang.org/x/mod/sumdb/tlog"
)

// Replace overwrites a store's audit tables with exactly these entries and
// stored hashes, by index, bypassing the append-only triggers, as an
// attacker with write access to the database can.
type Replace func(entries map[int64][]byte, hashes map[int64]tlog.Hash) error

// RunAuditTamper appends 40 entries with checkpoints to store, then makes
// cases random single changes directly in its tables — an edited entry, a
// deleted one (leaving a hole or shifting the rest down), an inserted one,
// two swapped, the log truncated — with the stored hashes left as they were
// (a careless attacker) or rebuilt to match (a careful one). auditlog.Verify
// must fail on every case, and name the first changed index when the hashes
// were left alone.
func RunAuditTamper(t *testing.T, store auditlog.Storage, replace Replace, cases int) {
	ctx := context.Background()
	signer, verifier := NewSigner(t)
	l := auditlog.New(store, "phivault-test/audit", signer)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	const size = 40
	var checkpoints [][]byte
	for i := range size {
		if err := l.Append(ctx, Entry(i)); err != nil {
			t.Fatal(err)
		}
		if i%9 == 8 {
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkpoints = append(checkpoints, cp)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	last, _ := l.Checkpoint(ctx) // the tree at its full size
	checkpoints = append(checkpoints, last)
	if _, err := auditlog.Verify(ctx, store, verifier, "", checkpoints); err != nil {
		t.Fatalf("Verify(untouched log) = %v", err)
	}
	orig, err := store.ReadAuditEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	origHashes := map[int64]tlog.Hash{}
	idx := make([]int64, tlog.StoredHashCount(size))
	for i := range idx {
		idx[i] = int64(i)
	}
	hs, err := store.ReadAuditHashes(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		origHashes[int64(i)] = h
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for c := range cases {
		entries := append([][]byte(nil), orig...)
		i := rng.IntN(size)
		var kind string
		gap := false
		switch rng.IntN(5) {
		case 0:
			kind = "edit"
			d := append([]byte(nil), entries[i]...)
			d[rng.IntN(len(d))] ^= byte(1 + rng.IntN(255))
			entries[i] = d
		case 1:
			kind = "delete"
			entries = append(entries[:i:i], entries[i+1:]...)
			gap = rng.IntN(2) == 0 // leave the hole, or shift the rest down
		case 2:
			kind = "insert"
			forged, err := auditlog.Encode(Entry(1000 + c))
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries[:i:i], append([][]byte{forged}, entries[i:]...)...)
		case 3:
			kind = "reorder"
			j := rng.IntN(size - 1)
			if j >= i {
				j++
			}
			entries[i], entries[j] = entries[j], entries[i]
		case 4:
			kind = "truncate"
			entries = entries[:i]
		}
		rows := map[int64][]byte{}
		for k, d := range entries {
			if gap && k >= i {
				k++
			}
			rows[int64(k)] = d
		}
		wantIndex := int64(0)
		for wantIndex < size && string(rows[wantIndex]) == string(orig[wantIndex]) {
			wantIndex++
		}
		rebuild := !gap && rng.IntN(2) == 0
		name := fmt.Sprintf("case %d: %s at %d (hole %v, rebuilt hashes %v)", c, kind, i, gap, rebuild)
		hashes := origHashes
		if rebuild {
			if hashes, err = rebuildHashes(rows); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if err := replace(rows, hashes); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err := auditlog.Verify(ctx, store, verifier, "", checkpoints)
		if err == nil {
			t.Errorf("%s: Verify() = nil, want an error", name)
			continue
		}
		var ve *auditlog.VerifyError
		if !errors.As(err, &ve) {
			t.Errorf("%s: Verify() = %v, want a *VerifyError", name, err)
		} else if !rebuild && ve.Index != wantIndex {
			t.Errorf("%s: Verify() names index %d, want %d (%v)", name, ve.Index, wantIndex, err)
		}
	}
	rows := map[int64][]byte{}
	for k, d := range orig {
		rows[int64(k)] = d
	}
	if err := replace(rows, origHashes); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.Verify(ctx, store, verifier, "", checkpoints); err != nil {
		t.Fatalf("Verify(restored log) = %v", err)
	}
}

// rebuildHashes computes the stored hashes that entries 0, 1, … of rows
// would have had if appended honestly.
func rebuildHashes(rows map[int64][]byte) (map[int64]tlog.Hash, error) {
	m := map[int64]tlog.Hash{}
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = m[x]
		}
		return out, nil
	})
	for n := int64(0); n < int64(len(rows)); n++ {
		hs, err := tlog.StoredHashes(n, rows[n], r)
		if err != nil {
			return nil, err
		}
		first := tlog.StoredHashIndex(0, n)
		for j, h := range hs {
			m[first+int64(j)] = h
		}
	}
	return m, nil
}
