package auditlog

import (
	"fmt"

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
// hashes at indexes start, start+1, …, given the frontier of the tree of
// start records in m. It returns them in stored-hash order, starting at
// tlog.StoredHashIndex(0, start) (the order of
// tlog.StoredHashesForRecordHash), and leaves m holding the frontier of the
// grown tree.
//
// The frontier is kept as a stack of complete subtree hashes, largest
// first: record n pushes its leaf, then merges the top two hashes once per
// trailing one bit of n, each merge being the next stored hash.
func appendHashes(m hashMap, start int64, leaves []tlog.Hash) ([]tlog.Hash, error) {
	idx := frontier(start)
	var buf [64]tlog.Hash // a tree of fewer than 1<<63 records has at most 63 subtrees, plus the leaf pushed
	stack := buf[:len(idx)]
	for i, x := range idx {
		h, ok := m[x]
		if !ok {
			return nil, fmt.Errorf("auditlog: hash %d not in memory", x)
		}
		stack[i] = h
	}
	out := make([]tlog.Hash, 0, tlog.StoredHashCount(start+int64(len(leaves)))-tlog.StoredHashCount(start))
	for i, leaf := range leaves {
		h := leaf
		out = append(out, h)
		for k := start + int64(i); k&1 == 1; k >>= 1 {
			h = tlog.NodeHash(stack[len(stack)-1], h)
			stack = stack[:len(stack)-1]
			out = append(out, h)
		}
		stack = append(stack, h)
	}
	clear(m)
	for i, x := range frontier(start + int64(len(leaves))) {
		m[x] = stack[i]
	}
	return out, nil
}
