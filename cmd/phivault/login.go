package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/federation"
	"github.com/phivault/phivault/oauth"
	"github.com/phivault/phivault/passkey"
)

// LoginConfig configures the sign-in methods beside password and TOTP:
// passkeys (WebAuthn) and external OpenID providers. See docs/login.md.
type LoginConfig struct {
	// WebAuthnRPID is the WebAuthn relying party id; default the host of
	// the base URL. "off" disables passkeys.
	WebAuthnRPID string
	// WebAuthnOrigins is a comma-separated list of origins ceremonies may
	// run at; default the base URL's scheme and host.
	WebAuthnOrigins string
	// OIDCConfig is a JSON file of external OpenID providers; "" for none.
	OIDCConfig string
}

func (c *LoginConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.WebAuthnRPID, "webauthn-rp-id", os.Getenv("PHIVAULT_WEBAUTHN_RP_ID"), `WebAuthn relying party id (default: the host of -base-url; "off" disables passkeys; env PHIVAULT_WEBAUTHN_RP_ID)`)
	fs.StringVar(&c.WebAuthnOrigins, "webauthn-origins", os.Getenv("PHIVAULT_WEBAUTHN_ORIGINS"), "comma-separated origins passkey ceremonies may run at (default: the origin of -base-url; env PHIVAULT_WEBAUTHN_ORIGINS)")
	fs.StringVar(&c.OIDCConfig, "oidc-config", os.Getenv("PHIVAULT_OIDC_CONFIG"), "JSON file of external OpenID providers people may sign in through; see docs/login.md (env PHIVAULT_OIDC_CONFIG)")
}

// LogValue logs the settings. The OIDC file names where client secrets
// are, never the secrets.
func (c LoginConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("webauthn_rp_id", c.WebAuthnRPID), slog.String("webauthn_origins", c.WebAuthnOrigins), slog.String("oidc_config", c.OIDCConfig))
}

// loginHooks connect the passkey and federation handlers to the OAuth
// server and the audit trail.
type loginHooks struct {
	// Complete and ValidPending come from the OAuth server
	// (oauth.Server.Complete and oauth.Server.Pending).
	Complete     func(w http.ResponseWriter, r *http.Request, pending string, a *phivault.Authentication)
	ValidPending func(pending string) bool
	// Authenticate checks the bearer token of a passkey registration
	// (oauth.Server.Sessions().Authenticate).
	Authenticate func(ctx context.Context, token string) (context.Context, error)
	// Refused audits a refused sign-in by method
	// (oauth.Server.LoginRefused, which adds the request id).
	Refused func(method string) func(r *http.Request, accountID, reason string)
	// Audit receives passkey registrations; nil for none.
	Audit  phivault.AuditLog
	Now    func() time.Time // default time.Now
	Logger *slog.Logger
}

// audit appends one sign-in entry; a failure is logged, since the
// attempt it records is already refused or done.
func (h loginHooks) audit(r *http.Request, action, actor, outcome, decision string) {
	if h.Audit == nil {
		return
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	info, _ := phivault.RequestInfoFromContext(r.Context())
	source := phivault.RequestSource(r.Context(), r.RemoteAddr)
	e := &phivault.AuditEntry{Time: now().UTC(), RequestID: info.ID, Actor: actor, Source: source, Action: action, Outcome: outcome, Decision: decision}
	if err := h.Audit.Append(r.Context(), e); err != nil && h.Logger != nil {
		h.Logger.Error("sign-in audit append", "action", action, "error", err.Error())
	}
}

// siteOrigin returns scheme://host[:port] of the base URL, or nil if it
// is "".
func siteOrigin(baseURL string) (*url.URL, error) {
	if baseURL == "" {
		return nil, nil
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("base URL %q is not an http(s) URL", baseURL)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// passkeySite returns the WebAuthn relying party id and origins, or ""
// and nil when passkeys are off or no relying party id can be found.
func (c LoginConfig) passkeySite(baseURL string) (rpID string, origins []string, err error) {
	if c.WebAuthnRPID == "off" {
		return "", nil, nil
	}
	site, err := siteOrigin(baseURL)
	if err != nil {
		return "", nil, err
	}
	rpID = c.WebAuthnRPID
	if rpID == "" && site != nil {
		rpID = site.Hostname()
	}
	for _, o := range strings.Split(c.WebAuthnOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	if len(origins) == 0 && site != nil {
		origins = []string{site.String()}
	}
	if rpID == "" || len(origins) == 0 {
		return "", nil, nil
	}
	return rpID, origins, nil
}

// loginSite is what the login settings and the base URL resolve to,
// once per start: the passkey relying party and the OpenID providers with
// their client secrets.
type loginSite struct {
	rpID      string // "" when passkeys are off or no relying party id is known
	origins   []string
	providers []federation.Provider
}

// resolve checks the passkey settings and reads the -oidc-config file.
func (c LoginConfig) resolve(baseURL string) (loginSite, error) {
	rpID, origins, err := c.passkeySite(baseURL)
	if err != nil {
		return loginSite{}, err
	}
	providers, err := loadOIDCConfig(c.OIDCConfig)
	if err != nil {
		return loginSite{}, err
	}
	return loginSite{rpID: rpID, origins: origins, providers: providers}, nil
}

// newPasskeys builds the handler of /oauth/passkey/, sealing ceremonies
// under ceremonyKey, or returns nil when passkeys are off or no relying
// party id is known (no -base-url).
func newPasskeys(site loginSite, accounts phivault.AccountStore, hooks loginHooks, ceremonyKey []byte) (*passkey.Handler, error) {
	if site.rpID == "" {
		return nil, nil
	}
	h, err := passkey.NewHandler(passkey.Options{
		Accounts:     accounts,
		RPID:         site.rpID,
		Origins:      site.origins,
		Authenticate: hooks.Authenticate,
		Complete:     hooks.Complete,
		ValidPending: hooks.ValidPending,
		Failed:       hooks.Refused("passkey"),
		Registered: func(r *http.Request, accountID string) {
			hooks.audit(r, phivault.ActionAccountChange, accountID, "ok", "passkey registered")
		},
		CeremonyKey: ceremonyKey,
		Now:         hooks.Now,
		Logger:      hooks.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	return h, nil
}

// oidcFile is the JSON of -oidc-config.
type oidcFile struct {
	Providers []oidcProvider `json:"providers"`
}

// oidcProvider is one provider in the -oidc-config file. The client secret
// is never in the file: client_secret_file names a file holding it
// (relative to the config file), or client_secret_env names an environment
// variable holding it (or, with _FILE appended, its file).
type oidcProvider struct {
	Name             string   `json:"name"`
	DisplayName      string   `json:"display_name"`
	Issuer           string   `json:"issuer"`
	ClientID         string   `json:"client_id"`
	ClientSecretFile string   `json:"client_secret_file"`
	ClientSecretEnv  string   `json:"client_secret_env"`
	Scopes           []string `json:"scopes"`
	MFAAMR           []string `json:"mfa_amr"`
	MFAACR           []string `json:"mfa_acr"`
	LinkClaim        string   `json:"link_claim"`
	MaxAgeSeconds    int      `json:"max_age_seconds"`
}

// loadOIDCConfig reads the providers of an -oidc-config file and their
// client secrets.
func loadOIDCConfig(path string) ([]federation.Provider, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("oidc config: %w", err)
	}
	var f oidcFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a literal "client_secret" is refused here
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("oidc config %s: %w", path, err)
	}
	var out []federation.Provider
	for _, p := range f.Providers {
		secret, err := p.secret(filepath.Dir(path))
		if err != nil {
			return nil, fmt.Errorf("oidc config %s: provider %q: %w", path, p.Name, err)
		}
		if p.MaxAgeSeconds < 0 {
			return nil, fmt.Errorf("oidc config %s: provider %q: max_age_seconds is negative", path, p.Name)
		}
		out = append(out, federation.Provider{
			Name: p.Name, DisplayName: p.DisplayName, Issuer: p.Issuer,
			ClientID: p.ClientID, ClientSecret: secret, Scopes: p.Scopes,
			MFAMethods: p.MFAAMR, MFAACR: p.MFAACR, LinkClaim: p.LinkClaim,
			MaxAge: time.Duration(p.MaxAgeSeconds) * time.Second,
		})
	}
	return out, nil
}

// secret reads the provider's client secret from where the file says.
func (p oidcProvider) secret(dir string) (string, error) {
	switch {
	case p.ClientSecretFile != "" && p.ClientSecretEnv != "":
		return "", fmt.Errorf("set client_secret_file or client_secret_env, not both")
	case p.ClientSecretFile != "":
		path := p.ClientSecretFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("client secret: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case p.ClientSecretEnv != "":
		s, err := secretFromEnv(p.ClientSecretEnv)
		if err == nil && s == "" {
			err = fmt.Errorf("%s is empty or unset", p.ClientSecretEnv)
		}
		return s, err
	}
	return "", fmt.Errorf("client_secret_file or client_secret_env is required")
}

// newFederation builds the handler of /oauth/federated/, sealing flows
// under flowKey, or returns nil when no provider is configured.
func newFederation(login loginSite, baseURL string, accounts phivault.AccountStore, hooks loginHooks, flowKey []byte) (*federation.Handler, error) {
	if len(login.providers) == 0 {
		return nil, nil
	}
	site, err := siteOrigin(baseURL)
	if err != nil {
		return nil, err
	}
	if site == nil {
		return nil, errorWithHint("OpenID providers need the public base URL for their redirect URI", "phivault serve -base-url https://vault.example.org/fhir")
	}
	h, err := federation.NewHandler(federation.Options{
		Providers:    login.providers,
		Accounts:     accounts,
		BaseURL:      site.String(),
		Complete:     hooks.Complete,
		ValidPending: hooks.ValidPending,
		Failed:       hooks.Refused("federated"),
		FlowKey:      flowKey,
		Now:          hooks.Now,
		Logger:       hooks.Logger,
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// links returns what the OAuth login page offers beside password and
// TOTP: whether passkeys are on, and the OpenID providers.
func (s loginSite) links() (passkeys bool, providers []oauth.Provider) {
	for _, p := range s.providers {
		name := p.DisplayName
		if name == "" {
			name = p.Name
		}
		providers = append(providers, oauth.Provider{ID: p.Name, Name: name})
	}
	return s.rpID != "", providers
}

// openLogins builds the passkey and federated sign-in handlers of login on
// the OAuth server srv and mounts them in a.routes. Their successes
// complete srv's pending authorizations; their failures and passkey
// registrations go to the audit trail.
func (a *app) openLogins(srv *oauth.Server, login loginSite) error {
	hooks := loginHooks{
		Complete:     srv.Complete,
		ValidPending: srv.Pending,
		Authenticate: srv.Sessions().Authenticate,
		Refused:      srv.LoginRefused,
		Audit:        a.audit.log,
		Logger:       a.logger,
	}
	pk, err := newPasskeys(login, a.accounts, hooks, a.signInKeys.ceremony)
	if err != nil {
		return err
	}
	fed, err := newFederation(login, a.cfg.BaseURL, a.accounts, hooks, a.signInKeys.flow)
	if err != nil {
		return err
	}
	if a.routes == nil {
		a.routes = make(map[string]http.Handler)
	}
	// They share the OAuth server's per-source limits.
	if pk != nil {
		a.routes["/oauth/passkey/"] = srv.Limit(pk)
	}
	if fed != nil {
		a.routes["/oauth/federated/"] = srv.Limit(fed)
	}
	return nil
}
