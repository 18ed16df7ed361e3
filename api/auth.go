package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net/http"

	"github.com/phivault/phivault"
)

// An Authenticator checks the bearer token of a request. On success it
// returns ctx carrying the caller's identity (at least an actor, see
// [WithActor]); otherwise an *phivault.Error, EUNAUTHORIZED for a token it
// does not accept. Implementations are safe for concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, bearerToken string) (context.Context, error)
}

type actorKey struct{}

// WithActor returns ctx carrying the id of the authenticated actor.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFromContext returns the id of the authenticated actor, or "".
func ActorFromContext(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

var (
	errNoToken      = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "Authentication required: send Authorization: Bearer <token>."}
	errBadToken     = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "The bearer token is not valid."}
	errNoAuthConfig = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "This server accepts no tokens: no authenticator is configured."}
)

// authenticate runs the Authenticator on the request's bearer token.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (context.Context, error) {
	return Authenticate(w, r, h.auth, Realm)
}

// Realm is the realm named in the WWW-Authenticate challenge of the FHIR,
// admin and audit routes.
const Realm = "phivault"

// ErrNoToken is the error [Authenticate] returns for a request without a
// bearer token; a caller may answer it with its own wording.
var ErrNoToken error = errNoToken

// Authenticate runs auth on r's bearer token and returns the context auth
// gives. It does not answer the request: on failure it sets w's RFC 6750 §3
// challenge for realm and returns the error for the caller to write in its
// own shape: [ErrNoToken] if r has no bearer token, EUNAUTHORIZED if auth is
// nil (the server accepts no tokens), or auth's error, whose challenge says
// error="invalid_token" if it is EUNAUTHORIZED.
func Authenticate(w http.ResponseWriter, r *http.Request, auth Authenticator, realm string) (context.Context, error) {
	token, ok := phivault.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
		return nil, errNoToken
	}
	if auth == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
		return nil, errNoAuthConfig
	}
	ctx, err := auth.Authenticate(r.Context(), token)
	if err != nil {
		if phivault.ErrorCode(err) == phivault.EUNAUTHORIZED {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
		}
		return nil, err
	}
	return ctx, nil
}

// TokenAuthenticator accepts one bearer token, identified by its SHA-256
// hash, and authenticates it as Actor. It is the bootstrap admin token.
type TokenAuthenticator struct {
	Hash  []byte // SHA-256 of the token string, see HashToken
	Actor string // actor id put in the context, e.g. "admin"
	// Principal, if set, is put in the context too, so that the access
	// layer can decide on the token's requests (the bootstrap system
	// client; see access.BootstrapPrincipal).
	Principal *phivault.Principal
}

var _ Authenticator = (*TokenAuthenticator)(nil)

// Authenticate compares the hash of token with a.Hash in constant time.
func (a *TokenAuthenticator) Authenticate(ctx context.Context, token string) (context.Context, error) {
	sum := HashToken(token)
	if len(a.Hash) != sha256.Size || subtle.ConstantTimeCompare(sum, a.Hash) != 1 {
		return nil, errBadToken
	}
	ctx = WithActor(ctx, a.Actor)
	if a.Principal != nil {
		ctx = phivault.WithPrincipal(ctx, a.Principal)
	}
	return ctx, nil
}

// HashToken returns the SHA-256 hash of a token, the form in which tokens
// are stored. Tokens carry 256 bits of randomness, so an unsalted fast hash
// is enough: there is nothing to guess.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// NewToken returns a new token (32 bytes from rand, base64url without
// padding) and its hash. Pass crypto/rand.Reader outside tests.
func NewToken(rand io.Reader) (token string, hash []byte, err error) {
	var b [32]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", nil, err
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}
