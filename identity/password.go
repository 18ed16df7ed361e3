package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

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
	// Pool bounds the memory of concurrent hashes. Default: a Pool of
	// this Hasher's own with DefaultMemoryBudget, made on first use.
	Pool *Pool

	once        sync.Once
	defaultPool *Pool
}

// pool returns h.Pool, or the Hasher's own default pool.
func (h *Hasher) pool() *Pool {
	if h.Pool != nil {
		return h.Pool
	}
	h.once.Do(func() { h.defaultPool = NewPool(DefaultMemoryBudget) })
	return h.defaultPool
}

// NewHasher returns a Hasher with the default parameters.
func NewHasher() *Hasher { return &Hasher{Params: DefaultParams()} }

var errMalformedHash = errors.New("identity: malformed password hash")

// Hash returns the PHC-encoded argon2id hash of password with a fresh salt.
// It waits for memory in the Hasher's Pool; see HashContext.
func (h *Hasher) Hash(password string) (string, error) {
	return h.HashContext(context.Background(), password)
}

// HashContext is Hash, waiting for memory in the Hasher's Pool no longer
// than ctx allows; it returns ErrBusy if it could not get any.
func (h *Hasher) HashContext(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.Params.SaltLen)
	r := h.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", fmt.Errorf("identity: salt: %w", err)
	}
	p := h.Params
	var key []byte
	if err := h.pool().run(ctx, p.Memory, claimAny, func() {
		key = argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	}); err != nil {
		return "", err
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches the encoded hash, comparing in
// constant time. If it matches and the hash was made with other parameters
// than h.Params, rehash is true: the caller should store a fresh Hash.
// A malformed hash is an error, and so is one whose parameters ask for
// more memory than the Pool's budget or more than MaxTime passes
// (ErrHashCost): it is refused before anything is allocated. It waits for
// memory in the Hasher's Pool; see VerifyContext.
func (h *Hasher) Verify(encoded, password string) (ok, rehash bool, err error) {
	return h.VerifyContext(context.Background(), encoded, password)
}

// VerifyContext is Verify, waiting for memory in the Hasher's Pool no
// longer than ctx allows; it returns ErrBusy if it could not get any.
func (h *Hasher) VerifyContext(ctx context.Context, encoded, password string) (ok, rehash bool, err error) {
	return h.verify(ctx, encoded, password, claimAny)
}

// verify is VerifyContext in the part of the pool c allows.
func (h *Hasher) verify(ctx context.Context, encoded, password string, c claim) (ok, rehash bool, err error) {
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, false, err
	}
	if p.Time > MaxTime {
		return false, false, fmt.Errorf("%w: %d passes, over the most of %d", ErrHashCost, p.Time, MaxTime)
	}
	var got []byte
	if err := h.pool().run(ctx, p.Memory, c, func() {
		got = argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	}); err != nil {
		return false, false, err
	}
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return false, false, nil
	}
	return true, p != h.Params, nil
}

// burn spends the work of one Verify without a stored hash, so that an
// unknown username takes as long as a wrong password. It waits in the
// shared part of the pool, which is where Login verifies every password
// that no account vouches for, and returns Verify's error.
func (h *Hasher) burn(ctx context.Context, password string) error {
	p := h.Params
	return h.pool().run(ctx, p.Memory, claimShared, func() {
		argon2.IDKey([]byte(password), make([]byte, p.SaltLen), p.Time, p.Memory, p.Threads, p.KeyLen)
	})
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
