package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ArchiveFormat names the archive format in an archive's header.
const ArchiveFormat = "phivault-audit-archive/1"

// ArchiveHeader is the first line of an archive: which entries it holds,
// and the signed checkpoint their proofs lead to.
type ArchiveHeader struct {
	Format     string `json:"format"`     // ArchiveFormat
	Start      int64  `json:"start"`      // first index held
	End        int64  `json:"end"`        // one past the last index held
	Checkpoint string `json:"checkpoint"` // the signed checkpoint note, verbatim
}

// An archive is a self-verifying segment of the log: an ArchiveHeader
// line, then one ExportLine (with its inclusion proof against the header's
// checkpoint) for every index in [Start, End), in order, with no gaps. With
// the log's verifier key alone, VerifyArchive proves that the segment is
// exactly the log's entries Start to End-1: none edited, added, removed or
// moved. The log keeps its entries: archiving copies, it never deletes.

// WriteArchive writes the entries [start, end) of s to w as an archive
// whose proofs lead to signedCheckpoint, which must be signed by verifier,
// be a checkpoint of s itself (its root is recomputed from s), and cover
// end. It returns the number of entries written.
func WriteArchive(ctx context.Context, s Storage, w io.Writer, signedCheckpoint []byte, verifier note.Verifier, start, end int64) (int64, error) {
	c, err := OpenCheckpoint(signedCheckpoint, verifier, verifier.Name())
	if err != nil {
		return 0, fmt.Errorf("audit archive: %w", err)
	}
	if start < 0 || start > end || end > c.N {
		return 0, fmt.Errorf("audit archive: entries [%d, %d) are not within the checkpoint's %d", start, end, c.N)
	}
	hashes := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.ReadAuditHashes(ctx, idx) })
	root, err := tlog.TreeHash(c.N, hashes)
	if err != nil {
		return 0, fmt.Errorf("audit archive: tree hash: %w", err)
	}
	if root != c.Hash {
		return 0, fmt.Errorf("audit archive: the log's tree of %d entries does not match the checkpoint; run phivault audit verify", c.N)
	}
	h, err := json.Marshal(ArchiveHeader{Format: ArchiveFormat, Start: start, End: end, Checkpoint: string(signedCheckpoint)})
	if err != nil {
		return 0, err
	}
	if _, err := w.Write(append(h, '\n')); err != nil {
		return 0, err
	}
	if start == end {
		return 0, nil
	}
	n, err := Export(ctx, s, w, ExportOptions{Start: start, End: end, ProofSize: c.N})
	if err == nil && n != end-start {
		err = fmt.Errorf("audit archive: wrote %d entries of %d", n, end-start)
	}
	return n, err
}

// VerifyArchive checks an archive with the log's verifier key alone: the
// header's checkpoint signature, and then that the archive holds, in order,
// every index from Start to End-1 exactly once, each entry canonical and
// proved to be at its index in the checkpoint's tree, and nothing else. It
// returns the header and checkpoint, or a *VerifyError naming the first bad
// index (-1 for the header).
func VerifyArchive(r io.Reader, verifier note.Verifier) (ArchiveHeader, Checkpoint, error) {
	var (
		h ArchiveHeader
		c Checkpoint
	)
	br := bufio.NewReader(r)
	first, err := br.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(first) > 0) {
		return h, c, &VerifyError{Index: -1, Err: fmt.Errorf("archive header: %v", err)}
	}
	dec := json.NewDecoder(bytes.NewReader(first))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, c, &VerifyError{Index: -1, Err: fmt.Errorf("archive header: %v", err)}
	}
	if h.Format != ArchiveFormat {
		return h, c, &VerifyError{Index: -1, Err: fmt.Errorf("archive format %q, want %q", h.Format, ArchiveFormat)}
	}
	if c, err = OpenCheckpoint([]byte(h.Checkpoint), verifier, verifier.Name()); err != nil {
		return h, c, &VerifyError{Index: -1, Err: err}
	}
	if h.Start < 0 || h.Start > h.End || h.End > c.N {
		return h, c, &VerifyError{Index: -1, Err: fmt.Errorf("archive range [%d, %d) is not within the checkpoint's %d entries", h.Start, h.End, c.N)}
	}
	lines := json.NewDecoder(br)
	for want := h.Start; ; want++ {
		var line ExportLine
		err := lines.Decode(&line)
		if errors.Is(err, io.EOF) {
			if want != h.End {
				return h, c, &VerifyError{Index: want, Err: fmt.Errorf("missing: the archive ends before entry %d", h.End-1)}
			}
			return h, c, nil
		}
		if err != nil {
			return h, c, &VerifyError{Index: want, Err: fmt.Errorf("archive line: %v", err)}
		}
		if want >= h.End {
			return h, c, &VerifyError{Index: line.Index, Err: fmt.Errorf("beyond the archive's end %d", h.End)}
		}
		if line.Index != want {
			return h, c, &VerifyError{Index: want, Err: fmt.Errorf("missing or out of order: found entry %d", line.Index)}
		}
		if err := checkLine(&line, c); err != nil {
			return h, c, err
		}
	}
}

// IndexAt returns the index of the first entry of s at or after start whose
// time is at or after t, or the log's size if there is none. Entries are
// in index order; their times follow it to within a commit batch.
func IndexAt(ctx context.Context, s Storage, start int64, t time.Time) (int64, error) {
	size, err := s.AuditSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit archive: size: %w", err)
	}
	for from := max(start, 0); from < size; from += verifyChunk {
		end := min(from+verifyChunk, size)
		data, err := s.ReadAuditEntries(ctx, from, end)
		if err != nil {
			return 0, fmt.Errorf("audit archive: read: %w", err)
		}
		for i, d := range data {
			e, err := Decode(d)
			if err != nil {
				return 0, &VerifyError{Index: from + int64(i), Err: err}
			}
			if !e.Time.Before(t) {
				return from + int64(i), nil
			}
		}
	}
	return size, nil
}
