package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault"
)

// signInCookie carries a sign-in in progress: its state, its PKCE
// verifier and the page asked for. It is SameSite=Lax so that it comes
// back from a sign-in that passed through another site (an OpenID
// provider); it holds nothing that names the person.
const signInCookie = "__Host-phivault-console-signin"

// signInTTL bounds a sign-in in progress, as the login page does.
const signInTTL = 600 // seconds

// safeNext returns next if it is a console page of this origin, else the
// console's home.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/console/") ||
		strings.Contains(next, "\\") || strings.HasPrefix(next, "//") || u.Path == CallbackPath {
		return "/console/"
	}
	return u.RequestURI()
}

// signIn starts the OAuth sign-in: GET /console/signin?next=PATH.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	state, err1 := newToken(h.opts.Rand)
	verifier, err2 := newToken(h.opts.Rand)
	if err := errors.Join(err1, err2); err != nil {
		h.internalError(w, r, nil, "sign-in state", err)
		return
	}
	next := safeNext(r.URL.Query().Get("next"))
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Path: "/", MaxAge: signInTTL, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Value: state + "." + verifier + "." + base64.RawURLEncoding.EncodeToString([]byte(next))})
	challenge := sha256.Sum256([]byte(verifier))
	origin := h.origin(r)
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {ClientID},
		"redirect_uri":          {origin + CallbackPath},
		"scope":                 {Scopes},
		"state":                 {state},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
		"aud":                   {origin + "/fhir"},
	}
	http.Redirect(w, r, "/oauth/authorize?"+q.Encode(), http.StatusSeeOther)
}

// signInErrors are the messages shown for the OAuth errors a sign-in can
// end with; the error_description in the URL is not shown, since anyone
// can write one into a link.
var signInErrors = map[string]string{
	"access_denied": "The sign-in was refused.",
	"invalid_scope": "This account may not use the console.",
}

// callback finishes the sign-in: GET /console/callback?code=&state=.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := r.Cookie(signInCookie)
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	var parts []string
	if err == nil {
		parts = strings.Split(c.Value, ".")
	}
	if len(parts) != 3 || subtle.ConstantTimeCompare([]byte(parts[0]), []byte(q.Get("state"))) != 1 {
		h.renderSignIn(w, r, http.StatusBadRequest, "This sign-in is not the one this browser started, or it took too long.")
		return
	}
	if e := q.Get("error"); e != "" {
		msg, ok := signInErrors[e]
		if !ok {
			msg = "The sign-in did not complete."
		}
		h.renderSignIn(w, r, http.StatusForbidden, msg)
		return
	}
	origin := h.origin(r)
	if iss := q.Get("iss"); iss != "" && iss != origin { // RFC 9207
		h.renderSignIn(w, r, http.StatusBadRequest, "The sign-in came back from another server.")
		return
	}
	t, err := h.tokenGrant(r, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {q.Get("code")},
		"redirect_uri":  {origin + CallbackPath},
		"code_verifier": {parts[1]},
	})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status < 500 {
			h.renderSignIn(w, r, http.StatusBadRequest, "The sign-in could not be completed; sign in again.")
			return
		}
		h.internalError(w, r, nil, "code exchange", err)
		return
	}
	ctx, err := h.opts.Auth.Authenticate(r.Context(), t.AccessToken)
	if err != nil {
		h.internalError(w, r, nil, "read the new token", err)
		return
	}
	p := phivault.PrincipalFromContext(ctx)
	if p == nil || p.Kind != phivault.PrincipalStaff {
		h.revoke(r, t.RefreshToken, t.AccessToken)
		h.renderSignIn(w, r, http.StatusForbidden, "The console is for staff. Patients see who looked at their record in their own apps.")
		return
	}
	now := h.opts.Now()
	s := &session{principal: *p, access: t.AccessToken, refresh: t.RefreshToken}
	s.accessExpires = now.Add(secondsOf(t.ExpiresIn))
	cookie, err := h.sessions.add(s, h.opts.Rand, now)
	if err != nil {
		h.internalError(w, r, nil, "new session", err)
		return
	}
	setSessionCookie(w, cookie)
	next := "/console/"
	if b, err := base64.RawURLEncoding.DecodeString(parts[2]); err == nil {
		next = safeNext(string(b))
	}
	// A page of this origin moves on, rather than a redirect: after a
	// sign-in through another site, the browser would not send the new
	// SameSite=Strict cookie along a redirect chain that began there.
	h.render(w, r, nil, http.StatusOK, "continue", "Signed in", next)
}

// signOut ends the session: POST /console/signout.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	s.ended = true
	refresh, access := s.refresh, s.access
	s.mu.Unlock()
	h.sessions.drop(s)
	h.revoke(r, refresh, access)
	clearSessionCookie(w)
	h.renderSignIn(w, r, http.StatusOK, "You are signed out.")
}

// revoke revokes tokens at the OAuth server (RFC 7009), best effort: an
// unrevoked token still ends with its session's timeouts.
func (h *Handler) revoke(r *http.Request, tokens ...string) {
	for _, tok := range tokens {
		if tok == "" {
			continue
		}
		rp, err := h.call(r, "", http.MethodPost, "/oauth/revoke", url.Values{"token": {tok}, "client_id": {ClientID}}, nil)
		if err == nil {
			err = rp.refusal()
		}
		if err != nil {
			h.opts.Logger.Warn("console: revoke a token", "error_type", errorType(err))
		}
	}
}

// renderSignIn shows the signed-out page with msg and a way to sign in.
func (h *Handler) renderSignIn(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, nil, status, "signin", "Sign in", msg)
}
