package envelope_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
)

// vectors are known answers computed by an independent implementation
// (testdata/vectors.py, with pyca/cryptography).
type vectors struct {
	Seal []struct {
		Name        string
		DEK         hexBytes
		Nonce       hexBytes
		Type        string
		ID          string
		Version     int64
		LastUpdated time.Time
		Compartment string
		Plaintext   string
		KeyID       string
		AD          hexBytes
		Ciphertext  hexBytes
	}
	Tokens []struct {
		IndexKey hexBytes
		Param    string
		Value    string
		Token    hexBytes
	}
}

type hexBytes []byte

func (h *hexBytes) UnmarshalText(text []byte) (err error) {
	*h, err = hex.DecodeString(string(text))
	return err
}

func loadVectors(tb testing.TB) *vectors {
	tb.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		tb.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		tb.Fatal(err)
	}
	if len(v.Seal) == 0 || len(v.Tokens) == 0 {
		tb.Fatal("testdata/vectors.json holds no vectors")
	}
	return &v
}

func TestVectors_Seal(t *testing.T) {
	for _, v := range loadVectors(t).Seal {
		t.Run(v.Name, func(t *testing.T) {
			ad := envelope.AppendADForTest(nil, v.Type, v.ID, v.Version, v.LastUpdated, v.Compartment)
			if !bytes.Equal(ad, v.AD) {
				t.Errorf("additional data = %x, want %x", ad, v.AD)
			}
			tx := newMemTx()
			tx.keys[v.KeyID] = &phivault.WrappedKey{ID: v.KeyID, KEKID: fakeKEK, Wrapped: fakeWrap(v.DEK)}
			s := envelope.New(&fakeKeyring{}, envelope.Options{Rand: bytes.NewReader(v.Nonce)})
			r := &phivault.Resource{Type: v.Type, ID: v.ID, Version: v.Version, LastUpdated: v.LastUpdated,
				Compartment: v.Compartment, Body: []byte(v.Plaintext)}
			sr := MustSeal(t, s, tx, r)
			if !bytes.Equal(sr.Ciphertext, v.Ciphertext) {
				t.Errorf("Seal ciphertext = %x, want %x", sr.Ciphertext, v.Ciphertext)
			}
			if sr.KeyID != v.KeyID {
				t.Errorf("Seal KeyID = %q, want %q", sr.KeyID, v.KeyID)
			}
			sr.Ciphertext = v.Ciphertext
			got, err := envelope.New(&fakeKeyring{}, envelope.Options{}).Open(ctx, tx, sr)
			if err != nil || string(got.Body) != v.Plaintext {
				t.Errorf("Open = %q, %v; want %q", got.Body, err, v.Plaintext)
			}
		})
	}
}

func TestVectors_Tokens(t *testing.T) {
	for _, v := range loadVectors(t).Tokens {
		tx := newMemTx()
		tx.keys["index"] = &phivault.WrappedKey{ID: "index", KEKID: fakeKEK, Wrapped: fakeWrap(v.IndexKey)}
		s := envelope.New(&fakeKeyring{}, envelope.Options{})
		got := MustTokens(t, s, tx, phivault.IndexValue{Param: v.Param, Value: v.Value})
		if !bytes.Equal(got[0][:], v.Token) {
			t.Errorf("Tokens(%q, %q) = %x, want %x", v.Param, v.Value, got[0], v.Token)
		}
	}
}
