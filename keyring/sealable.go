package keyring

import (
	"context"
	"sync"

	"github.com/phivault/phivault"
)

// ErrSealed is returned by a sealed [Sealable] keyring: no key can be
// wrapped or unwrapped, so no record can be read or written.
var ErrSealed = &phivault.Error{Code: phivault.EUNAVAILABLE, Message: "The vault is sealed: no records can be read or written until it is unsealed."}

// Sealable is a phivault.Keyring over an inner keyring that may be absent:
// while it is sealed, WrapKey and UnwrapKey return ErrSealed. A server
// starts with a sealed Sealable when its keyring is unavailable (no
// passphrase, an unreachable KMS or HSM), unseals it once an operator
// supplies the keyring, and seals it again on command.
//
// Seal waits for the inner keyring's calls in flight to return, so once it
// returns nothing uses the dropped keyring any more and it may be closed.
// It is safe for concurrent use by multiple goroutines.
type Sealable struct {
	mu     sync.RWMutex
	inner  phivault.Keyring // nil while sealed
	onSeal []func()
}

var _ phivault.Keyring = (*Sealable)(nil)

// NewSealable returns a Sealable over inner; a nil inner means sealed.
func NewSealable(inner phivault.Keyring) *Sealable {
	return &Sealable{inner: inner}
}

// OnSeal registers fn to run on every Seal after the inner keyring is
// dropped, e.g. to purge a cache of unwrapped keys. fn runs with the
// Sealable locked: it must not call the Sealable.
func (s *Sealable) OnSeal(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onSeal = append(s.onSeal, fn)
}

// Unseal serves keys from k from now on, replacing any keyring served
// before. It panics if k is nil.
func (s *Sealable) Unseal(k phivault.Keyring) {
	if k == nil {
		panic("keyring: Unseal with a nil keyring")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inner = k
}

// Seal drops the inner keyring, runs the OnSeal hooks, and returns the
// dropped keyring (nil if it was sealed already) so the caller can close
// it. Calls in flight finish first; every later call returns ErrSealed.
func (s *Sealable) Seal() phivault.Keyring {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.inner
	s.inner = nil
	for _, fn := range s.onSeal {
		fn()
	}
	return k
}

// Sealed reports whether the keyring is sealed.
func (s *Sealable) Sealed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.inner == nil
}

// Keyring returns the inner keyring, or nil while sealed.
func (s *Sealable) Keyring() phivault.Keyring {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.inner
}

// WrapKey wraps dek with the inner keyring, or returns ErrSealed.
func (s *Sealable) WrapKey(ctx context.Context, name string, dek []byte) (phivault.KeyID, []byte, error) {
	// The read lock is held through the call so that Seal waits for it.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return "", nil, ErrSealed
	}
	return s.inner.WrapKey(ctx, name, dek)
}

// UnwrapKey unwraps with the inner keyring, or returns ErrSealed.
func (s *Sealable) UnwrapKey(ctx context.Context, id phivault.KeyID, name string, wrapped []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return nil, ErrSealed
	}
	return s.inner.UnwrapKey(ctx, id, name, wrapped)
}

// String describes the keyring without key material.
func (s *Sealable) String() string {
	if s.Sealed() {
		return "Sealable{sealed}"
	}
	return "Sealable{unsealed}"
}
