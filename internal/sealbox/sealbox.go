// Package sealbox seals small pieces of server state into opaque tokens
// that the client carries (a form field, a cookie) and only the server
// can open again. Sign-in steps that anonymous callers may begin (the
// OAuth server's pending authorizations, passkey ceremonies, federated
// logins) keep their state this way rather than in server memory, so that
// a flood of them fills no table and crowds out no one.
//
// A token is base64url(nonce ‖ XChaCha20-Poly1305(expiry ‖ JSON value))
// with the purpose as additional data: it opens only under the key that
// sealed it, only for the same purpose, and only before it expires. Open
// does not make a token single-use; callers that need that keep their own
// record of what was used (see docs/login.md).
package sealbox

import (
	"crypto/cipher"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// KeySize is the size of a key in bytes.
	KeySize = chacha20poly1305.KeySize
	// MaxToken bounds the length of a token Open accepts, checked before
	// the token is decoded.
	MaxToken = 16 << 10
)

// ErrInvalid is returned by Open for a token that is forged, damaged,
// expired or sealed for another purpose. It tells no more on purpose.
var ErrInvalid = errors.New("sealbox: token not valid")

// A Box seals and opens tokens under one key. It is safe for concurrent
// use by multiple goroutines.
type Box struct {
	aead cipher.AEAD
	rand io.Reader
}

// New returns a Box that seals under key, which must be KeySize bytes, or
// under a fresh key from rand if key is nil, so that a restart makes every
// token sealed before it fail to open. rand also makes the nonces; nil
// means crypto/rand.Reader.
//
// XChaCha20-Poly1305's 192-bit random nonces never collide in practice,
// however many tokens anonymous callers make the server seal under one
// key; AES-GCM's 96-bit random nonces would reach their safe limit (2^32
// seals) within days at a sustained 10,000 requests a second.
func New(key []byte, rand io.Reader) (*Box, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	if key == nil {
		key = make([]byte, KeySize)
		if _, err := io.ReadFull(rand, key); err != nil {
			return nil, fmt.Errorf("sealbox: key: %w", err)
		}
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealbox: key must be %d bytes", KeySize)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("sealbox: %w", err)
	}
	return &Box{aead: aead, rand: rand}, nil
}

// Seal returns v, encoded as JSON, sealed for purpose until expires.
func (b *Box) Seal(purpose string, v any, expires time.Time) (string, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("sealbox: seal %s: %w", purpose, err)
	}
	plain := make([]byte, 8, 8+len(js))
	binary.BigEndian.PutUint64(plain, uint64(expires.UnixMilli()))
	plain = append(plain, js...)
	ns := b.aead.NonceSize()
	nonce := make([]byte, ns, ns+len(plain)+b.aead.Overhead())
	if _, err := io.ReadFull(b.rand, nonce); err != nil {
		return "", fmt.Errorf("sealbox: seal %s: %w", purpose, err)
	}
	return base64.RawURLEncoding.EncodeToString(b.aead.Seal(nonce, nonce, plain, []byte(purpose))), nil
}

// Open opens token into v and returns when it expires. It returns
// ErrInvalid unless token is one this Box sealed for purpose, unchanged,
// and now is before its expiry; only a token that opens is decoded into v.
func (b *Box) Open(purpose, token string, now time.Time, v any) (expires time.Time, err error) {
	if token == "" || len(token) > MaxToken {
		return time.Time{}, ErrInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	ns := b.aead.NonceSize()
	if err != nil || len(raw) < ns+b.aead.Overhead()+8 {
		return time.Time{}, ErrInvalid
	}
	plain, err := b.aead.Open(nil, raw[:ns], raw[ns:], []byte(purpose))
	if err != nil || len(plain) < 8 {
		return time.Time{}, ErrInvalid
	}
	expires = time.UnixMilli(int64(binary.BigEndian.Uint64(plain)))
	if !now.Before(expires) {
		return time.Time{}, ErrInvalid
	}
	if err := json.Unmarshal(plain[8:], v); err != nil {
		return time.Time{}, ErrInvalid
	}
	return expires, nil
}
