package keyring

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/phivault/phivault"
)

// Labels of the two wrap formats. Each is the start of the additional data
// of an AES-GCM wrap (file, PKCS#11) and the purpose in a KMS encryption
// context.
const (
	// wrapLabel marks unbound wraps, made before wraps were bound to the
	// DEK's name. They are only ever unwrapped (name ""), never made.
	wrapLabel = "phivault dek v1"
	// boundLabel marks wraps bound to the DEK's name.
	boundLabel = "phivault dek v2"
)

// errNoName is returned by WrapKey without a key name: every new wrap is
// bound to the name of the key it wraps.
var errNoName = errors.New("keyring: wrap: key name required")

// unboundRefused is UnwrapKey's error for an unbound wrap under KEK kek,
// which refuses them. It is ErrUnwrap: such a wrap was moved or forged by
// whoever wrote the store, like any other that fails its check.
func unboundRefused(kek phivault.KeyID) error {
	return fmt.Errorf("keyring: unwrap under %s: %w (it refuses unbound wraps)", kek, ErrUnwrap)
}

// wrapAD returns the additional data of a wrap under KEK kek bound to name:
//
//	"phivault dek v2" ‖ 0x00 ‖ len32(kek) ‖ kek ‖ len32(name) ‖ name
//
// (lengths big-endian), or for name "" that of an unbound wrap:
//
//	"phivault dek v1" ‖ 0x00 ‖ kek
func wrapAD(kek phivault.KeyID, name string) []byte {
	if name == "" {
		ad := make([]byte, 0, len(wrapLabel)+1+len(kek))
		return append(append(append(ad, wrapLabel...), 0), kek...)
	}
	ad := make([]byte, 0, len(boundLabel)+1+4+len(kek)+4+len(name))
	ad = append(append(ad, boundLabel...), 0)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(kek)))
	ad = append(ad, kek...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(name)))
	return append(ad, name...)
}
