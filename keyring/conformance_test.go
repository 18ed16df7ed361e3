package keyring_test

import (
	"context"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/keyringtest"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/keyring"
)

func TestFileKeyring_Conformance(t *testing.T) {
	keyringtest.Run(t, func(t *testing.T) phivault.Keyring {
		k, _ := MustOpen(t)
		return k
	})
	keyringtest.RunUnbound(t, keyringtest.UnboundBackend{
		New: func(t *testing.T) envelope.UnboundRefuser { return mustOpenRefuser(t, MustCreate(t)) },
		Old: func(t *testing.T) envelope.UnboundRefuser {
			return mustOpenRefuser(t, vaulttest.PreBindingKeyring(t, t.TempDir()).Path)
		},
		WrapUnbound: func(t *testing.T, k envelope.UnboundRefuser, id phivault.KeyID, dek []byte) []byte {
			return keyring.WrapUnboundForTest(k.(fileRefuser).Keyring(), id, dek)
		},
		Reopen: func(t *testing.T, k envelope.UnboundRefuser) envelope.UnboundRefuser {
			return mustOpenRefuser(t, k.(fileRefuser).path)
		},
	})
}

// fileRefuser is a reloading file keyring with the test passphrase, an
// envelope.UnboundRefuser as the server's is.
type fileRefuser struct {
	*keyring.Reloading
	path string
}

func mustOpenRefuser(tb testing.TB, path string) fileRefuser {
	tb.Helper()
	k, err := keyring.OpenReloading(path, testPassphrase, testOptions)
	if err != nil {
		tb.Fatalf("OpenReloading = %v", err)
	}
	return fileRefuser{k, path}
}

func (f fileRefuser) RefuseUnbound(_ context.Context, ids []phivault.KeyID) error {
	return f.Reloading.RefuseUnbound(testPassphrase, ids)
}
