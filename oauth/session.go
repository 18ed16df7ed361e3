package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
)

// Session defaults.
const (
	DefaultAccessTokenTTL  = 15 * time.Minute // lifetime of an access token
	DefaultIdleTimeout     = 30 * time.Minute // a session unused this long ends
	DefaultSessionLifetime = 12 * time.Hour   // a session ends this long after login, used or not

	// sweepEvery is how often ended sessions are removed from memory.
	sweepEvery = time.Minute
	// maxTokenLen bounds the bearer tokens worth hashing: ours are 43
	// characters, so longer ones are refused without work.
	maxTokenLen = 64
)

// Sessions keeps login sessions and their tokens in memory.
//
// A session starts when a token is first issued to a person (authorization
// code) or a system (client credentials) and holds one principal. Its
// tokens are opaque random strings stored only as SHA-256 hashes. An access
// token lives AccessTokenTTL; a person's session also has one current
// refresh token, replaced on every use. Presenting a refresh token that was
// already replaced ends the whole session (it was stolen, or the client is
// broken). A session ends after IdleTimeout without any of its tokens being
// used, and Lifetime after it started, whatever happens; revocation ends it
// at once. Every check happens on every request, so an ended session's
// tokens fail on their very next use.
//
// Sessions live in memory only: a restart logs everyone out.
//
// Create it with NewSessions and set fields before first use; it is then
// safe for concurrent use.
type Sessions struct {
	Now  func() time.Time // default time.Now
	Rand io.Reader        // token source; default crypto/rand.Reader

	AccessTokenTTL time.Duration // default DefaultAccessTokenTTL
	IdleTimeout    time.Duration // default DefaultIdleTimeout
	Lifetime       time.Duration // default DefaultSessionLifetime

	mu        sync.RWMutex
	tokens    map[tokenHash]*token
	sessions  map[string]*session
	subjects  map[string]map[*session]struct{} // principal id → its sessions
	nextSweep time.Time
}

var (
	_ api.Authenticator       = (*Sessions)(nil)
	_ phivault.SessionRevoker = (*Sessions)(nil)
)

// NewSessions returns Sessions with the default lifetimes.
func NewSessions() *Sessions {
	return &Sessions{
		Now:            time.Now,
		Rand:           rand.Reader,
		AccessTokenTTL: DefaultAccessTokenTTL,
		IdleTimeout:    DefaultIdleTimeout,
		Lifetime:       DefaultSessionLifetime,
	}
}

type tokenHash [sha256.Size]byte

type tokenKind uint8

const (
	kindAccess  tokenKind = iota + 1
	kindRefresh           // the session's current refresh token
	kindRotated           // a refresh token already replaced; its use is theft
)

type token struct {
	kind    tokenKind
	sess    *session
	expires time.Time // for access tokens; refresh tokens live as long as the session
}

type session struct {
	id        string
	principal *phivault.Principal // immutable once stored
	expires   time.Time           // absolute end
	refresh   bool                // whether the session has refresh tokens
	lastUsed  atomic.Int64        // unix nanoseconds of the last use of any token
	hashes    []tokenHash         // every token of the session, to delete them together
}

// Issued is the outcome of starting or refreshing a session.
type Issued struct {
	AccessToken  string
	RefreshToken string        // "" for sessions without refresh tokens
	ExpiresIn    time.Duration // of the access token
	Principal    *phivault.Principal
}

// Error codes of Sessions, matched with errors.Is.
var (
	// ErrInvalidToken: the token is unknown, expired, or its session ended.
	ErrInvalidToken = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "The token is not valid."}
	// ErrTokenReused: a refresh token was used a second time; the
	// session has been ended.
	ErrTokenReused = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "The refresh token was already used; the session has been ended."}
)

func (s *Sessions) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Sessions) rand() io.Reader {
	if s.Rand == nil {
		return rand.Reader
	}
	return s.Rand
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *Sessions) accessTTL() time.Duration {
	return orDefault(s.AccessTokenTTL, DefaultAccessTokenTTL)
}
func (s *Sessions) idle() time.Duration     { return orDefault(s.IdleTimeout, DefaultIdleTimeout) }
func (s *Sessions) lifetime() time.Duration { return orDefault(s.Lifetime, DefaultSessionLifetime) }

// hashToken returns the SHA-256 hash of token (as api.HashToken) without
// allocating, or false if the token is too long to be one of ours.
func hashToken(tok string) (tokenHash, bool) {
	if len(tok) == 0 || len(tok) > maxTokenLen {
		return tokenHash{}, false
	}
	var buf [maxTokenLen]byte
	n := copy(buf[:], tok)
	return sha256.Sum256(buf[:n]), true
}

// newToken returns a fresh token (32 random bytes, base64url) and its hash.
func (s *Sessions) newToken() (string, tokenHash, error) {
	var b [32]byte
	if _, err := io.ReadFull(s.rand(), b[:]); err != nil {
		return "", tokenHash{}, fmt.Errorf("oauth: token: %w", err)
	}
	t := base64.RawURLEncoding.EncodeToString(b[:])
	h, _ := hashToken(t)
	return t, h, nil
}

// newID returns a random 128-bit hex id.
func newID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("oauth: id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// alive reports whether sess is within its lifetime and idle timeout at now.
func (s *Sessions) alive(sess *session, now time.Time) bool {
	if !now.Before(sess.expires) {
		return false
	}
	return now.Sub(time.Unix(0, sess.lastUsed.Load())) < s.idle()
}

// Authenticate implements api.Authenticator: it accepts a live access token
// and returns ctx carrying the session's principal (phivault.WithPrincipal)
// and its id as actor (api.WithActor). Using the token counts as activity
// for the idle timeout. Any other token gets ErrInvalidToken.
func (s *Sessions) Authenticate(ctx context.Context, bearer string) (context.Context, error) {
	h, ok := hashToken(bearer)
	if !ok {
		return nil, ErrInvalidToken
	}
	now := s.now()
	s.mu.RLock()
	t := s.tokens[h]
	if t == nil || t.kind != kindAccess || !now.Before(t.expires) || !s.alive(t.sess, now) {
		s.mu.RUnlock()
		return nil, ErrInvalidToken
	}
	t.sess.lastUsed.Store(now.UnixNano())
	p := t.sess.principal
	s.mu.RUnlock()
	return phivault.WithPrincipal(api.WithActor(ctx, p.ID), p), nil
}

// Start begins a session for a copy of p, with a fresh SessionID, and
// issues its first access token, and a refresh token if refresh is set.
// The session ends at the latest Lifetime from now; a session without
// refresh tokens ends when its access token expires.
func (s *Sessions) Start(p phivault.Principal, refresh bool) (*Issued, error) {
	id, err := newID(s.rand())
	if err != nil {
		return nil, err
	}
	now := s.now()
	p.SessionID = id
	p.Roles, p.Clearances, p.Methods, p.Scopes = slices.Clone(p.Roles), slices.Clone(p.Clearances), slices.Clone(p.Methods), slices.Clone(p.Scopes)
	sess := &session{id: id, principal: &p, refresh: refresh, expires: now.Add(s.lifetime())}
	if !refresh {
		sess.expires = now.Add(s.accessTTL())
	}
	sess.lastUsed.Store(now.UnixNano())

	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if s.sessions == nil {
		s.tokens = make(map[tokenHash]*token)
		s.sessions = make(map[string]*session)
		s.subjects = make(map[string]map[*session]struct{})
	}
	out, err := s.issueLocked(sess, now)
	if err != nil {
		return nil, err
	}
	s.sessions[id] = sess
	for _, k := range subjectKeys(&p) {
		subj := s.subjects[k]
		if subj == nil {
			subj = make(map[*session]struct{})
			s.subjects[k] = subj
		}
		subj[sess] = struct{}{}
	}
	return out, nil
}

// issueLocked adds a new access token, and refresh token if the session
// has them, to sess.
func (s *Sessions) issueLocked(sess *session, now time.Time) (*Issued, error) {
	at, ah, err := s.newToken()
	if err != nil {
		return nil, err
	}
	ttl := min(s.accessTTL(), sess.expires.Sub(now))
	out := &Issued{AccessToken: at, ExpiresIn: ttl, Principal: sess.principal}
	s.tokens[ah] = &token{kind: kindAccess, sess: sess, expires: now.Add(ttl)}
	sess.hashes = append(sess.hashes, ah)
	if sess.refresh {
		rt, rh, err := s.newToken()
		if err != nil {
			return nil, err
		}
		out.RefreshToken = rt
		s.tokens[rh] = &token{kind: kindRefresh, sess: sess, expires: sess.expires}
		sess.hashes = append(sess.hashes, rh)
	}
	return out, nil
}

// RefreshPrincipal returns the principal of the session whose current
// refresh token is tok, so that the caller can check the account and client
// are still allowed before calling Refresh. It returns ErrInvalidToken for
// an unknown or ended token, and for a refresh token that was already
// replaced it ends the session and returns its principal and
// ErrTokenReused.
func (s *Sessions) RefreshPrincipal(tok string) (*phivault.Principal, error) {
	h, ok := hashToken(tok)
	if !ok {
		return nil, ErrInvalidToken
	}
	now := s.now()
	s.mu.RLock()
	t := s.tokens[h]
	var p *phivault.Principal
	kind := tokenKind(0)
	if t != nil {
		kind, p = t.kind, t.sess.principal
		if kind == kindRefresh && !s.alive(t.sess, now) {
			kind = 0
		}
	}
	s.mu.RUnlock()
	switch kind {
	case kindRefresh:
		return p, nil
	case kindRotated:
		s.RevokeSession(p.SessionID)
		return p, ErrTokenReused
	}
	return nil, ErrInvalidToken
}

// Refresh replaces the refresh token tok with a new one and issues a new
// access token in the same session. The replaced token stays known until
// the session ends: using it again ends the session (ErrTokenReused).
// Access tokens issued before stay valid until they expire.
func (s *Sessions) Refresh(tok string) (*Issued, error) {
	h, ok := hashToken(tok)
	if !ok {
		return nil, ErrInvalidToken
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[h]
	switch {
	case t == nil:
		return nil, ErrInvalidToken
	case t.kind == kindRotated:
		s.endLocked(t.sess)
		return nil, ErrTokenReused
	case t.kind != kindRefresh || !s.alive(t.sess, now):
		return nil, ErrInvalidToken
	}
	out, err := s.issueLocked(t.sess, now)
	if err != nil {
		return nil, err
	}
	t.kind = kindRotated
	t.sess.lastUsed.Store(now.UnixNano())
	return out, nil
}

// Revoke ends what tok gives access to: an access token alone, or for a
// refresh token (current or replaced) its whole session. It returns the
// principal the token belonged to, or nil if tok is unknown.
func (s *Sessions) Revoke(tok string) *phivault.Principal {
	h, ok := hashToken(tok)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[h]
	if t == nil {
		return nil
	}
	if t.kind == kindAccess {
		delete(s.tokens, h)
	} else {
		s.endLocked(t.sess)
	}
	return t.sess.principal
}

// Lookup returns the principal of the session tok belongs to, whatever kind
// of token it is, or nil; it does not count as use. The revocation endpoint
// uses it to check that a token belongs to the client revoking it.
func (s *Sessions) Lookup(tok string) *phivault.Principal {
	h, ok := hashToken(tok)
	if !ok {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t := s.tokens[h]; t != nil {
		return t.sess.principal
	}
	return nil
}

// RevokeSession ends the session with the given id, if there is one, and
// reports whether there was.
func (s *Sessions) RevokeSession(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[id]
	if sess == nil {
		return false
	}
	s.endLocked(sess)
	return true
}

// RevokeSubject implements phivault.SessionRevoker: it ends every session
// of the account or client id subject: for a client, both its own
// (backend) sessions and those of people signed in through it. It never
// fails.
func (s *Sessions) RevokeSubject(_ context.Context, subject string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.subjects[subject] {
		s.endLocked(sess)
	}
	return nil
}

// Active returns the number of sessions held, ended or not yet swept.
func (s *Sessions) Active() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sessions)
}

// endLocked removes sess and all its tokens.
func (s *Sessions) endLocked(sess *session) {
	for _, h := range sess.hashes {
		delete(s.tokens, h)
	}
	sess.hashes = nil
	delete(s.sessions, sess.id)
	for _, k := range subjectKeys(sess.principal) {
		if subj := s.subjects[k]; subj != nil {
			delete(subj, sess)
			if len(subj) == 0 {
				delete(s.subjects, k)
			}
		}
	}
}

// subjectKeys returns the subjects whose revocation ends a session of p:
// its account or client id, and the client it was issued to.
func subjectKeys(p *phivault.Principal) []string {
	if p.Client == "" || p.Client == p.ID {
		return []string{p.ID}
	}
	return []string{p.ID, p.Client}
}

// sweepLocked removes ended sessions and expired access tokens, at most
// once every sweepEvery.
func (s *Sessions) sweepLocked(now time.Time) {
	if now.Before(s.nextSweep) {
		return
	}
	s.nextSweep = now.Add(sweepEvery)
	for _, sess := range s.sessions {
		if !s.alive(sess, now) {
			s.endLocked(sess)
			continue
		}
		kept := sess.hashes[:0]
		for _, h := range sess.hashes {
			t := s.tokens[h]
			if t == nil { // revoked alone
				continue
			}
			if t.kind == kindAccess && !now.Before(t.expires) {
				delete(s.tokens, h)
				continue
			}
			kept = append(kept, h)
		}
		sess.hashes = kept
	}
}
