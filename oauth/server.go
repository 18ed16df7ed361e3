package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/onetime"
	"github.com/phivault/phivault/internal/sealbox"
)

// Defaults of Options.
const (
	DefaultCodeTTL    = 60 * time.Second // an authorization code must be redeemed this fast
	DefaultPendingTTL = 10 * time.Minute // a login page must be completed this fast
	// DefaultMaxAssertionsPerClient bounds each backend client's replay
	// cache of assertion ids (jti): 10,000 within an assertion's at most
	// five minutes is over 30 token requests a second.
	DefaultMaxAssertionsPerClient = 10000

	// maxAssertionTTL bounds how far ahead a client assertion's exp may be.
	maxAssertionTTL = 5 * time.Minute
	// maxLoginStates bounds the pending authorizations the server keeps
	// state for: those for which credentials were submitted (see
	// pending.go). Authorize requests alone store nothing.
	maxLoginStates = 100000
	// maxLoginAttempts is how many failed logins one pending authorization
	// allows before it is dropped.
	maxLoginAttempts = 5
	// usedCodeRetention is how long a redeemed code is remembered, so that
	// a second use revokes the tokens issued from it.
	usedCodeRetention = 10 * time.Minute
	// maxForm bounds the body of form posts.
	maxForm = 64 << 10
)

// PasswordLogin checks a username, password and TOTP code.
// *identity.Authenticator implements it.
//
// When a login fails for a username that names an account, the error's
// chain should hold an error with an AccountID() string method (found
// with errors.As) naming the account: the audit entry records that id.
// Its message must not differ from that of an unknown username.
type PasswordLogin interface {
	Login(ctx context.Context, username, password, totpCode string) (*phivault.Account, error)
}

// Provider is an external OpenID provider people may log in with; the
// login page links to /oauth/federated/{ID}/start?pending=....
type Provider struct {
	ID   string // path segment, e.g. "entra"
	Name string // shown on the login page, e.g. "Hospital SSO"
}

// Options configure a Server. Accounts, Clients, Login and Audit are required.
type Options struct {
	// BaseURL is the public FHIR base URL, e.g.
	// https://vault.example.org/fhir. A SMART app's aud must equal it; the
	// issuer is BaseURL without its final "/fhir", and the endpoints are
	// under issuer/oauth/. If "", it is derived from each request's Host
	// header, which is for development only.
	BaseURL string

	Accounts phivault.AccountStore
	Clients  phivault.ClientStore
	Login    PasswordLogin
	// Audit receives every login, token issue, refresh and revocation.
	// When Append fails, nothing is issued (503).
	Audit phivault.AuditLog

	// Sessions holds the sessions and tokens. Default: NewSessions() with
	// this Now and Rand.
	Sessions *Sessions

	Now  func() time.Time // default time.Now
	Rand io.Reader        // default crypto/rand.Reader

	CodeTTL    time.Duration // default DefaultCodeTTL
	PendingTTL time.Duration // default DefaultPendingTTL

	// PendingKey is the 32-byte XChaCha20-Poly1305 key that seals pending
	// authorizations into the login page. Default: a random key made at
	// New, so a restart ends the sign-ins in progress; nodes behind one
	// load balancer without sticky sessions need to share one.
	PendingKey []byte

	// MaxAssertionsPerClient bounds each backend client's cache of
	// unexpired assertion ids. A client that fills its own cache is
	// refused (429 slow_down) until its assertions expire; other clients
	// are not affected. Default DefaultMaxAssertionsPerClient.
	MaxAssertionsPerClient int

	// Limits are the per-source rate limits of the sign-in and token
	// endpoints. Default: NewLimiter(DefaultLimitRate, DefaultLimitBurst,
	// DefaultLimitSources) with this Now.
	Limits *Limiter

	// Passkeys adds a "Sign in with a passkey" link to the login page, to
	// /oauth/passkey/login?pending=ID, which another handler serves.
	Passkeys bool
	// Federated lists external OpenID providers linked from the login page.
	Federated []Provider

	// Logger receives internal errors (ids only). Default: discarded.
	Logger *slog.Logger
}

// Server is the OAuth 2.0 authorization server for SMART on FHIR apps
// (authorization code with PKCE, for people) and SMART Backend Services
// (client credentials with private_key_jwt, for systems). It serves:
//
//	GET  /.well-known/smart-configuration (and under /fhir)
//	GET  /oauth/authorize   the login page
//	POST /oauth/login       password and TOTP login
//	POST /oauth/token       authorization_code, refresh_token, client_credentials
//	POST /oauth/revoke      RFC 7009
//
// Other login methods (passkeys, federation) serve their own pages, check
// the pending authorization with Pending and finish with Complete.
type Server struct {
	opts     Options
	sessions *Sessions
	mux      *http.ServeMux

	pendingBox *sealbox.Box // seals pending authorizations; see pending.go
	limits     *Limiter

	mu sync.Mutex // guards codes, nextCodeSweep, logins and jtis
	// logins holds the state of pending authorizations for which
	// credentials were submitted, by pending id; at most maxLoginStates.
	logins map[string]*loginState
	// jtis holds each backend client's assertion ids until they expire,
	// by client id: one client's flood fills only its own cache.
	jtis  map[string]*onetime.Store[struct{}]
	codes map[tokenHash]*authCode
	// nextCodeSweep is when used and expired codes are next dropped.
	nextCodeSweep time.Time
}

// New returns a Server for opts.
func New(opts Options) (*Server, error) {
	if opts.Accounts == nil || opts.Clients == nil || opts.Login == nil || opts.Audit == nil {
		return nil, errors.New("oauth: Options need Accounts, Clients, Login and Audit")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	opts.CodeTTL = orDefault(opts.CodeTTL, DefaultCodeTTL)
	opts.PendingTTL = orDefault(opts.PendingTTL, DefaultPendingTTL)
	if opts.MaxAssertionsPerClient <= 0 {
		opts.MaxAssertionsPerClient = DefaultMaxAssertionsPerClient
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	box, err := sealbox.New(opts.PendingKey, opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("oauth: PendingKey: %w", err)
	}
	s := &Server{
		opts:       opts,
		sessions:   opts.Sessions,
		pendingBox: box,
		limits:     opts.Limits,
		codes:      make(map[tokenHash]*authCode),
		logins:     make(map[string]*loginState),
		jtis:       make(map[string]*onetime.Store[struct{}]),
	}
	if s.limits == nil {
		s.limits = NewLimiter(DefaultLimitRate, DefaultLimitBurst, DefaultLimitSources)
		s.limits.Now = opts.Now
	}
	if s.sessions == nil {
		s.sessions = NewSessions()
		s.sessions.Now, s.sessions.Rand = opts.Now, opts.Rand
	}
	s.routes()
	return s, nil
}

// Sessions returns the session manager, which authenticates API requests
// (api.Authenticator) and revokes sessions (phivault.SessionRevoker).
func (s *Server) Sessions() *Sessions { return s.sessions }

// RevokeSubject ends every session of an account or client id; see
// Sessions.RevokeSubject.
func (s *Server) RevokeSubject(ctx context.Context, subject string) error {
	return s.sessions.RevokeSubject(ctx, subject)
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /.well-known/smart-configuration", s.serveMetadata)
	s.mux.HandleFunc("GET /fhir/.well-known/smart-configuration", s.serveMetadata)
	s.mux.Handle("GET /oauth/authorize", s.Limit(http.HandlerFunc(s.serveAuthorize)))
	s.mux.Handle("POST /oauth/login", s.Limit(http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.serveLogin))))
	s.mux.Handle("POST /oauth/token", s.Limit(http.HandlerFunc(s.serveToken)))
	s.mux.Handle("POST /oauth/revoke", s.Limit(http.HandlerFunc(s.serveRevoke)))
}

// Limit returns h limited by the server's per-source limits (Options.Limits),
// which the server's own sign-in and token endpoints share: passkey and
// federated sign-in handlers are mounted behind it.
func (s *Server) Limit(h http.Handler) http.Handler { return s.limits.Limit(h) }

// ServeHTTP serves the endpoints listed on Server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	s.mux.ServeHTTP(w, r)
}

// base returns the FHIR base URL.
func (s *Server) base(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + "/fhir"
}

// issuer returns the authorization server's issuer: the base URL without
// its final /fhir.
func (s *Server) issuer(r *http.Request) string {
	return strings.TrimSuffix(s.base(r), "/fhir")
}

func (s *Server) tokenURL(r *http.Request) string { return s.issuer(r) + "/oauth/token" }

// audit appends one entry for an OAuth event. Every sign-in entry, by
// any method, ok or refused, is built here.
func (s *Server) audit(r *http.Request, action, actor, client, outcome, decision string) error {
	e := &phivault.AuditEntry{
		Time:      s.opts.Now().UTC(),
		RequestID: requestID(r),
		Actor:     actor,
		Client:    client,
		Source:    phivault.RequestSource(r.Context(), r.RemoteAddr),
		Action:    action,
		Outcome:   outcome,
		Decision:  decision,
	}
	if err := s.opts.Audit.Append(r.Context(), e); err != nil {
		s.opts.Logger.Error("oauth: audit append", "action", action, "error", err.Error())
		return err
	}
	return nil
}

// LoginRefused returns a hook for the Failed option of the passkey and
// federation handlers: it records a refused sign-in by method (such as
// "passkey") in the audit trail the way the server records its own, with
// the account id ("" if unknown), the request id and the reason. A failed
// append is logged, since the attempt is refused already.
func (s *Server) LoginRefused(method string) func(r *http.Request, accountID, reason string) {
	return func(r *http.Request, accountID, reason string) {
		_ = s.audit(r, phivault.ActionLogin, accountID, "", phivault.EUNAUTHORIZED, "deny: "+method+": "+reason)
	}
}

// requestID returns the request's id for the audit trail: the one the
// server put in its context's RequestInfo. A client's X-Request-Id header
// is never used: the trail records only ids the server made.
func requestID(r *http.Request) string {
	info, _ := phivault.RequestInfoFromContext(r.Context())
	return info.ID
}

// activeClient returns client id if it is registered, of kind, and active.
func (s *Server) activeClient(ctx context.Context, id, kind string) (*phivault.Client, error) {
	if id == "" || len(id) > 200 {
		return nil, phivault.ErrNotFound
	}
	c, err := s.opts.Clients.ClientByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Kind != kind || c.Status != phivault.AccountActive {
		return nil, phivault.ErrNotFound
	}
	return c, nil
}
