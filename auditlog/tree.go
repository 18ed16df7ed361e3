package auditlog

import (
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// frontier returns the stored-hash indexes of the complete subtrees that
// make up a tree of n records, largest first: the hashes TreeHash reads, and
// the only earlier hashes that appending record n needs.
func frontier(n int64) []int64 {
	var idx []int64
	lo := int64(0)
	for l := 62; l >= 0; l-- {
		if n&(1<<l) != 0 {
			idx = append(idx, tlog.StoredHashIndex(l, lo>>l))
			lo += 1 << l
		}
	}
	return idx
}

// hashMap is an in-memory tlog.HashReader over a few stored hashes.
type hashMap map[int64]tlog.Hash

func (m hashMap) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := m[x]
		if !ok {
			return nil, fmt.Errorf("auditlog: hash %d not in memory", x)
		}
		out[i] = h
	}
	return out, nil
}

// prune keeps only the frontier of a tree of n records.
func (m hashMap) prune(n int64) {
	keep := make(map[int64]bool)
	for _, x := range frontier(n) {
		keep[x] = true
	}
	for x := range m {
		if !keep[x] {
			delete(m, x)
		}
	}
}

// appendHashes computes the stored hashes for records with the given leaf
// hashes at indexes start, start+1, …, given stack, the hashes of the
// complete subtrees of the tree of start records, largest first (the
// hashes at frontier(start)). It returns them in stored-hash order,
// starting at tlog.StoredHashIndex(0, start) (the order of
// tlog.StoredHashesForRecordHash), and the subtrees of the grown tree, in
// a new slice.
//
// Record n pushes its leaf, then merges the top two hashes once per
// trailing one bit of n, each merge being the next stored hash.
func appendHashes(stack []tlog.Hash, start int64, leaves []tlog.Hash) (stored, grown []tlog.Hash) {
	// The stack never holds more than popcount(start+i)+1 hashes, and
	// popcount(start+i) <= len(stack)+popcount(i).
	grown = make([]tlog.Hash, len(stack), len(stack)+bits.Len64(uint64(len(leaves)))+1)
	copy(grown, stack)
	stored = make([]tlog.Hash, 0, tlog.StoredHashCount(start+int64(len(leaves)))-tlog.StoredHashCount(start))
	for i, leaf := range leaves {
		h := leaf
		stored = append(stored, h)
		for k := start + int64(i); k&1 == 1; k >>= 1 {
			h = tlog.NodeHash(grown[len(grown)-1], h)
			grown = grown[:len(grown)-1]
			stored = append(stored, h)
		}
		grown = append(grown, h)
	}
	return stored, grown
}

// rootHash returns the hash of the tree whose complete subtrees are stack,
// largest first, as tlog.TreeHash computes it.
func rootHash(stack []tlog.Hash) tlog.Hash {
	if len(stack) == 0 {
		h, _ := tlog.TreeHash(0, nil) // the hash of the empty tree; reads nothing
		return h
	}
	h := stack[len(stack)-1]
	for i := len(stack) - 2; i >= 0; i-- {
		h = tlog.NodeHash(stack[i], h)
	}
	return h
}
