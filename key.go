package phivault

import (
	"context"
	"slices"
)

// KeyID names a key-encryption key version held by a Keyring.
type KeyID string

// A Keyring wraps and unwraps data-encryption keys (DEKs) under a
// key-encryption key (KEK). Implementations never reveal the KEKs they hold,
// and are safe for concurrent use by multiple goroutines.
//
// A wrap is bound to the DEK's name, its id in the store (WrappedKey.ID,
// e.g. "patient/<id>#2"), as additional data of the wrapping: a wrapped DEK
// copied to another key's row does not unwrap there.
type Keyring interface {
	// WrapKey wraps dek under the current KEK, bound to name, and names
	// that KEK. name must not be empty.
	WrapKey(ctx context.Context, name string, dek []byte) (KeyID, []byte, error)
	// UnwrapKey unwraps a DEK that WrapKey wrapped under KEK id, bound to
	// name. It returns an error (never a wrong key) if wrapped was altered,
	// id is unknown or the wrap was bound to another name. name ""
	// unwraps an unbound wrap, made before wraps were bound to names (a
	// WrappedKey with Bound false).
	UnwrapKey(ctx context.Context, id KeyID, name string, wrapped []byte) ([]byte, error)
}

// IndexValue is one searchable value of a resource, normalized by the fhir
// package: Param is "Type.param" (e.g. "Patient.family"), Value the
// normalized value (e.g. "smith").
type IndexValue struct {
	Param string
	Value string
}

// A Sealer encrypts resources for storage and computes blind-index tokens.
// The envelope package provides the real one. Implementations are safe for
// concurrent use by multiple goroutines.
type Sealer interface {
	// Seal encrypts r (which must have a Body unless Deleted) under the DEK
	// of r.Compartment, creating that DEK within tx if it does not exist.
	Seal(ctx context.Context, tx StoreTx, r *Resource) (*SealedResource, error)
	// SealAll seals rs like Seal, in order, looking each data-encryption
	// key up once for all of them (a bulk write's resources share few).
	SealAll(ctx context.Context, tx StoreTx, rs []*Resource) ([]*SealedResource, error)
	// Open decrypts s. It returns ErrIntegrity if the ciphertext was altered
	// or does not belong to s's type, id, version and compartment.
	Open(ctx context.Context, tx StoreTx, s *SealedResource) (*Resource, error)
	// Tokens returns the blind-index tokens of values, in the same order.
	Tokens(ctx context.Context, tx StoreTx, values []IndexValue) ([]Token, error)
}

// KeyVersionsOf returns the versions of key base among ks (see
// [KeyVersionID]), oldest first, as [StoreTx.KeyVersions] returns them. It
// leaves out every other id, including malformed versions of base, and
// returns an empty slice, not nil, if none is left.
func KeyVersionsOf(base string, ks []*WrappedKey) []*WrappedKey {
	type kv struct {
		k *WrappedKey
		n int
	}
	var vs []kv
	for _, k := range ks {
		if b, n, ok := ParseKeyVersionID(k.ID); ok && b == base {
			vs = append(vs, kv{k, n})
		}
	}
	slices.SortFunc(vs, func(a, b kv) int { return a.n - b.n })
	out := make([]*WrappedKey, len(vs))
	for i, v := range vs {
		out[i] = v.k
	}
	return out
}
