package vaulttest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/keyring"
)

// prebinding holds a key file and wraps made by phivault before wraps were
// bound to key names (testdata/make_prebinding.go says how).
//
//go:embed testdata/prebinding-keyring.age testdata/prebinding.json
var prebinding embed.FS

// PreBinding is a key file as phivault wrote it before wraps were bound to
// key names: one KEK version, file:1, which accepts unbound (format-1)
// wraps, opened under Passphrase.
type PreBinding struct {
	Path  string             // the key file, keyring.age in the test's folder
	Keys  *keyring.Reloading // opened from Path
	KEKID phivault.KeyID     // file:1
	// Wraps are unbound wraps that version made, of DEKs for the key ids
	// "patient/a", "patient/b", "shared" and "index".
	Wraps []PreBindingWrap

	kek cipher.AEAD
}

// PreBindingWrap is an unbound wrap that phivault made before binding.
type PreBindingWrap struct {
	Name         string // the key id it was made for
	DEK, Wrapped []byte
}

// PreBindingKeyring copies the pre-binding key file to keyring.age in dir
// and opens it as a reloading keyring.
func PreBindingKeyring(tb testing.TB, dir string) *PreBinding {
	tb.Helper()
	data, err := prebinding.ReadFile("testdata/prebinding-keyring.age")
	if err != nil {
		tb.Fatal(err)
	}
	p := &PreBinding{Path: filepath.Join(dir, "keyring.age")}
	if err := os.WriteFile(p.Path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if p.Keys, err = keyring.OpenReloading(p.Path, []byte(Passphrase), KeyringOptions()); err != nil {
		tb.Fatal(err)
	}
	var v struct {
		KEKID string `json:"kek_id"`
		KEK   string `json:"kek"`
		Wraps []struct {
			Name, DEK, Wrapped string
		} `json:"wraps"`
	}
	data, err = prebinding.ReadFile("testdata/prebinding.json")
	if err == nil {
		err = json.Unmarshal(data, &v)
	}
	if err != nil {
		tb.Fatal(err)
	}
	p.KEKID = phivault.KeyID(v.KEKID)
	kek, err := hex.DecodeString(v.KEK)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		tb.Fatal(err)
	}
	if p.kek, err = cipher.NewGCM(block); err != nil {
		tb.Fatal(err)
	}
	for _, w := range v.Wraps {
		dek, err1 := hex.DecodeString(w.DEK)
		wrapped, err2 := hex.DecodeString(w.Wrapped)
		if err1 != nil || err2 != nil {
			tb.Fatal(err1, err2)
		}
		p.Wraps = append(p.Wraps, PreBindingWrap{Name: w.Name, DEK: dek, Wrapped: wrapped})
	}
	return p
}

// WrapUnbound wraps dek under KEK file:1 the way phivault did before
// binding (format 1: AES-256-GCM, additional data "phivault dek v1" 0x00
// "file:1"), as an old backup of the store holds it.
func (p *PreBinding) WrapUnbound(dek []byte) []byte {
	nonce := make([]byte, p.kek.NonceSize())
	rand.Read(nonce)
	return p.kek.Seal(nonce, nonce, dek, append([]byte("phivault dek v1\x00"), p.KEKID...))
}

// Refuser returns keys as an envelope.UnboundRefuser that refuses unbound
// wraps in its key file with Passphrase, as the server does.
func Refuser(keys *keyring.Reloading) envelope.UnboundRefuser {
	return fileRefuser{keys}
}

type fileRefuser struct{ *keyring.Reloading }

func (f fileRefuser) RefuseUnbound(_ context.Context, ids []phivault.KeyID) error {
	return f.Reloading.RefuseUnbound([]byte(Passphrase), ids)
}
