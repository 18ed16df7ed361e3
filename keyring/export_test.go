package keyring

import (
	"bytes"
	"encoding/json"
	"io"

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
