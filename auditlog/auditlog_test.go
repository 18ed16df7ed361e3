package auditlog_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"golang.org/x/mod/sumdb/tlog"
)

func TestStorage_mem(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) auditlog.Storage { return storetest.NewMemAudit() })
}

// mustOpen opens a Log on s with timer checkpoints off.
func mustOpen(tb testing.TB, s auditlog.Storage) *auditlog.Log {
	tb.Helper()
	signer, _ := storetest.NewSigner(tb)
	l := auditlog.New(s, "phivault-test/audit", signer)
	l.CheckpointInterval = -1
	if err := l.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// TestLog_knownAnswer checks the tree against RFC 6962 computed by hand:
// leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right), and
// against a fixed root for three fixed entries.
func TestLog_knownAnswer(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewMemAudit()
	l := mustOpen(t, s)
	if got, want := l.Tree().Hash.String(), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; got != want {
		t.Errorf("empty tree hash = %s, want %s", got, want)
	}
	if h := l.Tree().Hash; hex.EncodeToString(h[:]) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty tree hash = %x, want SHA-256 of nothing", h)
	}
	var data [][]byte
	for i := range 3 {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
		data = append(data, s.Entries[int64(i)])
	}
	leaf := func(d []byte) []byte { h := sha256.Sum256(append([]byte{0}, d...)); return h[:] }
	node := func(a, b []byte) []byte {
		h := sha256.Sum256(append(append([]byte{1}, a...), b...))
		return h[:]
	}
	want := node(node(leaf(data[0]), leaf(data[1])), leaf(data[2]))
	got := l.Tree()
	if got.N != 3 || hex.EncodeToString(got.Hash[:]) != hex.EncodeToString(want) {
		t.Errorf("Tree() = %d %x, want 3 %x", got.N, got.Hash, want)
	}
	// The fixed vector guards the canonical entry encoding too.
	const fixed = "0abb1a9727f2e93c7f5a39958148fcdac9f76eba4bc91e4957c1bcd3faebc8c6"
	if hex.EncodeToString(want) != fixed {
		t.Errorf("root of the three test entries = %x, want %s (did the entry encoding change?)", want, fixed)
	}
}

func TestLog_proofs(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewMemAudit()
	l := mustOpen(t, s)
	for i := range 37 {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	tree := l.Tree()
	for _, idx := range []int64{0, 1, 17, 36} {
		p, err := l.ProveInclusion(ctx, idx, tree.N)
		if err != nil {
			t.Fatal(err)
		}
		leaf := tlog.RecordHash(s.Entries[idx])
		if err := tlog.CheckRecord(p, tree.N, tree.Hash, idx, leaf); err != nil {
			t.Errorf("CheckRecord(index %d) = %v", idx, err)
		}
		// A malicious server's forged proof must not pass.
		if len(p) > 0 {
			forged := append(tlog.RecordProof(nil), p...)
			forged[0][0] ^= 1
			if err := tlog.CheckRecord(forged, tree.N, tree.Hash, idx, leaf); err == nil {
				t.Errorf("CheckRecord(forged proof for %d) = nil", idx)
			}
		}
		if err := tlog.CheckRecord(p, tree.N, tree.Hash, idx, tlog.RecordHash([]byte("other"))); err == nil {
			t.Errorf("CheckRecord(other leaf at %d) = nil", idx)
		}
	}
	for _, old := range []int64{1, 8, 20, 37} {
		p, err := l.ProveConsistency(ctx, old, tree.N)
		if err != nil {
			t.Fatal(err)
		}
		oldHash, err := tlog.TreeHash(old, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			return s.ReadAuditHashes(ctx, idx)
		}))
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, tree.N, tree.Hash, old, oldHash); err != nil {
			t.Errorf("CheckTree(%d → %d) = %v", old, tree.N, err)
		}
		bad := oldHash
		bad[3] ^= 1
		if err := tlog.CheckTree(p, tree.N, tree.Hash, old, bad); err == nil {
			t.Errorf("CheckTree(%d → %d) with a wrong old root = nil", old, tree.N)
		}
	}
	if _, err := l.ProveInclusion(ctx, 5, tree.N+1); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Errorf("ProveInclusion(beyond the tree) = %v, want EINVALID", err)
	}
}

func TestLog_Append_storageFails(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewMemAudit()
	l := mustOpen(t, s)
	if err := l.Append(ctx, storetest.Entry(0)); err != nil {
		t.Fatal(err)
	}
	s.Fail = errors.New("disk full")
	if err := l.Append(ctx, storetest.Entry(1)); err == nil {
		t.Fatal("Append() with failing storage = nil")
	}
	s.Fail = nil
	if err := l.Append(ctx, storetest.Entry(2)); err != nil {
		t.Fatalf("Append() after recovery = %v", err)
	}
	if l.Tree().N != 2 {
		t.Errorf("Tree().N = %d, want 2", l.Tree().N)
	}
}

func TestLog_Append_closed(t *testing.T) {
	l := mustOpen(t, storetest.NewMemAudit())
	l.Close()
	if err := l.Append(context.Background(), storetest.Entry(0)); err == nil {
		t.Error("Append() after Close = nil")
	}
}

// TestLog_Checkpoint_witness checks that checkpoints reach witnesses and
// verify, and that an unchanged tree is not published twice.
func TestLog_Checkpoint_witness(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewMemAudit()
	signer, verifier := storetest.NewSigner(t)
	l := auditlog.New(s, "phivault-test/audit", signer)
	l.CheckpointInterval = -1
	w := &memWitness{}
	l.Witnesses = []auditlog.Witness{w}
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	l.Append(ctx, storetest.Entry(0))
	l.Checkpoint(ctx)
	l.Checkpoint(ctx)
	l.Append(ctx, storetest.Entry(1))
	if err := l.Close(); err != nil { // publishes the last one
		t.Fatal(err)
	}
	if len(w.notes) != 2 {
		t.Fatalf("witness got %d checkpoints, want 2", len(w.notes))
	}
	c, err := auditlog.OpenCheckpoint(w.notes[1], verifier, "phivault-test/audit")
	if err != nil || c.N != 2 {
		t.Fatalf("OpenCheckpoint() = %v, %v; want size 2", c, err)
	}
	file := append(append(append([]byte{}, w.notes[0]...), '\n'), append(w.notes[1], '\n')...)
	notes, err := auditlog.SplitCheckpoints(file)
	if err != nil || len(notes) != 2 || string(notes[1]) != string(w.notes[1]) {
		t.Fatalf("SplitCheckpoints() = %q, %v", notes, err)
	}
	if _, err := auditlog.Verify(ctx, s, verifier, "", notes); err != nil {
		t.Errorf("Verify() = %v", err)
	}
	_, other := storetest.NewSigner(t)
	if _, err := auditlog.Verify(ctx, s, other, "", notes); err == nil {
		t.Errorf("Verify() with another key = nil")
	}
}

type memWitness struct{ notes [][]byte }

func (w *memWitness) Publish(ctx context.Context, cp []byte) error {
	w.notes = append(w.notes, cp)
	return nil
}

func TestParseCheckpoint(t *testing.T) {
	good := "phivault/audit\n3\n" + strings.Repeat("A", 43) + "=\n"
	if _, err := auditlog.ParseCheckpoint(good); err != nil {
		t.Fatalf("ParseCheckpoint(good) = %v", err)
	}
	for _, bad := range []string{
		"",
		"phivault/audit\n03\n" + strings.Repeat("A", 43) + "=\n",
		"phivault/audit\n3\n" + strings.Repeat("A", 43) + "=\nextension\n",
		"phivault/audit\n3\n" + strings.Repeat("A", 43) + "=",
		"\n3\n" + strings.Repeat("A", 43) + "=\n",
		"phivault/audit\n-1\n" + strings.Repeat("A", 43) + "=\n",
		"phivault/audit\n3\n" + strings.Repeat("A", 42) + "==\n",
	} {
		if _, err := auditlog.ParseCheckpoint(bad); err == nil {
			t.Errorf("ParseCheckpoint(%q) = nil error", bad)
		}
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add("phivault/audit\n3\n" + strings.Repeat("A", 43) + "=\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := auditlog.ParseCheckpoint(text)
		if err == nil && c.Text() != text {
			t.Errorf("ParseCheckpoint(%q) accepted a non-canonical text", text)
		}
	})
}

func TestDecode(t *testing.T) {
	e := storetest.Entry(1)
	b, err := auditlog.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := auditlog.Decode(b)
	if err != nil || got.TargetID != e.TargetID || !got.Time.Equal(e.Time) {
		t.Fatalf("Decode(Encode(e)) = %+v, %v", got, err)
	}
	for _, bad := range []string{
		strings.Replace(string(b), `"action"`, ` "action"`, 1),
		strings.Replace(string(b), `{`, `{"extra":1,`, 1),
		strings.Replace(string(b), `Z"`, `+00:00"`, 1),
		string(b) + "\n",
	} {
		if _, err := auditlog.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) = nil error", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := auditlog.Encode(storetest.Entry(1))
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := auditlog.Decode(data)
		if err != nil {
			return
		}
		again, err := auditlog.Encode(e)
		if err != nil || string(again) != string(data) {
			t.Errorf("Decode accepted a non-canonical entry %q", data)
		}
	})
}

// TestLog_Append_twoWriters checks that a log whose storage was appended to
// by another node reloads and continues, keeping one valid tree.
func TestLog_Append_twoWriters(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewMemAudit()
	a, b := mustOpen(t, s), mustOpen(t, s)
	for i := range 6 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatalf("Append(%d) = %v", i, err)
		}
	}
	_, v := storetest.NewSigner(t)
	if tree, err := auditlog.Verify(ctx, s, v, "", nil); err != nil || tree.N != 6 {
		t.Fatalf("Verify() = %v, %v; want 6 entries", tree, err)
	}
}
