package passkey

import (
	"encoding/base64"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/phivault/phivault"
)

// Ceremony kinds.
const (
	kindRegister = "register"
	kindLogin    = "login"
)

// ceremony is the server-side state of one begun ceremony.
type ceremony struct {
	kind      string
	session   webauthn.SessionData
	accountID string // register: the account; login: the named account, or "" for discoverable
	pending   string // login: the pending OAuth authorization
	expires   time.Time
}

var errTooManyCeremonies = &phivault.Error{Code: phivault.EUNAVAILABLE, Message: "Too many passkey ceremonies are in progress; try again in a minute."}

// ceremonies keeps begun ceremonies in memory, each usable once.
type ceremonies struct {
	mu  sync.Mutex
	m   map[string]*ceremony
	max int
}

// put stores c under a new random id and returns the id.
func (cs *ceremonies) put(rand io.Reader, c *ceremony, now time.Time) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("ceremony id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.m) >= cs.max {
		for k, v := range cs.m {
			if !now.Before(v.expires) {
				delete(cs.m, k)
			}
		}
		if len(cs.m) >= cs.max {
			return "", errTooManyCeremonies
		}
	}
	cs.m[id] = c
	return id, nil
}

// take removes and returns the ceremony id of kind, if it exists and has
// not expired. A ceremony can be taken once, whatever happens next.
func (cs *ceremonies) take(id, kind string, now time.Time) (*ceremony, bool) {
	cs.mu.Lock()
	c, ok := cs.m[id]
	delete(cs.m, id)
	cs.mu.Unlock()
	if !ok || c.kind != kind || !now.Before(c.expires) {
		return nil, false
	}
	return c, true
}
