package envelope_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/keyring"
)

// wantUnavailable fails unless err has code EUNAVAILABLE.
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
		t.Errorf("%s while sealed = %v, want code %s", what, err, phivault.EUNAVAILABLE)
	}
}

// TestSealer_ForgetAll seals the keyring under a warm Sealer: every cached
// key goes at once, the index key's bytes are zeroed, and nothing is
// decrypted, tokenized or sealed until the keyring is unsealed.
func TestSealer_ForgetAll(t *testing.T) {
	tx := newMemTx()
	keys := keyring.NewSealable(&fakeKeyring{})
	s := envelope.New(keys, envelope.Options{})
	keys.OnSeal(s.ForgetAll)

	family := phivault.IndexValue{Param: "Patient.family", Value: "smith"}
	srP := MustSeal(t, s, tx, testResource("p1"))
	srS := MustSeal(t, s, tx, testResource(""))
	want := MustTokens(t, s, tx, family)
	if n := envelope.CachedKeysForTest(s); n != 3 {
		t.Fatalf("%d keys cached, want 3 (patient, shared, index)", n)
	}
	indexKey := envelope.CachedIndexKeyForTest(s)
	if len(indexKey) != envelope.KeySize || bytes.Equal(indexKey, make([]byte, envelope.KeySize)) {
		t.Fatalf("cached index key = %x, want %d non-zero bytes", indexKey, envelope.KeySize)
	}

	keys.Seal()
	if n := envelope.CachedKeysForTest(s); n != 0 {
		t.Errorf("%d keys cached after Seal, want 0", n)
	}
	if !bytes.Equal(indexKey, make([]byte, envelope.KeySize)) {
		t.Errorf("index key bytes after Seal = %x, want zeroed", indexKey)
	}
	for _, sr := range []*phivault.SealedResource{srP, srS} {
		r, err := s.Open(ctx, tx, sr)
		wantUnavailable(t, "Open", err)
		if r != nil {
			t.Error("Open while sealed returned a resource")
		}
	}
	_, err := s.Tokens(ctx, tx, []phivault.IndexValue{family})
	wantUnavailable(t, "Tokens", err)
	_, err = s.Seal(ctx, tx, testResource("p1"))
	wantUnavailable(t, "Seal", err)
	_, err = s.Seal(ctx, tx, testResource("p2")) // a new compartment needs WrapKey
	wantUnavailable(t, "Seal (new compartment)", err)
	if n := envelope.CachedKeysForTest(s); n != 0 {
		t.Errorf("%d keys cached while sealed, want 0", n)
	}

	keys.Unseal(&fakeKeyring{})
	if r, err := s.Open(ctx, tx, srP); err != nil || !bytes.Equal(r.Body, testResource("p1").Body) {
		t.Fatalf("Open after Unseal = %v", err)
	}
	if got := MustTokens(t, s, tx, family); got[0] != want[0] {
		t.Error("tokens changed across seal and unseal")
	}
}

// purgingKeyring calls purge in the middle of every unwrap, as a Seal
// racing with a read would.
type purgingKeyring struct {
	fakeKeyring
	purge func()
}

func (k *purgingKeyring) UnwrapKey(ctx context.Context, id phivault.KeyID, name string, wrapped []byte) ([]byte, error) {
	dek, err := k.fakeKeyring.UnwrapKey(ctx, id, name, wrapped)
	k.purge()
	return dek, err
}

// TestSealer_ForgetAllDuringUnwrap checks that a key whose unwrapping began
// before ForgetAll is not cached, so a seal racing with a read leaves no key
// in memory.
func TestSealer_ForgetAllDuringUnwrap(t *testing.T) {
	tx := newMemTx()
	writer := envelope.New(&fakeKeyring{}, envelope.Options{})
	sr := MustSeal(t, writer, tx, testResource("p1"))
	MustTokens(t, writer, tx, phivault.IndexValue{Param: "Patient.family", Value: "x"})

	keys := &purgingKeyring{}
	s := envelope.New(keys, envelope.Options{})
	keys.purge = s.ForgetAll
	if _, err := s.Open(ctx, tx, sr); err != nil {
		t.Fatal(err)
	}
	MustTokens(t, s, tx, phivault.IndexValue{Param: "Patient.family", Value: "x"})
	if n := envelope.CachedKeysForTest(s); n != 0 {
		t.Errorf("%d keys cached although ForgetAll ran during their unwrapping, want 0", n)
	}
}
