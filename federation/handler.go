package federation

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/sealbox"
)

// Defaults for Options.
const (
	DefaultStateTTL    = 10 * time.Minute // how long a started login may take at the provider
	DefaultHTTPTimeout = 10 * time.Second // per request to a provider
	// CookieName names the cookie that binds a flow to the browser.
	CookieName = "__Host-phivault-federation"
)

// Options configure a Handler. Providers, Accounts, BaseURL, Complete and
// ValidPending are required.
type Options struct {
	Providers []Provider
	Accounts  phivault.AccountStore
	// BaseURL is the scheme and host browsers reach the server at, such
	// as "https://vault.example.org"; the redirect URI registered at each
	// provider is BaseURL/oauth/federated/{name}/callback.
	BaseURL string

	// Complete finishes the pending OAuth authorization for a successful
	// login: it issues the code and redirects back to the app.
	Complete func(w http.ResponseWriter, r *http.Request, pending string, a *phivault.Authentication)
	// ValidPending reports whether a pending authorization id exists.
	ValidPending func(pending string) bool
	// Failed, if set, is called for each refused login with the account id
	// ("" if unknown) and a short reason without secrets, for the audit
	// trail.
	Failed func(r *http.Request, accountID, reason string)

	// FlowKey is the 32-byte key that seals started logins into the
	// browser's cookie. Default: a random key made at NewHandler, so a
	// restart ends the logins in progress.
	FlowKey []byte

	HTTPClient *http.Client     // for requests to providers; default: timeout DefaultHTTPTimeout
	Now        func() time.Time // default time.Now; also verifies ID token expiry
	Rand       io.Reader        // default crypto/rand.Reader
	StateTTL   time.Duration    // default DefaultStateTTL
	Logger     *slog.Logger     // default: discard
}

// LogValue logs the providers without secrets.
func (o Options) LogValue() slog.Value {
	names := make([]string, len(o.Providers))
	for i, p := range o.Providers {
		names[i] = p.Name
	}
	return slog.GroupValue(slog.String("base_url", o.BaseURL), slog.Any("providers", names))
}

// Handler serves /oauth/federated/{provider}/start and .../callback. Create
// it with NewHandler; it is safe for concurrent use.
type Handler struct {
	o         Options
	providers map[string]*remote
	box       *sealbox.Box // seals started logins; see flow.go
	mux       *http.ServeMux
}

// NewHandler checks o, fills in defaults and returns the handler. It does
// not contact the providers: each is discovered on its first login.
func NewHandler(o Options) (*Handler, error) {
	if o.Accounts == nil || o.Complete == nil || o.ValidPending == nil {
		return nil, errors.New("federation: Accounts, Complete and ValidPending are required")
	}
	if !strings.HasPrefix(o.BaseURL, "https://") && !strings.HasPrefix(o.BaseURL, "http://") {
		return nil, fmt.Errorf("federation: base URL %q must be http(s)://host", o.BaseURL)
	}
	o.BaseURL = strings.TrimSuffix(o.BaseURL, "/")
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.StateTTL <= 0 {
		o.StateTTL = DefaultStateTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	box, err := sealbox.New(o.FlowKey, o.Rand)
	if err != nil {
		return nil, fmt.Errorf("federation: FlowKey: %w", err)
	}
	h := &Handler{o: o, providers: make(map[string]*remote), box: box}
	for _, p := range o.Providers {
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("federation: %w", err)
		}
		if h.providers[p.Name] != nil {
			return nil, fmt.Errorf("federation: provider %s configured twice", p.Name)
		}
		h.providers[p.Name] = &remote{Provider: p, redirectURL: o.BaseURL + "/oauth/federated/" + p.Name + "/callback"}
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /oauth/federated/{provider}/start", h.start)
	h.mux.HandleFunc("GET /oauth/federated/{provider}/callback", h.callback)
	return h, nil
}

// ServeHTTP serves the federation routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// ProviderLink is a provider as a login page lists it.
type ProviderLink struct {
	Name        string
	DisplayName string
}

// Providers returns the configured providers in order, for login pages
// that link to /oauth/federated/{Name}/start?pending=ID.
func (h *Handler) Providers() []ProviderLink {
	out := make([]ProviderLink, 0, len(h.o.Providers))
	for _, p := range h.o.Providers {
		out = append(out, ProviderLink{Name: p.Name, DisplayName: h.providers[p.Name].DisplayName})
	}
	return out
}

// refuse reports a refused login to Options.Failed and the log, and shows
// the person a page with message.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, accountID, reason, message string) {
	h.o.Logger.Info("federated login refused", "provider", r.PathValue("provider"), "account", accountID, "reason", reason)
	if h.o.Failed != nil {
		h.o.Failed(r, accountID, reason)
	}
	h.page(w, status, message)
}
