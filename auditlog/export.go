package auditlog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ExportLine is one line of an NDJSON export: an entry exactly as the log
// stores and hashes it, its index and leaf hash, and optionally the proof
// that it is in the tree of TreeSize entries (tlog.CheckRecord).
type ExportLine struct {
	Index    int64           `json:"index"`
	LeafHash tlog.Hash       `json:"leaf_hash"` // tlog.RecordHash(Entry): SHA-256(0x00 ‖ Entry)
	Entry    json.RawMessage `json:"entry"`     // the canonical encoding, byte for byte
	TreeSize int64           `json:"tree_size,omitempty"`
	Proof    []tlog.Hash     `json:"proof,omitempty"`
}

// ExportOptions selects what Export writes.
type ExportOptions struct {
	// From and To select entries with From ≤ Time < To; a zero From means
	// from the first entry, a zero To means up to the last.
	From, To time.Time
	// Start and End select entries by index, Start ≤ index < End; a zero
	// End means up to the last. Both selections apply.
	Start, End int64
	// ProofSize, if positive, adds to each entry below it the proof of its
	// inclusion in the tree of ProofSize entries: give the size of a signed
	// checkpoint, and the export and that checkpoint verify on their own
	// (VerifyExport).
	ProofSize int64
}

// Export writes the entries of s selected by opts to w as NDJSON, one
// ExportLine per line, in index order, and returns how many it wrote. It
// reads the whole log, since entries are ordered by index, not by time.
func Export(ctx context.Context, s Storage, w io.Writer, opts ExportOptions) (int64, error) {
	size, err := s.AuditSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit export: size: %w", err)
	}
	if opts.ProofSize > size {
		return 0, fmt.Errorf("audit export: proof size %d is beyond the log's %d entries", opts.ProofSize, size)
	}
	last := size
	if opts.End > 0 {
		last = min(opts.End, size)
	}
	hashes := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.ReadAuditHashes(ctx, idx) })
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	var n int64
	for start := max(opts.Start, 0); start < last; start += verifyChunk {
		end := min(start+verifyChunk, last)
		data, err := s.ReadAuditEntries(ctx, start, end)
		if err != nil {
			return n, fmt.Errorf("audit export: read: %w", err)
		}
		for i, d := range data {
			index := start + int64(i)
			if d == nil {
				return n, &VerifyError{Index: index, Err: errors.New("missing")}
			}
			e, err := Decode(d)
			if err != nil {
				return n, &VerifyError{Index: index, Err: err}
			}
			if e.Time.Before(opts.From) || !opts.To.IsZero() && !e.Time.Before(opts.To) {
				continue
			}
			line := ExportLine{Index: index, LeafHash: tlog.RecordHash(d), Entry: d}
			if index < opts.ProofSize {
				p, err := tlog.ProveRecord(opts.ProofSize, index, hashes)
				if err != nil {
					return n, fmt.Errorf("audit export: prove entry %d: %w", index, err)
				}
				line.TreeSize, line.Proof = opts.ProofSize, p
			}
			if err := enc.Encode(line); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, bw.Flush()
}

// VerifyExport checks an NDJSON export made with proofs, using only the
// export, a signed checkpoint and the log's verifier key: the checkpoint's
// signature (and origin, if not empty); then for every line, in increasing
// index order, that the entry is in canonical form, that its leaf hash is
// its hash, and that its proof places it at its index in the checkpoint's
// tree (tlog.CheckRecord). It returns the checkpoint and the number of
// entries checked, or a *VerifyError naming the first bad index.
func VerifyExport(r io.Reader, signedCheckpoint []byte, verifier note.Verifier, origin string) (Checkpoint, int64, error) {
	c, err := OpenCheckpoint(signedCheckpoint, verifier, origin)
	if err != nil {
		return c, 0, &VerifyError{Index: -1, Err: err}
	}
	dec := json.NewDecoder(r)
	var n int64
	last := int64(-1)
	for {
		var line ExportLine
		if err := dec.Decode(&line); err == io.EOF {
			return c, n, nil
		} else if err != nil {
			return c, n, &VerifyError{Index: last + 1, Err: fmt.Errorf("export line %d: %v", n+1, err)}
		}
		if line.Index <= last {
			return c, n, &VerifyError{Index: line.Index, Err: fmt.Errorf("out of order after entry %d", last)}
		}
		if err := checkLine(&line, c); err != nil {
			return c, n, err
		}
		last = line.Index
		n++
	}
}

// checkLine checks that line's entry is canonical, that its leaf hash is
// its hash, and that its proof places it at its index in c's tree.
func checkLine(line *ExportLine, c Checkpoint) error {
	bad := func(err error) error { return &VerifyError{Index: line.Index, Err: err} }
	if line.Index < 0 || line.Index >= c.N || line.TreeSize != c.N {
		return bad(fmt.Errorf("no proof against the checkpoint of size %d", c.N))
	}
	if _, err := Decode(line.Entry); err != nil {
		return bad(err)
	}
	leaf := tlog.RecordHash(line.Entry)
	if leaf != line.LeafHash {
		return bad(errors.New("leaf hash does not match the entry"))
	}
	if err := tlog.CheckRecord(line.Proof, c.N, c.Hash, line.Index, leaf); err != nil {
		return bad(fmt.Errorf("not in the checkpoint's tree: %w", err))
	}
	return nil
}
