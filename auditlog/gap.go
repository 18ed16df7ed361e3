package auditlog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A Gap is the signed record of a restore that rolled the log back: the
// log was restored from a backup holding Restored entries, while the
// witnesses had seen a checkpoint of the larger tree Witnessed. The
// entries in [Restored, Witnessed.N) are lost, and the checkpoints of
// more than Restored entries published before the gap no longer bind the
// log: the gap, published to the witnesses in their place, says so
// instead of hiding it (ResolveGaps). The first entry of the restored log
// (index Restored) records it too (phivault.ActionAuditGap).
//
// Its note text is
//
//	phivault audit gap
//	<origin>
//	restored <size>
//	witnessed <size> <base64 root hash>
//	snapshot <id> <RFC 3339 time of the snapshot>
//	at <RFC 3339 time of the restore>
type Gap struct {
	Origin       string
	Restored     int64
	Witnessed    tlog.Tree
	Snapshot     string
	SnapshotTime time.Time
	Time         time.Time
}

const gapHeader = "phivault audit gap\n"

// Text returns the gap's note text.
func (g Gap) Text() string {
	return fmt.Sprintf("%s%s\nrestored %d\nwitnessed %d %s\nsnapshot %s %s\nat %s\n", gapHeader, g.Origin, g.Restored,
		g.Witnessed.N, base64.StdEncoding.EncodeToString(g.Witnessed.Hash[:]),
		g.Snapshot, g.SnapshotTime.UTC().Format(time.RFC3339Nano), g.Time.UTC().Format(time.RFC3339Nano))
}

// Lost returns the number of entries the witnesses saw that the restored
// log lacks.
func (g Gap) Lost() int64 { return g.Witnessed.N - g.Restored }

// ParseGap parses a gap's note text, in the canonical form Text writes.
func ParseGap(text string) (Gap, error) {
	bad := errors.New("auditlog: gap record is malformed")
	rest, ok := strings.CutPrefix(text, gapHeader)
	if !ok {
		return Gap{}, errors.New("auditlog: not a gap record")
	}
	lines := strings.Split(rest, "\n")
	if len(lines) != 6 || lines[5] != "" {
		return Gap{}, bad
	}
	var g Gap
	g.Origin = lines[0]
	var err error
	var field []string
	if field = strings.Fields(lines[1]); len(field) != 2 || field[0] != "restored" {
		return Gap{}, bad
	}
	if g.Restored, err = strconv.ParseInt(field[1], 10, 64); err != nil || g.Restored < 0 {
		return Gap{}, bad
	}
	if field = strings.Fields(lines[2]); len(field) != 3 || field[0] != "witnessed" {
		return Gap{}, bad
	}
	if g.Witnessed.N, err = strconv.ParseInt(field[1], 10, 64); err != nil || g.Witnessed.N <= g.Restored {
		return Gap{}, bad
	}
	h, err := base64.StdEncoding.DecodeString(field[2])
	if err != nil || len(h) != tlog.HashSize {
		return Gap{}, bad
	}
	g.Witnessed.Hash = tlog.Hash(h)
	if field = strings.Fields(lines[3]); len(field) != 3 || field[0] != "snapshot" {
		return Gap{}, bad
	}
	g.Snapshot = field[1]
	if g.SnapshotTime, err = time.Parse(time.RFC3339Nano, field[2]); err != nil {
		return Gap{}, bad
	}
	if field = strings.Fields(lines[4]); len(field) != 2 || field[0] != "at" {
		return Gap{}, bad
	}
	if g.Time, err = time.Parse(time.RFC3339Nano, field[1]); err != nil {
		return Gap{}, bad
	}
	if g.Origin == "" || g.Text() != text {
		return Gap{}, errors.New("auditlog: gap record is not in canonical form")
	}
	return g, nil
}

// SignGap signs g as a note.
func SignGap(g Gap, signer note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: g.Text()}, signer)
}

// ResolveGaps reads the signed notes of one witness file, oldest first,
// as the file holds them: checkpoints and the gaps restores published
// among them. It returns the checkpoints that bind the log now, in order
// (those before a gap that cover more entries than it restored are
// dropped: the gap stands in their place), and the gaps. Every gap must
// carry a valid signature by verifier and name origin (if not empty):
// an unsigned gap would let anyone drop checkpoints. The checkpoints are
// returned as they are, for the caller to open.
func ResolveGaps(notes [][]byte, verifier note.Verifier, origin string) (checkpoints [][]byte, gaps []Gap, err error) {
	for i, signed := range notes {
		if !strings.HasPrefix(string(signed), gapHeader) {
			checkpoints = append(checkpoints, signed)
			continue
		}
		n, err := note.Open(signed, note.VerifierList(verifier))
		if err != nil {
			return nil, nil, fmt.Errorf("auditlog: note %d: gap signature: %v", i+1, err)
		}
		g, err := ParseGap(n.Text)
		if err != nil {
			return nil, nil, fmt.Errorf("note %d: %w", i+1, err)
		}
		if origin != "" && g.Origin != origin {
			return nil, nil, fmt.Errorf("auditlog: note %d: gap is for log %q, want %q", i+1, g.Origin, origin)
		}
		kept := checkpoints[:0]
		for _, c := range checkpoints {
			if cp, err := parseSignedCheckpoint(c); err == nil && cp.N > g.Restored {
				continue
			}
			kept = append(kept, c)
		}
		checkpoints = kept
		gaps = append(gaps, g)
	}
	return checkpoints, gaps, nil
}

// parseSignedCheckpoint parses the text of a signed checkpoint without
// checking its signature (the caller opens the checkpoints it keeps).
func parseSignedCheckpoint(signed []byte) (Checkpoint, error) {
	text, _, ok := strings.Cut(string(signed), "\n\n")
	if !ok {
		return Checkpoint{}, errors.New("auditlog: checkpoint has no signatures")
	}
	return ParseCheckpoint(text + "\n")
}
