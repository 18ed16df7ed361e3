package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// markPrefix is the folder of the verification marks in a target.
const markPrefix = "verified/"

// A Mark records that a snapshot was read back whole and every check
// passed: the manifest's signature, every chunk's AEAD, HMAC id and size,
// and every file's SHA-256. It is stored as the write-once object
// verified/<snapshot>, sealed under the data key and bound to its
// snapshot like the other objects, so only a holder of the key set can
// write one. Prune never removes the newest snapshot that has one.
type Mark struct {
	Snapshot string    `json:"snapshot"`
	Time     time.Time `json:"time"`   // when it was verified, UTC
	Method   string    `json:"method"` // "verify" or "restore"
	// By says who or what verified, as the caller gave it ("phivault
	// backup verify on host-a").
	By     string `json:"by,omitempty"`
	Files  int    `json:"files"`
	Chunks int    `json:"chunks"`
	Bytes  int64  `json:"bytes"`
}

// Mark methods.
const (
	MarkVerify  = "verify"
	MarkRestore = "restore"
)

// MarkOptions configures the mark Verify (and Restore, if asked) writes.
type MarkOptions struct {
	// By says who or what verified; it is stored in the mark. It must not
	// hold secrets.
	By string
	// Now returns the time; nil means time.Now.
	Now func() time.Time
	// Rand is the source of the mark's nonce; nil means crypto/rand.Reader.
	Rand io.Reader
}

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Verifier, if not nil, pins the manifests' signer (as
	// RestoreOptions.Verifier); nil trusts the one in the key set.
	Verifier note.Verifier
	MarkOptions
}

func markAD(id string) string { return "phivault-backup verified " + id }

// Verify reads the snapshot id of t (the latest if id is "") as Restore
// does, checking everything Restore checks, without writing any file:
// chunks are streamed through the checks and dropped. When every check
// passes it stores a Mark for the snapshot, unless one is there already
// (a mark is write-once: the first verification stays on record), and
// returns the stored mark. Any failed check returns its error (ErrCorrupt,
// ErrNotFound, ErrSignature) and writes nothing.
func Verify(ctx context.Context, t Target, keys *KeySet, id string, opt VerifyOptions) (*Mark, error) {
	m, err := readSnapshot(ctx, t, keys, id, opt.Verifier)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		h := sha256.New()
		for i, c := range f.Chunks {
			data, err := readChunk(ctx, t, keys, c)
			if err != nil {
				return nil, fmt.Errorf("backup: verify %s: chunk %d: %w", f.Name, i, err)
			}
			h.Write(data)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			return nil, fmt.Errorf("backup: verify %s: its SHA-256 does not match the manifest: %w", f.Name, ErrCorrupt)
		}
	}
	return writeMark(ctx, t, keys, m, MarkVerify, opt.MarkOptions)
}

// writeMark stores the mark of the verified snapshot m, or returns the
// one already stored.
func writeMark(ctx context.Context, t Target, keys *KeySet, m *Manifest, method string, opt MarkOptions) (*Mark, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Rand == nil {
		opt.Rand = rand.Reader
	}
	mk := &Mark{Snapshot: m.Snapshot, Time: opt.Now().UTC(), Method: method, By: opt.By, Files: len(m.Files), Bytes: m.Size()}
	for _, f := range m.Files {
		mk.Chunks += len(f.Chunks)
	}
	b, err := json.Marshal(mk)
	if err != nil {
		return nil, fmt.Errorf("backup: mark %s: %w", m.Snapshot, err)
	}
	obj, err := keys.seal(opt.Rand, b, markAD(m.Snapshot))
	if err != nil {
		return nil, err
	}
	switch err := t.Put(ctx, markPrefix+m.Snapshot, obj); {
	case errors.Is(err, ErrExist):
		return ReadMark(ctx, t, keys, m.Snapshot)
	case err != nil:
		return nil, err
	}
	return mk, nil
}

// ReadMark returns the verification mark of the snapshot id, ErrNotFound
// if it has none, and ErrCorrupt if the mark does not open under keys or
// is not the snapshot's.
func ReadMark(ctx context.Context, t Target, keys *KeySet, id string) (*Mark, error) {
	if !isHex(id, 16) {
		return nil, fmt.Errorf("backup: snapshot id %q is not 32 hex digits", id)
	}
	obj, err := t.Get(ctx, markPrefix+id)
	if err != nil {
		return nil, err
	}
	b, err := keys.open(obj, markAD(id))
	if err != nil {
		return nil, fmt.Errorf("backup: object %s%s: %w", markPrefix, id, err)
	}
	var mk Mark
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&mk); err != nil || mk.Snapshot != id {
		return nil, fmt.Errorf("backup: object %s%s: malformed: %w", markPrefix, id, ErrCorrupt)
	}
	return &mk, nil
}

// Marks returns the verification marks in t by snapshot id, marks of
// snapshots since removed included. A mark that does not open is an error
// (ErrCorrupt), not a missing mark: prune decides on marks, and must not
// decide on a target someone tampered with.
func Marks(ctx context.Context, t Target, keys *KeySet) (map[string]*Mark, error) {
	names, err := t.List(ctx, markPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]*Mark{}
	for _, n := range names {
		id := n[len(markPrefix):]
		mk, err := ReadMark(ctx, t, keys, id)
		if err != nil {
			return nil, err
		}
		out[id] = mk
	}
	return out, nil
}
