package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/oauth"
)

// oauthRoutes are the patterns the OAuth server answers next to /fhir.
// Passkey and federated sign-in mount their own /oauth/passkey/ and
// /oauth/federated/ routes.
var oauthRoutes = []string{
	"GET /.well-known/smart-configuration",
	"GET /fhir/.well-known/smart-configuration",
	"/oauth/authorize",
	"/oauth/login",
	"/oauth/token",
	"/oauth/revoke",
}

// openOAuth builds the OAuth 2.0 / SMART on FHIR authorization server on
// the vault's accounts, clients and audit log, mounts it in a.routes and
// returns it. Its sessions live in memory: a restart signs everyone out.
// It needs the audit log, so it runs after openAudit. Its login page
// links to the passkeys and OpenID providers of login.
func (a *app) openOAuth(login loginSite) (*oauth.Server, error) {
	passkeys, federated := login.links() // see login.go
	auth := identity.NewAuthenticator(a.accounts)
	if a.hasher != nil {
		auth.Hasher = a.hasher // one memory-bounded pool for every password hash
	}
	srv, err := oauth.New(oauth.Options{
		BaseURL:    a.cfg.BaseURL,
		Accounts:   a.accounts,
		Clients:    a.db,
		Login:      auth,
		Audit:      a.audit.log,
		Logger:     a.logger,
		Passkeys:   passkeys,
		Federated:  federated,
		PendingKey: a.signInKeys.pending,
	})
	if err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	if a.routes == nil {
		a.routes = make(map[string]http.Handler)
	}
	for _, p := range oauthRoutes {
		a.routes[p] = srv
	}
	return srv, nil
}

// bearerChain accepts a bearer token that any of its authenticators
// accepts, tried in order: OAuth session tokens, then the bootstrap admin
// token. An error other than EUNAUTHORIZED stops the chain.
type bearerChain []api.Authenticator

var _ api.Authenticator = bearerChain(nil)

// Authenticate implements api.Authenticator.
func (c bearerChain) Authenticate(ctx context.Context, token string) (context.Context, error) {
	err := error(&phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "The bearer token is not valid."})
	for _, a := range c {
		out, e := a.Authenticate(ctx, token)
		if e == nil {
			return out, nil
		}
		if phivault.ErrorCode(e) != phivault.EUNAUTHORIZED {
			return nil, e
		}
		err = e
	}
	return nil, err
}
