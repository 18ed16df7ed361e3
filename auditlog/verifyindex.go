package auditlog

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
)

// IndexError reports rows of the audit index that differ from the rows
// rebuilt from the entries: rows missing (which hide an access from the
// AuditEvent search and the access reports) and rows that no entry
// accounts for.
type IndexError struct {
	Missing []IndexRow // rows the entries call for that the index lacks (or holds altered)
	Extra   []IndexRow // rows the index holds that no entry calls for
}

// maxIndexErrorRows bounds the rows an IndexError names in its message.
const maxIndexErrorRows = 5

func (e *IndexError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "audit index does not match the entries: %d rows missing or altered, %d extra", len(e.Missing), len(e.Extra))
	name := func(kind string, rows []IndexRow) {
		for i, r := range rows {
			if i == maxIndexErrorRows {
				fmt.Fprintf(&b, "; …")
				return
			}
			// Ids only: an entry's index and a patient's random id.
			fmt.Fprintf(&b, "; %s: entry %d patient %q", kind, r.Index, r.Patient)
		}
	}
	name("missing", e.Missing)
	name("extra", e.Extra)
	return b.String()
}

// VerifyIndex rebuilds the audit index from the entries of s and compares
// it with the index s holds, row by row, for the entries indexed so far
// (the index lags the log: CatchUpIndex fills it before each search). It
// returns an *IndexError listing the differences, or nil. Run it after
// Verify: it trusts the entries, which Verify checks against the tree.
func VerifyIndex(ctx context.Context, s IndexStorage) error {
	size, err := s.AuditSize(ctx)
	if err != nil {
		return fmt.Errorf("audit log size: %w", err)
	}
	indexed, err := s.AuditIndexSize(ctx)
	if err != nil {
		return fmt.Errorf("audit index size: %w", err)
	}
	ie := &IndexError{}
	checked := min(indexed, size)
	for start := int64(0); start < checked; start += verifyChunk {
		end := min(start+verifyChunk, checked)
		data, err := s.ReadAuditEntries(ctx, start, end)
		if err != nil {
			return fmt.Errorf("read audit entries: %w", err)
		}
		var want []IndexRow
		for i, d := range data {
			want = append(want, indexRowsOf(start+int64(i), d)...)
		}
		got, err := s.ReadAuditIndex(ctx, start, end)
		if err != nil {
			return fmt.Errorf("read audit index: %w", err)
		}
		missing, extra := diffRows(want, got)
		ie.Missing = append(ie.Missing, missing...)
		ie.Extra = append(ie.Extra, extra...)
	}
	if indexed > size {
		// Rows past the log's end index nothing, and would stop
		// CatchUpIndex from indexing the entries appended up to them.
		got, err := s.ReadAuditIndex(ctx, size, math.MaxInt64)
		if err != nil {
			return fmt.Errorf("read audit index: %w", err)
		}
		// On a live log, entries appended meanwhile may have been indexed.
		if size, err = s.AuditSize(ctx); err != nil {
			return fmt.Errorf("audit log size: %w", err)
		}
		for _, r := range got {
			if r.Index >= size {
				ie.Extra = append(ie.Extra, r)
			}
		}
	}
	if len(ie.Missing) > 0 || len(ie.Extra) > 0 {
		return ie
	}
	return nil
}

// indexRowsOf returns the index rows CatchUpIndex makes for the stored
// entry d at idx.
func indexRowsOf(idx int64, d []byte) []IndexRow {
	if d == nil {
		return nil
	}
	e, err := Decode(d)
	if err != nil {
		return []IndexRow{{Index: idx, Action: "unknown"}}
	}
	return IndexRows(idx, e)
}

func compareRows(a, b IndexRow) int {
	return cmp.Or(cmp.Compare(a.Index, b.Index), strings.Compare(a.Patient, b.Patient))
}

func sameRow(a, b IndexRow) bool {
	return a.Index == b.Index && a.Patient == b.Patient && a.Actor == b.Actor &&
		a.Action == b.Action && a.Time.Equal(b.Time) && slices.Equal(a.Purposes, b.Purposes)
}

// diffRows returns the rows of want not in got (or different there), and
// the rows of got not in want.
func diffRows(want, got []IndexRow) (missing, extra []IndexRow) {
	slices.SortFunc(want, compareRows)
	slices.SortFunc(got, compareRows)
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || i < len(want) && compareRows(want[i], got[j]) < 0:
			missing = append(missing, want[i])
			i++
		case i == len(want) || compareRows(want[i], got[j]) > 0:
			extra = append(extra, got[j])
			j++
		default:
			if !sameRow(want[i], got[j]) {
				missing = append(missing, want[i])
				extra = append(extra, got[j])
			}
			i++
			j++
		}
	}
	return missing, extra
}
