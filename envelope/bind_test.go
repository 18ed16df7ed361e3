package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/vaulttest"
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
// same KEK, without changing the DEKs; a second run has nothing to do.
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
		return nil
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
		if len(ks) != n {
			return fmt.Errorf("%d keys after Rewrap, want %d", len(ks), n)
		}
		for _, k := range ks {
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
