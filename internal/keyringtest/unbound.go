package keyringtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"slices"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
)

// UnboundBackend is what RunUnbound needs of a keyring's backend to make
// KEKs and unbound wraps the way phivault made them before wraps were bound
// to key names.
type UnboundBackend struct {
	// New returns a keyring whose current KEK the keyring made itself, as
	// init and rotation make them now; nil if the keyring makes none (KMS).
	New func(t *testing.T) envelope.UnboundRefuser
	// Old returns a keyring whose current KEK was made before wraps were
	// bound, so that it accepts unbound wraps until refused.
	Old func(t *testing.T) envelope.UnboundRefuser
	// WrapUnbound wraps dek under KEK id of k as an unbound (format 1)
	// wrap, by the backend's own means and not through k.
	WrapUnbound func(t *testing.T, k envelope.UnboundRefuser, id phivault.KeyID, dek []byte) []byte
	// Reopen returns a new keyring over the same KEKs as k, as another
	// process opens them.
	Reopen func(t *testing.T, k envelope.UnboundRefuser) envelope.UnboundRefuser
}

// RunUnbound tests that unbound (format-1) wraps, which someone who can
// write the store may copy into any key row from an old backup, unwrap
// only under a KEK that accepts them: never under a KEK made now, and under
// an older one only until RefuseUnbound, after which no keyring over that
// KEK accepts them.
func RunUnbound(t *testing.T, b UnboundBackend) {
	ctx := context.Background()
	newDEK := func() []byte {
		dek := make([]byte, 32)
		rand.Read(dek)
		return dek
	}
	const name = "patient/8a6f0c9e-3d1b-4c1e-9f4a-2b7d5e6c1a90"
	current := func(t *testing.T, k envelope.UnboundRefuser) phivault.KeyID {
		t.Helper()
		id, _, err := k.WrapKey(ctx, name, newDEK())
		if err != nil {
			t.Fatalf("WrapKey = %v", err)
		}
		return id
	}
	accepts := func(t *testing.T, k envelope.UnboundRefuser, id phivault.KeyID) bool {
		t.Helper()
		ids, err := k.AcceptsUnbound(ctx)
		if err != nil {
			t.Fatalf("AcceptsUnbound = %v", err)
		}
		return slices.Contains(ids, id)
	}
	refused := func(t *testing.T, k envelope.UnboundRefuser, id phivault.KeyID, wrapped []byte) {
		t.Helper()
		if got, err := k.UnwrapKey(ctx, id, "", wrapped); phivault.ErrorCode(err) != phivault.EINTEGRITY || got != nil {
			t.Errorf("UnwrapKey(%s, unbound) = %x, %v; want an integrity error", id, got, err)
		}
	}
	if b.New != nil {
		t.Run("Unbound/ErrNewKEK", func(t *testing.T) {
			k := b.New(t)
			id := current(t, k)
			if accepts(t, k, id) {
				t.Errorf("AcceptsUnbound lists %s, a KEK made since wraps are bound", id)
			}
			refused(t, k, id, b.WrapUnbound(t, k, id, newDEK()))
		})
	}
	t.Run("Unbound/OldKEK", func(t *testing.T) {
		k := b.Old(t)
		id := current(t, k)
		dek := newDEK()
		unbound := b.WrapUnbound(t, k, id, dek)
		if !accepts(t, k, id) {
			t.Fatalf("AcceptsUnbound leaves out %s, a KEK made before wraps were bound", id)
		}
		if got, err := k.UnwrapKey(ctx, id, "", unbound); err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("UnwrapKey(unbound) before RefuseUnbound = %v, want the DEK", err)
		}
		kid, bound, err := k.WrapKey(ctx, name, dek)
		if err != nil || kid != id {
			t.Fatalf("WrapKey = %s, %v", kid, err)
		}

		if err := k.RefuseUnbound(ctx, []phivault.KeyID{id}); err != nil {
			t.Fatalf("RefuseUnbound = %v", err)
		}
		if accepts(t, k, id) {
			t.Errorf("AcceptsUnbound lists %s after RefuseUnbound", id)
		}
		refused(t, k, id, unbound)
		refused(t, k, id, b.WrapUnbound(t, k, id, newDEK()))
		for _, bad := range [][]byte{nil, {1}, unbound[:len(unbound)/2]} {
			refused(t, k, id, bad)
		}
		if got, err := k.UnwrapKey(ctx, id, name, bound); err != nil || !bytes.Equal(got, dek) {
			t.Errorf("UnwrapKey(bound) after RefuseUnbound = %v, want the DEK", err)
		}
		// Again, and with ids the keyring does not hold: nothing changes.
		if err := k.RefuseUnbound(ctx, []phivault.KeyID{id, "no-such-kek"}); err != nil {
			t.Errorf("RefuseUnbound again = %v", err)
		}

		// The keyring, not this process, keeps the refusal.
		k2 := b.Reopen(t, k)
		if accepts(t, k2, id) {
			t.Errorf("reopened: AcceptsUnbound lists %s", id)
		}
		refused(t, k2, id, unbound)
		if got, err := k2.UnwrapKey(ctx, id, name, bound); err != nil || !bytes.Equal(got, dek) {
			t.Errorf("reopened: UnwrapKey(bound) = %v, want the DEK", err)
		}
	})
}
