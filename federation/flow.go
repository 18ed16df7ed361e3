package federation

import (
	"encoding/base64"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/phivault/phivault"
)

// flow is the server-side state of one started login at a provider.
type flow struct {
	provider string
	pending  string
	state    string
	nonce    string
	verifier string // PKCE code verifier
	expires  time.Time
}

var errTooManyFlows = &phivault.Error{Code: phivault.EUNAVAILABLE, Message: "Too many sign-ins are in progress; try again in a minute."}

// flows keeps started flows in memory, each usable once.
type flows struct {
	mu  sync.Mutex
	m   map[string]*flow
	max int
}

// random returns n random bytes from rand as base64url.
func random(rand io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// put stores f under key.
func (fs *flows) put(key string, f *flow, now time.Time) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.m) >= fs.max {
		for k, v := range fs.m {
			if !now.Before(v.expires) {
				delete(fs.m, k)
			}
		}
		if len(fs.m) >= fs.max {
			return errTooManyFlows
		}
	}
	fs.m[key] = f
	return nil
}

// take removes and returns the flow under key if it has not expired.
func (fs *flows) take(key string, now time.Time) (*flow, bool) {
	fs.mu.Lock()
	f, ok := fs.m[key]
	delete(fs.m, key)
	fs.mu.Unlock()
	if !ok || !now.Before(f.expires) {
		return nil, false
	}
	return f, true
}
