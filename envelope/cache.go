package envelope

import (
	"bytes"
	"container/list"
	"crypto/cipher"
	"sync"
	"time"

	"github.com/phivault/phivault"
)

// keyEntry is one unwrapped key held in the cache, with the wrapped form it
// came from so that a changed key row is noticed.
type keyEntry struct {
	id      string
	kekID   phivault.KeyID
	wrapped []byte
	expires time.Time
	aead    cipher.AEAD // for a DEK
	index   *indexKey   // for the blind-index key
	gen     uint64      // the cache's generation when unwrapping began
}

// wipe zeroes the key bytes e owns. The AES key schedule inside an AEAD
// belongs to crypto/aes and cannot be zeroed; it goes with the garbage.
func (e *keyEntry) wipe() {
	if e.index != nil {
		e.index.wipe()
	}
}

// matches reports whether e was unwrapped from k.
func (e *keyEntry) matches(k *phivault.WrappedKey) bool {
	return e.kekID == k.KEKID && bytes.Equal(e.wrapped, k.Wrapped)
}

// keyCache is a bounded LRU of unwrapped keys with an absolute time to live
// from unwrapping. It is safe for concurrent use.
type keyCache struct {
	size int
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	order *list.List // of *keyEntry, most recently used first
	byID  map[string]*list.Element
	dead  map[string]bool // destroyed keys, never cached again
	gen   uint64          // incremented by purge
}

func newKeyCache(size int, ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{size: size, ttl: ttl, now: now, order: list.New(), byID: make(map[string]*list.Element), dead: make(map[string]bool)}
}

// get returns the live entry for id, or nil.
func (c *keyCache) get(id string) *keyEntry {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.byID[id]
	if el == nil {
		return nil
	}
	e := el.Value.(*keyEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.byID, id)
		e.wipe()
		return nil
	}
	c.order.MoveToFront(el)
	return e
}

// put stores e, replacing any entry with its id, and evicts the least
// recently used entries beyond the size bound. A size below 1 disables the
// cache. An entry whose unwrapping began before the last purge (e.gen is
// older) is not stored: the keyring may have been sealed meanwhile.
func (c *keyCache) put(e *keyEntry) {
	if c.size < 1 {
		return
	}
	e.expires = c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead[e.id] || e.gen != c.gen {
		return
	}
	if el := c.byID[e.id]; el != nil {
		if old := el.Value.(*keyEntry); old != e {
			old.wipe()
		}
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.byID[e.id] = c.order.PushFront(e)
	for c.order.Len() > c.size {
		el := c.order.Back()
		c.order.Remove(el)
		old := el.Value.(*keyEntry)
		delete(c.byID, old.id)
		old.wipe()
	}
}

// generation returns the cache's generation; pass it in keyEntry.gen.
func (c *keyCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// purge drops and wipes every entry and starts a new generation, so that
// keys being unwrapped right now are not cached either.
func (c *keyCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for el := c.order.Front(); el != nil; el = el.Next() {
		el.Value.(*keyEntry).wipe()
	}
	c.order.Init()
	clear(c.byID)
}

// remove drops the entry for id, if any.
func (c *keyCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.byID[id]; el != nil {
		c.order.Remove(el)
		delete(c.byID, id)
		el.Value.(*keyEntry).wipe()
	}
}

// kill drops the entry for id and never caches id again: its key was
// destroyed, and a reader that unwrapped it from an older snapshot must not
// put it back.
func (c *keyCache) kill(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead[id] = true
	if el := c.byID[id]; el != nil {
		c.order.Remove(el)
		delete(c.byID, id)
		el.Value.(*keyEntry).wipe()
	}
}

// len returns the number of entries, live or expired.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
