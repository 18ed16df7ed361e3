package oauth

import (
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/phivault/phivault/smart"
)

// A pending authorization travels with the browser, not in the server's
// memory: GET /oauth/authorize seals it (XChaCha20-Poly1305 under a key of
// the Server) into the login form, and the login and the other sign-in
// methods open it again. An anonymous flood of authorize requests
// therefore stores nothing and cannot crowd out anyone's sign-in. The
// server keeps state for a pending authorization only once credentials
// were submitted for it (failed attempts, completion); see loginState.

// pendingAD binds sealed pending authorizations to their purpose, so that
// nothing else sealed under the same key could pass for one.
const pendingAD = "phivault oauth pending authorization v1"

// maxPendingToken bounds the size of a sealed pending authorization taken
// from a request, checked before it is decoded.
const maxPendingToken = 16 << 10

// sealedPending is the sealed form of a pending authorization.
type sealedPending struct {
	ID          string   `json:"i"`
	ClientID    string   `json:"c"`
	ClientName  string   `json:"n,omitempty"`
	RedirectURI string   `json:"r"`
	State       string   `json:"s"`
	Challenge   string   `json:"p"`
	Scopes      []string `json:"o"`
	CSRF        string   `json:"x"`
	Expires     int64    `json:"e"` // Unix seconds
}

// loginState is what the server remembers about a pending authorization
// once credentials were submitted for it: failed attempts, and whether it
// was used up (completed, or too many failures).
type loginState struct {
	attempts int
	spent    bool
	expires  time.Time
}

// newPendingAEAD returns the AEAD that seals pending authorizations:
// XChaCha20-Poly1305 under key if it is set (32 bytes), else under a fresh
// random key from rand, so that a restart ends the sign-ins in progress.
// Its 192-bit random nonces never collide in practice, however many
// pending authorizations anonymous callers make the server seal under one
// key; AES-GCM's 96-bit random nonces would reach their safe limit (2^32
// seals) within days at a sustained 10,000 requests a second.
func newPendingAEAD(key []byte, rand io.Reader) (cipher.AEAD, error) {
	if key == nil {
		key = make([]byte, chacha20poly1305.KeySize)
		if _, err := io.ReadFull(rand, key); err != nil {
			return nil, fmt.Errorf("oauth: pending key: %w", err)
		}
	}
	if len(key) != chacha20poly1305.KeySize {
		return nil, errors.New("oauth: PendingKey must be 32 bytes")
	}
	return chacha20poly1305.NewX(key)
}

// sealPending fills in p's id, CSRF token and token (its sealed form).
func (s *Server) sealPending(p *pending) error {
	var err error
	if p.id, err = newID(s.opts.Rand); err != nil {
		return err
	}
	if p.csrf, err = newID(s.opts.Rand); err != nil {
		return err
	}
	sp := sealedPending{
		ID: p.id, ClientID: p.clientID, ClientName: p.clientName, RedirectURI: p.redirectURI,
		State: p.state, Challenge: p.challenge, CSRF: p.csrf,
		Expires: s.opts.Now().Add(s.opts.PendingTTL).Unix(),
	}
	for _, sc := range p.scopes {
		sp.Scopes = append(sp.Scopes, sc.String())
	}
	plain, err := json.Marshal(&sp)
	if err != nil {
		return fmt.Errorf("oauth: seal pending: %w", err)
	}
	nonce := make([]byte, s.pendingAEAD.NonceSize(), s.pendingAEAD.NonceSize()+len(plain)+s.pendingAEAD.Overhead())
	if _, err := io.ReadFull(s.opts.Rand, nonce); err != nil {
		return fmt.Errorf("oauth: seal pending: %w", err)
	}
	p.token = base64.RawURLEncoding.EncodeToString(s.pendingAEAD.Seal(nonce, nonce, plain, []byte(pendingAD)))
	return nil
}

// openPending returns the pending authorization sealed in token if it
// opens, has not expired and is not used up; otherwise nil.
func (s *Server) openPending(token string) *pending {
	if token == "" || len(token) > maxPendingToken {
		return nil
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	ns := s.pendingAEAD.NonceSize()
	if err != nil || len(raw) < ns+s.pendingAEAD.Overhead() {
		return nil
	}
	plain, err := s.pendingAEAD.Open(nil, raw[:ns], raw[ns:], []byte(pendingAD))
	if err != nil {
		return nil
	}
	var sp sealedPending
	if err := json.Unmarshal(plain, &sp); err != nil || len(sp.ID) != 32 {
		return nil
	}
	now := s.opts.Now()
	if !now.Before(time.Unix(sp.Expires, 0)) {
		return nil
	}
	scopes, err := smart.Parse(strings.Join(sp.Scopes, " "))
	if err != nil {
		return nil
	}
	s.mu.Lock()
	st := s.logins[sp.ID]
	spent := st != nil && st.spent && now.Before(st.expires)
	s.mu.Unlock()
	if spent {
		return nil
	}
	return &pending{
		id: sp.ID, token: token, clientID: sp.ClientID, clientName: sp.ClientName,
		redirectURI: sp.RedirectURI, state: sp.State, challenge: sp.Challenge,
		scopes: scopes, csrf: sp.CSRF, expires: time.Unix(sp.Expires, 0),
	}
}

// loginStateLocked returns the state of p, creating it if there is room.
// It returns nil when the table is full of live entries: the caller then
// goes on without it (see docs/login.md), because refusing would let a
// flood of failed logins lock everyone out.
func (s *Server) loginStateLocked(p *pending) *loginState {
	if st := s.logins[p.id]; st != nil {
		return st
	}
	now := s.opts.Now()
	if len(s.logins) >= maxLoginStates {
		for id, st := range s.logins {
			if !now.Before(st.expires) {
				delete(s.logins, id)
			}
		}
		if len(s.logins) >= maxLoginStates {
			return nil
		}
	}
	st := &loginState{expires: p.expires}
	s.logins[p.id] = st
	return st
}

// spend marks p used up, so that its token no longer opens, and reports
// whether it was not used up already: of two logins racing on one
// pending authorization, only one completes.
func (s *Server) spend(p *pending) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.loginStateLocked(p)
	if st == nil {
		return true // table full: the credentials were checked all the same
	}
	if st.spent {
		return false
	}
	st.spent = true
	return true
}
