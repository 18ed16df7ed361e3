package console

import (
	"container/list"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/phivault/phivault"
)

// sessionCookie names the browser's session: __Host- so that no other
// origin, subdomains included, can set it.
const sessionCookie = "__Host-phivault-console"

// session is one person's console session: the tokens the sign-in gave,
// who they belong to, and the CSRF token of its forms.
type session struct {
	key       [sha256.Size]byte // SHA-256 of the cookie value
	principal phivault.Principal
	csrf      string
	created   time.Time

	mu            sync.Mutex // guards the tokens: a refresh rotates them
	access        string
	refresh       string
	accessExpires time.Time
	ended         bool

	lastSeen time.Time     // guarded by sessions.mu
	elem     *list.Element // in sessions.lru
}

// sessions holds the console's sessions in memory, by the hash of their
// cookie: a restart signs everyone out, as it does the OAuth sessions
// behind them.
type sessions struct {
	idle, lifetime time.Duration
	max            int

	mu    sync.Mutex
	byKey map[[sha256.Size]byte]*session
	lru   *list.List // front: most recently used
}

func newSessions(idle, lifetime time.Duration, max int) *sessions {
	return &sessions{idle: idle, lifetime: lifetime, max: max, byKey: make(map[[sha256.Size]byte]*session), lru: list.New()}
}

// newToken returns 32 random bytes, base64url.
func newToken(rnd io.Reader) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// add stores s under a new cookie value, which it returns. The least
// recently used session goes if the store is full.
func (ss *sessions) add(s *session, rnd io.Reader, now time.Time) (string, error) {
	cookie, err := newToken(rnd)
	if err != nil {
		return "", err
	}
	if s.csrf, err = newToken(rnd); err != nil {
		return "", err
	}
	s.key = sha256.Sum256([]byte(cookie))
	s.created, s.lastSeen = now, now
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for len(ss.byKey) >= ss.max {
		ss.dropLocked(ss.lru.Back().Value.(*session))
	}
	s.elem = ss.lru.PushFront(s)
	ss.byKey[s.key] = s
	return cookie, nil
}

// get returns the live session of r's cookie and marks it used, or nil.
// A session idle for longer than the idle timeout, or older than its
// lifetime, ends here.
func (ss *sessions) get(r *http.Request, now time.Time) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) != 43 {
		return nil
	}
	key := sha256.Sum256([]byte(c.Value))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byKey[key]
	if s == nil { // the key is a hash: looking it up tells nothing of the cookie
		return nil
	}
	if now.Sub(s.lastSeen) > ss.idle || now.Sub(s.created) > ss.lifetime {
		ss.dropLocked(s)
		return nil
	}
	s.lastSeen = now
	ss.lru.MoveToFront(s.elem)
	return s
}

// drop ends s.
func (ss *sessions) drop(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.dropLocked(s)
}

func (ss *sessions) dropLocked(s *session) {
	if ss.byKey[s.key] == s {
		delete(ss.byKey, s.key)
		ss.lru.Remove(s.elem)
	}
}

// setSessionCookie gives the browser its session cookie.
func setSessionCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// clearSessionCookie removes it.
func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// checkCSRF reports whether r's form carries s's CSRF token.
func (s *session) checkCSRF(r *http.Request) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}
