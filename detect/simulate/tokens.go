package simulate

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strings"

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

// Parameters of the person tokens.
//
// TODO(person.go): detect/person.go (PersonValues, PersonTokens) is being
// written in parallel; once merged, compute Person tokens with it instead
// of personValues (and drop personValues and these params), so the
// simulator's tokens match ingestion's exactly. Tried on a trial merge,
// the tests pass with personTokens's body replaced by:
//
//	d := detect.PersonData{Family: []string{p.family}}
//	if p.address {
//		d.Addresses = []detect.Address{{Lines: []string{p.line}, PostalCode: p.postal}}
//	}
//	if p.phone != "" {
//		d.Phones = []string{p.phone}
//	}
//	return detect.PersonTokens(ctx, tk, d)
const (
	paramFamily  = "Person.family"
	paramAddress = "Person.address"
	paramStreet  = "Person.street"
	paramPhone   = "Person.phone"
)

// personValues returns the index values of p: family name, address (line
// + postal code), street + postal code and phone, normalized (lower case,
// single spaces).
func personValues(p *person) []phivault.IndexValue {
	norm := func(s string) string { return strings.Join(strings.Fields(strings.ToLower(s)), " ") }
	var vs []phivault.IndexValue
	if p.family != "" {
		vs = append(vs, phivault.IndexValue{Param: paramFamily, Value: norm(p.family)})
	}
	if p.address {
		vs = append(vs,
			phivault.IndexValue{Param: paramAddress, Value: norm(p.line) + "\x00" + norm(p.postal)},
			phivault.IndexValue{Param: paramStreet, Value: norm(p.street) + "\x00" + norm(p.postal)})
	}
	if p.phone != "" {
		vs = append(vs, phivault.IndexValue{Param: paramPhone, Value: p.phone})
	}
	return vs
}

// personTokens returns the detect.Person of p under tk.
func personTokens(ctx context.Context, tk detect.Tokenizer, p *person) (detect.Person, error) {
	vs := personValues(p)
	toks, err := tk.Tokens(ctx, vs)
	if err != nil {
		return detect.Person{}, err
	}
	var out detect.Person
	for i, v := range vs {
		switch v.Param {
		case paramFamily:
			out.Family = append(out.Family, toks[i])
		case paramAddress:
			out.Address = append(out.Address, toks[i])
		case paramStreet:
			out.Street = append(out.Street, toks[i])
		case paramPhone:
			out.Phone = append(out.Phone, toks[i])
		}
	}
	return out, nil
}
