package oauth

import (
	"crypto/subtle"
	_ "embed"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/smart"
)

// pending is an authorization request waiting for the person to log in.
// It lives sealed in the login page (token); see pending.go.
type pending struct {
	id          string // random, names the CSRF cookie and the loginState
	token       string // the sealed form, carried by the login page
	clientID    string
	clientName  string
	redirectURI string
	state       string
	challenge   string // PKCE S256 code challenge
	scopes      []smart.Scope
	csrf        string
	expires     time.Time
}

//go:embed login.html
var loginHTML string

var loginTmpl = template.Must(template.New("login").Parse(loginHTML))

// loginPage is what login.html shows.
type loginPage struct {
	Client    string
	Scopes    []string
	Error     string
	Pending   string
	CSRF      string
	Passkeys  bool
	Federated []Provider
}

// serveAuthorize answers GET /oauth/authorize: it checks the request and
// shows the login page. Until client_id and redirect_uri are known good,
// errors are shown as a plain page and never redirected (RFC 6749 section
// 4.1.2.1).
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := s.activeClient(r.Context(), q.Get("client_id"), phivault.ClientPublic)
	if err != nil {
		if phivault.ErrorCode(err) != phivault.ENOTFOUND {
			s.opts.Logger.Error("oauth: authorize: client lookup", "error", err.Error())
			writePage(w, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again later.")
			return
		}
		writePage(w, http.StatusBadRequest, "The app is not registered with this server, or is suspended (client_id).")
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" || !s.registeredRedirect(r, c, redirect) {
		writePage(w, http.StatusBadRequest, "The redirect_uri is not one registered for this app.")
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		http.Redirect(w, r, withParams(redirect, "error", code, "error_description", desc, "state", state, "iss", s.issuer(r)), http.StatusSeeOther)
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "Only response_type=code is supported.")
		return
	}
	if state == "" || len(state) > 512 {
		fail("invalid_request", "state is required (at most 512 characters).")
		return
	}
	if q.Get("code_challenge_method") != "S256" {
		fail("invalid_request", "PKCE with code_challenge_method=S256 is required.")
		return
	}
	challenge := q.Get("code_challenge")
	if len(challenge) != 43 || !isBase64URL(challenge) {
		fail("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters).")
		return
	}
	if strings.TrimSuffix(q.Get("aud"), "/") != s.base(r) {
		fail("invalid_request", "aud must be this server's FHIR base URL.")
		return
	}
	scope := q.Get("scope")
	scopes, err := smart.Parse(scope)
	if err != nil || len(scopes) == 0 || len(scope) > 4096 {
		fail("invalid_scope", "scope must be a list of valid SMART scopes.")
		return
	}
	p := &pending{
		clientID: c.ID, clientName: c.Name, redirectURI: redirect, state: state,
		challenge: challenge, scopes: scopes,
	}
	if err := s.sealPending(p); err != nil {
		s.opts.Logger.Error("oauth: authorize: seal", "error", err.Error())
		writePage(w, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again later.")
		return
	}
	s.setCSRFCookie(w, r, p)
	s.renderLogin(w, http.StatusOK, p, "")
}

// registeredRedirect reports whether redirect is one of c's redirect
// URIs. A registered path (such as the console's /console/callback)
// stands for that path on this server's own origin: the issuer, from
// BaseURL or, without one, from the request (development only).
func (s *Server) registeredRedirect(r *http.Request, c *phivault.Client, redirect string) bool {
	for _, u := range c.RedirectURIs {
		if strings.HasPrefix(u, "/") {
			if !strings.HasPrefix(u, "//") && s.issuer(r)+u == redirect {
				return true
			}
		} else if u == redirect {
			return true
		}
	}
	return false
}

// Pending reports whether token is a pending authorization that a login
// may still complete. Passkey and federated login handlers call it before
// starting their own ceremony, and pass the same token to Complete.
func (s *Server) Pending(token string) bool {
	return s.openPending(token) != nil
}

// takePending returns the live pending authorization token and marks it
// used up, or returns nil.
func (s *Server) takePending(token string) *pending {
	p := s.openPending(token)
	if p == nil || !s.spend(p) {
		return nil
	}
	return p
}

// csrfCookie returns the name of p's CSRF cookie; __Host- when served
// over TLS, so that no subdomain can set it.
func csrfCookie(r *http.Request, pendingID string) string {
	name := "phivault-csrf-" + pendingID[:16]
	if r.TLS != nil {
		name = "__Host-" + name
	}
	return name
}

// setCSRFCookie sets the double-submit cookie of p: the login form must
// post the same value, from a browser holding the cookie.
func (s *Server) setCSRFCookie(w http.ResponseWriter, r *http.Request, p *pending) {
	http.SetCookie(w, &http.Cookie{
		Name:     csrfCookie(r, p.id),
		Value:    p.csrf,
		Path:     "/",
		MaxAge:   int(s.opts.PendingTTL / time.Second),
		Secure:   r.TLS != nil,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

// checkCSRF reports whether the form and the cookie both carry p's token.
func checkCSRF(r *http.Request, p *pending) bool {
	c, err := r.Cookie(csrfCookie(r, p.id))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(p.csrf)) == 1 &&
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(p.csrf)) == 1
}

// renderLogin shows the login form for p.
func (s *Server) renderLogin(w http.ResponseWriter, status int, p *pending, msg string) {
	page := loginPage{Client: p.clientName, Error: msg, Pending: p.token, CSRF: p.csrf, Passkeys: s.opts.Passkeys, Federated: s.opts.Federated}
	for _, sc := range p.scopes {
		page.Scopes = append(page.Scopes, sc.String())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginTmpl.Execute(w, page); err != nil {
		s.opts.Logger.Error("oauth: login page", "error", err.Error())
	}
}

// withParams returns uri with the non-empty name, value pairs added to its
// query.
func withParams(uri string, kv ...string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri // registered URIs parse; nothing better to do
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// isBase64URL reports whether s uses only the base64url alphabet.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
