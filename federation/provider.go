package federation

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// DefaultMFAMethods are the RFC 8176 amr values accepted as proof of
// multi-factor authentication when a provider configures none: "mfa"
// itself, one-time passwords, and hardware-bound keys and smart cards.
// SMS and telephone codes are not accepted by default.
var DefaultMFAMethods = []string{"mfa", "otp", "hwk", "sc"}

// DefaultScopes are requested when a provider configures none.
var DefaultScopes = []string{oidc.ScopeOpenID, "profile", "email"}

// Link claims: the ID token or UserInfo claim compared with
// phivault.Account.Username on a first login.
const (
	LinkNone              = ""
	LinkEmail             = "email"
	LinkPreferredUsername = "preferred_username"
)

var providerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Provider is an external OpenID provider people may log in through.
type Provider struct {
	Name         string // path segment: lower-case letters, digits and '-'
	DisplayName  string // shown on login pages; default Name
	Issuer       string // the issuer URL; discovery reads Issuer/.well-known/openid-configuration
	ClientID     string
	ClientSecret string   // never logged (see LogValue)
	Scopes       []string // default DefaultScopes; "openid" is always added
	// MFAMethods are the amr values that prove MFA; default DefaultMFAMethods.
	MFAMethods []string
	// MFAACR are acr values that prove MFA; when set they are also sent as
	// acr_values. Empty means acr is not used.
	MFAACR []string
	// LinkClaim allows linking an unlinked account on first login: LinkNone
	// (the default), LinkEmail or LinkPreferredUsername.
	LinkClaim string
	// MaxAge, if positive, is sent as max_age, and the ID token's
	// auth_time must be no older.
	MaxAge time.Duration
}

// LogValue logs the provider without its client secret.
func (p Provider) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", p.Name), slog.String("issuer", p.Issuer),
		slog.String("client_id", p.ClientID), slog.String("link_claim", p.LinkClaim))
}

// check validates p and fills in defaults.
func (p *Provider) check() error {
	if !providerName.MatchString(p.Name) {
		return fmt.Errorf("provider name %q: use 1-32 lower-case letters, digits and '-'", p.Name)
	}
	if p.Issuer == "" || p.ClientID == "" {
		return fmt.Errorf("provider %s: issuer and client id are required", p.Name)
	}
	if p.DisplayName == "" {
		p.DisplayName = p.Name
	}
	if len(p.Scopes) == 0 {
		p.Scopes = DefaultScopes
	}
	if !slices.Contains(p.Scopes, oidc.ScopeOpenID) {
		p.Scopes = append([]string{oidc.ScopeOpenID}, p.Scopes...)
	}
	if len(p.MFAMethods) == 0 {
		p.MFAMethods = DefaultMFAMethods
	}
	switch p.LinkClaim {
	case LinkNone, LinkEmail, LinkPreferredUsername:
	default:
		return fmt.Errorf("provider %s: link claim %q: use email, preferred_username or nothing", p.Name, p.LinkClaim)
	}
	return nil
}

// remote is a provider and, once discovered, its endpoints and verifier.
type remote struct {
	Provider
	redirectURL string

	mu       sync.Mutex
	oidc     *oidc.Provider // nil until discovery succeeds
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

// discover fetches the provider's configuration once; a failure is
// retried on the next login.
func (r *remote) discover(ctx context.Context, now func() time.Time) (*oidc.Provider, *oidc.IDTokenVerifier, *oauth2.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.oidc != nil {
		return r.oidc, r.verifier, r.oauth, nil
	}
	p, err := oidc.NewProvider(ctx, r.Issuer)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("discover %s: %w", r.Name, err)
	}
	r.oidc = p
	r.verifier = p.Verifier(&oidc.Config{ClientID: r.ClientID, Now: now})
	r.oauth = &oauth2.Config{
		ClientID:     r.ClientID,
		ClientSecret: r.ClientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  r.redirectURL,
		Scopes:       r.Scopes,
	}
	return r.oidc, r.verifier, r.oauth, nil
}
