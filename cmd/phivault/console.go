package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/console"
)

// openConsole registers the console's OAuth client (once; an operator may
// suspend it like any client) and mounts the console at /console/. It
// runs last in openApp: the console calls every other route in process.
func (a *app) openConsole(ctx context.Context, auth api.Authenticator) error {
	if err := a.registerConsoleClient(ctx); err != nil {
		return err
	}
	sessions := a.signIn.Sessions()
	h, err := console.New(console.Options{
		Backend:     a.backend(),
		Auth:        auth,
		BaseURL:     a.cfg.BaseURL,
		IdleTimeout: sessions.IdleTimeout,
		Lifetime:    sessions.Lifetime,
		Logger:      a.logger,

		KeyActionsNeedApproval: a.cfg.ApproveKeyActions,
	})
	if err != nil {
		return err
	}
	a.routes["/console/"] = h
	a.routes["/console"] = h
	return nil
}

// registerConsoleClient creates the console's public client on the first
// start. A client of that id made otherwise (not a public client whose
// only redirect is the console's own) is refused rather than trusted.
func (a *app) registerConsoleClient(ctx context.Context) error {
	want := &phivault.Client{ID: console.ClientID, Name: "phivault console", Kind: phivault.ClientPublic,
		RedirectURIs: []string{console.CallbackPath}, Scopes: strings.Fields(console.Scopes),
		Status: phivault.AccountActive, Created: time.Now().UTC()}
	err := a.db.CreateClient(ctx, want)
	if phivault.ErrorCode(err) != phivault.ECONFLICT {
		if err != nil {
			return fmt.Errorf("console client: %w", err)
		}
		return nil
	}
	c, err := a.db.ClientByID(ctx, console.ClientID)
	if err != nil {
		return fmt.Errorf("console client: %w", err)
	}
	if c.Kind != phivault.ClientPublic || !slices.Equal(c.RedirectURIs, want.RedirectURIs) {
		return fmt.Errorf("the OAuth client %q is not the console's (kind %s, redirect URIs %v): remove or rename it", console.ClientID, c.Kind, c.RedirectURIs)
	}
	return nil
}

// backend is every route but the console's, as the server mounts them:
// what the console calls on a person's behalf.
func (a *app) backend() http.Handler {
	mux := http.NewServeMux()
	fhir := a.fhirAndAdmin()
	mux.Handle("/fhir", fhir)
	mux.Handle("/fhir/", fhir)
	for pattern, h := range a.routes {
		mux.Handle(pattern, h)
	}
	return mux
}
