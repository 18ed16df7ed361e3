package keyring_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/keyring"
)

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

// TestFileKeyring_Vectors checks the file keyring's wraps against known
// answers computed by an independent implementation
// (testdata/wrap_vectors.py, pyca/cryptography): bound wraps (format 2)
// are produced byte for byte and unwrap only under their own name; unbound
// wraps of earlier versions (format 1) still unwrap, with name "", and
// only so.
func TestFileKeyring_Vectors(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile("testdata/wrap-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Wrap []struct {
			Name, KEKID, KeyName         string
			KEK, Nonce, DEK, AD, Wrapped hexBytes
		}
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Wrap) == 0 {
		t.Fatal("no vectors")
	}
	for _, tt := range v.Wrap {
		t.Run(tt.Name, func(t *testing.T) {
			id := phivault.KeyID(tt.KEKID)
			k, err := keyring.FileKeyringForTest(id, tt.KEK, bytes.NewReader(tt.Nonce))
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.UnwrapKey(ctx, id, tt.KeyName, tt.Wrapped)
			if err != nil || !bytes.Equal(got, tt.DEK) {
				t.Fatalf("UnwrapKey(%q) = %x, %v; want %x", tt.KeyName, got, err, tt.DEK)
			}
			for _, other := range []string{"", "patient/other", tt.KeyName + "#3"} {
				if other == tt.KeyName {
					continue
				}
				if got, err := k.UnwrapKey(ctx, id, other, tt.Wrapped); !errors.Is(err, keyring.ErrUnwrap) {
					t.Errorf("UnwrapKey of a wrap for %q under name %q = %x, %v; want ErrUnwrap", tt.KeyName, other, got, err)
				}
			}
			if tt.KeyName == "" {
				if _, _, err := k.WrapKey(ctx, "", tt.DEK); err == nil {
					t.Error(`WrapKey(name "") made an unbound wrap; only reading them is allowed`)
				}
				return
			}
			kek, wrapped, err := k.WrapKey(ctx, tt.KeyName, tt.DEK)
			if err != nil || kek != id || !bytes.Equal(wrapped, tt.Wrapped) {
				t.Errorf("WrapKey = %s, %x, %v; want %s, %x", kek, wrapped, err, id, tt.Wrapped)
			}
		})
	}
}
