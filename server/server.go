// Package server provides the HTTPS server of phivault with secure defaults:
// TLS 1.3 preferred and TLS 1.2 only with ECDHE and AEAD suites, HTTP/2,
// HSTS and other security headers on every response, timeouts on every
// phase of a request, session ticket keys that rotate every 12 hours, and
// /metrics only behind a bearer token.
//
// A certificate read from files is reloaded without a restart when the
// files change (see Config.CertReloadInterval and Server.ReloadCertificate).
// System clients may authenticate with a client certificate (mutual TLS, see
// Config.ClientCAFile); ClientFromContext tells handlers which client a
// request came from.
//
// Requests from blocked sources (Config.Blocks, the incident responder's
// block-source) are refused with 403 on every route before any handler.
//
// Plain HTTP is possible only for local development: Config.Insecure must be
// set and the address must be a loopback address.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Defaults for Config fields left zero.
const (
	DefaultAddr               = "localhost:8443"
	DefaultReadHeaderTimeout  = 10 * time.Second
	DefaultReadTimeout        = 2 * time.Minute // a 16 MiB Bundle on a slow link
	DefaultWriteTimeout       = 2 * time.Minute
	DefaultIdleTimeout        = 2 * time.Minute
	DefaultMaxHeaderBytes     = 64 << 10
	DefaultShutdownTimeout    = 10 * time.Second
	DefaultCertReloadInterval = time.Minute
	// DefaultTicketKeyRotation is how long a TLS session ticket key
	// encrypts new tickets; it is kept one more period to decrypt them, so
	// no key lives longer than a day.
	DefaultTicketKeyRotation = 12 * time.Hour
)

// Config configures a Server. Each zero field takes the default named in
// its comment.
type Config struct {
	// Addr is the address to listen on. Default DefaultAddr.
	Addr string

	// CertFile and KeyFile are PEM files with the certificate chain and
	// private key. Certificate, if set, is used instead (and never
	// reloaded).
	CertFile, KeyFile string
	Certificate       *tls.Certificate

	// CertReloadInterval is how often, at most, a TLS handshake looks at
	// CertFile and KeyFile and loads them again if their contents changed.
	// A new pair that does not parse, whose key does not match, or that has
	// expired is logged and rejected, and the certificate in use stays.
	// Negative disables the check (Server.ReloadCertificate still works).
	// Default DefaultCertReloadInterval.
	CertReloadInterval time.Duration

	// ClientCAFile is a PEM bundle of the CAs that issue client
	// certificates to system clients (mutual TLS). If set, the server asks
	// for a client certificate but does not require one: browsers and
	// bearer-token clients connect without. A certificate that is presented
	// and does not verify against these CAs fails the handshake.
	//
	// ClientCertMap maps a verified client certificate to a client id, which
	// ClientFromContext returns to handlers. Keys are the leaf's SHA-256
	// fingerprint in hex (colons and case ignored; see Fingerprint) or a URI
	// SAN of the leaf (e.g. spiffe://hospital.example/lab). A verified
	// certificate that maps to no client id is answered with 403.
	// ParseClientCertMap reads the map from a file.
	ClientCAFile  string
	ClientCertMap map[string]string

	// TrustedProxies are the networks of the reverse proxies in front of
	// the server. A request whose peer address is in one of them is taken
	// to come from the right-most address of its X-Forwarded-For header
	// that is not (see ParsePrefixes); that address is its source for the
	// audit trail and the sign-in rate limits. Empty, the default: the
	// source is always the peer address and X-Forwarded-For is never read,
	// since any client can send one.
	TrustedProxies []netip.Prefix

	// Blocks, if set, refuses requests from the sources it holds (read
	// as for the audit trail, see TrustedProxies) on every route with 403
	// and an OperationOutcome, before any handler runs.
	Blocks Blocklist

	// Insecure serves plain HTTP. It is refused unless Addr (or the
	// listener given to Serve) is a loopback address.
	Insecure bool

	// FHIR serves /fhir and everything under it. Health, if set, serves
	// GET /healthz; by default /healthz answers 200 "ok".
	FHIR   http.Handler
	Health http.Handler
	// Metrics, if set, serves GET /metrics to requests that present
	// MetricsToken as a bearer token (compared in constant time); others
	// get 401. Without a MetricsToken, /metrics is not served at all.
	Metrics      http.Handler
	MetricsToken string
	// Routes maps further http.ServeMux patterns, such as "/oauth/" or
	// "/scim/v2/", to their handlers: the sign-in and provisioning APIs
	// that live outside /fhir.
	Routes map[string]http.Handler

	// Timeouts and limits of http.Server. Defaults: DefaultReadHeaderTimeout,
	// DefaultReadTimeout, DefaultWriteTimeout, DefaultIdleTimeout,
	// DefaultMaxHeaderBytes, DefaultShutdownTimeout.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	ShutdownTimeout   time.Duration

	// Logger receives http.Server's own errors (e.g. TLS handshake
	// failures), certificate reloads and unmapped client certificates. If
	// nil, they are dropped.
	Logger *slog.Logger

	// TicketKeyRotation is how often the TLS session ticket key is
	// replaced, on the Now clock; the previous key still decrypts tickets
	// for one more period. Negative disables session tickets (every
	// connection does a full handshake). Default DefaultTicketKeyRotation.
	TicketKeyRotation time.Duration

	// Now is the clock for certificate reload checks and expiry, and for
	// session ticket key rotation. Default time.Now.
	Now func() time.Time

	// Rand is the source of request ids. Default crypto/rand.Reader.
	Rand io.Reader
}

// Blocklist says which sources are refused (block.List). Blocked is
// called on every request and must be cheap and safe for concurrent use.
type Blocklist interface {
	Blocked(source netip.Addr) bool
}

// errBlocked is the answer to a blocked source. It says no more than that.
var errBlocked = phivault.Errorf(phivault.EFORBIDDEN, "Requests from this network address are blocked.")

// Server is an HTTPS server. Create it with New, start it with Open or
// Serve, and stop it with Close.
type Server struct {
	cfg   Config
	srv   *http.Server
	ln    net.Listener
	done  chan error
	certs *certSource // nil unless the certificate comes from files
}

// New returns a Server for cfg with defaults filled in. It does not listen.
func New(cfg Config) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CertReloadInterval == 0 {
		cfg.CertReloadInterval = DefaultCertReloadInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TicketKeyRotation == 0 {
		cfg.TicketKeyRotation = DefaultTicketKeyRotation
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Health == nil {
		cfg.Health = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
		})
	}
	s := &Server{cfg: cfg}
	if cfg.Certificate == nil && cfg.CertFile != "" && cfg.KeyFile != "" {
		s.certs = &certSource{
			certFile: cfg.CertFile,
			keyFile:  cfg.KeyFile,
			interval: cfg.CertReloadInterval,
			now:      cfg.Now,
			logger:   cfg.Logger,
		}
	}
	s.srv = &http.Server{
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Open listens on cfg.Addr and serves in the background until Close.
func (s *Server) Open(ctx context.Context) error {
	if s.cfg.Insecure && !isLoopback(s.cfg.Addr) {
		return errInsecure(s.cfg.Addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := s.start(ln); err != nil {
		ln.Close()
		return err
	}
	return nil
}

// Serve serves on ln in the background until Close. The Server takes
// ownership of ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.Insecure && !isLoopback(ln.Addr().String()) {
		ln.Close()
		return errInsecure(ln.Addr().String())
	}
	if err := s.start(ln); err != nil {
		ln.Close()
		return err
	}
	return nil
}

func (s *Server) start(ln net.Listener) error {
	if s.ln != nil {
		return errors.New("server: already serving")
	}
	var clients *clientAuth
	if s.cfg.Insecure && s.cfg.ClientCAFile != "" {
		return errors.New("server: client certificates need TLS; unset Insecure or the client CA file")
	}
	if s.cfg.ClientCAFile == "" && len(s.cfg.ClientCertMap) > 0 {
		return errors.New("server: a client certificate map needs the client CA file that issues those certificates")
	}
	if s.cfg.ClientCAFile != "" {
		var err error
		if clients, err = newClientAuth(s.cfg.ClientCAFile, s.cfg.ClientCertMap, s.cfg.Logger); err != nil {
			return err
		}
	}
	s.srv.Handler = s.handler(clients)
	if !s.cfg.Insecure {
		cfg, err := s.tlsConfig(clients)
		if err != nil {
			return err
		}
		s.srv.TLSConfig = cfg
	}
	s.ln = ln
	s.done = make(chan error, 1)
	go func() {
		var err error
		if s.cfg.Insecure {
			err = s.srv.Serve(ln)
		} else {
			err = s.srv.ServeTLS(ln, "", "")
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return nil
}

// Addr returns the address the server listens on, or nil before Open.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// URL returns the server's base URL, e.g. https://127.0.0.1:8443.
func (s *Server) URL() string {
	scheme := "https"
	if s.cfg.Insecure {
		scheme = "http"
	}
	if s.ln == nil {
		return scheme + "://" + s.cfg.Addr
	}
	return scheme + "://" + s.ln.Addr().String()
}

// Close stops accepting connections, waits up to cfg.ShutdownTimeout for
// requests in flight, then closes what remains.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	if serveErr := <-s.done; serveErr != nil && err == nil {
		err = serveErr
	}
	return err
}

func errInsecure(addr string) error {
	return fmt.Errorf("server: refusing plain HTTP on %s: Insecure is only allowed on a loopback address such as 127.0.0.1:8080; serve HTTPS with a certificate (phivault init writes a self-signed one)", addr)
}

// isLoopback reports whether addr's host is localhost or a loopback IP.
// An empty host (all interfaces) is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReloadCertificate loads CertFile and KeyFile again, whether or not they
// changed, and serves the new certificate on new connections; connections
// already open keep theirs. A pair that does not parse, whose key does not
// match, or that has expired is rejected with an error and the certificate
// in use stays. It is for an operator's signal (e.g. SIGHUP); the server also
// polls the files by itself (Config.CertReloadInterval). It is safe to call
// concurrently with handshakes.
func (s *Server) ReloadCertificate() error {
	if s.certs == nil {
		return errors.New("server: no certificate files to reload")
	}
	return s.certs.reload()
}

// handler mounts the routes and wraps them with the security headers, a
// request id (the X-Request-Id header, and a phivault.RequestInfo with the
// id and the source address (see source) in the request's context, so
// that every audit entry of the request carries them), the refusal of
// blocked sources (Config.Blocks) and, if clients is not nil, client
// certificate mapping.
func (s *Server) handler(clients *clientAuth) http.Handler {
	mux := http.NewServeMux()
	if s.cfg.FHIR != nil {
		mux.Handle("/fhir", s.cfg.FHIR)
		mux.Handle("/fhir/", s.cfg.FHIR)
	}
	if s.cfg.Metrics != nil && s.cfg.MetricsToken != "" {
		mux.Handle("GET /metrics", requireToken(s.cfg.MetricsToken, s.cfg.Metrics))
	}
	for pattern, h := range s.cfg.Routes {
		mux.Handle(pattern, h)
	}
	mux.Handle("GET /healthz", s.cfg.Health)
	var next http.Handler = mux
	if clients != nil {
		next = clients.wrap(mux)
	}
	secure := !s.cfg.Insecure
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if secure {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		id := phivault.NewRequestID(s.cfg.Rand)
		h.Set("X-Request-Id", id)
		info := phivault.RequestInfo{ID: id, Source: s.source(r)}
		if s.cfg.Blocks != nil {
			if a, err := netip.ParseAddr(info.Source); err == nil && s.cfg.Blocks.Blocked(a) {
				fhir.WriteOutcome(w, errBlocked)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(phivault.WithRequestInfo(r.Context(), info)))
	})
}

// tlsConfig returns the TLS settings: TLS 1.3 preferred (Go negotiates the
// highest version both sides have), TLS 1.2 with ECDHE and AEAD only,
// X25519MLKEM768, X25519 or P-256 key exchange, h2 with http/1.1, session
// ticket keys rotated every TicketKeyRotation, and, if clients is not nil,
// optional client certificates.
func (s *Server) tlsConfig(clients *clientAuth) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// TLS 1.3 suites are not configurable and are all AEAD. For TLS
		// 1.2: forward secrecy (ECDHE) and AEAD only, no CBC, no RSA key
		// exchange.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		// The post-quantum hybrid first, for TLS 1.3 clients that offer it.
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		NextProtos:       []string{"h2", "http/1.1"},
	}
	switch {
	case s.cfg.Certificate != nil:
		cfg.Certificates = []tls.Certificate{*s.cfg.Certificate}
	case s.certs != nil:
		if err := s.certs.reload(); err != nil {
			return nil, fmt.Errorf("%w (phivault init writes a self-signed pair)", err)
		}
		cfg.GetCertificate = s.certs.getCertificate
	default:
		return nil, errors.New("server: no TLS certificate: set the certificate and key files (phivault init writes a self-signed pair), or Insecure for loopback-only development")
	}
	if s.cfg.TicketKeyRotation < 0 {
		cfg.SessionTicketsDisabled = true
	} else {
		keys := &ticketKeys{period: s.cfg.TicketKeyRotation, now: s.cfg.Now, rand: s.cfg.Rand}
		if err := keys.install(cfg); err != nil {
			return nil, err
		}
	}
	if clients != nil {
		// Optional, so browsers and bearer-token clients need none; a
		// certificate that is presented must verify.
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = clients.pool
	}
	return cfg, nil
}

// requireToken returns h answering only requests whose Authorization
// header is "Bearer token"; others get 401. The comparison is of SHA-256
// digests in constant time, so neither content nor length leaks.
func requireToken(token string, h http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="phivault-metrics"`)
			http.Error(w, "A metrics bearer token is required.", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
