package keyring_test

import (
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/keyringtest"
)

func TestFileKeyring_Conformance(t *testing.T) {
	keyringtest.Run(t, func(t *testing.T) phivault.Keyring {
		k, _ := MustOpen(t)
		return k
	})
}
