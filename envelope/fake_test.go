package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/phivault/phivault"
)

// memTx is a minimal in-memory phivault.StoreTx: only the key methods work,
// which is all a Sealer uses. It is safe for concurrent use so that one can
// serve several goroutines in tests.
type memTx struct {
	phivault.StoreTx // nil: any other method panics

	mu   sync.Mutex
	keys map[string]*phivault.WrappedKey
	// hideKeys makes Key report ErrNotFound, so PutKey meets a key stored
	// by a concurrent writer.
	hideKeys bool
	puts     int
	shredded map[string]time.Time
}

func newMemTx() *memTx { return &memTx{keys: make(map[string]*phivault.WrappedKey)} }

func (tx *memTx) Key(ctx context.Context, id string) (*phivault.WrappedKey, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	k := tx.keys[id]
	if k == nil || tx.hideKeys {
		return nil, phivault.ErrNotFound
	}
	return k, nil
}

func (tx *memTx) KeyVersions(ctx context.Context, id string) ([]*phivault.WrappedKey, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	var out []*phivault.WrappedKey
	if tx.hideKeys {
		return out, nil
	}
	for n := 1; n <= len(tx.keys); n++ {
		if k := tx.keys[phivault.KeyVersionID(id, n)]; k != nil {
			out = append(out, k)
		}
	}
	return out, nil
}

func (tx *memTx) PutKey(ctx context.Context, k *phivault.WrappedKey) (*phivault.WrappedKey, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	tx.puts++
	if old := tx.keys[k.ID]; old != nil {
		return old, nil
	}
	c := *k
	c.Wrapped = bytes.Clone(k.Wrapped)
	tx.keys[k.ID] = &c
	return &c, nil
}

func (tx *memTx) Shred(ctx context.Context, compartment string, at time.Time) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	for n := len(tx.keys); n >= 1; n-- {
		delete(tx.keys, phivault.KeyVersionID("patient/"+compartment, n))
	}
	if tx.shredded == nil {
		tx.shredded = make(map[string]time.Time)
	}
	if _, ok := tx.shredded[compartment]; !ok {
		tx.shredded[compartment] = at
	}
	return nil
}

func (tx *memTx) Shredded(ctx context.Context, compartment string) (time.Time, bool, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	at, ok := tx.shredded[compartment]
	return at, ok, nil
}

func (tx *memTx) ReplaceKey(ctx context.Context, old, k *phivault.WrappedKey) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	cur := tx.keys[old.ID]
	if cur == nil {
		return phivault.ErrNotFound
	}
	if cur.KEKID != old.KEKID || !bytes.Equal(cur.Wrapped, old.Wrapped) || cur.Bound != old.Bound {
		return phivault.Errorf(phivault.ECONFLICT, "changed")
	}
	c := *k
	tx.keys[k.ID] = &c
	return nil
}

func (tx *memTx) Keys(ctx context.Context, f phivault.KeyFilter) ([]*phivault.WrappedKey, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	var ids []string
	for id, k := range tx.keys {
		if id > f.After && (f.ExceptKEK == "" || k.KEKID != f.ExceptKEK) &&
			(f.KEK == "" || k.KEKID == f.KEK) && (!f.Unbound || !k.Bound) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if f.Limit > 0 && len(ids) > f.Limit {
		ids = ids[:f.Limit]
	}
	out := make([]*phivault.WrappedKey, len(ids))
	for i, id := range ids {
		c := *tx.keys[id]
		out[i] = &c
	}
	return out, nil
}

func (tx *memTx) KeyCounts(ctx context.Context) (map[phivault.KeyID]int, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	out := make(map[phivault.KeyID]int)
	for _, k := range tx.keys {
		out[k.KEKID]++
	}
	return out, nil
}

// fakeKeyring "wraps" a key by prefixing a marker with the name it is bound
// to ("wrapped[name]:"), or "wrapped:" for an unbound wrap of an earlier
// version (fakeWrap), so tests can store chosen plaintext keys. It counts
// unwraps and can be told to fail. It is an envelope.UnboundRefuser whose
// one KEK accepts unbound wraps until RefuseUnbound.
type fakeKeyring struct {
	mu      sync.Mutex
	unwraps int
	fail    bool
	refused bool // unbound wraps are refused
	refuses int  // calls of RefuseUnbound
}

var errKeyringDown = errors.New("fake keyring: unavailable")

const fakeKEK = phivault.KeyID("fake:1")

// fakeWrap returns the unbound wrapped form of key under fakeKeyring, as
// stored before wraps were bound (WrappedKey.Bound false).
func fakeWrap(key []byte) []byte { return fakeWrapFor("", key) }

// fakeWrapFor returns the wrapped form of key bound to name.
func fakeWrapFor(name string, key []byte) []byte {
	if name == "" {
		return append([]byte("wrapped:"), key...)
	}
	return append([]byte("wrapped["+name+"]:"), key...)
}

func (k *fakeKeyring) WrapKey(ctx context.Context, name string, dek []byte) (phivault.KeyID, []byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return "", nil, errKeyringDown
	}
	if name == "" {
		return "", nil, errors.New("fake keyring: no name")
	}
	return fakeKEK, fakeWrapFor(name, dek), nil
}

func (k *fakeKeyring) UnwrapKey(ctx context.Context, id phivault.KeyID, name string, wrapped []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.unwraps++
	if k.fail {
		return nil, errKeyringDown
	}
	rest, ok := bytes.CutPrefix(wrapped, fakeWrapFor(name, nil))
	if id != fakeKEK || !ok || name == "" && k.refused {
		return nil, errFakeUnwrap
	}
	return bytes.Clone(rest), nil
}

// errFakeUnwrap is the fake keyring's keyring.ErrUnwrap.
var errFakeUnwrap = phivault.Errorf(phivault.EINTEGRITY, "fake keyring: bad wrapped key")

func (k *fakeKeyring) AcceptsUnbound(context.Context) ([]phivault.KeyID, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return nil, errKeyringDown
	}
	if k.refused {
		return nil, nil
	}
	return []phivault.KeyID{fakeKEK}, nil
}

func (k *fakeKeyring) RefuseUnbound(_ context.Context, ids []phivault.KeyID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return errKeyringDown
	}
	k.refuses++
	if slices.Contains(ids, fakeKEK) {
		k.refused = true
	}
	return nil
}

func (k *fakeKeyring) setFail(fail bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fail = fail
}

func (k *fakeKeyring) unwrapCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.unwraps
}
