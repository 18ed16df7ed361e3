// Package keyringtest is the conformance suite every phivault.Keyring
// passes: the file keyring, the KMS keyring and the PKCS#11 keyring run the
// same tests against their real backends.
package keyringtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync"
	"testing"

	"github.com/phivault/phivault"
)

// Run tests the keyring that open returns. open is called once per subtest.
func Run(t *testing.T, open func(t *testing.T) phivault.Keyring) {
	ctx := context.Background()
	// crypto/rand.Read never fails (it crashes the program instead), so
	// newDEK may run on any goroutine.
	newDEK := func() []byte {
		dek := make([]byte, 32)
		rand.Read(dek)
		return dek
	}
	// name is the DEK's id in the store, which every wrap is bound to.
	const name = "patient/8a6f0c9e-3d1b-4c1e-9f4a-2b7d5e6c1a90"
	t.Run("WrapUnwrap/OK", func(t *testing.T) {
		k := open(t)
		dek := newDEK()
		id, wrapped, err := k.WrapKey(ctx, name, dek)
		if err != nil {
			t.Fatalf("WrapKey = %v", err)
		}
		if id == "" {
			t.Fatal("WrapKey returned an empty KeyID")
		}
		if bytes.Contains(wrapped, dek) {
			t.Fatal("wrapped key contains the DEK in the clear")
		}
		got, err := k.UnwrapKey(ctx, id, name, wrapped)
		if err != nil {
			t.Fatalf("UnwrapKey = %v", err)
		}
		if !bytes.Equal(got, dek) {
			t.Fatal("UnwrapKey returned another key")
		}
	})
	t.Run("WrapKey/Randomized", func(t *testing.T) {
		k := open(t)
		dek := newDEK()
		_, w1, err1 := k.WrapKey(ctx, name, dek)
		_, w2, err2 := k.WrapKey(ctx, name, dek)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if bytes.Equal(w1, w2) {
			t.Error("wrapping the same DEK twice gave the same bytes: wrapping must be randomized")
		}
	})
	t.Run("UnwrapKey/ErrTampered", func(t *testing.T) {
		k := open(t)
		id, wrapped, err := k.WrapKey(ctx, name, newDEK())
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, len(wrapped) / 2, len(wrapped) - 1} {
			bad := bytes.Clone(wrapped)
			bad[i] ^= 0x80
			if got, err := k.UnwrapKey(ctx, id, name, bad); err == nil {
				t.Errorf("UnwrapKey with byte %d flipped = %x, want an error", i, got)
			}
		}
		if _, err := k.UnwrapKey(ctx, id, name, wrapped[:len(wrapped)-1]); err == nil {
			t.Error("UnwrapKey of a truncated key succeeded")
		}
		if _, err := k.UnwrapKey(ctx, id, name, nil); err == nil {
			t.Error("UnwrapKey of nothing succeeded")
		}
	})
	t.Run("UnwrapKey/ErrOtherName", func(t *testing.T) {
		// A wrapped DEK copied to another key's row does not unwrap there,
		// nor as an unbound wrap of an earlier version (name "").
		k := open(t)
		id, wrapped, err := k.WrapKey(ctx, name, newDEK())
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range []string{"patient/0d4c2a1b-5e6f-4a7b-8c9d-0e1f2a3b4c5d", name + "#2", "shared", "index", ""} {
			if got, err := k.UnwrapKey(ctx, id, other, wrapped); err == nil {
				t.Errorf("UnwrapKey of a key wrapped for %q under name %q = %x, want an error", name, other, got)
			}
		}
	})
	t.Run("WrapKey/ErrNoName", func(t *testing.T) {
		k := open(t)
		if _, _, err := k.WrapKey(ctx, "", newDEK()); err == nil {
			t.Error(`WrapKey with name "" succeeded; every new wrap must be bound to a name`)
		}
	})
	t.Run("UnwrapKey/ErrUnknownKEK", func(t *testing.T) {
		k := open(t)
		_, wrapped, err := k.WrapKey(ctx, name, newDEK())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.UnwrapKey(ctx, "no-such-kek", name, wrapped); err == nil {
			t.Error("UnwrapKey with an unknown KeyID succeeded")
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		k := open(t)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 10 {
					dek := newDEK()
					id, wrapped, err := k.WrapKey(ctx, name, dek)
					if err != nil {
						t.Error(err)
						return
					}
					got, err := k.UnwrapKey(ctx, id, name, wrapped)
					if err != nil || !bytes.Equal(got, dek) {
						t.Errorf("UnwrapKey = %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}
