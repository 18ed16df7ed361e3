package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"github.com/restic/chunker"
)

// keysObject is the name of the key set's object in a target.
const keysObject = "keys"

// A KeySet holds the keys of one backup target: the data key that seals
// chunks and manifests, the id key that names chunks, the chunker's
// polynomial, and the verifier key of the manifests' signer.
type KeySet struct {
	dataKey []byte // 32 bytes, XChaCha20-Poly1305
	idKey   []byte // 32 bytes, HMAC-SHA256
	pol     chunker.Pol
	// Verifier is the note verifier key that checks the manifests.
	Verifier string
	// digest is the SHA-256 of the keys object it was read from or written
	// as: which target it belongs to.
	digest [32]byte
}

type keySetJSON struct {
	Version    int    `json:"version"`
	DataKey    []byte `json:"data_key"`
	IDKey      []byte `json:"id_key"`
	Polynomial uint64 `json:"polynomial"`
	Verifier   string `json:"verifier"`
}

func (k *KeySet) marshal() []byte {
	b, _ := json.Marshal(keySetJSON{1, k.dataKey, k.idKey, uint64(k.pol), k.Verifier})
	return b
}

func parseKeySet(b []byte) (*KeySet, error) {
	var j keySetJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || j.Version != 1 || len(j.DataKey) != 32 || len(j.IDKey) != 32 || !chunker.Pol(j.Polynomial).Irreducible() {
		return nil, fmt.Errorf("backup: key set is malformed")
	}
	return &KeySet{dataKey: j.DataKey, idKey: j.IDKey, pol: chunker.Pol(j.Polynomial), Verifier: j.Verifier}, nil
}

// Init makes a new key set for t, which must hold no keys object yet,
// stores it encrypted to recipients, and returns it. verifier is the note
// verifier key of the signer that will sign the manifests.
func Init(ctx context.Context, t Target, rand io.Reader, verifier string, recipients ...age.Recipient) (*KeySet, error) {
	if len(recipients) == 0 {
		return nil, errors.New("backup: init: no age recipient")
	}
	k := &KeySet{dataKey: make([]byte, 32), idKey: make([]byte, 32), Verifier: verifier}
	if _, err := io.ReadFull(rand, k.dataKey); err != nil {
		return nil, fmt.Errorf("backup: init: %w", err)
	}
	if _, err := io.ReadFull(rand, k.idKey); err != nil {
		return nil, fmt.Errorf("backup: init: %w", err)
	}
	pol, err := chunker.DerivePolynomial(rand)
	if err != nil {
		return nil, fmt.Errorf("backup: init: %w", err)
	}
	k.pol = pol
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		return nil, fmt.Errorf("backup: init: %w", err)
	}
	w.Write(k.marshal())
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("backup: init: %w", err)
	}
	if err := t.Put(ctx, keysObject, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("backup: init: store keys: %w", err)
	}
	k.digest = sha256.Sum256(buf.Bytes())
	return k, nil
}

// OpenKeys reads t's key set with one of identities. It returns
// ErrNotFound if t holds no key set and ErrWrongKey if no identity opens
// it.
func OpenKeys(ctx context.Context, t Target, identities ...age.Identity) (*KeySet, error) {
	b, err := t.Get(ctx, keysObject)
	if err != nil {
		return nil, fmt.Errorf("backup: read keys: %w", err)
	}
	r, err := age.Decrypt(bytes.NewReader(b), identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("backup: keys: %w", ErrWrongKey)
		}
		return nil, fmt.Errorf("backup: keys: %w (%v)", ErrCorrupt, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("backup: keys: %w (%v)", ErrCorrupt, err)
	}
	k, err := parseKeySet(plain)
	if err != nil {
		return nil, err
	}
	k.digest = sha256.Sum256(b)
	return k, nil
}

// MarshalCache returns k as a cache for the backing-up host: the key set
// and the digest of its target's keys object. It holds the keys in the
// clear: write it with mode 0600.
func (k *KeySet) MarshalCache() []byte {
	b, _ := json.Marshal(struct {
		Keys   json.RawMessage `json:"keys"`
		Target string          `json:"target_keys_sha256"`
	}{k.marshal(), hex.EncodeToString(k.digest[:])})
	return append(b, '\n')
}

// CachedKeys returns the key set in cache (from MarshalCache) if it
// belongs to t, and ErrNotFound if t holds no keys or other keys.
func CachedKeys(ctx context.Context, t Target, cache []byte) (*KeySet, error) {
	var c struct {
		Keys   json.RawMessage `json:"keys"`
		Target string          `json:"target_keys_sha256"`
	}
	if err := json.Unmarshal(cache, &c); err != nil {
		return nil, errors.New("backup: key cache is malformed")
	}
	b, err := t.Get(ctx, keysObject)
	if err != nil {
		return nil, fmt.Errorf("backup: read keys: %w", err)
	}
	d := sha256.Sum256(b)
	if hex.EncodeToString(d[:]) != c.Target {
		return nil, fmt.Errorf("backup: the key cache is for another target: %w", ErrNotFound)
	}
	k, err := parseKeySet(c.Keys)
	if err != nil {
		return nil, err
	}
	k.digest = d
	return k, nil
}

// HasKeys reports whether t holds a key set: whether it was set up.
func HasKeys(ctx context.Context, t Target) (bool, error) {
	_, err := t.Get(ctx, keysObject)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
