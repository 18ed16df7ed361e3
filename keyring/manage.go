package keyring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault"
)

// KEKInfo describes one KEK version of a key file, without its key.
type KEKInfo struct {
	ID          phivault.KeyID
	Created     time.Time
	Current     bool
	Compromised time.Time // zero unless marked compromised
	// Retired is when the version was removed from the key file (its key
	// is gone; only this record stays), or zero if it is still held.
	Retired time.Time
}

// Versions describes the keyring's KEK versions, sorted by id.
func (k *FileKeyring) Versions() []KEKInfo {
	out := make([]KEKInfo, 0, len(k.keks))
	for _, id := range k.IDs() {
		c := k.keks[id]
		out = append(out, KEKInfo{ID: id, Created: c.created, Current: c == k.current, Compromised: c.compromised})
	}
	return out
}

// RetiredVersions describes the KEK versions retired from the key file,
// sorted by id: their keys are gone, but when they existed, when they were
// retired and whether they were marked compromised stay on record, so an
// auditor can tell later whether data exposed with a version was still
// protected by it.
func (k *FileKeyring) RetiredVersions() []KEKInfo {
	out := slices.Clone(k.retired)
	slices.SortFunc(out, func(a, b KEKInfo) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// ErrRetireCurrent is returned when asked to retire the current KEK version.
var ErrRetireCurrent = errors.New("keyring: the current kek cannot be retired")

// updateFile rewrites the key file at path after fn changed its contents.
func updateFile(path string, passphrase []byte, opts FileOptions, fn func(kf *keyFile) error) error {
	opts = opts.withDefaults()
	kf, err := readFile(path, passphrase, max(opts.WorkFactor, MaxWorkFactor))
	if err != nil {
		return err
	}
	defer func() {
		for _, k := range kf.KEKs {
			clear(k.Key)
		}
	}()
	if _, err := newFileKeyring(kf, opts.Rand); err != nil {
		return err // refuse to rewrite a malformed file
	}
	if err := fn(kf); err != nil {
		return err
	}
	data, err := seal(kf, passphrase, opts.WorkFactor)
	if err != nil {
		return err
	}
	return writeFile(path, data, true)
}

// RetireFile removes the KEK versions ids from the key file at path. Keys
// wrapped under a retired version can never be unwrapped again: retire a
// version only when no stored key refers to it (see envelope.Rewrap). The
// current version cannot be retired (ErrRetireCurrent); unknown ids are
// ignored. The file keeps a record of each retired version without its key
// (id, creation, retirement at opts.Now, compromise mark), listed by
// FileKeyring.RetiredVersions.
func RetireFile(path string, passphrase []byte, ids []phivault.KeyID, opts FileOptions) error {
	opts = opts.withDefaults()
	now := opts.Now().UTC()
	return updateFile(path, passphrase, opts, func(kf *keyFile) error {
		if slices.Contains(ids, kf.Current) {
			return ErrRetireCurrent
		}
		kf.KEKs = slices.DeleteFunc(kf.KEKs, func(k fileKEK) bool {
			if slices.Contains(ids, k.ID) {
				clear(k.Key)
				kf.Retired = append(kf.Retired, retiredKEK{ID: k.ID, Created: k.Created, Retired: now, Compromised: k.Compromised})
				return true
			}
			return false
		})
		return nil
	})
}

// MarkCompromisedFile records in the key file at path that KEK version id
// was (or may have been) exposed, at time at. The mark stays for breach
// analysis, also after the version is retired, and a retired version can
// still be marked (an exposure found out later); marking twice keeps the
// first time. It returns ErrUnknownKEK if the file has no version id,
// held or retired.
func MarkCompromisedFile(path string, passphrase []byte, id phivault.KeyID, at time.Time, opts FileOptions) error {
	mark := func(c **time.Time) {
		if *c == nil {
			t := at.UTC()
			*c = &t
		}
	}
	return updateFile(path, passphrase, opts, func(kf *keyFile) error {
		for i := range kf.KEKs {
			if kf.KEKs[i].ID == id {
				mark(&kf.KEKs[i].Compromised)
				return nil
			}
		}
		for i := range kf.Retired {
			if kf.Retired[i].ID == id {
				mark(&kf.Retired[i].Compromised)
				return nil
			}
		}
		return ErrUnknownKEK
	})
}

// AcceptsUnbound returns the ids of the KEK versions that still unwrap
// unbound wraps (name ""), sorted: versions from a key file written before
// wraps were bound, until RefuseUnboundFile.
func (k *FileKeyring) AcceptsUnbound() []phivault.KeyID {
	var ids []phivault.KeyID
	for _, id := range k.IDs() {
		if k.keks[id].unboundRefused.IsZero() {
			ids = append(ids, id)
		}
	}
	return ids
}

// RefuseUnboundFile records in the key file at path that KEK versions ids
// refuse unbound wraps from opts.Now on: UnwrapKey with name "" fails
// under them with ErrUnwrap, whatever the store says of its keys. Call it
// once no stored key under them is unbound (see envelope.EndUnbound): an
// unbound key left under them never unwraps again. Versions that refuse
// them already keep their time; unknown ids are ignored.
func RefuseUnboundFile(path string, passphrase []byte, ids []phivault.KeyID, opts FileOptions) error {
	opts = opts.withDefaults()
	now := opts.Now().UTC()
	return updateFile(path, passphrase, opts, func(kf *keyFile) error {
		for i := range kf.KEKs {
			if slices.Contains(ids, kf.KEKs[i].ID) && kf.KEKs[i].UnboundRefused == nil {
				kf.KEKs[i].UnboundRefused = &now
			}
		}
		return nil
	})
}

// Reloading is a phivault.Keyring over a key file that a running process
// can rotate and reload without restarting: it serves from the FileKeyring
// it opened last. It is safe for concurrent use by multiple goroutines.
type Reloading struct {
	path string
	opts FileOptions

	mu   sync.RWMutex
	keys *FileKeyring
}

var _ phivault.Keyring = (*Reloading)(nil)

// OpenReloading opens the key file at path like OpenFile.
func OpenReloading(path string, passphrase []byte, opts FileOptions) (*Reloading, error) {
	k, err := OpenFile(path, passphrase, opts)
	if err != nil {
		return nil, err
	}
	return &Reloading{path: path, opts: opts, keys: k}, nil
}

// Keyring returns the FileKeyring in use now.
func (r *Reloading) Keyring() *FileKeyring {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys
}

// Reload opens the key file again and serves its KEK versions from then on.
func (r *Reloading) Reload(passphrase []byte) error {
	k, err := OpenFile(r.path, passphrase, r.opts)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.keys = k
	r.mu.Unlock()
	return nil
}

// Rotate adds a KEK version to the key file (RotateFile), makes it current
// and reloads. It returns the new version's id.
func (r *Reloading) Rotate(passphrase []byte) (phivault.KeyID, error) {
	id, err := RotateFile(r.path, passphrase, r.opts)
	if err != nil {
		return "", err
	}
	if err := r.Reload(passphrase); err != nil {
		return "", fmt.Errorf("keyring: reload after rotation: %w", err)
	}
	return id, nil
}

// Retire removes versions ids from the key file (RetireFile) and reloads.
func (r *Reloading) Retire(passphrase []byte, ids []phivault.KeyID) error {
	if err := RetireFile(r.path, passphrase, ids, r.opts); err != nil {
		return err
	}
	return r.Reload(passphrase)
}

// MarkCompromised marks version id compromised (MarkCompromisedFile) and
// reloads.
func (r *Reloading) MarkCompromised(passphrase []byte, id phivault.KeyID, at time.Time) error {
	if err := MarkCompromisedFile(r.path, passphrase, id, at, r.opts); err != nil {
		return err
	}
	return r.Reload(passphrase)
}

// AcceptsUnbound returns the KEK versions that still unwrap unbound wraps
// (see FileKeyring.AcceptsUnbound). It never fails; the context and error
// make it fit envelope.UnboundRefuser.
func (r *Reloading) AcceptsUnbound(context.Context) ([]phivault.KeyID, error) {
	return r.Keyring().AcceptsUnbound(), nil
}

// RefuseUnbound makes versions ids refuse unbound wraps (RefuseUnboundFile)
// and reloads. It leaves the file alone if all of them refuse them
// already.
func (r *Reloading) RefuseUnbound(passphrase []byte, ids []phivault.KeyID) error {
	accepting := r.Keyring().AcceptsUnbound()
	if !slices.ContainsFunc(ids, func(id phivault.KeyID) bool { return slices.Contains(accepting, id) }) {
		return nil
	}
	if err := RefuseUnboundFile(r.path, passphrase, ids, r.opts); err != nil {
		return err
	}
	return r.Reload(passphrase)
}

// WrapKey wraps dek under the current KEK.
func (r *Reloading) WrapKey(ctx context.Context, name string, dek []byte) (phivault.KeyID, []byte, error) {
	return r.Keyring().WrapKey(ctx, name, dek)
}

// UnwrapKey unwraps a DEK wrapped under any KEK version in the file.
func (r *Reloading) UnwrapKey(ctx context.Context, id phivault.KeyID, name string, wrapped []byte) ([]byte, error) {
	return r.Keyring().UnwrapKey(ctx, id, name, wrapped)
}

// Current returns the id of the KEK that WrapKey uses.
func (r *Reloading) Current() phivault.KeyID { return r.Keyring().Current() }

// String describes the keyring by its key ids only.
func (r *Reloading) String() string { return r.Keyring().String() }
