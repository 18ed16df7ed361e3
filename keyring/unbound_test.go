package keyring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/keyring"
)

// unboundRefusedAt returns the unbound_refused time the key file at path
// records for each KEK version.
func unboundRefusedAt(tb testing.TB, path string) map[phivault.KeyID]*time.Time {
	tb.Helper()
	plain, err := keyring.PlaintextForTest(path, testPassphrase)
	if err != nil {
		tb.Fatal(err)
	}
	var kf struct {
		KEKs []struct {
			ID             phivault.KeyID `json:"id"`
			UnboundRefused *time.Time     `json:"unbound_refused"`
		} `json:"keks"`
	}
	if err := json.Unmarshal(plain, &kf); err != nil {
		tb.Fatal(err)
	}
	out := make(map[phivault.KeyID]*time.Time)
	for _, k := range kf.KEKs {
		out[k.ID] = k.UnboundRefused
	}
	return out
}

// TestRefuseUnboundFile opens a key file written before wraps were bound,
// checks that the unbound wraps that version made still unwrap, and that
// once RefuseUnboundFile has recorded it in the key file they never do
// again, in this process or any that opens the file.
func TestRefuseUnboundFile(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	opts := testOptions
	opts.Now = func() time.Time { return at }
	t.Run("OK", func(t *testing.T) {
		p := vaulttest.PreBindingKeyring(t, t.TempDir())
		if len(p.Wraps) == 0 {
			t.Fatal("no pre-binding wraps")
		}
		for _, w := range p.Wraps {
			if got, err := p.Keys.UnwrapKey(ctx, p.KEKID, "", w.Wrapped); err != nil || !bytes.Equal(got, w.DEK) {
				t.Fatalf("UnwrapKey(%s, unbound, made before binding) = %v, want its DEK", w.Name, err)
			}
		}
		// A version added now refuses them from the start; the old one
		// accepts them until refused.
		id2, err := keyring.RotateFile(p.Path, testPassphrase, opts)
		if err != nil {
			t.Fatal(err)
		}
		k := mustOpenRefuser(t, p.Path)
		if got, _ := k.AcceptsUnbound(ctx); len(got) != 1 || got[0] != p.KEKID {
			t.Errorf("AcceptsUnbound after rotation = %v, want [%s]", got, p.KEKID)
		}
		if _, err := k.UnwrapKey(ctx, id2, "", keyring.WrapUnboundForTest(k.Keyring(), id2, p.Wraps[0].DEK)); !errors.Is(err, keyring.ErrUnwrap) {
			t.Errorf("UnwrapKey(%s, unbound) = %v, want ErrUnwrap", id2, err)
		}
		if got := unboundRefusedAt(t, p.Path); got[p.KEKID] != nil || got[id2] == nil || !got[id2].Equal(at) {
			t.Errorf("key file records unbound_refused %v, want none for %s and %v for %s", got, p.KEKID, at, id2)
		}

		if err := keyring.RefuseUnboundFile(p.Path, testPassphrase, []phivault.KeyID{p.KEKID, "file:9"}, opts); err != nil {
			t.Fatalf("RefuseUnboundFile = %v", err)
		}
		if fi, err := os.Stat(p.Path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key file after RefuseUnboundFile: %v, %v", fi, err)
		}
		k2 := mustOpenRefuser(t, p.Path)
		if got, _ := k2.AcceptsUnbound(ctx); len(got) != 0 {
			t.Errorf("AcceptsUnbound after RefuseUnboundFile = %v, want none", got)
		}
		for _, w := range p.Wraps {
			if got, err := k2.UnwrapKey(ctx, p.KEKID, "", w.Wrapped); !errors.Is(err, keyring.ErrUnwrap) || got != nil {
				t.Errorf("UnwrapKey(%s, unbound) after RefuseUnboundFile = %x, %v; want ErrUnwrap", w.Name, got, err)
			}
		}
		if !bytes.Equal(keyring.KEKForTest(k.Keyring(), p.KEKID), keyring.KEKForTest(k2.Keyring(), p.KEKID)) {
			t.Error("RefuseUnboundFile changed the KEK")
		}
		// A later refusal keeps the first time.
		later := opts
		later.Now = func() time.Time { return at.Add(time.Hour) }
		if err := keyring.RefuseUnboundFile(p.Path, testPassphrase, []phivault.KeyID{p.KEKID}, later); err != nil {
			t.Fatal(err)
		}
		if got := unboundRefusedAt(t, p.Path)[p.KEKID]; got == nil || !got.Equal(at) {
			t.Errorf("unbound_refused of %s = %v, want %v", p.KEKID, got, at)
		}
	})
	t.Run("Reloading", func(t *testing.T) {
		p := vaulttest.PreBindingKeyring(t, t.TempDir())
		if err := p.Keys.RefuseUnbound(testPassphrase, []phivault.KeyID{p.KEKID}); err != nil {
			t.Fatalf("RefuseUnbound = %v", err)
		}
		// The keyring in use refuses them at once.
		if _, err := p.Keys.UnwrapKey(ctx, p.KEKID, "", p.Wraps[0].Wrapped); !errors.Is(err, keyring.ErrUnwrap) {
			t.Errorf("UnwrapKey(unbound) after RefuseUnbound = %v, want ErrUnwrap", err)
		}
		// Refusing again leaves the file alone.
		before, _ := os.ReadFile(p.Path)
		if err := p.Keys.RefuseUnbound(testPassphrase, []phivault.KeyID{p.KEKID}); err != nil {
			t.Fatal(err)
		}
		if after, _ := os.ReadFile(p.Path); !bytes.Equal(before, after) {
			t.Error("a second RefuseUnbound rewrote the key file")
		}
	})
	t.Run("ErrWrongPassphrase", func(t *testing.T) {
		p := vaulttest.PreBindingKeyring(t, t.TempDir())
		before, _ := os.ReadFile(p.Path)
		err := keyring.RefuseUnboundFile(p.Path, []byte("not the passphrase"), []phivault.KeyID{p.KEKID}, opts)
		if !errors.Is(err, keyring.ErrWrongPassphrase) {
			t.Fatalf("RefuseUnboundFile(wrong passphrase) = %v, want ErrWrongPassphrase", err)
		}
		if after, _ := os.ReadFile(p.Path); !bytes.Equal(before, after) {
			t.Error("key file changed")
		}
	})
	t.Run("CreateFile", func(t *testing.T) {
		path := MustCreate(t)
		if got := unboundRefusedAt(t, path)["file:1"]; got == nil {
			t.Error("a new key file's KEK does not record that it refuses unbound wraps")
		}
	})
}

// TestPKCS11_RefuseUnbound checks that a refusal made by one keyring holds
// for another keyring that had the token open before (another node), and
// that a KEK made by Rotate refuses unbound wraps.
func TestPKCS11_RefuseUnbound(t *testing.T) {
	ctx := context.Background()
	cfg := softHSMConfig(t)
	id := MustGeneratePKCS11Key(t, cfg)
	k1 := MustOpenPKCS11(t, cfg)
	if err := keyring.PKCS11AcceptUnboundForTest(ctx, k1, id); err != nil {
		t.Fatal(err)
	}
	k2 := MustOpenPKCS11(t, cfg)
	dek := newDEK(t)
	wrapped, err := keyring.PKCS11WrapUnboundForTest(ctx, k1, id, dek)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.UnwrapKey(ctx, id, "", wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("UnwrapKey(unbound) before RefuseUnbound = %v", err)
	}
	if err := k1.RefuseUnbound(ctx, []phivault.KeyID{id}); err != nil {
		t.Fatal(err)
	}
	if got, err := k2.UnwrapKey(ctx, id, "", wrapped); !errors.Is(err, keyring.ErrUnwrap) || got != nil {
		t.Errorf("UnwrapKey(unbound) in the other keyring = %x, %v; want ErrUnwrap", got, err)
	}
	id2, err := k1.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := k1.AcceptsUnbound(ctx); len(ids) != 0 {
		t.Errorf("AcceptsUnbound after Rotate = %v, want none", ids)
	}
	w2, err := keyring.PKCS11WrapUnboundForTest(ctx, k1, id2, dek)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k1.UnwrapKey(ctx, id2, "", w2); !errors.Is(err, keyring.ErrUnwrap) {
		t.Errorf("UnwrapKey(%s, unbound) = %v, want ErrUnwrap", id2, err)
	}
}

// TestKMS_RefuseUnbound checks that a tag set by one keyring holds for
// another that was in use before (another node), and that unbound wraps
// are refused while the keyring cannot read the key's tags.
func TestKMS_RefuseUnbound(t *testing.T) {
	ctx := context.Background()
	_, client, _, arn := MustOpenKMS(t)
	id := phivault.KeyID(keyring.KMSKeyIDPrefix + arn)
	k1, k2 := keyring.NewKMS(client, arn), keyring.NewKMS(client, arn)
	dek := newDEK(t)
	wrapped := mustWrapUnboundKMS(t, client, id, dek)
	if got, err := k2.UnwrapKey(ctx, id, "", wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("UnwrapKey(unbound) before RefuseUnbound = %v", err)
	}
	blind := keyring.NewKMS(noTags{client}, arn)
	if got, err := blind.UnwrapKey(ctx, id, "", wrapped); err == nil || got != nil {
		t.Errorf("UnwrapKey(unbound) without the key's tags = %x, %v; want an error", got, err)
	}
	if err := k1.RefuseUnbound(ctx, []phivault.KeyID{id}); err != nil {
		t.Fatal(err)
	}
	out, err := client.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: &arn})
	if err != nil || len(out.Tags) != 1 || *out.Tags[0].TagKey != keyring.UnboundTag {
		t.Errorf("tags of the key = %v, %v; want %s", out, err, keyring.UnboundTag)
	}
	if got, err := k2.UnwrapKey(ctx, id, "", wrapped); !errors.Is(err, keyring.ErrUnwrap) || got != nil {
		t.Errorf("UnwrapKey(unbound) in the other keyring = %x, %v; want ErrUnwrap", got, err)
	}
}

// noTags is a KMS client that may not read tags.
type noTags struct{ *kms.Client }

func (noTags) ListResourceTags(context.Context, *kms.ListResourceTagsInput, ...func(*kms.Options)) (*kms.ListResourceTagsOutput, error) {
	return nil, errors.New("AccessDeniedException: not allowed")
}
