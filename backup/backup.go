package backup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/restic/chunker"
	"golang.org/x/mod/sumdb/note"
)

// Chunk sizes. A write to a database changes a few pages scattered over
// the file (the row's table, each index, the header), and each changed page
// costs a chunk: chunks are small (64 KiB on average) so that a small change
// writes little, and large enough that a 10 GiB vault is some 160,000
// objects, not millions.
const (
	minChunk    = 16 << 10
	maxChunk    = 512 << 10
	averageBits = 16 // 64 KiB
)

// Options configures Backup.
type Options struct {
	// Keys is the target's key set (Init, OpenKeys, CachedKeys).
	Keys *KeySet
	// Signer signs the manifest; its verifier key must be Keys.Verifier.
	Signer note.Signer
	// Now returns the time; nil means time.Now.
	Now func() time.Time
	// Rand is the source of nonces and snapshot ids; nil means
	// crypto/rand.Reader.
	Rand io.Reader
}

// A Result tells what a backup did.
type Result struct {
	Snapshot     string // its id
	Files        int
	Chunks       int   // chunks in the snapshot
	NewChunks    int   // of which written by this backup
	Size         int64 // bytes in the snapshot's files
	BytesWritten int64 // bytes of objects written to the target
}

// Backup takes a snapshot of the data folder dir (TakeSnapshot), stores
// the chunks t does not hold yet, and then the signed manifest, which is
// written last: a snapshot exists once every chunk it names is stored.
func Backup(ctx context.Context, dir string, t Target, opt Options) (*Result, error) {
	if opt.Keys == nil || opt.Signer == nil {
		return nil, errors.New("backup: no keys or no signer")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Rand == nil {
		opt.Rand = rand.Reader
	}
	if v, err := note.NewVerifier(opt.Keys.Verifier); err != nil || v.Name() != opt.Signer.Name() || v.KeyHash() != opt.Signer.KeyHash() {
		return nil, errors.New("backup: the signer is not the one the target's keys name; restores could not verify this backup")
	}
	var id [16]byte
	if _, err := io.ReadFull(opt.Rand, id[:]); err != nil {
		return nil, fmt.Errorf("backup: snapshot id: %w", err)
	}
	have := map[string]bool{}
	names, err := t.List(ctx, "chunks/")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		have[n[len("chunks/"):]] = true
	}
	s, err := TakeSnapshot(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res := &Result{Snapshot: hex.EncodeToString(id[:])}
	m := &Manifest{Snapshot: res.Snapshot, Time: opt.Now().UTC(), Checkpoint: s.Checkpoint, Dirs: s.Dirs, Files: []File{}}
	buf := make([]byte, maxChunk)
	p := newPutter(ctx, t, res)
	for _, sf := range s.files {
		f, err := storeFile(opt, sf, have, buf, p)
		if err != nil {
			p.wait()
			return nil, err
		}
		m.Files = append(m.Files, f)
		res.Files++
		res.Size += f.Size
	}
	if err := p.wait(); err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: string(m.Marshal())}, opt.Signer)
	if err != nil {
		return nil, fmt.Errorf("backup: sign manifest: %w", err)
	}
	obj, err := opt.Keys.seal(opt.Rand, signed, snapshotAD(res.Snapshot))
	if err != nil {
		return nil, err
	}
	if err := t.Put(ctx, "snapshots/"+res.Snapshot, obj); err != nil {
		return nil, err
	}
	res.BytesWritten += int64(len(obj))
	return res, nil
}

// storeFile chunks the snapshot file sf and hands the chunks the target
// lacks to p.
func storeFile(opt Options, sf snapshotFile, have map[string]bool, buf []byte, p *putter) (File, error) {
	r, err := os.Open(sf.path)
	if err != nil {
		return File{}, fmt.Errorf("backup: %s: %w", sf.name, err)
	}
	defer r.Close()
	f := File{Name: sf.name, Mode: uint32(sf.mode), Chunks: []Chunk{}}
	h := sha256.New()
	c := chunker.NewWithBoundaries(r, opt.Keys.pol, minChunk, maxChunk)
	c.SetAverageBits(averageBits)
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return File{}, fmt.Errorf("backup: %s: %w", sf.name, err)
		}
		h.Write(ch.Data)
		id := opt.Keys.chunkID(ch.Data)
		f.Chunks = append(f.Chunks, Chunk{ID: id, Size: int64(len(ch.Data))})
		f.Size += int64(len(ch.Data))
		p.res.Chunks++ // only this goroutine counts chunks
		if have[id] {
			continue
		}
		obj, err := opt.Keys.seal(opt.Rand, ch.Data, chunkAD(id))
		if err != nil {
			return File{}, err
		}
		if err := p.put("chunks/"+id, obj); err != nil {
			return File{}, err
		}
		have[id] = true
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	return f, nil
}

// The additional data that binds an object to its name.
func chunkAD(id string) string    { return "phivault-backup chunk " + id }
func snapshotAD(id string) string { return "phivault-backup snapshot " + id }

// ReadManifest reads, decrypts and verifies the manifest of the snapshot
// id in t: sealed under keys, signed by keys.Verifier (or by verifier, if
// not nil, which pins the signer outside the backup), well formed, and
// naming id.
func ReadManifest(ctx context.Context, t Target, keys *KeySet, id string, verifier note.Verifier) (*Manifest, error) {
	if !isHex(id, 16) {
		return nil, fmt.Errorf("backup: snapshot id %q is not 32 hex digits", id)
	}
	obj, err := t.Get(ctx, "snapshots/"+id)
	if err != nil {
		return nil, err
	}
	signed, err := keys.open(obj, snapshotAD(id))
	if err != nil {
		return nil, fmt.Errorf("backup: manifest of snapshot %s: %w", id, err)
	}
	if verifier == nil {
		if verifier, err = note.NewVerifier(keys.Verifier); err != nil {
			return nil, fmt.Errorf("backup: keys: the verifier key is malformed: %w", ErrCorrupt)
		}
	}
	n, err := note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		return nil, fmt.Errorf("backup: snapshot %s: %w (%v)", id, ErrSignature, err)
	}
	m, err := ParseManifest([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("backup: snapshot %s: %w: %v", id, ErrCorrupt, err)
	}
	if m.Snapshot != id {
		return nil, fmt.Errorf("backup: snapshot %s: the manifest is of snapshot %s: %w", id, m.Snapshot, ErrCorrupt)
	}
	if m.Checkpoint != "" {
		// The audit checkpoint is signed by the same key.
		if _, err := note.Open([]byte(m.Checkpoint), note.VerifierList(verifier)); err != nil {
			return nil, fmt.Errorf("backup: snapshot %s: its audit checkpoint does not verify: %w", id, ErrCorrupt)
		}
	}
	return m, nil
}

// readSnapshot reads the manifest of the snapshot id of t, or of the
// latest if id is "" (ErrNotFound if t holds none), as ReadManifest.
func readSnapshot(ctx context.Context, t Target, keys *KeySet, id string, verifier note.Verifier) (*Manifest, error) {
	if id == "" {
		ms, err := List(ctx, t, keys, verifier)
		if err != nil {
			return nil, err
		}
		if len(ms) == 0 {
			return nil, fmt.Errorf("backup: no snapshot: %w", ErrNotFound)
		}
		return ms[len(ms)-1], nil
	}
	return ReadManifest(ctx, t, keys, id, verifier)
}

// List returns the manifests of t's snapshots, oldest first, each read
// and verified as by ReadManifest.
func List(ctx context.Context, t Target, keys *KeySet, verifier note.Verifier) ([]*Manifest, error) {
	names, err := t.List(ctx, "snapshots/")
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, n := range names {
		m, err := ReadManifest(ctx, t, keys, n[len("snapshots/"):], verifier)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sortManifests(out)
	return out, nil
}

func sortManifests(ms []*Manifest) {
	slices.SortFunc(ms, func(a, b *Manifest) int { return a.Time.Compare(b.Time) })
}
