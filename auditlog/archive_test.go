package auditlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"golang.org/x/mod/sumdb/tlog"
)

// TestArchive writes entries [10, 40) of a SQLite-backed log of 50 as an
// archive against a checkpoint, then checks that the archive verifies alone
// and that every edit of every line, and every removal, insertion,
// duplication, reordering and truncation, is caught.
func TestArchive(t *testing.T) {
	ctx := context.Background()
	l, s, verifier := openSQLiteLog(t)
	appendN(t, l, 0, 50)
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 50, 5) // the log goes on
	var buf bytes.Buffer
	n, err := auditlog.WriteArchive(ctx, s, &buf, cp, verifier, 10, 40)
	if err != nil || n != 30 {
		t.Fatalf("WriteArchive = %d, %v; want 30", n, err)
	}
	good := buf.Bytes()
	h, c, err := auditlog.VerifyArchive(bytes.NewReader(good), verifier)
	if err != nil || h.Start != 10 || h.End != 40 || c.N != 50 {
		t.Fatalf("VerifyArchive = %+v, %d, %v", h, c.N, err)
	}

	lines := bytes.SplitAfter(good, []byte("\n"))
	lines = lines[:len(lines)-1] // the empty tail after the last newline
	if len(lines) != 31 {
		t.Fatalf("archive has %d lines, want 31", len(lines))
	}
	join := func(ls [][]byte) []byte { return bytes.Join(ls, nil) }
	tampered := map[string][]byte{}
	edit := func(i int, f func(*auditlog.ExportLine)) []byte {
		var line auditlog.ExportLine
		if err := json.Unmarshal(lines[i], &line); err != nil {
			t.Fatal(err)
		}
		f(&line)
		b, _ := json.Marshal(line)
		ls := slices.Clone(lines)
		ls[i] = append(b, '\n')
		return join(ls)
	}
	for i := 1; i < len(lines); i++ {
		tampered[fmt.Sprintf("line %d: entry edited", i)] = edit(i, func(l *auditlog.ExportLine) {
			l.Entry = bytes.Replace(l.Entry, []byte(`"actor":"admin"`), []byte(`"actor":"admix"`), 1)
		})
		tampered[fmt.Sprintf("line %d: entry edited, leaf rehashed", i)] = edit(i, func(l *auditlog.ExportLine) {
			l.Entry = bytes.Replace(l.Entry, []byte(`"actor":"admin"`), []byte(`"actor":"admix"`), 1)
			l.LeafHash = tlog.RecordHash(l.Entry)
		})
		tampered[fmt.Sprintf("line %d: index changed", i)] = edit(i, func(l *auditlog.ExportLine) { l.Index += 100 })
		tampered[fmt.Sprintf("line %d: proof edited", i)] = edit(i, func(l *auditlog.ExportLine) { l.Proof[0][0] ^= 1 })
		tampered[fmt.Sprintf("line %d: removed", i)] = join(slices.Delete(slices.Clone(lines), i, i+1))
		tampered[fmt.Sprintf("line %d: duplicated", i)] = join(slices.Insert(slices.Clone(lines), i, lines[i]))
		tampered[fmt.Sprintf("line %d: truncated", i)] = join(lines[:i])
		if i+1 < len(lines) {
			ls := slices.Clone(lines)
			ls[i], ls[i+1] = ls[i+1], ls[i]
			tampered[fmt.Sprintf("lines %d and %d: swapped", i, i+1)] = join(ls)
		}
	}
	header := func(f func(*auditlog.ArchiveHeader)) []byte {
		var h auditlog.ArchiveHeader
		json.Unmarshal(lines[0], &h)
		f(&h)
		b, _ := json.Marshal(h)
		return join(append([][]byte{append(b, '\n')}, lines[1:]...))
	}
	tampered["header: end moved in"] = header(func(h *auditlog.ArchiveHeader) { h.End = 39 })
	tampered["header: start moved out"] = header(func(h *auditlog.ArchiveHeader) { h.Start = 9 })
	tampered["header: end beyond the checkpoint"] = header(func(h *auditlog.ArchiveHeader) { h.End = 51 })
	tampered["header: format"] = header(func(h *auditlog.ArchiveHeader) { h.Format = "other" })
	tampered["header: checkpoint edited"] = header(func(h *auditlog.ArchiveHeader) {
		h.Checkpoint = string(bytes.Replace([]byte(h.Checkpoint), []byte("\n50\n"), []byte("\n60\n"), 1))
	})
	tampered["header: removed"] = join(lines[1:])
	tampered["empty"] = nil
	tampered["line appended"] = append(slices.Clone(good), lines[1]...)
	tampered["garbage appended"] = append(slices.Clone(good), "{}\n"...)

	for name, b := range tampered {
		_, _, err := auditlog.VerifyArchive(bytes.NewReader(b), verifier)
		var ve *auditlog.VerifyError
		if !errors.As(err, &ve) {
			t.Errorf("%s: VerifyArchive = %v, want a VerifyError", name, err)
		}
	}

	// An empty range is a valid, empty archive.
	buf.Reset()
	if n, err := auditlog.WriteArchive(ctx, s, &buf, cp, verifier, 50, 50); err != nil || n != 0 {
		t.Errorf("WriteArchive of [50, 50) = %d, %v", n, err)
	}
	if _, _, err := auditlog.VerifyArchive(&buf, verifier); err != nil {
		t.Errorf("VerifyArchive of an empty archive = %v", err)
	}
	// Beyond the checkpoint: refused.
	if _, err := auditlog.WriteArchive(ctx, s, &bytes.Buffer{}, cp, verifier, 10, 51); err == nil {
		t.Error("WriteArchive beyond the checkpoint succeeded")
	}
}

// TestArchive_otherLog refuses to archive against a checkpoint, correctly
// signed, of a different log: the proofs could never verify.
func TestArchive_otherLog(t *testing.T) {
	ctx := context.Background()
	a, sa, _ := openSQLiteLog(t)
	b, _, verifier := openSQLiteLog(t)
	appendN(t, a, 0, 10)
	appendN(t, b, 100, 10)
	cp, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.WriteArchive(ctx, sa, &bytes.Buffer{}, cp, verifier, 0, 10); err == nil {
		t.Error("WriteArchive against another log's checkpoint succeeded")
	}
}

// TestIndexAt finds the first entry at or after a time.
func TestIndexAt(t *testing.T) {
	ctx := context.Background()
	l, s, _ := openSQLiteLog(t)
	appendN(t, l, 0, 20)
	for _, c := range []struct{ start, at, want int64 }{{0, 0, 0}, {0, 7, 7}, {9, 7, 9}, {0, 19, 19}, {0, 25, 20}} {
		got, err := auditlog.IndexAt(ctx, s, c.start, storetest.Entry(int(c.at)).Time)
		if err != nil || got != c.want {
			t.Errorf("IndexAt(%d, time of %d) = %d, %v; want %d", c.start, c.at, got, err, c.want)
		}
	}
}
