// Package envelope implements phivault's encryption at rest: it seals
// resource versions under per-compartment data-encryption keys (DEKs) and
// computes blind-index tokens for equality search.
//
// # Keys
//
// Each patient compartment has its own 256-bit DEK (key id "patient/<id>"),
// resources outside any compartment share one DEK ("shared"), and the blind
// index has its own key ("index"). Keys are created on first use within the
// caller's transaction and stored only wrapped by a [phivault.Keyring].
// [Sealer.RotateKey] replaces a compartment's DEK with a new version
// ("patient/<id>#2", …) and re-encrypts the compartment's records under it.
//
// # Sealing
//
// A version is sealed with AES-256-GCM under its compartment's DEK with a
// fresh random 96-bit nonce. The additional data binds the ciphertext to its
// row: format version, type, id, version, lastUpdated and compartment, each
// unambiguously encoded. The stored ciphertext is
//
//	format (1 byte, 0x01) ‖ nonce (12 bytes) ‖ AES-GCM ciphertext ‖ tag (16 bytes)
//
// and [Sealer.Open] returns [phivault.ErrIntegrity] for anything that does not
// authenticate, so altered, truncated or moved ciphertexts are never
// returned as data.
//
// # Blind index
//
// A token is HMAC-SHA256(k_param, value) truncated to 16 bytes, where k_param
// is derived from the index key with HKDF-SHA256 using the parameter name, so
// tokens of different parameters are unrelated.
//
// docs/crypto.md describes the construction and what it leaks.
package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/phivault/phivault"
)

// Key ids, sizes and defaults.
const (
	// SharedKeyID names the DEK of resources outside any patient compartment.
	SharedKeyID = "shared"
	// IndexKeyID names the blind-index key.
	IndexKeyID = "index"
	// PatientKeyPrefix prefixes the patient id in a compartment DEK's id.
	PatientKeyPrefix = "patient/"

	// DefaultCacheSize is the default number of unwrapped keys kept.
	DefaultCacheSize = 10_000
	// DefaultCacheTTL is how long an unwrapped key is kept by default,
	// counted from its unwrapping.
	DefaultCacheTTL = time.Hour

	// KeySize is the size of DEKs and of the index key in bytes.
	KeySize = 32
	// NonceSize is the size of the random AES-GCM nonce in bytes.
	NonceSize = 12

	formatV1  = 0x01
	tagSize   = 16
	headerLen = 1 + NonceSize
)

// Options configures a Sealer. The zero value is valid.
type Options struct {
	// CacheSize bounds how many unwrapped keys are kept in memory.
	// Zero means DefaultCacheSize; negative disables the cache.
	CacheSize int
	// CacheTTL is how long an unwrapped key is kept after unwrapping.
	// Zero means DefaultCacheTTL.
	CacheTTL time.Duration
	// Rand is the source of keys and nonces. Nil means crypto/rand.Reader.
	Rand io.Reader
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// RotateBatch is how many versions RotateKey re-encrypts per
	// transaction. Zero means DefaultRotateBatch.
	RotateBatch int
}

// Sealer seals and opens resources and computes blind-index tokens. It
// implements phivault.Sealer and is safe for concurrent use by multiple
// goroutines.
type Sealer struct {
	keys  phivault.Keyring
	rand  io.Reader
	now   func() time.Time
	cache *keyCache
	batch int // versions per RotateKey transaction
}

var _ phivault.Sealer = (*Sealer)(nil)

// New returns a Sealer whose keys are wrapped by keys.
func New(keys phivault.Keyring, opts Options) *Sealer {
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RotateBatch <= 0 {
		opts.RotateBatch = DefaultRotateBatch
	}
	return &Sealer{keys: keys, rand: opts.Rand, now: opts.Now, cache: newKeyCache(opts.CacheSize, opts.CacheTTL, opts.Now), batch: opts.RotateBatch}
}

// KeyID returns the id of the DEK for compartment: "patient/<id>", or
// SharedKeyID for "".
func KeyID(compartment string) string {
	if compartment == "" {
		return SharedKeyID
	}
	return PatientKeyPrefix + compartment
}

// isKeyID reports whether id names a version of KeyID(compartment): the
// key itself or a later version "<key>#n" (see phivault.KeyVersionID).
func isKeyID(id, compartment string) bool {
	base, _, ok := phivault.ParseKeyVersionID(id)
	if !ok {
		return false
	}
	if compartment == "" {
		return base == SharedKeyID
	}
	return strings.HasPrefix(base, PatientKeyPrefix) && base[len(PatientKeyPrefix):] == compartment
}

// Init creates the shared DEK and the index key within tx if they do not
// exist. Call it once in a read-write transaction when a vault is created,
// so that read-only transactions find them.
func (s *Sealer) Init(ctx context.Context, tx phivault.StoreTx) error {
	for _, id := range []string{SharedKeyID, IndexKeyID} {
		if _, err := tx.Key(ctx, id); errors.Is(err, phivault.ErrNotFound) {
			if _, _, err := s.createKey(ctx, tx, id); err != nil {
				return err
			}
		} else if err != nil {
			return fmt.Errorf("envelope: key %s: %w", id, err)
		}
	}
	return nil
}

// Forget drops the unwrapped key id from memory, e.g. after the key was
// destroyed (crypto-shredding).
func (s *Sealer) Forget(id string) { s.cache.remove(id) }

// ForgetAll drops every unwrapped key (DEKs and the index key) from memory
// at once, zeroing the key bytes the Sealer owns, and keeps keys being
// unwrapped right now out of the cache. Call it when the keyring is sealed
// (see keyring.Sealable.OnSeal): from then on nothing is decrypted without
// the keyring.
func (s *Sealer) ForgetAll() { s.cache.purge() }

// Shred crypto-shreds a patient compartment within tx: the store deletes
// its DEK (every version) and blind-index tokens and records the shred (see
// [phivault.StoreTx.Shred]). The Sealer drops the unwrapped DEKs at once and
// never caches it again, even if tx rolls back (then the key is unwrapped
// from its row on every use until the process restarts). Once tx commits,
// every version of the compartment is ciphertext that no key opens.
func (s *Sealer) Shred(ctx context.Context, tx phivault.StoreTx, compartment string, at time.Time) error {
	if compartment == "" {
		return phivault.Errorf(phivault.EINVALID, "Only a patient compartment can be shredded.")
	}
	s.cache.kill(KeyID(compartment))
	vs, err := tx.KeyVersions(ctx, KeyID(compartment))
	if err != nil {
		return fmt.Errorf("envelope: shred: %w", err)
	}
	for _, k := range vs {
		s.cache.kill(k.ID)
	}
	if err := tx.Shred(ctx, compartment, at); err != nil {
		return fmt.Errorf("envelope: shred: %w", err)
	}
	return nil
}

// shredded returns phivault.ErrShredded if compartment was shredded.
func shredded(ctx context.Context, tx phivault.StoreTx, compartment string) error {
	if compartment == "" {
		return nil
	}
	_, ok, err := tx.Shredded(ctx, compartment)
	if err != nil {
		return fmt.Errorf("envelope: shredded: %w", err)
	} else if ok {
		return phivault.ErrShredded
	}
	return nil
}

// Seal encrypts r under the DEK of r.Compartment, creating that DEK within
// tx if it does not exist. A tombstone (r.Deleted) has no ciphertext and no
// key.
//
// Seal always reads the DEK's row in tx, so it never seals under a key other
// than the stored one, even if the row changed since it was cached.
func (s *Sealer) Seal(ctx context.Context, tx phivault.StoreTx, r *phivault.Resource) (*phivault.SealedResource, error) {
	out, err := s.SealAll(ctx, tx, []*phivault.Resource{r})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// SealAll seals rs like Seal, reading each DEK's row once for all of them:
// on PostgreSQL every read is a round trip.
func (s *Sealer) SealAll(ctx context.Context, tx phivault.StoreTx, rs []*phivault.Resource) ([]*phivault.SealedResource, error) {
	out := make([]*phivault.SealedResource, len(rs))
	var deks map[string]*keyEntry
	for i, r := range rs {
		sr := &phivault.SealedResource{
			Type:        r.Type,
			ID:          r.ID,
			Version:     r.Version,
			LastUpdated: r.LastUpdated,
			Compartment: r.Compartment,
			Deleted:     r.Deleted,
		}
		out[i] = sr
		if r.Deleted {
			continue
		}
		if len(r.Body) == 0 {
			return nil, errors.New("envelope: seal: resource has no body")
		}
		id := KeyID(r.Compartment)
		e, ok := deks[id]
		if !ok {
			var err error
			if e, err = s.currentDEK(ctx, tx, id, r.Compartment); err != nil {
				return nil, err
			}
			if deks == nil {
				deks = make(map[string]*keyEntry)
			}
			deks[id] = e
		}
		if err := s.sealWith(e, sr, r.Body); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sealWith encrypts body for the row sr under the DEK e, setting sr's KeyID
// and Ciphertext.
func (s *Sealer) sealWith(e *keyEntry, sr *phivault.SealedResource, body []byte) error {
	sr.KeyID = e.id
	// One allocation: header ‖ ciphertext ‖ tag, with the additional data
	// built in the spare capacity after it.
	ctEnd := headerLen + len(body) + tagSize
	buf := make([]byte, headerLen, ctEnd+adLen(sr.Type, sr.ID, sr.Compartment))
	buf[0] = formatV1
	if _, err := io.ReadFull(s.rand, buf[1:headerLen]); err != nil {
		return fmt.Errorf("envelope: seal: nonce: %w", err)
	}
	ad := appendAD(buf[ctEnd:ctEnd], sr.Type, sr.ID, sr.Version, sr.LastUpdated, sr.Compartment)
	out := e.aead.Seal(buf, buf[1:headerLen], body, ad)
	sr.Ciphertext = out[:ctEnd:ctEnd]
	return nil
}

// Open decrypts s. It returns an error wrapping phivault.ErrIntegrity if the
// ciphertext was altered or truncated, does not belong to s's type, id,
// version, lastUpdated and compartment, names the wrong key, or its key
// does not exist. Keyring failures are returned as they are.
func (s *Sealer) Open(ctx context.Context, tx phivault.StoreTx, sr *phivault.SealedResource) (*phivault.Resource, error) {
	r := &phivault.Resource{
		Type:        sr.Type,
		ID:          sr.ID,
		Version:     sr.Version,
		LastUpdated: sr.LastUpdated,
		Compartment: sr.Compartment,
		Deleted:     sr.Deleted,
	}
	if sr.Deleted {
		if len(sr.Ciphertext) != 0 || sr.KeyID != "" {
			return nil, integrityError("tombstone with ciphertext")
		}
		return r, nil
	}
	ct := sr.Ciphertext
	if len(ct) < headerLen+tagSize {
		return nil, integrityError("ciphertext too short")
	}
	if ct[0] != formatV1 {
		return nil, integrityError("unknown format")
	}
	if !isKeyID(sr.KeyID, sr.Compartment) {
		return nil, integrityError("key id does not match compartment")
	}
	ptLen := len(ct) - headerLen - tagSize
	buf := make([]byte, 0, ptLen+adLen(sr.Type, sr.ID, sr.Compartment))
	ad := appendAD(buf[ptLen:ptLen], sr.Type, sr.ID, sr.Version, sr.LastUpdated, sr.Compartment)
	nonce, sealed := ct[1:headerLen], ct[headerLen:]

	cached := s.cache.get(sr.KeyID)
	if cached != nil && cached.aead != nil {
		if pt, err := cached.aead.Open(buf, nonce, sealed, ad); err == nil {
			r.Body = pt[:ptLen:ptLen]
			return r, nil
		}
	}
	// Not cached, or the cached key did not open it: the key row may have
	// changed (a rolled-back creation, a restore). Read it and try once more.
	// The generation is taken before the keyring is called (see unwrapDEK).
	gen := s.cache.generation()
	wk, err := tx.Key(ctx, sr.KeyID)
	if errors.Is(err, phivault.ErrNotFound) {
		if err := shredded(ctx, tx, sr.Compartment); err != nil {
			return nil, err
		}
		return nil, integrityError("key does not exist")
	} else if err != nil {
		return nil, fmt.Errorf("envelope: key %s: %w", sr.KeyID, err)
	}
	if cached != nil && cached.aead != nil && cached.matches(wk) {
		return nil, integrityError("authentication failed")
	}
	e, err := s.unwrapDEK(ctx, wk, nil, gen)
	if err != nil {
		return nil, err
	}
	pt, err := e.aead.Open(buf, nonce, sealed, ad)
	if err != nil {
		return nil, integrityError("authentication failed")
	}
	r.Body = pt[:ptLen:ptLen]
	return r, nil
}

// integrityError wraps phivault.ErrIntegrity with a detail for operators.
// The detail never contains data or key material.
func integrityError(detail string) error {
	return fmt.Errorf("envelope: open: %s: %w", detail, phivault.ErrIntegrity)
}

// currentDEK returns the newest version of the DEK id stored in tx,
// creating id if there is none unless compartment was shredded (then it
// returns phivault.ErrShredded).
func (s *Sealer) currentDEK(ctx context.Context, tx phivault.StoreTx, id, compartment string) (*keyEntry, error) {
	gen := s.cache.generation()
	vs, err := tx.KeyVersions(ctx, id)
	var wk *phivault.WrappedKey
	if err == nil && len(vs) == 0 {
		err = phivault.ErrNotFound
	} else if err == nil {
		wk = vs[len(vs)-1]
	}
	if errors.Is(err, phivault.ErrNotFound) {
		if err := shredded(ctx, tx, compartment); err != nil {
			return nil, err
		}
		var dek []byte
		wk, dek, err = s.createKey(ctx, tx, id)
		if err != nil {
			return nil, err
		}
		defer clear(dek)
		return s.unwrapDEK(ctx, wk, dek, gen)
	} else if err != nil {
		return nil, fmt.Errorf("envelope: key %s: %w", id, err)
	}
	if e := s.cache.get(wk.ID); e != nil && e.aead != nil && e.matches(wk) {
		return e, nil
	}
	return s.unwrapDEK(ctx, wk, nil, gen)
}

// createKey creates a random key, wraps it and stores it under id in tx.
// If another writer stored one first, createKey returns that one and a nil
// key; otherwise it also returns the plaintext key, which the caller clears.
func (s *Sealer) createKey(ctx context.Context, tx phivault.StoreTx, id string) (*phivault.WrappedKey, []byte, error) {
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(s.rand, key); err != nil {
		return nil, nil, fmt.Errorf("envelope: create key %s: %w", id, err)
	}
	kekID, wrapped, err := s.keys.WrapKey(ctx, id, key)
	if err != nil {
		clear(key)
		return nil, nil, fmt.Errorf("envelope: wrap key %s: %w", id, err)
	}
	mine := &phivault.WrappedKey{ID: id, KEKID: kekID, Wrapped: wrapped, Created: s.now().UTC(), Bound: true}
	wk, err := tx.PutKey(ctx, mine)
	if err != nil {
		clear(key)
		return nil, nil, fmt.Errorf("envelope: store key %s: %w", id, err)
	}
	if wk.KEKID != mine.KEKID || string(wk.Wrapped) != string(mine.Wrapped) {
		clear(key) // first writer won: use its key
		return wk, nil, nil
	}
	return wk, key, nil
}

// unwrapKey returns the plaintext of wk: dek if it is non-nil (a key just
// created), otherwise the keyring's unwrapping. The caller clears it.
func (s *Sealer) unwrapKey(ctx context.Context, wk *phivault.WrappedKey, key []byte) ([]byte, error) {
	if key != nil {
		return key, nil
	}
	key, err := s.keys.UnwrapKey(ctx, wk.KEKID, wrapName(wk), wk.Wrapped)
	if err != nil {
		s.cache.remove(wk.ID)
		return nil, fmt.Errorf("envelope: unwrap key %s: %w", wk.ID, err)
	}
	if len(key) != KeySize {
		clear(key)
		s.cache.remove(wk.ID)
		return nil, fmt.Errorf("envelope: unwrap key %s: got %d bytes, want %d", wk.ID, len(key), KeySize)
	}
	return key, nil
}

// wrapName returns the name wk's wrapping is bound to: its id, or "" for a
// key wrapped before wraps were bound (see phivault.Keyring).
func wrapName(wk *phivault.WrappedKey) string {
	if wk.Bound {
		return wk.ID
	}
	return ""
}

// unwrapDEK builds the AEAD of wk and caches it unless the cache was purged
// since generation gen, taken before the keyring was called.
func (s *Sealer) unwrapDEK(ctx context.Context, wk *phivault.WrappedKey, dek []byte, gen uint64) (*keyEntry, error) {
	dek, err := s.unwrapKey(ctx, wk, dek)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, fmt.Errorf("envelope: key %s: %w", wk.ID, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("envelope: key %s: %w", wk.ID, err)
	}
	e := &keyEntry{id: wk.ID, kekID: wk.KEKID, wrapped: wk.Wrapped, aead: aead, gen: gen}
	s.cache.put(e)
	return e, nil
}

// adLen returns the length of the additional data for these fields.
func adLen(typ, id, compartment string) int {
	return 1 + 4 + len(typ) + 4 + len(id) + 8 + 8 + 4 + len(compartment)
}

// appendAD appends the additional data that binds a ciphertext to its row:
//
//	0x01 ‖ len32(type) ‖ type ‖ len32(id) ‖ id ‖ uint64(version) ‖
//	int64(lastUpdated in Unix microseconds) ‖ len32(compartment) ‖ compartment
//
// with big-endian integers. Every variable-length field is length-prefixed,
// so distinct rows never share additional data.
func appendAD(b []byte, typ, id string, version int64, lastUpdated time.Time, compartment string) []byte {
	b = append(b, formatV1)
	b = appendString(b, typ)
	b = appendString(b, id)
	b = binary.BigEndian.AppendUint64(b, uint64(version))
	b = binary.BigEndian.AppendUint64(b, uint64(lastUpdated.UnixMicro()))
	return appendString(b, compartment)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
