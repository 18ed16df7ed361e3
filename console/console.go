// Package console is phivault's web console, under /console/: pages for
// privacy officers and security admins, and the report form for every
// staff member.
//
// The console is an OAuth client like any other (ClientID, a public
// client with PKCE): a person signs in on the vault's own login page, and
// the console keeps the tokens it was given in a server-side session
// named by an opaque cookie. Every page calls the vault's APIs in
// process with that person's access token (Options.Backend), so every
// decision and every audit entry is the API's own, made by the same code
// as for any other client: the console holds no authority of its own and
// shows nothing the person's token could not read.
//
// # Defenses
//
// The session cookie is __Host-, Secure, HttpOnly and SameSite=Strict;
// every form carries the session's CSRF token, and cross-origin posts are
// refused before that ([http.CrossOriginProtection]). Pages are rendered
// with html/template under a Content-Security-Policy without inline
// script or style; the little script there is (htmx, vendored and pinned
// by its hash, and the proof checker) is served from the binary. A
// session ends with the OAuth session behind it: its idle timeout and
// absolute lifetime, a revocation, or sign-out.
package console

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// ClientID is the console's OAuth client id; the server registers it as
// a public client whose redirect URI is CallbackPath on its own origin.
const ClientID = "phivault-console"

// CallbackPath is where the vault's sign-in sends a person back.
const CallbackPath = "/console/callback"

// Scopes are what the console asks for: reading the audit trail (the
// security API's guard wants it), finding patients for the access report,
// and a refresh token, so that a session lasts as long as the OAuth
// session behind it rather than one access token.
const Scopes = "user/AuditEvent.rs user/Patient.rs offline_access"

// Defaults of Options.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultLifetime    = 12 * time.Hour
	DefaultMaxSessions = 10000
)

// An Authenticator reads the principal of an access token into a context
// (phivault.PrincipalFromContext); the API's bearer chain is one.
type Authenticator interface {
	Authenticate(ctx context.Context, bearerToken string) (context.Context, error)
}

// Options configure New. Backend and Auth are required.
type Options struct {
	// Backend serves the APIs the console calls on a person's behalf:
	// /oauth/token and /oauth/revoke, /fhir/…, /security/…. Requests
	// reach it with the browser's request context (its request id and
	// source address) and the person's bearer token.
	Backend http.Handler
	// Auth reads who an access token belongs to.
	Auth Authenticator
	// BaseURL is the public FHIR base URL, as the OAuth server's; ""
	// derives it from each request's Host (development only).
	BaseURL string

	// IdleTimeout and Lifetime end a console session, as they end the
	// OAuth session behind it; give the OAuth server's values. Defaults
	// DefaultIdleTimeout and DefaultLifetime.
	IdleTimeout time.Duration
	Lifetime    time.Duration
	// MaxSessions bounds the sessions held; the least recently used
	// goes first. Default DefaultMaxSessions.
	MaxSessions int

	// KeyActionsNeedApproval says that the admin API makes a shred and a
	// compromise mark wait for a second security admin
	// (admin.Options.ApproveKeyActions): the Keys page says so.
	KeyActionsNeedApproval bool

	Now    func() time.Time // default time.Now
	Rand   io.Reader        // default crypto/rand.Reader
	Logger *slog.Logger     // internal errors, ids only; default discarded
}

// Handler serves /console/. It is safe for concurrent use.
type Handler struct {
	opts     Options
	sessions *sessions
	pages    *pages
	mux      *http.ServeMux
	nav      []navPage // the navigation, in order; see routes
	cop      *http.CrossOriginProtection
}

// New returns the console for opts.
func New(opts Options) (*Handler, error) {
	if opts.Backend == nil || opts.Auth == nil {
		return nil, errors.New("console: Backend and Auth are required")
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Lifetime <= 0 {
		opts.Lifetime = DefaultLifetime
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	h := &Handler{opts: opts, pages: pages, mux: http.NewServeMux(), cop: http.NewCrossOriginProtection()}
	h.sessions = newSessions(opts.IdleTimeout, opts.Lifetime, opts.MaxSessions)
	h.routes()
	return h, nil
}

// contentSecurityPolicy allows the console's own scripts, styles and
// images only: no inline script or style, no plugin, no frame, forms
// posted to this origin only.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/console/static/") {
		hd.Set("Cache-Control", "no-store")
	}
	r = r.WithContext(context.WithValue(r.Context(), startKey{}, time.Now()))
	if err := h.cop.Check(r); err != nil {
		h.renderError(w, r, nil, http.StatusForbidden, "This form came from another site, and was refused.")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// startKey keys the time a request came in, for its Server-Timing.
type startKey struct{}

// origin returns the vault's public origin, e.g. https://vault.example.org.
func (h *Handler) origin(r *http.Request) string {
	if h.opts.BaseURL != "" {
		return strings.TrimSuffix(strings.TrimSuffix(h.opts.BaseURL, "/"), "/fhir")
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}
