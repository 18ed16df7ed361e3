package auditlog_test

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/auditlog"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func gapKeys(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "phivault-audit-gap-test")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return s, v
}

func signedCheckpoint(t *testing.T, s note.Signer, n int64) []byte {
	t.Helper()
	b, err := auditlog.SignCheckpoint(auditlog.Checkpoint{Origin: "o", Tree: tlog.Tree{N: n, Hash: tlog.Hash{byte(n)}}}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResolveGaps checks that a signed gap drops the checkpoints before
// it that cover more than the restored log, keeps the smaller ones and
// every later one, and that an unsigned, malformed or foreign gap is an
// error rather than a way to drop checkpoints.
func TestResolveGaps(t *testing.T) {
	s, v := gapKeys(t)
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	g := auditlog.Gap{Origin: "o", Restored: 150, Witnessed: tlog.Tree{N: 200, Hash: tlog.Hash{200}}, Snapshot: "0123456789abcdef0123456789abcdef", SnapshotTime: at.Add(-time.Hour), Time: at}
	if p, err := auditlog.ParseGap(g.Text()); err != nil || p != g {
		t.Fatalf("ParseGap(Text()) = %+v, %v; want %+v", p, err, g)
	}
	signed, err := auditlog.SignGap(g, s)
	if err != nil {
		t.Fatal(err)
	}
	notes := [][]byte{signedCheckpoint(t, s, 100), signedCheckpoint(t, s, 200), signed, signedCheckpoint(t, s, 151)}
	cps, gaps, err := auditlog.ResolveGaps(notes, v, "o")
	if err != nil {
		t.Fatalf("ResolveGaps() = %v", err)
	}
	if len(gaps) != 1 || gaps[0] != g || g.Lost() != 50 {
		t.Errorf("gaps = %+v, want [%+v] losing 50", gaps, g)
	}
	var sizes []int64
	for _, c := range cps {
		cp, err := auditlog.OpenCheckpoint(c, v, "o")
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, cp.N)
	}
	if len(sizes) != 2 || sizes[0] != 100 || sizes[1] != 151 {
		t.Errorf("checkpoints kept = %v, want [100 151]", sizes)
	}

	// Without the gap nothing is dropped.
	if cps, _, _ := auditlog.ResolveGaps(append(notes[:2:2], notes[3]), v, "o"); len(cps) != 3 {
		t.Errorf("ResolveGaps without a gap kept %d checkpoints, want 3", len(cps))
	}

	other, _ := gapKeys(t)
	forged, _ := auditlog.SignGap(g, other)
	foreign := g
	foreign.Origin = "another-log"
	foreignSigned, _ := auditlog.SignGap(foreign, s)
	edited := []byte(strings.Replace(string(signed), "restored 150", "restored 10", 1))
	for name, bad := range map[string][]byte{"signed by another key": forged, "of another log": foreignSigned, "edited": edited} {
		if _, _, err := auditlog.ResolveGaps([][]byte{notes[0], notes[1], bad}, v, "o"); err == nil {
			t.Errorf("ResolveGaps with a gap %s succeeded; want an error", name)
		}
	}
	for _, text := range []string{
		strings.Replace(g.Text(), "witnessed 200", "witnessed 150", 1), // loses nothing
		strings.Replace(g.Text(), "restored 150", "restored -1", 1),
		strings.Replace(g.Text(), "\nat ", "\nat  ", 1),
		g.Text() + "extra\n",
	} {
		if _, err := auditlog.ParseGap(text); err == nil {
			t.Errorf("ParseGap(%q) succeeded; want an error", text)
		}
	}
}
