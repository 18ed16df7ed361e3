package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/sqlite"
)

// TestSealer_MovedWrappedKey copies one patient's wrapped DEK over
// another's key row, as someone who can write the database but holds no
// KEK would, to make the server use the first patient's key for the
// second (a copy that outlives a shred of the first). The wrap is bound to
// its key id, so the keyring refuses to unwrap it under the other id: the
// second patient's records neither open nor get sealed under the moved key.
func TestSealer_MovedWrappedKey(t *testing.T) {
	ctx := context.Background()
	f := newRewrapFixture(t, 2)
	a, b := "patient/p00000", "patient/p00001"
	var ka, kb *phivault.WrappedKey
	var srB *phivault.SealedResource
	if err := f.db.View(ctx, func(tx phivault.StoreTx) (err error) {
		if ka, err = tx.Key(ctx, a); err != nil {
			return err
		}
		if kb, err = tx.Key(ctx, b); err != nil {
			return err
		}
		srB, err = tx.Version(ctx, "Patient", "p00001", 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !ka.Bound || !kb.Bound {
		t.Fatalf("new keys stored unbound: %v, %v", ka.Bound, kb.Bound)
	}
	moved := &phivault.WrappedKey{ID: b, KEKID: ka.KEKID, Wrapped: ka.Wrapped, Created: kb.Created, Bound: true}
	if err := f.db.Update(ctx, func(tx phivault.StoreTx) error { return tx.ReplaceKey(ctx, kb, moved) }); err != nil {
		t.Fatal(err)
	}

	fresh := envelope.New(f.keys, envelope.Options{CacheSize: -1})
	err := f.db.Update(ctx, func(tx phivault.StoreTx) error {
		_, err := fresh.Seal(ctx, tx, &phivault.Resource{Type: "Observation", ID: "o1", Version: 1, LastUpdated: t0,
			Compartment: "p00001", Body: []byte(`{"resourceType":"Observation"}`)})
		return err
	})
	if phivault.ErrorCode(err) != phivault.EINTEGRITY {
		t.Errorf("Seal into the compartment whose key row holds another key's wrap = %v, want an integrity error", err)
	}
	err = f.db.View(ctx, func(tx phivault.StoreTx) error {
		_, err := fresh.Open(ctx, tx, srB)
		return err
	})
	if phivault.ErrorCode(err) != phivault.EINTEGRITY {
		t.Errorf("Open under a moved wrapped key = %v, want an integrity error", err)
	}
	// The wrap still opens where it belongs.
	err = f.db.View(ctx, func(tx phivault.StoreTx) error {
		sr, err := tx.Version(ctx, "Patient", "p00000", 1)
		if err != nil {
			return err
		}
		_, err = fresh.Open(ctx, tx, sr)
		return err
	})
	if err != nil {
		t.Errorf("Open of the first patient = %v", err)
	}
}

// TestRewrap_BindsUnboundKeys stores keys as phivault stored them before
// wraps were bound to key ids (Bound false, format-1 wraps), checks that
// they still seal and open, and that Rewrap rewraps them bound, under the
// same KEK, without changing the DEKs, and leaves a forged unbound row as
// it is; a second run has nothing to do.
func TestRewrap_BindsUnboundKeys(t *testing.T) {
	ctx := context.Background()
	db, _ := vaulttest.SQLite(t, t.TempDir())
	keys := &fakeKeyring{}
	s := envelope.New(keys, envelope.Options{})
	const n = 7
	deks := map[string][]byte{}
	var sealed []*phivault.SealedResource
	err := db.Update(ctx, func(tx phivault.StoreTx) error {
		for i := range n {
			id := fmt.Sprintf("patient/p%d", i)
			dek := make([]byte, envelope.KeySize)
			rand.Read(dek)
			deks[id] = dek
			if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: id, KEKID: fakeKEK, Wrapped: fakeWrap(dek), Created: t0}); err != nil {
				return err
			}
			sr, err := s.Seal(ctx, tx, testResource(fmt.Sprintf("p%d", i)))
			if err != nil {
				return fmt.Errorf("seal under an unbound key: %w", err)
			}
			if sr.KeyID != id {
				return fmt.Errorf("sealed under %s, want the stored %s", sr.KeyID, id)
			}
			sealed = append(sealed, sr)
		}
		_, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: "patient/forged", KEKID: fakeKEK, Wrapped: []byte("not a wrap"), Created: t0})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	done, err := envelope.Rewrap(ctx, db, keys, envelope.RewrapOptions{Batch: 3})
	if err != nil || done != n {
		t.Fatalf("Rewrap = %d, %v; want %d", done, err, n)
	}
	err = db.View(ctx, func(tx phivault.StoreTx) error {
		ks, err := tx.Keys(ctx, phivault.KeyFilter{})
		if err != nil {
			return err
		}
		if len(ks) != n+1 {
			return fmt.Errorf("%d keys after Rewrap, want %d", len(ks), n+1)
		}
		for _, k := range ks {
			if k.ID == "patient/forged" {
				if k.Bound || string(k.Wrapped) != "not a wrap" {
					t.Errorf("forged key after Rewrap: bound %v, wrapped %q; want it left as it was", k.Bound, k.Wrapped)
				}
				continue
			}
			if !k.Bound || k.KEKID != fakeKEK || !bytes.Equal(k.Wrapped, fakeWrapFor(k.ID, deks[k.ID])) {
				t.Errorf("key %s after Rewrap: bound %v, kek %s, wrapped %q; want bound to its id, same KEK and DEK", k.ID, k.Bound, k.KEKID, k.Wrapped)
			}
		}
		fresh := envelope.New(keys, envelope.Options{CacheSize: -1})
		for _, sr := range sealed {
			if _, err := fresh.Open(ctx, tx, sr); err != nil {
				t.Errorf("Open(%s) after binding = %v", sr.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if done, err := envelope.Rewrap(ctx, db, keys, envelope.RewrapOptions{}); err != nil || done != 0 {
		t.Errorf("second Rewrap = %d, %v; want 0", done, err)
	}
	if done, err := envelope.Bind(ctx, db, keys, envelope.RewrapOptions{}); err != nil || done != 0 {
		t.Errorf("Bind after Rewrap = %d, %v; want 0", done, err)
	}
}

// TestEndUnbound stores keys as phivault stored them before wraps were
// bound, with a forged unbound row among them, and checks that EndUnbound
// binds the genuine ones without changing their DEKs, leaves the forged one
// as it is, and then has the keyring refuse unbound wraps; a second run
// has nothing to do. If the keyring fails meanwhile, it stops before the
// refusal, so that a later run can finish.
func TestEndUnbound(t *testing.T) {
	ctx := context.Background()
	const n = 5
	setUp := func(t *testing.T, keys *fakeKeyring) (*sqlite.DB, map[string][]byte, []*phivault.SealedResource) {
		t.Helper()
		db, _ := vaulttest.SQLite(t, t.TempDir())
		s := envelope.New(keys, envelope.Options{})
		deks := map[string][]byte{}
		var sealed []*phivault.SealedResource
		err := db.Update(ctx, func(tx phivault.StoreTx) error {
			for i := range n {
				id := fmt.Sprintf("patient/p%d", i)
				dek := make([]byte, envelope.KeySize)
				rand.Read(dek)
				deks[id] = dek
				if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: id, KEKID: fakeKEK, Wrapped: fakeWrap(dek), Created: t0}); err != nil {
					return err
				}
				sr, err := s.Seal(ctx, tx, testResource(fmt.Sprintf("p%d", i)))
				if err != nil {
					return err
				}
				sealed = append(sealed, sr)
			}
			_, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: "patient/forged", KEKID: fakeKEK, Wrapped: []byte("not a wrap"), Created: t0})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return db, deks, sealed
	}
	t.Run("OK", func(t *testing.T) {
		keys := &fakeKeyring{}
		db, deks, sealed := setUp(t, keys)
		done, err := envelope.EndUnbound(ctx, db, keys, envelope.RewrapOptions{Batch: 2})
		if err != nil || done != n {
			t.Fatalf("EndUnbound = %d, %v; want %d", done, err, n)
		}
		if ids, _ := keys.AcceptsUnbound(ctx); len(ids) != 0 {
			t.Errorf("keyring accepts unbound wraps under %v after EndUnbound", ids)
		}
		err = db.View(ctx, func(tx phivault.StoreTx) error {
			ks, err := tx.Keys(ctx, phivault.KeyFilter{})
			if err != nil {
				return err
			}
			for _, k := range ks {
				if k.ID == "patient/forged" {
					if k.Bound || string(k.Wrapped) != "not a wrap" {
						t.Errorf("forged key after EndUnbound: bound %v, wrapped %q; want it left as it was", k.Bound, k.Wrapped)
					}
					continue
				}
				if !k.Bound || !bytes.Equal(k.Wrapped, fakeWrapFor(k.ID, deks[k.ID])) {
					t.Errorf("key %s after EndUnbound: bound %v, wrapped %q; want bound to its id with the same DEK", k.ID, k.Bound, k.Wrapped)
				}
			}
			fresh := envelope.New(keys, envelope.Options{CacheSize: -1})
			for _, sr := range sealed {
				if _, err := fresh.Open(ctx, tx, sr); err != nil {
					t.Errorf("Open(%s) after EndUnbound = %v", sr.ID, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		refuses := keys.refuses
		if done, err := envelope.EndUnbound(ctx, db, keys, envelope.RewrapOptions{}); err != nil || done != 0 || keys.refuses != refuses {
			t.Errorf("second EndUnbound = %d, %v with %d more refusals; want 0, nil, none", done, err, keys.refuses-refuses)
		}
	})
	t.Run("ErrKeyringDown", func(t *testing.T) {
		keys := &fakeKeyring{}
		db, _, _ := setUp(t, keys)
		if _, err := envelope.EndUnbound(ctx, db, unwrapDown{keys}, envelope.RewrapOptions{}); !errors.Is(err, errKeyringDown) {
			t.Fatalf("EndUnbound with unwrapping down = %v, want errKeyringDown", err)
		}
		if ids, _ := keys.AcceptsUnbound(ctx); len(ids) != 1 {
			t.Errorf("keyring refuses unbound wraps after a failed EndUnbound; a later run could not bind what is left")
		}
		if done, err := envelope.EndUnbound(ctx, db, keys, envelope.RewrapOptions{}); err != nil || done != n {
			t.Errorf("EndUnbound again = %d, %v; want %d", done, err, n)
		}
	})
}

// unwrapDown is a fake keyring whose unwrapping is unavailable.
type unwrapDown struct{ *fakeKeyring }

func (unwrapDown) UnwrapKey(context.Context, phivault.KeyID, string, []byte) ([]byte, error) {
	return nil, errKeyringDown
}
