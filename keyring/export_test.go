package keyring

import (
	"bytes"

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
