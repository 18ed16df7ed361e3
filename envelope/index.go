package envelope

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/phivault/phivault"
)

const (
	// indexInfoPrefix separates per-parameter key derivation from any
	// other use of the index key; the parameter name follows it.
	indexInfoPrefix = "phivault blind index v1\x00"
	// maxParams bounds the per-parameter keys kept; FHIR search has far
	// fewer parameters, so this is only a guard against unbounded growth.
	maxParams = 4096
)

// indexKey is an unwrapped blind-index key with its derived per-parameter
// HMAC states.
type indexKey struct {
	mu     sync.RWMutex
	key    []byte                // nil once wiped
	params map[string]*sync.Pool // of hash.Hash keyed with k_param
}

// errIndexKeyWiped is returned by param after the key left the cache and
// was wiped; the caller fetches the key again.
var errIndexKeyWiped = errors.New("envelope: index key was wiped")

// param returns a pool of HMAC states keyed with k_param for param.
func (k *indexKey) param(param string) (*sync.Pool, error) {
	// The read lock is held while deriving so that wipe never zeroes the
	// key under a derivation (which would yield wrong tokens).
	k.mu.RLock()
	p := k.params[param]
	if p != nil {
		k.mu.RUnlock()
		return p, nil
	}
	if k.key == nil {
		k.mu.RUnlock()
		return nil, errIndexKeyWiped
	}
	kp, err := hkdf.Key(sha256.New, k.key, nil, indexInfoPrefix+param, KeySize)
	k.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("envelope: derive index key: %w", err)
	}
	p = &sync.Pool{New: func() any { return hmac.New(sha256.New, kp) }}
	k.mu.Lock()
	defer k.mu.Unlock()
	if q := k.params[param]; q != nil {
		return q, nil
	}
	if k.key != nil && len(k.params) < maxParams {
		k.params[param] = p
	}
	return p, nil
}

// wipe zeroes the index key and drops the derived HMAC states. States
// already handed out stay intact (they are not ours to zero), so a token
// computation in progress still finishes correctly.
func (k *indexKey) wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.key)
	k.key = nil
	k.params = nil
}

// Tokens returns the blind-index tokens of values, in the same order:
// HMAC-SHA256(k_param, value) truncated to 16 bytes, with k_param =
// HKDF-SHA256(index key, info = "phivault blind index v1" ‖ 0x00 ‖ param).
// It creates the index key within tx if it does not exist.
//
// Tokens always reads the index key's row in tx, so tokens are never
// computed under a key other than the stored one.
func (s *Sealer) Tokens(ctx context.Context, tx phivault.StoreTx, values []phivault.IndexValue) ([]phivault.Token, error) {
	if len(values) == 0 {
		return nil, nil
	}
	ik, err := s.indexKey(ctx, tx)
	if err != nil {
		return nil, err
	}
	tokens, err := ik.tokens(values)
	if errors.Is(err, errIndexKeyWiped) { // evicted meanwhile: fetch it again, once
		if ik, err = s.indexKey(ctx, tx); err != nil {
			return nil, err
		}
		tokens, err = ik.tokens(values)
	}
	return tokens, err
}

// tokens computes the tokens of values under k.
func (k *indexKey) tokens(values []phivault.IndexValue) ([]phivault.Token, error) {
	longest := 0
	for _, v := range values {
		longest = max(longest, len(v.Value))
	}
	tokens := make([]phivault.Token, len(values))
	scratch := make([]byte, 0, max(longest, sha256.Size))
	var (
		pool      *sync.Pool
		lastParam string
		err       error
	)
	for i, v := range values {
		if pool == nil || v.Param != lastParam {
			if pool, err = k.param(v.Param); err != nil {
				return nil, err
			}
			lastParam = v.Param
		}
		h := pool.Get().(hash.Hash)
		h.Reset()
		h.Write(append(scratch[:0], v.Value...))
		copy(tokens[i][:], h.Sum(scratch[:0]))
		pool.Put(h)
	}
	return tokens, nil
}

// indexKey returns the index key stored in tx, creating it if absent.
func (s *Sealer) indexKey(ctx context.Context, tx phivault.StoreTx) (*indexKey, error) {
	return s.hmacKey(ctx, tx, IndexKeyID)
}

// hmacKey returns the keyed-token key id stored in tx (the index key, or
// another key used the same way), creating it if absent.
func (s *Sealer) hmacKey(ctx context.Context, tx phivault.StoreTx, id string) (*indexKey, error) {
	gen := s.cache.generation()
	wk, err := tx.Key(ctx, id)
	var key []byte
	if errors.Is(err, phivault.ErrNotFound) {
		if wk, key, err = s.createKey(ctx, tx, id); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("envelope: key %s: %w", id, err)
	} else if e := s.cache.get(id); e != nil && e.index != nil && e.matches(wk) {
		return e.index, nil
	}
	if key, err = s.unwrapKey(ctx, wk, key); err != nil {
		return nil, err
	}
	ik := &indexKey{key: key, params: make(map[string]*sync.Pool)}
	s.cache.put(&keyEntry{id: id, kekID: wk.KEKID, wrapped: wk.Wrapped, index: ik, gen: gen})
	return ik, nil
}
