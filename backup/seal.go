package backup

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// chunkID returns the id of a chunk: HMAC-SHA256 of its data under the id
// key, hex. Equal data has equal ids only under the same key set.
func (k *KeySet) chunkID(data []byte) string {
	m := hmac.New(sha256.New, k.idKey)
	m.Write(data)
	return hex.EncodeToString(m.Sum(nil))
}

// seal encrypts data under the data key with a random nonce, binding it
// to ad (the object's kind and id), and returns nonce || ciphertext.
func (k *KeySet) seal(rand io.Reader, data []byte, ad string) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.dataKey)
	if err != nil {
		panic("backup: data key of the wrong length")
	}
	// XChaCha20's 192-bit nonces are safe to draw at random for every
	// object of a key set, however many there are.
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(data)+aead.Overhead())
	if _, err := io.ReadFull(rand, out); err != nil {
		return nil, fmt.Errorf("backup: nonce: %w", err)
	}
	return aead.Seal(out, out, data, []byte(ad)), nil
}

// open decrypts an object sealed by seal with the same ad. It returns
// ErrCorrupt if the object is cut short, changed, or sealed for another
// ad or under another key.
func (k *KeySet) open(obj []byte, ad string) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.dataKey)
	if err != nil {
		panic("backup: data key of the wrong length")
	}
	if len(obj) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	plain, err := aead.Open(nil, obj[:aead.NonceSize()], obj[aead.NonceSize():], []byte(ad))
	if err != nil {
		return nil, fmt.Errorf("%w: does not decrypt (changed, truncated or not of this backup)", ErrCorrupt)
	}
	return plain, nil
}
