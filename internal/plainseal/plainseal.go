// Package plainseal provides a phivault.Sealer that DOES NOT ENCRYPT.
//
// ┌──────────────────────────────────────────────────────────────────────┐
// │ FOR BENCHMARKS ONLY. NEVER USE IT TO STORE REAL DATA.                │
// │ It stores resource bodies in plaintext and its search tokens are     │
// │ unkeyed hashes, so anyone with the database reads every record and   │
// │ can confirm any guessed name, birth date or identifier.              │
// └──────────────────────────────────────────────────────────────────────┘
//
// It exists so that internal/perf can measure the cost of encryption: the
// same stack run once with envelope.Sealer and once with this Sealer. It is
// imported only from _test.go files; internal/perf has a test that fails if
// any package linked into cmd/phivault depends on it, and no configuration of
// the server can select it.
//
// Sealing copies the body into Ciphertext under the key id "plain". A token
// is the first 16 bytes of SHA-256(param ‖ 0x00 ‖ value).
package plainseal

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/phivault/phivault"
)

// KeyID is the key id of every version sealed by Sealer.
const KeyID = "plain"

// Sealer is a phivault.Sealer that stores bodies in plaintext. It is safe for
// concurrent use by multiple goroutines. The zero value is ready to use.
type Sealer struct{}

var _ phivault.Sealer = Sealer{}

// Seal copies r's body into a SealedResource without encrypting it.
func (Sealer) Seal(_ context.Context, _ phivault.StoreTx, r *phivault.Resource) (*phivault.SealedResource, error) {
	s := &phivault.SealedResource{
		Type:        r.Type,
		ID:          r.ID,
		Version:     r.Version,
		LastUpdated: r.LastUpdated,
		Compartment: r.Compartment,
		Deleted:     r.Deleted,
		KeyID:       KeyID,
	}
	if !r.Deleted {
		if r.Body == nil {
			return nil, fmt.Errorf("plainseal: seal %s: no body", r.Ref())
		}
		s.Ciphertext = append([]byte{}, r.Body...)
	}
	return s, nil
}

// Open returns the stored body as the resource body.
func (Sealer) Open(_ context.Context, _ phivault.StoreTx, s *phivault.SealedResource) (*phivault.Resource, error) {
	if s.KeyID != KeyID {
		return nil, phivault.ErrIntegrity
	}
	r := &phivault.Resource{
		Type:        s.Type,
		ID:          s.ID,
		Version:     s.Version,
		LastUpdated: s.LastUpdated,
		Compartment: s.Compartment,
		Deleted:     s.Deleted,
	}
	if !s.Deleted {
		r.Body = append([]byte{}, s.Ciphertext...)
	}
	return r, nil
}

// Tokens returns unkeyed tokens: SHA-256(param ‖ 0x00 ‖ value)[:16].
func (Sealer) Tokens(_ context.Context, _ phivault.StoreTx, values []phivault.IndexValue) ([]phivault.Token, error) {
	out := make([]phivault.Token, len(values))
	for i, v := range values {
		h := sha256.New()
		h.Write([]byte(v.Param))
		h.Write([]byte{0})
		h.Write([]byte(v.Value))
		copy(out[i][:], h.Sum(nil))
	}
	return out, nil
}

// SealAll seals each of rs like Seal.
func (p Sealer) SealAll(ctx context.Context, tx phivault.StoreTx, rs []*phivault.Resource) ([]*phivault.SealedResource, error) {
	out := make([]*phivault.SealedResource, len(rs))
	for i, r := range rs {
		sr, err := p.Seal(ctx, tx, r)
		if err != nil {
			return nil, err
		}
		out[i] = sr
	}
	return out, nil
}
