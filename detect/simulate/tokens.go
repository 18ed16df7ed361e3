package simulate

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// indexInfoPrefix is the envelope's per-parameter key derivation label,
// so the simulator's tokens have exactly the shape of the vault's.
const indexInfoPrefix = "phivault blind index v1\x00"

// Tokenizer computes blind-index tokens the way the envelope does
// (HMAC-SHA256(k_param, value) truncated to 16 bytes, with k_param =
// HKDF-SHA256(key, "phivault blind index v1" ‖ 0x00 ‖ param)) under a key
// of its own: a simulation never needs the vault's. It is safe for
// concurrent use by multiple goroutines.
type Tokenizer struct {
	key []byte
}

var _ detect.Tokenizer = (*Tokenizer)(nil)

// NewTokenizer returns a Tokenizer keyed with key, which must be 32 bytes.
func NewTokenizer(key []byte) *Tokenizer {
	if len(key) != 32 {
		panic("simulate: tokenizer key must be 32 bytes")
	}
	return &Tokenizer{key: append([]byte(nil), key...)}
}

// Tokens implements detect.Tokenizer.
func (t *Tokenizer) Tokens(ctx context.Context, values []phivault.IndexValue) ([]phivault.Token, error) {
	out := make([]phivault.Token, len(values))
	for i, v := range values {
		kp, err := hkdf.Key(sha256.New, t.key, nil, indexInfoPrefix+v.Param, 32)
		if err != nil {
			return nil, fmt.Errorf("simulate: derive index key: %w", err)
		}
		h := hmac.New(sha256.New, kp)
		h.Write([]byte(v.Value))
		copy(out[i][:], h.Sum(nil))
	}
	return out, nil
}

// person is a person's plaintext as the simulator makes it up: it never
// leaves the generator, only its tokens do.
type person struct {
	family  string
	line    string // house number and street
	street  string // street without the house number
	postal  string
	phone   string // digits only
	address bool   // has an address
}

// personTokens returns the detect.Person of p under tk.
func personTokens(ctx context.Context, tk detect.Tokenizer, p *person) (detect.Person, error) {
	d := detect.PersonData{Family: []string{p.family}}
	if p.address {
		d.Addresses = []detect.Address{{Lines: []string{p.line}, PostalCode: p.postal}}
	}
	if p.phone != "" {
		d.Phones = []string{p.phone}
	}
	return detect.PersonTokens(ctx, tk, d)
}
