package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// Identities open the target's key set (one of the recipients it was
	// made for).
	Identities []age.Identity
	// Verifier, if not nil, is the manifests' signer's verifier key as
	// kept outside the backup (audit-verifier.pub). Nil trusts the one in
	// the key set. Age encryption does not authenticate its sender: anyone
	// who knows the recipients' public keys and can replace the whole
	// target could write a key set naming their own signer. Pin the
	// verifier where you can.
	Verifier note.Verifier
	// ApplyShreds shreds again, in the restored folder dir, the patients
	// the target holds tombstones of (RecordShreds), before the folder is
	// renamed into place. Restore refuses a target with tombstones when it
	// is nil: a restore must not bring a shredded patient back.
	ApplyShreds func(ctx context.Context, dir string, shreds []Shred) error
	// Prepare, if not nil, runs last on the restored folder dir, before it
	// is renamed into place; an error fails the restore and leaves
	// nothing. The caller checks or completes the folder there (phivault
	// records an audit gap).
	Prepare func(ctx context.Context, dir string, m *Manifest) error
	// Mark, if not nil, records a restore that succeeds as a verification
	// of the snapshot (see Verify). A restore that succeeds but cannot
	// store the mark returns its manifest and the error.
	Mark *MarkOptions
}

// Restore restores the snapshot id of t (the latest if id is "") into the
// folder dest, which must not exist or be empty, and returns its manifest.
// Patients the target holds shred tombstones of are shredded again in the
// restored folder (opt.ApplyShreds) before it is renamed into place.
//
// It reads the key set with opt.Identities, verifies the manifest's
// signature, and reads and verifies every chunk (AEAD, then its HMAC id
// against its content, then each file's size and SHA-256) while writing
// the files into a temporary folder beside dest. Only when every file is
// whole and synced is the folder renamed to dest: any failure (a wrong
// identity, a missing, changed or truncated object, a replaced manifest)
// removes the temporary folder and leaves dest as it was. Errors name
// objects and files, never their contents.
func Restore(ctx context.Context, t Target, id, dest string, opt RestoreOptions) (*Manifest, error) {
	if err := emptyOrAbsent(dest); err != nil {
		return nil, err
	}
	keys, err := OpenKeys(ctx, t, opt.Identities...)
	if err != nil {
		return nil, err
	}
	m, err := readSnapshot(ctx, t, keys, id, opt.Verifier)
	if err != nil {
		return nil, err
	}
	shreds, err := Shreds(ctx, t, keys)
	if err != nil {
		return nil, err
	}
	if len(shreds) > 0 && opt.ApplyShreds == nil {
		return nil, fmt.Errorf("backup: the target holds %d shred tombstones and the restore has no way to apply them", len(shreds))
	}
	parent := filepath.Dir(filepath.Clean(dest))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".restore-*")
	if err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	for _, d := range m.Dirs {
		if err := os.Mkdir(filepath.Join(tmp, filepath.FromSlash(d)), 0o700); err != nil {
			return nil, fmt.Errorf("backup: restore %s: %w", d, err)
		}
	}
	for _, f := range m.Files {
		if err := restoreFile(ctx, t, keys, tmp, f); err != nil {
			return nil, err
		}
	}
	if len(shreds) > 0 {
		if err := opt.ApplyShreds(ctx, tmp, shreds); err != nil {
			return nil, fmt.Errorf("backup: restore: shred again the patients shredded since: %w", err)
		}
	}
	if opt.Prepare != nil {
		if err := opt.Prepare(ctx, tmp, m); err != nil {
			return nil, fmt.Errorf("backup: restore: %w", err)
		}
	}
	for i := len(m.Dirs) - 1; i >= 0; i-- {
		if err := syncDir(filepath.Join(tmp, filepath.FromSlash(m.Dirs[i]))); err != nil {
			return nil, fmt.Errorf("backup: restore %s: %w", m.Dirs[i], err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	if err := emptyOrAbsent(dest); err != nil { // filled meanwhile
		return nil, err
	}
	// os.Rename does not replace a folder, even an empty one.
	if err := os.Remove(dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	done = true
	if err := syncDir(parent); err != nil {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	if opt.Mark != nil {
		if _, err := writeMark(ctx, t, keys, m, MarkRestore, *opt.Mark); err != nil {
			return m, fmt.Errorf("backup: restored, but the verification mark: %w", err)
		}
	}
	return m, nil
}

// restoreFile writes the file f of a manifest into the folder root,
// checking each chunk and the whole.
func restoreFile(ctx context.Context, t Target, keys *KeySet, root string, f File) error {
	out, err := os.OpenFile(filepath.Join(root, filepath.FromSlash(f.Name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: restore %s: %w", f.Name, err)
	}
	defer out.Close()
	h := sha256.New()
	for i, c := range f.Chunks {
		data, err := readChunk(ctx, t, keys, c)
		if err != nil {
			return fmt.Errorf("backup: restore %s: chunk %d: %w", f.Name, i, err)
		}
		h.Write(data)
		if _, err := out.Write(data); err != nil {
			return fmt.Errorf("backup: restore %s: %w", f.Name, err)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("backup: restore %s: its SHA-256 does not match the manifest: %w", f.Name, ErrCorrupt)
	}
	if err := out.Chmod(fs.FileMode(f.Mode)); err != nil {
		return fmt.Errorf("backup: restore %s: %w", f.Name, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("backup: restore %s: %w", f.Name, err)
	}
	return out.Close()
}

// readChunk reads the chunk c and checks it: it opens under the data key
// for its id, its content has that id, and it is of its size.
func readChunk(ctx context.Context, t Target, keys *KeySet, c Chunk) ([]byte, error) {
	obj, err := t.Get(ctx, "chunks/"+c.ID)
	if err != nil {
		return nil, err
	}
	data, err := keys.open(obj, chunkAD(c.ID))
	if err != nil {
		return nil, fmt.Errorf("object chunks/%s: %w", c.ID, err)
	}
	if keys.chunkID(data) != c.ID || int64(len(data)) != c.Size {
		return nil, fmt.Errorf("object chunks/%s: content does not match its id: %w", c.ID, ErrCorrupt)
	}
	return data, nil
}

// emptyOrAbsent returns an error unless dest does not exist or is an
// empty folder.
func emptyOrAbsent(dest string) error {
	entries, err := os.ReadDir(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup: restore into %s: %w", dest, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("backup: restore into %s: the folder is not empty", dest)
	}
	return nil
}
