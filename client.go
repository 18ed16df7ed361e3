package phivault

import (
	"context"
	"log/slog"
	"time"
)

// Client kinds.
const (
	// ClientPublic is an app acting for a person: authorization code with
	// PKCE, no client secret (SMART App Launch).
	ClientPublic = "public"
	// ClientBackend is a system acting for itself: client_credentials with a
	// private_key_jwt assertion signed by a key in its JWKS (SMART Backend
	// Services).
	ClientBackend = "backend"
)

// Client is an OAuth 2.0 client registered with the vault.
type Client struct {
	ID           string   // client_id, random, immutable
	Name         string   // shown on the consent and login pages
	Kind         string   // ClientPublic or ClientBackend
	RedirectURIs []string // exact redirect URIs allowed (public clients); a path is on the server's own origin
	JWKS         []byte   // public JSON Web Key Set (backend clients)
	Scopes       []string // the most a token for this client may carry
	Status       string   // AccountActive or AccountSuspended
	Created      time.Time
	Version      int64 // optimistic concurrency: 1 on create, one more on each update
}

// LogValue logs the client's id, kind and status.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", c.ID), slog.String("kind", c.Kind), slog.String("status", c.Status))
}

// ClientStore keeps registered OAuth clients. Implementations are safe for
// concurrent use by multiple goroutines.
type ClientStore interface {
	// CreateClient stores a new client with c.Version 1. It returns an
	// *Error with code ECONFLICT if the id is taken.
	CreateClient(ctx context.Context, c *Client) error
	// ClientByID returns a client, or ErrNotFound.
	ClientByID(ctx context.Context, id string) (*Client, error)
	// UpdateClient replaces client c.ID, whose stored version must be
	// c.Version-1; otherwise ECONFLICT (or ErrNotFound) and nothing written.
	UpdateClient(ctx context.Context, c *Client) error
	// Clients returns every client, ordered by id.
	Clients(ctx context.Context) ([]*Client, error)
}
