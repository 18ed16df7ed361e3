package auditlog

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// VerifyError reports why a log failed verification, and where.
type VerifyError struct {
	// Index is the first entry found bad, or the first entry of the range
	// that a checkpoint shows was changed (see Err), or -1 if the failure
	// is not tied to an entry (a bad checkpoint signature).
	Index int64
	Err   error
}

func (e *VerifyError) Error() string {
	if e.Index < 0 {
		return "audit log: " + e.Err.Error()
	}
	return fmt.Sprintf("audit log entry %d: %v", e.Index, e.Err)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// verifyChunk is how many entries Verify reads at a time.
const verifyChunk = 1024

// Verify checks a stored log, offline: every index from 0 to the size has an
// entry in canonical form; every stored hash equals the one recomputed from
// the entries; and each of checkpoints (signed notes, oldest first) carries a
// valid signature by verifier, names origin (if not empty), and is
// consistent with the current tree (tlog.ProveTree, tlog.CheckTree). It
// returns the verified tree, or a *VerifyError naming the first bad index.
func Verify(ctx context.Context, s Storage, verifier note.Verifier, origin string, checkpoints [][]byte) (tlog.Tree, error) {
	size, err := s.AuditSize(ctx)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("audit log size: %w", err)
	}
	tv := &treeVerifier{m: hashMap{}}
	if err := tv.extend(ctx, s, size); err != nil {
		return tlog.Tree{}, err
	}
	tree, err := tv.tree()
	if err != nil {
		return tlog.Tree{}, err
	}
	var good int64 // entries [0, good) are covered by checkpoints that passed
	for i, signed := range checkpoints {
		c, err := OpenCheckpoint(signed, verifier, origin)
		if err != nil {
			return tree, &VerifyError{Index: -1, Err: fmt.Errorf("checkpoint %d: %w", i+1, err)}
		}
		if err := checkExtends(ctx, s, tree, c.Tree, good, fmt.Sprintf("checkpoint %d", i+1)); err != nil {
			return tree, err
		}
		good = max(good, c.N)
	}
	return tree, nil
}

// checkExtends checks that tree, verified from the entries of s, extends
// old (a checkpoint's tree, or one the running log computed), whose entries
// before good were already found intact; name names old in errors.
func checkExtends(ctx context.Context, s Storage, tree, old tlog.Tree, good int64, name string) error {
	if old.N > tree.N {
		return &VerifyError{Index: tree.N, Err: fmt.Errorf("%s covers %d entries but the log has %d: entries were removed", name, old.N, tree.N)}
	}
	if old.N == 0 {
		return nil
	}
	stored := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.ReadAuditHashes(ctx, idx) })
	p, err := tlog.ProveTree(tree.N, old.N, stored)
	if err == nil {
		err = tlog.CheckTree(p, tree.N, tree.Hash, old.N, old.Hash)
	}
	if err != nil {
		return &VerifyError{Index: good, Err: fmt.Errorf("%s (size %d) does not match the log: an entry in [%d, %d) was changed, removed, inserted or reordered", name, old.N, good, old.N)}
	}
	return nil
}

// treeVerifier recomputes the tree of a stored log from its entries, a
// chunk at a time, checking each entry and stored hash on the way. It
// keeps only the frontier hashes of the n entries checked, so it can be
// extended as the log grows.
type treeVerifier struct {
	m hashMap
	n int64
}

// extend checks the entries [tv.n, size) of s: each present and canonical,
// and each stored hash equal to the one recomputed from the entries.
func (tv *treeVerifier) extend(ctx context.Context, s Storage, size int64) error {
	m := tv.m
	for start := tv.n; start < size; start += verifyChunk {
		end := min(start+verifyChunk, size)
		data, err := s.ReadAuditEntries(ctx, start, end)
		if err != nil {
			return fmt.Errorf("read audit entries: %w", err)
		}
		if int64(len(data)) != end-start {
			return fmt.Errorf("read audit entries: got %d, want %d", len(data), end-start)
		}
		// Recompute the stored hashes of the chunk, noting which entry
		// each belongs to.
		var (
			want    []tlog.Hash
			indexes []int64
			owner   []int64
		)
		for i, d := range data {
			n := start + int64(i)
			if d == nil {
				return &VerifyError{Index: n, Err: fmt.Errorf("missing")}
			}
			if _, err := Decode(d); err != nil {
				return &VerifyError{Index: n, Err: err}
			}
			hs, err := tlog.StoredHashes(n, d, m)
			if err != nil {
				return &VerifyError{Index: n, Err: err}
			}
			first := tlog.StoredHashIndex(0, n)
			for j, h := range hs {
				m[first+int64(j)] = h
				want = append(want, h)
				indexes = append(indexes, first+int64(j))
				owner = append(owner, n)
			}
			if n&1 == 1 {
				m.prune(n + 1)
			}
		}
		got, err := s.ReadAuditHashes(ctx, indexes)
		for k := range want {
			if err != nil {
				// Some hash is missing: read them one by one, so the
				// first bad entry is named whatever is wrong with it.
				h, err := s.ReadAuditHashes(ctx, indexes[k:k+1])
				if err != nil {
					return &VerifyError{Index: owner[k], Err: fmt.Errorf("tree hash missing")}
				}
				got = append(got[:k], h[0])
			}
			if got[k] != want[k] {
				return &VerifyError{Index: owner[k], Err: fmt.Errorf("entry does not match the stored tree hashes")}
			}
		}
		tv.n = end
	}
	m.prune(tv.n)
	return nil
}

// tree returns the tree of the entries checked so far.
func (tv *treeVerifier) tree() (tlog.Tree, error) {
	root, err := tlog.TreeHash(tv.n, tv.m)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("tree hash: %w", err)
	}
	return tlog.Tree{N: tv.n, Hash: root}, nil
}
