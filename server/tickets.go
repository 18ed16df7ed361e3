package server

import (
	"crypto/tls"
	"fmt"
	"io"
	"sync"
	"time"
)

// ticketKeys rotates the TLS session ticket keys of a tls.Config on the
// server's clock: a new key every period, with the previous one kept so
// that a session resumed soon after a rotation still resumes. No key
// encrypts tickets for longer than period or decrypts them for longer than
// twice period. (Go's own rotation keeps keys for seven days, and TLS 1.2
// resumption has no forward secrecy within a key's lifetime.)
type ticketKeys struct {
	period time.Duration
	now    func() time.Time
	rand   io.Reader

	mu      sync.Mutex
	cfg     *tls.Config
	current [32]byte
	prev    *[32]byte
	next    time.Time // when current is replaced
}

// install sets the first key on cfg and makes every handshake check
// whether a rotation is due. Every handshake then runs with cfg itself,
// whose keys this rotates: http.Server serves a clone of cfg, and a clone
// keeps the keys it was made with.
func (t *ticketKeys) install(cfg *tls.Config) error {
	t.cfg = cfg
	if err := t.rotateLocked(t.now()); err != nil {
		return err
	}
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if err := t.maybeRotate(); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	return nil
}

// maybeRotate rotates the keys if the period of the current one is over.
func (t *ticketKeys) maybeRotate() error {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Before(t.next) {
		return nil
	}
	return t.rotateLocked(now)
}

// rotateLocked makes a new current key and keeps the old one as previous,
// unless the old one is more than a period overdue (the server was idle):
// then it would outlive twice the period, and is dropped.
func (t *ticketKeys) rotateLocked(now time.Time) error {
	var k [32]byte
	if _, err := io.ReadFull(t.rand, k[:]); err != nil {
		return fmt.Errorf("server: session ticket key: %w", err)
	}
	keys := [][32]byte{k}
	if !t.next.IsZero() && now.Before(t.next.Add(t.period)) {
		old := t.current
		t.prev = &old
		keys = append(keys, old)
	} else {
		t.prev = nil
	}
	t.current = k
	t.next = now.Add(t.period)
	t.cfg.SetSessionTicketKeys(keys)
	return nil
}
