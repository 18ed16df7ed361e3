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
		return nil
	}
	c.order.MoveToFront(el)
	return e
}

// put stores e, replacing any entry with its id, and evicts the least
// recently used entries beyond the size bound. A size below 1 disables the
// cache.
func (c *keyCache) put(e *keyEntry) {
	if c.size < 1 {
		return
	}
	e.expires = c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead[e.id] {
		return
	}
	if el := c.byID[e.id]; el != nil {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.byID[e.id] = c.order.PushFront(e)
	for c.order.Len() > c.size {
		el := c.order.Back()
		c.order.Remove(el)
		delete(c.byID, el.Value.(*keyEntry).id)
	}
}

// remove drops the entry for id, if any.
func (c *keyCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.byID[id]; el != nil {
		c.order.Remove(el)
		delete(c.byID, id)
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
	}
}

// len returns the number of entries, live or expired.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
