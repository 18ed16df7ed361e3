package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/keyring"
)

func TestPKCS11_Rotate(t *testing.T) {
	ctx := context.Background()
	cfg := softHSMConfig(t)
	v1 := MustGeneratePKCS11Key(t, cfg)
	k := MustOpenPKCS11(t, cfg)
	other := MustOpenPKCS11(t, cfg) // a keyring that learns of v2 by Reload

	// Keys wrapped under version 1 before the rotation.
	type wrappedDEK struct {
		dek, wrapped []byte
		kek          phivault.KeyID
	}
	var old []wrappedDEK
	for range 5 {
		dek := make([]byte, 32)
		rand.Read(dek)
		id, w, err := k.WrapKey(ctx, keyName, dek)
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, wrappedDEK{dek, w, id})
	}
	if old[0].kek != v1 {
		t.Fatalf("WrapKey before Rotate used %s, want %s", old[0].kek, v1)
	}

	// Wrap and unwrap on several goroutines while the keyring rotates.
	const workers, rounds = 4, 40
	var wg sync.WaitGroup
	started := make(chan struct{}, workers)
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for i := range rounds {
				if i == 1 {
					started <- struct{}{}
				}
				dek := make([]byte, 32)
				rand.Read(dek)
				id, w, err := k.WrapKey(ctx, keyName, dek)
				if err != nil {
					errs <- err
					return
				}
				got, err := k.UnwrapKey(ctx, id, keyName, w)
				if err != nil || !bytes.Equal(got, dek) {
					errs <- errors.Join(errors.New("unwrap during rotation"), err)
					return
				}
				o := old[i%len(old)]
				if got, err := k.UnwrapKey(ctx, o.kek, keyName, o.wrapped); err != nil || !bytes.Equal(got, o.dek) {
					errs <- errors.Join(errors.New("unwrap of a version-1 key during rotation"), err)
					return
				}
			}
		})
	}
	for range workers {
		<-started
	}
	v2, err := k.Rotate(ctx)
	if err != nil {
		t.Fatalf("Rotate = %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if want := phivault.KeyID("pkcs11:" + cfg.KEKPrefix + "2"); v2 != want {
		t.Fatalf("Rotate = %s, want %s", v2, want)
	}
	if k.Current() != v2 {
		t.Errorf("Current() after Rotate = %s, want %s", k.Current(), v2)
	}
	id, wrapped, err := k.WrapKey(ctx, keyName, make([]byte, 32))
	if err != nil || id != v2 {
		t.Fatalf("WrapKey after Rotate = %s, %v; want %s", id, err, v2)
	}
	for _, o := range old {
		if got, err := k.UnwrapKey(ctx, o.kek, keyName, o.wrapped); err != nil || !bytes.Equal(got, o.dek) {
			t.Fatalf("UnwrapKey of a version-1 key after Rotate = %v", err)
		}
	}
	vs := k.Versions()
	if len(vs) != 2 || vs[0].ID != v1 || vs[0].Current || vs[1].ID != v2 || !vs[1].Current {
		t.Errorf("Versions() = %+v, want %s and current %s", vs, v1, v2)
	}

	// Another keyring on the token sees version 2 after Reload.
	if _, err := other.UnwrapKey(ctx, v2, keyName, wrapped); !errors.Is(err, keyring.ErrUnknownKEK) {
		t.Errorf("UnwrapKey of a version-2 key before Reload = %v, want ErrUnknownKEK", err)
	}
	if err := other.Reload(ctx); err != nil {
		t.Fatalf("Reload = %v", err)
	}
	if other.Current() != v2 {
		t.Errorf("Current() after Reload = %s, want %s", other.Current(), v2)
	}
	if _, err := other.UnwrapKey(ctx, v2, keyName, wrapped); err != nil {
		t.Errorf("UnwrapKey of a version-2 key after Reload = %v", err)
	}

	// Retiring destroys version 1: its keys no longer unwrap, anywhere.
	if err := k.Retire(ctx, []phivault.KeyID{v2}); !errors.Is(err, keyring.ErrRetireCurrent) {
		t.Errorf("Retire(current) = %v, want ErrRetireCurrent", err)
	}
	if err := k.Retire(ctx, []phivault.KeyID{v1, "pkcs11:nonesuch-1"}); err != nil {
		t.Fatalf("Retire = %v", err)
	}
	if _, err := k.UnwrapKey(ctx, old[0].kek, keyName, old[0].wrapped); !errors.Is(err, keyring.ErrUnknownKEK) {
		t.Errorf("UnwrapKey of a version-1 key after Retire = %v, want ErrUnknownKEK", err)
	}
	if _, err := k.UnwrapKey(ctx, v2, keyName, wrapped); err != nil {
		t.Errorf("UnwrapKey of a version-2 key after Retire = %v", err)
	}
	fresh := MustOpenPKCS11(t, cfg)
	if ids := fresh.IDs(); len(ids) != 1 || ids[0] != v2 {
		t.Errorf("a keyring opened after Retire holds %v, want only %s", ids, v2)
	}
	if _, err := fresh.UnwrapKey(ctx, old[0].kek, keyName, old[0].wrapped); !errors.Is(err, keyring.ErrUnknownKEK) {
		t.Errorf("UnwrapKey of a version-1 key in a new keyring = %v, want ErrUnknownKEK", err)
	}
	// The next version after a retirement counts on from the newest.
	if v3, err := k.Rotate(ctx); err != nil || v3 != phivault.KeyID("pkcs11:"+cfg.KEKPrefix+"3") {
		t.Errorf("Rotate after Retire = %s, %v; want version 3", v3, err)
	}
}

func TestPKCS11_RotateClosed(t *testing.T) {
	cfg := softHSMConfig(t)
	MustGeneratePKCS11Key(t, cfg)
	k, err := keyring.OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	if _, err := k.Rotate(context.Background()); !errors.Is(err, keyring.ErrClosed) {
		t.Errorf("Rotate after Close = %v, want ErrClosed", err)
	}
}
