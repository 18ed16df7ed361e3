package oauth

import (
	"fmt"
	"strings"
	"time"

	"github.com/phivault/phivault/smart"
)

// A pending authorization travels with the browser, not in the server's
// memory: GET /oauth/authorize seals it (internal/sealbox, under a key of
// the Server) into the login form, and the login and the other sign-in
// methods open it again. An anonymous flood of authorize requests
// therefore stores nothing and cannot crowd out anyone's sign-in. The
// server keeps state for a pending authorization only once credentials
// were submitted for it (failed attempts, completion); see loginState.

// pendingPurpose binds sealed pending authorizations to their purpose,
// so that nothing else sealed under the same key could pass for one.
const pendingPurpose = "phivault oauth pending authorization v1"

// sealedPending is the sealed form of a pending authorization; its expiry
// is sealed with it (see sealbox).
type sealedPending struct {
	ID          string   `json:"i"`
	ClientID    string   `json:"c"`
	ClientName  string   `json:"n,omitempty"`
	RedirectURI string   `json:"r"`
	State       string   `json:"s"`
	Challenge   string   `json:"p"`
	Scopes      []string `json:"o"`
	CSRF        string   `json:"x"`
}

// loginState is what the server remembers about a pending authorization
// once credentials were submitted for it: failed attempts, and whether it
// was used up (completed, or too many failures).
type loginState struct {
	attempts int
	spent    bool
	expires  time.Time
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
	}
	for _, sc := range p.scopes {
		sp.Scopes = append(sp.Scopes, sc.String())
	}
	if p.token, err = s.pendingBox.Seal(pendingPurpose, &sp, s.opts.Now().Add(s.opts.PendingTTL)); err != nil {
		return fmt.Errorf("oauth: %w", err)
	}
	return nil
}

// openPending returns the pending authorization sealed in token if it
// opens, has not expired and is not used up; otherwise nil.
func (s *Server) openPending(token string) *pending {
	now := s.opts.Now()
	var sp sealedPending
	expires, err := s.pendingBox.Open(pendingPurpose, token, now, &sp)
	if err != nil || len(sp.ID) != 32 {
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
		scopes: scopes, csrf: sp.CSRF, expires: expires,
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
