package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Default argon2id parameters (RFC 9106 second recommended option, with
// two lanes).
const (
	DefaultMemory  = 64 * 1024 // KiB, i.e. 64 MiB
	DefaultTime    = 1         // passes
	DefaultThreads = 2         // lanes
	DefaultSaltLen = 16        // bytes
	DefaultKeyLen  = 32        // bytes
)

// Params are argon2id parameters.
type Params struct {
	Memory  uint32 // KiB; default DefaultMemory
	Time    uint32 // passes; default DefaultTime
	Threads uint8  // lanes; default DefaultThreads
	SaltLen uint32 // bytes; default DefaultSaltLen
	KeyLen  uint32 // bytes; default DefaultKeyLen
}

// DefaultParams returns the default parameters.
func DefaultParams() Params {
	return Params{Memory: DefaultMemory, Time: DefaultTime, Threads: DefaultThreads, SaltLen: DefaultSaltLen, KeyLen: DefaultKeyLen}
}

// Hasher hashes and verifies passwords with argon2id.
type Hasher struct {
	Params Params
	Rand   io.Reader // salt source; crypto/rand if nil
}

// NewHasher returns a Hasher with the default parameters.
func NewHasher() *Hasher { return &Hasher{Params: DefaultParams()} }

var errMalformedHash = errors.New("identity: malformed password hash")

// Hash returns the PHC-encoded argon2id hash of password with a fresh salt.
func (h *Hasher) Hash(password string) (string, error) {
	salt := make([]byte, h.Params.SaltLen)
	r := h.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", fmt.Errorf("identity: salt: %w", err)
	}
	p := h.Params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches the encoded hash, comparing in
// constant time. If it matches and the hash was made with other parameters
// than h.Params, rehash is true: the caller should store a fresh Hash.
// A malformed hash is an error.
func (h *Hasher) Verify(encoded, password string) (ok, rehash bool, err error) {
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return false, false, nil
	}
	return true, p != h.Params, nil
}

// burn spends the work of one Verify without a stored hash, so that an
// unknown username takes as long as a wrong password.
func (h *Hasher) burn(password string) {
	p := h.Params
	argon2.IDKey([]byte(password), make([]byte, p.SaltLen), p.Time, p.Memory, p.Threads, p.KeyLen)
}

func decodeHash(encoded string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errMalformedHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errMalformedHash
	}
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || n != 3 ||
		p.Memory == 0 || p.Time == 0 || p.Threads == 0 || fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads) != parts[3] {
		return p, nil, nil, errMalformedHash
	}
	if salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errMalformedHash
	}
	if key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(key) < 16 {
		return p, nil, nil, errMalformedHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}
