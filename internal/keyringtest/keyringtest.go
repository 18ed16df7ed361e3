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
	t.Run("WrapUnwrap/OK", func(t *testing.T) {
		k := open(t)
		dek := newDEK()
		id, wrapped, err := k.WrapKey(ctx, dek)
		if err != nil {
			t.Fatalf("WrapKey = %v", err)
		}
		if id == "" {
			t.Fatal("WrapKey returned an empty KeyID")
		}
		if bytes.Contains(wrapped, dek) {
			t.Fatal("wrapped key contains the DEK in the clear")
		}
		got, err := k.UnwrapKey(ctx, id, wrapped)
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
		_, w1, err1 := k.WrapKey(ctx, dek)
		_, w2, err2 := k.WrapKey(ctx, dek)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if bytes.Equal(w1, w2) {
			t.Error("wrapping the same DEK twice gave the same bytes: wrapping must be randomized")
		}
	})
	t.Run("UnwrapKey/ErrTampered", func(t *testing.T) {
		k := open(t)
		id, wrapped, err := k.WrapKey(ctx, newDEK())
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, len(wrapped) / 2, len(wrapped) - 1} {
			bad := bytes.Clone(wrapped)
			bad[i] ^= 0x80
			if got, err := k.UnwrapKey(ctx, id, bad); err == nil {
				t.Errorf("UnwrapKey with byte %d flipped = %x, want an error", i, got)
			}
		}
		if _, err := k.UnwrapKey(ctx, id, wrapped[:len(wrapped)-1]); err == nil {
			t.Error("UnwrapKey of a truncated key succeeded")
		}
		if _, err := k.UnwrapKey(ctx, id, nil); err == nil {
			t.Error("UnwrapKey of nothing succeeded")
		}
	})
	t.Run("UnwrapKey/ErrUnknownKEK", func(t *testing.T) {
		k := open(t)
		_, wrapped, err := k.WrapKey(ctx, newDEK())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.UnwrapKey(ctx, "no-such-kek", wrapped); err == nil {
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
					id, wrapped, err := k.WrapKey(ctx, dek)
					if err != nil {
						t.Error(err)
						return
					}
					got, err := k.UnwrapKey(ctx, id, wrapped)
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
