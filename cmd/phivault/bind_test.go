package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/sqlite"
)

// TestKeyManager_BindsUnboundKeysAtStart opens a data folder as an earlier
// version left it, with keys wrapped in format 1 (bound to the KEK only),
// and checks that what the server runs at start or unseal
// (resumeIfNeeded) rewraps every one bound to its id, under the same KEK
// and with the same DEK, and that nothing is left to do afterwards.
func TestKeyManager_BindsUnboundKeysAtStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pass := []byte(vaulttest.Passphrase)
	// Only a key file from before binding accepts format-1 wraps.
	p := vaulttest.PreBindingKeyring(t, dir)
	keys := p.Keys
	db, err := sqlite.Open(ctx, filepath.Join(dir, "phivault.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 5
	deks := map[string][]byte{}
	err = db.Update(ctx, func(tx phivault.StoreTx) error {
		for i := range n {
			id := fmt.Sprintf("patient/p%d", i)
			dek := make([]byte, 32)
			rand.Read(dek)
			deks[id] = dek
			if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: id, KEKID: p.KEKID, Wrapped: p.WrapUnbound(dek), Created: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	m := &keyManager{keys: &fileRotator{keys: keys, pass: pass}, store: db, logger: slog.New(slog.DiscardHandler), ctx: ctx, now: time.Now}
	if n, err := m.pending(ctx); err != nil || n == 0 {
		t.Fatalf("pending = %d, %v; want unbound keys counted", n, err)
	}
	if err := m.resumeIfNeeded(ctx); err != nil {
		t.Fatal(err)
	}
	m.Wait()
	if m.rewrap.Error != "" || m.rewrap.Done != n {
		t.Fatalf("rewrap status = %+v, want %d keys done", m.rewrap, n)
	}
	err = db.View(ctx, func(tx phivault.StoreTx) error {
		ks, err := tx.Keys(ctx, phivault.KeyFilter{})
		if err != nil {
			return err
		}
		for _, k := range ks {
			dek, err := keys.UnwrapKey(ctx, k.KEKID, k.ID, k.Wrapped)
			if !k.Bound || k.KEKID != "file:1" || err != nil || !bytes.Equal(dek, deks[k.ID]) {
				t.Errorf("%s after start: bound %v, kek %s, unwrap %v; want bound under file:1 with the same DEK", k.ID, k.Bound, k.KEKID, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.pending(ctx); err != nil || n != 0 {
		t.Errorf("pending after binding = %d, %v; want 0", n, err)
	}
}
