package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/keyringtest"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/sqlite"
)

// TestKeyManager_BindsUnboundKeysAtStart is the upgrade from unbound wraps.
// It opens a data folder as an earlier version left it: that version's key
// file, and keys wrapped in format 1 (bound to the KEK only), some by that
// version itself. It checks that they still unwrap, that what the server
// runs at start or unseal (resumeIfNeeded) rewraps every one bound to its
// id, under the same KEK and with the same DEK, and then records in the key
// file that the KEK refuses unbound wraps: an old wrap planted back into
// the store (as from a backup) no longer unwraps, in this process or the
// next. A second start has nothing to bind and leaves the key file alone.
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
	deks := map[string][]byte{}
	wraps := map[string][]byte{}
	for _, w := range p.Wraps {
		deks[w.Name], wraps[w.Name] = w.DEK, w.Wrapped
	}
	for i := range 5 {
		id := fmt.Sprintf("patient/p%d", i)
		dek := make([]byte, 32)
		rand.Read(dek)
		deks[id], wraps[id] = dek, p.WrapUnbound(dek)
	}
	err = db.Update(ctx, func(tx phivault.StoreTx) error {
		for id, w := range wraps {
			if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: id, KEKID: p.KEKID, Wrapped: w, Created: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, w := range wraps {
		if dek, err := keys.UnwrapKey(ctx, p.KEKID, "", w); err != nil || !bytes.Equal(dek, deks[id]) {
			t.Fatalf("%s before start: unwrap %v, want its DEK", id, err)
		}
	}

	m := &keyManager{keys: &fileRotator{keys: keys, pass: pass}, store: db, logger: slog.New(slog.DiscardHandler), ctx: ctx, now: time.Now}
	if n, err := m.pending(ctx); err != nil || n == 0 {
		t.Fatalf("pending = %d, %v; want unbound keys counted", n, err)
	}
	if err := m.resumeIfNeeded(ctx); err != nil {
		t.Fatal(err)
	}
	m.Wait()
	if m.rewrap.Error != "" || m.rewrap.Done != len(wraps) {
		t.Fatalf("rewrap status = %+v, want %d keys done", m.rewrap, len(wraps))
	}
	err = db.View(ctx, func(tx phivault.StoreTx) error {
		ks, err := tx.Keys(ctx, phivault.KeyFilter{})
		if err != nil {
			return err
		}
		for _, k := range ks {
			dek, err := keys.UnwrapKey(ctx, k.KEKID, k.ID, k.Wrapped)
			if !k.Bound || k.KEKID != p.KEKID || err != nil || !bytes.Equal(dek, deks[k.ID]) {
				t.Errorf("%s after start: bound %v, kek %s, unwrap %v; want bound under %s with the same DEK", k.ID, k.Bound, k.KEKID, err, p.KEKID)
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

	// The key file says the KEK refuses unbound wraps: the wrap of
	// patient/a kept from before, planted unbound over patient/b, opens
	// for no keyring over that file.
	reopened, err := keyring.OpenReloading(p.Path, pass, vaulttest.KeyringOptions())
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := reopened.AcceptsUnbound(ctx); len(ids) != 0 {
		t.Errorf("key file after start accepts unbound wraps under %v", ids)
	}
	for _, k := range []*keyring.Reloading{keys, reopened} {
		if dek, err := k.UnwrapKey(ctx, p.KEKID, "", wraps["patient/a"]); !errors.Is(err, keyring.ErrUnwrap) || dek != nil {
			t.Errorf("UnwrapKey(old unbound wrap) after start = %x, %v; want ErrUnwrap", dek, err)
		}
	}
	err = db.Update(ctx, func(tx phivault.StoreTx) error {
		b, err := tx.Key(ctx, "patient/b")
		if err != nil {
			return err
		}
		return tx.ReplaceKey(ctx, b, &phivault.WrappedKey{ID: b.ID, KEKID: p.KEKID, Wrapped: wraps["patient/a"], Created: b.Created})
	})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p.Path)
	m2 := &keyManager{keys: &fileRotator{keys: reopened, pass: pass}, store: db, logger: slog.New(slog.DiscardHandler), ctx: ctx, now: time.Now}
	if err := m2.resumeIfNeeded(ctx); err != nil {
		t.Fatal(err)
	}
	m2.Wait()
	if m2.rewrap.Error != "" || m2.rewrap.Done != 0 {
		t.Errorf("second start: rewrap status = %+v, want nothing done and no error", m2.rewrap)
	}
	if after, _ := os.ReadFile(p.Path); !bytes.Equal(before, after) {
		t.Error("second start rewrote the key file")
	}
}

// TestKeyManager_BindsUnboundKeysAtStart_KMS runs what the server runs at
// start with a KMS keyring (bindIfNeeded) over keys wrapped unbound under
// the configured KMS key, on local-kms: they are bound, and the key is
// tagged so that unbound wraps are refused under it from then on.
func TestKeyManager_BindsUnboundKeysAtStart_KMS(t *testing.T) {
	ctx := context.Background()
	srv := keyringtest.StartLocalKMS(t)
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDPHIVAULTTEST", SecretAccessKey: "test", Source: "test"}, nil
	})
	client := keyring.NewKMSClient(srv.Endpoint, keyringtest.KMSRegion, creds)
	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	kekID := phivault.KeyID(keyring.KMSKeyIDPrefix + arn)
	db, _ := vaulttest.SQLite(t, t.TempDir())
	dek := make([]byte, 32)
	rand.Read(dek)
	enc, err := client.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(arn), Plaintext: dek, EncryptionContext: map[string]string{"purpose": "phivault dek v1"}})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(tx phivault.StoreTx) error {
		_, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: "patient/a", KEKID: kekID, Wrapped: enc.CiphertextBlob, Created: time.Now()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := keyring.NewKMS(client, arn)
	m := &keyManager{keys: kmsRotator{keys}, store: db, logger: slog.New(slog.DiscardHandler), ctx: ctx, now: time.Now}
	if err := m.bindIfNeeded(ctx); err != nil {
		t.Fatal(err)
	}
	m.Wait()
	if m.rewrap.Error != "" || m.rewrap.Done != 1 {
		t.Fatalf("rewrap status = %+v, want 1 key done", m.rewrap)
	}
	err = db.View(ctx, func(tx phivault.StoreTx) error {
		k, err := tx.Key(ctx, "patient/a")
		if err != nil {
			return err
		}
		if got, err := keys.UnwrapKey(ctx, k.KEKID, k.ID, k.Wrapped); !k.Bound || err != nil || !bytes.Equal(got, dek) {
			t.Errorf("patient/a after start: bound %v, unwrap %v; want bound with the same DEK", k.Bound, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	other := keyring.NewKMS(client, arn) // another node
	if got, err := other.UnwrapKey(ctx, kekID, "", enc.CiphertextBlob); !errors.Is(err, keyring.ErrUnwrap) || got != nil {
		t.Errorf("UnwrapKey(old unbound wrap) after start = %x, %v; want ErrUnwrap", got, err)
	}
}
