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
	m := hashMap{}
	for start := int64(0); start < size; start += verifyChunk {
		end := min(start+verifyChunk, size)
		data, err := s.ReadAuditEntries(ctx, start, end)
		if err != nil {
			return tlog.Tree{}, fmt.Errorf("read audit entries: %w", err)
		}
		if int64(len(data)) != end-start {
			return tlog.Tree{}, fmt.Errorf("read audit entries: got %d, want %d", len(data), end-start)
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
				return tlog.Tree{}, &VerifyError{Index: n, Err: fmt.Errorf("missing")}
			}
			if _, err := Decode(d); err != nil {
				return tlog.Tree{}, &VerifyError{Index: n, Err: err}
			}
			hs, err := tlog.StoredHashes(n, d, m)
			if err != nil {
				return tlog.Tree{}, &VerifyError{Index: n, Err: err}
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
					return tlog.Tree{}, &VerifyError{Index: owner[k], Err: fmt.Errorf("tree hash missing")}
				}
				got = append(got[:k], h[0])
			}
			if got[k] != want[k] {
				return tlog.Tree{}, &VerifyError{Index: owner[k], Err: fmt.Errorf("entry does not match the stored tree hashes")}
			}
		}
	}
	m.prune(size)
	root, err := tlog.TreeHash(size, m)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("tree hash: %w", err)
	}
	tree := tlog.Tree{N: size, Hash: root}
	stored := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.ReadAuditHashes(ctx, idx) })

	var good int64 // entries [0, good) are covered by checkpoints that passed
	for i, signed := range checkpoints {
		c, err := OpenCheckpoint(signed, verifier, origin)
		if err != nil {
			return tree, &VerifyError{Index: -1, Err: fmt.Errorf("checkpoint %d: %w", i+1, err)}
		}
		if c.N > size {
			return tree, &VerifyError{Index: size, Err: fmt.Errorf("checkpoint %d covers %d entries but the log has %d: entries were removed", i+1, c.N, size)}
		}
		if c.N == 0 {
			continue
		}
		p, err := tlog.ProveTree(size, c.N, stored)
		if err == nil {
			err = tlog.CheckTree(p, size, root, c.N, c.Hash)
		}
		if err != nil {
			return tree, &VerifyError{Index: good, Err: fmt.Errorf("checkpoint %d (size %d) does not match the log: an entry in [%d, %d) was changed, removed, inserted or reordered", i+1, c.N, good, c.N)}
		}
		good = max(good, c.N)
	}
	return tree, nil
}
