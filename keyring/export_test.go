package keyring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"io"
	"strings"

	"github.com/miekg/pkcs11"

	"github.com/phivault/phivault"
)

// KEKForTest returns a copy of KEK id, so tests can check that it never
// appears where it must not. Only tests can reach it.
func KEKForTest(k *FileKeyring, id phivault.KeyID) []byte {
	if c := k.keks[id]; c != nil {
		return bytes.Clone(c.key)
	}
	return nil
}

// PlaintextForTest returns the decrypted JSON of the key file at path, so
// tests can check what it records.
func PlaintextForTest(path string, passphrase []byte) ([]byte, error) {
	kf, err := readFile(path, passphrase, MaxWorkFactor)
	if err != nil {
		return nil, err
	}
	return json.Marshal(kf)
}

// FileKeyringForTest returns a file keyring holding the single KEK id with
// the given key bytes, drawing wrapping nonces from rand, so known-answer
// tests can check wraps byte for byte.
func FileKeyringForTest(id phivault.KeyID, key []byte, rand io.Reader) (*FileKeyring, error) {
	return newFileKeyring(&keyFile{Format: fileFormat, Version: fileVersion, Current: id,
		KEKs: []fileKEK{{ID: id, Key: key}}}, rand)
}

// WrapUnboundForTest makes an unbound (format-1) wrap of dek under KEK id
// of k, as FileKeyring.WrapKey made them before wraps were bound.
func WrapUnboundForTest(k *FileKeyring, id phivault.KeyID, dek []byte) []byte {
	block, err := aes.NewCipher(k.keks[id].key)
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	nonce := make([]byte, wrapNonceSize)
	rand.Read(nonce)
	return gcm.Seal(nonce, nonce, dek, wrapAD(id, ""))
}

// PKCS11WrapUnboundForTest makes an unbound (format-1) wrap of dek under
// KEK id in k's token, as PKCS11.WrapKey made them before wraps were bound.
func PKCS11WrapUnboundForTest(ctx context.Context, k *PKCS11, id phivault.KeyID, dek []byte) ([]byte, error) {
	k.mu.RLock()
	c := k.keks[id]
	k.mu.RUnlock()
	return k.wrap(ctx, c, "", dek)
}

// PKCS11AcceptUnboundForTest sets the CKA_ID of KEK id in k's token to its
// label, as GeneratePKCS11Key made KEKs before wraps were bound, so that it
// accepts unbound wraps, and reloads k.
func PKCS11AcceptUnboundForTest(ctx context.Context, k *PKCS11, id phivault.KeyID) error {
	return k.withSession(ctx, true, func(s *pkcs11Session) error {
		k.mu.RLock()
		c := k.keks[id]
		k.mu.RUnlock()
		label := strings.TrimPrefix(string(id), pkcs11IDPrefix)
		if err := s.mod.ctx.SetAttributeValue(s.sh, c.handle, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(label))}); err != nil {
			return err
		}
		return k.reload(s)
	})
}
