package auditlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// archive appends n entries (one millisecond apart), saves a checkpoint, and
// exports the window [from, to) of entries with proofs against it. It
// appends more entries after the checkpoint, as a live log would.
func archive(t *testing.T, n int, from, to int) (export, checkpoint []byte, verifier note.Verifier) {
	t.Helper()
	ctx := context.Background()
	s := storetest.NewMemAudit()
	signer, verifier := storetest.NewSigner(t)
	l := auditlog.New(s, signer.Name(), signer)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := range n {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := n; i < n+5; i++ {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	t0 := storetest.Entry(0).Time
	var buf bytes.Buffer
	got, err := auditlog.Export(ctx, s, &buf, auditlog.ExportOptions{
		From:      t0.Add(time.Duration(from) * time.Millisecond),
		To:        t0.Add(time.Duration(to) * time.Millisecond),
		ProofSize: int64(n),
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(min(to, n) - from); got != want {
		t.Fatalf("Export wrote %d entries, want %d", got, want)
	}
	return buf.Bytes(), cp, verifier
}

// TestExport_archive exports a segment with proofs, and checks it with only
// the export, the saved checkpoint and the verifier key.
func TestExport_archive(t *testing.T) {
	export, cp, verifier := archive(t, 100, 17, 60)
	c, n, err := auditlog.VerifyExport(bytes.NewReader(export), cp, verifier, "")
	if err != nil {
		t.Fatal(err)
	}
	if n != 43 || c.N != 100 {
		t.Errorf("VerifyExport checked %d entries against size %d, want 43 against 100", n, c.N)
	}
	// Every line is an entry with its index and leaf hash, in order.
	for i, text := range strings.Split(strings.TrimSpace(string(export)), "\n") {
		var line auditlog.ExportLine
		if err := json.Unmarshal([]byte(text), &line); err != nil {
			t.Fatal(err)
		}
		if line.Index != int64(17+i) || line.LeafHash != tlog.RecordHash(line.Entry) {
			t.Errorf("line %d: index %d, leaf %s", i, line.Index, line.LeafHash)
		}
		if _, err := auditlog.Decode(line.Entry); err != nil {
			t.Errorf("line %d: %v", i, err)
		}
	}
}

// TestVerifyExport_tampered changes an archived export in every way a
// forger might and checks that VerifyExport names the bad entry.
func TestVerifyExport_tampered(t *testing.T) {
	export, cp, verifier := archive(t, 64, 10, 30)
	lines := strings.SplitAfter(string(export), "\n")
	lines = lines[:len(lines)-1]
	edit := func(i int, f func(*auditlog.ExportLine)) string {
		var line auditlog.ExportLine
		if err := json.Unmarshal([]byte(lines[i]), &line); err != nil {
			t.Fatal(err)
		}
		f(&line)
		b, _ := json.Marshal(line)
		out := append([]string(nil), lines...)
		out[i] = string(b) + "\n"
		return strings.Join(out, "")
	}
	cases := map[string]struct {
		export string
		index  int64
	}{
		"entry edited": {edit(3, func(l *auditlog.ExportLine) {
			l.Entry = bytes.Replace(l.Entry, []byte(`"admin"`), []byte(`"admim"`), 1)
		}), 13},
		"entry and leaf hash edited": {edit(3, func(l *auditlog.ExportLine) {
			l.Entry = bytes.Replace(l.Entry, []byte(`"admin"`), []byte(`"admim"`), 1)
			l.LeafHash = tlog.RecordHash(l.Entry)
		}), 13},
		"index moved":   {edit(5, func(l *auditlog.ExportLine) { l.Index = 40 }), 40},
		"proof forged":  {edit(7, func(l *auditlog.ExportLine) { l.Proof[0][0] ^= 1 }), 17},
		"proof dropped": {edit(7, func(l *auditlog.ExportLine) { l.Proof = nil }), 17},
		"reordered":     {strings.Join(append([]string{lines[1], lines[0]}, lines[2:]...), ""), 10},
		"non-canonical": {edit(2, func(l *auditlog.ExportLine) {
			l.Entry = bytes.Replace(l.Entry, []byte(`"admin"`), []byte(`"\u0061dmin"`), 1)
			l.LeafHash = tlog.RecordHash(l.Entry)
		}), 12},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := auditlog.VerifyExport(strings.NewReader(tc.export), cp, verifier, "")
			var ve *auditlog.VerifyError
			if !errors.As(err, &ve) || ve.Index != tc.index {
				t.Errorf("VerifyExport = %v, want a failure at entry %d", err, tc.index)
			}
		})
	}
	t.Run("other key", func(t *testing.T) {
		_, other := storetest.NewSigner(t)
		if _, _, err := auditlog.VerifyExport(strings.NewReader(string(export)), cp, other, ""); err == nil {
			t.Error("VerifyExport accepted a checkpoint signed by another key")
		}
	})
}

// TestExport_noProofs exports without proofs; such an export does not
// verify on its own.
func TestExport_noProofs(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewMemAudit()
	l := mustOpen(t, s)
	for i := range 10 {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	n, err := auditlog.Export(ctx, s, &buf, auditlog.ExportOptions{From: storetest.Entry(4).Time})
	if err != nil || n != 6 {
		t.Fatalf("Export = %d, %v; want 6 entries", n, err)
	}
	if strings.Contains(buf.String(), `"proof"`) {
		t.Error("export without ProofSize carries proofs")
	}
	if _, err := auditlog.Export(ctx, s, &buf, auditlog.ExportOptions{ProofSize: 11}); err == nil {
		t.Error("Export with a proof size beyond the log succeeded")
	}
}
