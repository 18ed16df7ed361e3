package auditlog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the signed statement of a tree: the log's origin, its size
// and its root hash, in the C2SP tlog-checkpoint text form:
//
//	<origin>
//	<size>
//	<base64 root hash>
type Checkpoint struct {
	Origin string
	tlog.Tree
}

// Text returns the checkpoint's note text.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.N, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// ParseCheckpoint parses a checkpoint's note text. It accepts only the
// canonical form that Text produces: no extension lines, no leading zeros,
// standard padded base64.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, errors.New("auditlog: checkpoint must have exactly three lines")
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	n, err := strconv.ParseInt(strings.TrimSuffix(lines[1], "\n"), 10, 64)
	if err != nil || n < 0 {
		return Checkpoint{}, errors.New("auditlog: checkpoint size is not a number")
	}
	h, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(h) != tlog.HashSize {
		return Checkpoint{}, errors.New("auditlog: checkpoint root hash is not 32 bytes of base64")
	}
	c := Checkpoint{Origin: origin, Tree: tlog.Tree{N: n, Hash: tlog.Hash(h)}}
	if origin == "" || c.Text() != text {
		return Checkpoint{}, errors.New("auditlog: checkpoint is not in canonical form")
	}
	return c, nil
}

// SignCheckpoint signs c as a note.
func SignCheckpoint(c Checkpoint, signer note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.Text()}, signer)
}

// OpenCheckpoint checks a signed checkpoint's signature with verifier and
// parses it. origin, if not empty, must match.
func OpenCheckpoint(signed []byte, verifier note.Verifier, origin string) (Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("auditlog: checkpoint signature: %v", err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if origin != "" && c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("auditlog: checkpoint is for log %q, want %q", c.Origin, origin)
	}
	return c, nil
}

// SplitCheckpoints splits a file of signed checkpoints written one after
// another, each followed by an empty line (the witness file's format), into
// the signed notes.
func SplitCheckpoints(file []byte) ([][]byte, error) {
	var notes [][]byte
	rest := file
	for len(bytes.TrimSpace(rest)) > 0 {
		// A note is text, an empty line, then signature lines; the empty
		// line after the signatures ends it.
		text, after, ok := bytes.Cut(rest, []byte("\n\n"))
		if !ok {
			return nil, errors.New("auditlog: checkpoint file: a note has no signatures")
		}
		sigs, next, ok := bytes.Cut(after, []byte("\n\n"))
		if !ok { // the last note, without the empty line after it
			sigs = bytes.TrimSuffix(after, []byte("\n"))
		}
		n := len(text) + 2 + len(sigs) + 1
		if n > len(rest) {
			return nil, errors.New("auditlog: checkpoint file: truncated note")
		}
		notes = append(notes, rest[:n:n])
		rest = next
	}
	return notes, nil
}
