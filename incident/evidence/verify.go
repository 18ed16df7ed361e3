package evidence

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Error reports why an archive failed verification, naming the first bad
// member ("" for the archive as a whole).
type Error struct {
	Member string
	Err    error
}

func (e *Error) Error() string {
	if e.Member == "" {
		return "evidence archive: " + e.Err.Error()
	}
	return "evidence archive member " + e.Member + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// maxMember bounds a member other than the entries, which are read a line
// at a time.
const maxMember = 64 << 20

// Verify checks an evidence archive offline, with the audit trail's
// verifier key alone: the manifest's signature, the checkpoint's
// signature, the members (exactly those of the format, in order, each of
// the size and SHA-256 the manifest gives, each holding what it should and
// as many items as the manifest counts), every entry's inclusion proof
// against the checkpoint, and that every timeline event's request id has
// an entry in the archive. It returns what the archive holds, or an *Error
// naming the first bad member.
func Verify(r io.Reader, verifier note.Verifier) (Summary, error) {
	var sum Summary
	tail := &tailReader{r: r}
	tr := tar.NewReader(tail)
	next := func(want string) (*tar.Header, error) {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, &Error{Member: want, Err: errors.New("missing: the archive ends before it")}
		}
		if err != nil {
			return nil, &Error{Member: want, Err: fmt.Errorf("read: %v", err)}
		}
		if hdr.Name != want {
			return nil, &Error{Member: want, Err: fmt.Errorf("missing or out of order: found %q", hdr.Name)}
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, &Error{Member: want, Err: errors.New("not a regular file")}
		}
		return hdr, nil
	}

	// The manifest, and the checkpoint it holds.
	hdr, err := next(MemberManifest)
	if err != nil {
		return sum, err
	}
	bad := func(err error) error { return &Error{Member: MemberManifest, Err: err} }
	if hdr.Size > maxManifest {
		return sum, bad(fmt.Errorf("larger than %d bytes", maxManifest))
	}
	signed, err := io.ReadAll(tr)
	if err != nil {
		return sum, bad(fmt.Errorf("read: %v", err))
	}
	n, err := note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		return sum, bad(fmt.Errorf("signature: %v", err))
	}
	var m Manifest
	if err := decodeStrict([]byte(n.Text), &m); err != nil {
		return sum, bad(err)
	}
	if m.Format != Format {
		return sum, bad(fmt.Errorf("format %q, want %q", m.Format, Format))
	}
	if len(m.Members) != len(members) {
		return sum, bad(fmt.Errorf("lists %d members, want %d", len(m.Members), len(members)))
	}
	for i, mm := range m.Members {
		if mm.Name != members[i] || mm.Size < 0 {
			return sum, bad(fmt.Errorf("member %d is %q, want %q", i+1, mm.Name, members[i]))
		}
	}
	c, err := auditlog.OpenCheckpoint([]byte(m.Checkpoint), verifier, verifier.Name())
	if err != nil {
		return sum, bad(fmt.Errorf("checkpoint: %v", err))
	}
	sum = Summary{Incident: m.Incident, Created: m.Created, Checkpoint: c}

	// The members, each checked against the manifest.
	var (
		in       Incident
		timeline []Event
		alerts   []detect.AlertView
		actions  []incident.Action
		requests map[string]bool
	)
	for _, mm := range m.Members {
		hdr, err := next(mm.Name)
		if err != nil {
			return sum, err
		}
		bad := func(err error) error { return &Error{Member: mm.Name, Err: err} }
		if hdr.Size != mm.Size {
			return sum, bad(fmt.Errorf("size %d, the manifest says %d", hdr.Size, mm.Size))
		}
		h := sha256.New()
		body := io.TeeReader(tr, h)
		if mm.Name == MemberEntries {
			if requests, err = verifyEntries(body, c, m.Counts.Entries); err != nil {
				return sum, bad(err)
			}
			if _, err := io.Copy(io.Discard, body); err != nil {
				return sum, bad(fmt.Errorf("read: %v", err))
			}
		} else {
			if hdr.Size > maxMember {
				return sum, bad(fmt.Errorf("larger than %d bytes", maxMember))
			}
			b, err := io.ReadAll(body)
			if err != nil {
				return sum, bad(fmt.Errorf("read: %v", err))
			}
			if err := checkHash(h, mm); err != nil {
				return sum, bad(err)
			}
			var count, want int
			switch mm.Name {
			case MemberIncident:
				err = decodeStrict(b, &in)
				count, want = 1, 1
				if err == nil && in.ID != m.Incident {
					err = fmt.Errorf("incident %q, the manifest says %q", in.ID, m.Incident)
				}
			case MemberTimeline:
				err = decodeStrict(b, &timeline)
				count, want = len(timeline), m.Counts.Timeline
			case MemberAlerts:
				err = decodeStrict(b, &alerts)
				count, want = len(alerts), m.Counts.Alerts
			case MemberActions:
				err = decodeStrict(b, &actions)
				count, want = len(actions), m.Counts.Actions
			}
			if err == nil && count != want {
				err = fmt.Errorf("holds %d items, the manifest says %d", count, want)
			}
			if err != nil {
				return sum, bad(err)
			}
			continue
		}
		if err := checkHash(h, mm); err != nil {
			return sum, bad(err)
		}
	}
	if _, err := tr.Next(); !errors.Is(err, io.EOF) {
		return sum, &Error{Err: errors.New("more after the last member")}
	}
	// The end-of-archive marker, whole, and nothing after it: a cut
	// file is refused even where it lost only padding.
	if !tail.ended() {
		return sum, &Error{Err: errors.New("truncated: no end-of-archive marker")}
	}
	if n, _ := io.ReadFull(r, make([]byte, 1)); n > 0 {
		return sum, &Error{Err: errors.New("data after the end of the archive")}
	}
	for i, ev := range timeline {
		if ev.Request == "" || !requests[ev.Request] {
			return sum, &Error{Member: MemberTimeline, Err: fmt.Errorf("event %d (%s at %s) has no audit entry in %s", i+1, ev.Kind, ev.At.Format(time.RFC3339), MemberEntries)}
		}
	}
	sum.Timeline, sum.Alerts, sum.Actions, sum.Entries = len(timeline), len(alerts), len(actions), m.Counts.Entries
	return sum, nil
}

func checkHash(h hash.Hash, mm Member) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != mm.SHA256 {
		return fmt.Errorf("SHA-256 %s, the manifest says %s", got, mm.SHA256)
	}
	return nil
}

// verifyEntries checks the entries member: lines of auditlog.ExportLine in
// increasing index order, each canonical and proved to be at its index in
// c's tree, want of them. It returns their request ids.
func verifyEntries(r io.Reader, c auditlog.Checkpoint, want int64) (map[string]bool, error) {
	requests := map[string]bool{}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	last, n := int64(-1), int64(0)
	for {
		var line auditlog.ExportLine
		err := dec.Decode(&line)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n+1, err)
		}
		bad := func(err error) error { return &auditlog.VerifyError{Index: line.Index, Err: err} }
		if line.Index <= last {
			return nil, bad(fmt.Errorf("out of order after entry %d", last))
		}
		if line.Index >= c.N || line.TreeSize != c.N {
			return nil, bad(fmt.Errorf("no proof against the checkpoint of size %d", c.N))
		}
		e, err := auditlog.Decode(line.Entry)
		if err != nil {
			return nil, bad(err)
		}
		leaf := tlog.RecordHash(line.Entry)
		if leaf != line.LeafHash {
			return nil, bad(errors.New("leaf hash does not match the entry"))
		}
		if err := tlog.CheckRecord(line.Proof, c.N, c.Hash, line.Index, leaf); err != nil {
			return nil, bad(fmt.Errorf("not in the checkpoint's tree: %v", err))
		}
		if e.RequestID != "" {
			requests[e.RequestID] = true
		}
		last = line.Index
		n++
	}
	if n != want {
		return nil, fmt.Errorf("holds %d entries, the manifest says %d", n, want)
	}
	return requests, nil
}

// decodeStrict decodes exactly one JSON value of known fields from b.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("JSON: %v", err)
	}
	if dec.More() {
		return errors.New("JSON: more than one value")
	}
	return nil
}

// tailReader counts what a tar.Reader reads and keeps the last two blocks
// of it, to tell whether the archive ended with its end-of-archive marker
// (two zero blocks), which tar.Reader does not insist on.
type tailReader struct {
	r    io.Reader
	n    int64
	tail []byte
}

const tarEnd = 2 * 512

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	t.tail = append(t.tail, p[:n]...)
	if len(t.tail) > 2*tarEnd {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-tarEnd:]...)
	}
	return n, err
}

func (t *tailReader) ended() bool {
	if t.n%512 != 0 || len(t.tail) < tarEnd {
		return false
	}
	for _, c := range t.tail[len(t.tail)-tarEnd:] {
		if c != 0 {
			return false
		}
	}
	return true
}
