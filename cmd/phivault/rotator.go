package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/keyring"
)

// rotator is a keyring whose KEK a running server rotates online: the file
// keyring (through fileRotator), the PKCS#11 keyring (*keyring.PKCS11) and
// the KMS keyring (through kmsRotator). keyManager drives any of them the
// same way: Rotate, envelope.EndUnbound and envelope.Rewrap, then Retire
// what nothing refers to.
type rotator interface {
	// UnboundRefuser records in the keyring which KEKs still accept
	// unbound wraps (see envelope.EndUnbound).
	envelope.UnboundRefuser
	// Current returns the id of the KEK that WrapKey uses.
	Current() phivault.KeyID
	// Rotate makes a new KEK version current and returns its id. A keyring
	// whose service rotates the key itself returns an error that says so
	// (errKMSRotates).
	Rotate(ctx context.Context) (phivault.KeyID, error)
	// Retire destroys KEK versions ids, which no stored key may refer to
	// any more; the current version cannot be retired.
	Retire(ctx context.Context, ids []phivault.KeyID) error
	// Versions describes the KEK versions: held, and retired ones the
	// keyring keeps a record of.
	Versions() []keyring.KEKInfo
}

// compromiseMarker is a rotator that records compromise marks (the file
// keyring, in its key file).
type compromiseMarker interface {
	MarkCompromised(ctx context.Context, id phivault.KeyID, at time.Time) error
}

var (
	_ rotator          = (*fileRotator)(nil)
	_ compromiseMarker = (*fileRotator)(nil)
	_ rotator          = (*keyring.PKCS11)(nil)
	_ rotator          = kmsRotator{}
)

// newRotator returns the rotator of an opened keyring, or nil if it cannot
// rotate. pass is the key-file passphrase (the file keyring only); the
// rotator keeps it until wipe.
func newRotator(keys phivault.Keyring, pass []byte) rotator {
	switch k := keys.(type) {
	case *keyring.Reloading:
		return &fileRotator{keys: k, pass: pass}
	case *keyring.PKCS11:
		return k
	case *keyring.KMS:
		return kmsRotator{k}
	}
	return nil
}

// fileRotator rotates a key file with its passphrase.
type fileRotator struct {
	keys *keyring.Reloading
	pass []byte
}

func (f *fileRotator) WrapKey(ctx context.Context, name string, dek []byte) (phivault.KeyID, []byte, error) {
	return f.keys.WrapKey(ctx, name, dek)
}

func (f *fileRotator) UnwrapKey(ctx context.Context, id phivault.KeyID, name string, wrapped []byte) ([]byte, error) {
	return f.keys.UnwrapKey(ctx, id, name, wrapped)
}

func (f *fileRotator) Current() phivault.KeyID { return f.keys.Current() }

func (f *fileRotator) Rotate(context.Context) (phivault.KeyID, error) { return f.keys.Rotate(f.pass) }

func (f *fileRotator) Retire(_ context.Context, ids []phivault.KeyID) error {
	return f.keys.Retire(f.pass, ids)
}

func (f *fileRotator) AcceptsUnbound(ctx context.Context) ([]phivault.KeyID, error) {
	return f.keys.AcceptsUnbound(ctx)
}

// RefuseUnbound records in the key file that versions ids refuse unbound
// wraps.
func (f *fileRotator) RefuseUnbound(_ context.Context, ids []phivault.KeyID) error {
	return f.keys.RefuseUnbound(f.pass, ids)
}

func (f *fileRotator) MarkCompromised(_ context.Context, id phivault.KeyID, at time.Time) error {
	return f.keys.MarkCompromised(f.pass, id, at)
}

// Versions lists the versions in the key file and the retired ones it
// keeps a record of.
func (f *fileRotator) Versions() []keyring.KEKInfo {
	k := f.keys.Keyring()
	return append(k.Versions(), k.RetiredVersions()...)
}

// wipe forgets the passphrase.
func (f *fileRotator) wipe() { clear(f.pass) }

// errKMSRotates answers keys rotate for a KMS keyring when every stored key
// is under the configured key already.
var errKMSRotates = phivault.Errorf(phivault.EUNSUPPORTED,
	"The KMS rotates this key's material itself (automatic rotation, or RotateKeyOnDemand) and keeps the old material for decryption, "+
		"so its rotation needs no rewrap and the key id stays; every stored key is already wrapped under the configured key. "+
		"To switch to another KMS key, set PHIVAULT_KMS_KEY_ID to it, restart, and run phivault keys rotate: "+
		"it rewraps every stored key wrapped under another key.")

// kmsRotator is the KMS keyring as a rotator. A KMS has a single KEK, the
// configured key; it rotates that key's material itself. Rotate only
// reports that (errKMSRotates): keyManager then rewraps the stored keys that
// another KMS key wraps, which switches keys after PHIVAULT_KMS_KEY_ID was
// changed. phivault never deletes a KMS key, so Retire does nothing.
type kmsRotator struct{ *keyring.KMS }

func (kmsRotator) Rotate(context.Context) (phivault.KeyID, error) { return "", errKMSRotates }

func (kmsRotator) Retire(context.Context, []phivault.KeyID) error { return nil }

func (k kmsRotator) Versions() []keyring.KEKInfo {
	if k.Current() == "" {
		return nil
	}
	return []keyring.KEKInfo{{ID: k.Current(), Current: true}}
}

// versionsWithCounts lists keys' versions and, as versions that are neither
// current nor held, any other KEK id that stored keys refer to (e.g. a
// former KMS key), sorted by id.
func versionsWithCounts(keys rotator, counts map[phivault.KeyID]int) []keyring.KEKInfo {
	vs := keys.Versions()
	for id := range counts {
		if !slices.ContainsFunc(vs, func(v keyring.KEKInfo) bool { return v.ID == id }) {
			vs = append(vs, keyring.KEKInfo{ID: id})
		}
	}
	slices.SortStableFunc(vs, func(a, b keyring.KEKInfo) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return vs
}
