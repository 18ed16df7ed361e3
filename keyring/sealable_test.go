package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/keyringtest"
	"github.com/phivault/phivault/keyring"
)

func TestSealable_Conformance(t *testing.T) {
	keyringtest.Run(t, func(t *testing.T) phivault.Keyring {
		k, _ := MustOpen(t)
		return keyring.NewSealable(k)
	})
}

// wantSealed fails t unless err is ErrSealed with code EUNAVAILABLE.
func wantSealed(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, keyring.ErrSealed) || phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
		t.Errorf("%s while sealed = %v, want ErrSealed (%s)", what, err, phivault.EUNAVAILABLE)
	}
}

func TestSealable(t *testing.T) {
	ctx := context.Background()
	inner, _ := MustOpen(t)
	dek := bytes.Repeat([]byte{7}, 32)
	kekID, wrapped, err := inner.WrapKey(ctx, keyName, dek)
	if err != nil {
		t.Fatal(err)
	}

	s := keyring.NewSealable(nil)
	if !s.Sealed() || s.Keyring() != nil {
		t.Fatal("NewSealable(nil) is not sealed")
	}
	_, _, err = s.WrapKey(ctx, keyName, dek)
	wantSealed(t, "WrapKey", err)
	got, err := s.UnwrapKey(ctx, kekID, keyName, wrapped)
	wantSealed(t, "UnwrapKey", err)
	if got != nil {
		t.Errorf("UnwrapKey while sealed returned a key")
	}

	var purged int
	s.OnSeal(func() { purged++ })
	s.Unseal(inner)
	if s.Sealed() {
		t.Fatal("Sealed after Unseal")
	}
	if got, err := s.UnwrapKey(ctx, kekID, keyName, wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("UnwrapKey after Unseal = %x, %v; want the DEK", got, err)
	}
	id2, wrapped2, err := s.WrapKey(ctx, keyName, dek)
	if err != nil {
		t.Fatal(err)
	}

	if k := s.Seal(); k != inner {
		t.Errorf("Seal returned %v, want the inner keyring", k)
	}
	if purged != 1 {
		t.Errorf("OnSeal hook ran %d times, want 1", purged)
	}
	if !s.Sealed() {
		t.Fatal("not Sealed after Seal")
	}
	_, err = s.UnwrapKey(ctx, id2, keyName, wrapped2)
	wantSealed(t, "UnwrapKey after Seal", err)
	if k := s.Seal(); k != nil {
		t.Errorf("second Seal returned %v, want nil", k)
	}
	if purged != 2 {
		t.Errorf("OnSeal hook ran %d times after two seals, want 2", purged)
	}

	// A key wrapped before sealing unwraps again after unsealing.
	s.Unseal(inner)
	if got, err := s.UnwrapKey(ctx, id2, keyName, wrapped2); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("UnwrapKey after re-Unseal = %x, %v; want the DEK", got, err)
	}
	if str := s.String(); str != "Sealable{unsealed}" {
		t.Errorf("String() = %q", str)
	}
}

func TestSealable_UnsealNil(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Unseal(nil) did not panic")
		}
	}()
	keyring.NewSealable(nil).Unseal(nil)
}

// TestSealable_Concurrent seals and unseals while other goroutines unwrap:
// every call either returns the right key or ErrSealed, never anything
// else (run with -race).
func TestSealable_Concurrent(t *testing.T) {
	ctx := context.Background()
	inner, _ := MustOpen(t)
	dek := bytes.Repeat([]byte{9}, 32)
	kekID, wrapped, err := inner.WrapKey(ctx, keyName, dek)
	if err != nil {
		t.Fatal(err)
	}
	s := keyring.NewSealable(inner)
	var (
		mu              sync.Mutex
		opened, refused int
		wg              sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for range 200 {
				got, err := s.UnwrapKey(ctx, kekID, keyName, wrapped)
				mu.Lock()
				switch {
				case err == nil && bytes.Equal(got, dek):
					opened++
				case errors.Is(err, keyring.ErrSealed) && got == nil:
					refused++
				default:
					t.Errorf("UnwrapKey = %x, %v; want the DEK or ErrSealed", got, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			s.Seal()
			s.Unseal(inner)
		}
	})
	wg.Wait()
	if opened+refused != 800 {
		t.Errorf("%d calls returned, want 800", opened+refused)
	}
}
