package federation_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// testOP is zitadel's example OpenID provider (a real op.Provider with its
// in-memory example storage and login page) whose ID tokens carry the amr
// and acr the test sets. The example storage always answers amr ["pwd"];
// op.Storage is the library's extension point, so testOP wraps the auth
// requests it returns and overrides GetAMR and GetACR, which op reads when
// it builds the ID token.
type testOP struct {
	*storage.Storage
	srv *httptest.Server

	mu    sync.Mutex
	amr   []string
	acr   string
	nonce string // if set, replaces the nonce the relying party sent
}

// opUser is a user the test OP knows, logging in with password "verysecure".
type opUsers map[string]*storage.User

func (u opUsers) GetUserByID(id string) *storage.User { return u[id] }
func (u opUsers) GetUserByUsername(name string) *storage.User {
	for _, x := range u {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (u opUsers) ExampleClientID() string { return "service" }

// startOP runs the OP on an httptest server with one web client whose
// redirect URI is redirect.
func startOP(t *testing.T, clientID, secret, redirect string, users opUsers) *testOP {
	t.Helper()
	o := &testOP{amr: []string{"pwd", "otp"}}
	mux := http.NewServeMux() // safe to add to once the server runs
	o.srv = httptest.NewServer(mux)
	t.Cleanup(o.srv.Close)
	// The clients map is the storage's own, not the package's global one.
	o.Storage = storage.NewStorageWithClients(users, map[string]*storage.Client{clientID: storage.WebClient(clientID, secret, redirect)})
	mux.Handle("/", exampleop.SetupServer(o.srv.URL, o, nil, false))
	return o
}

func (o *testOP) set(amr []string, acr, nonce string) {
	o.mu.Lock()
	o.amr, o.acr, o.nonce = amr, acr, nonce
	o.mu.Unlock()
}

// mfaRequest is an auth request whose amr and acr the test chose.
type mfaRequest struct {
	*storage.AuthRequest
	amr []string
	acr string
}

func (r *mfaRequest) GetAMR() []string {
	if !r.Done() {
		return nil
	}
	return r.amr
}
func (r *mfaRequest) GetACR() string { return r.acr }

func (o *testOP) wrap(req op.AuthRequest, err error) (op.AuthRequest, error) {
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return &mfaRequest{AuthRequest: req.(*storage.AuthRequest), amr: o.amr, acr: o.acr}, nil
}

// unwrap gives the example storage the request type it knows.
func unwrap(req op.TokenRequest) op.TokenRequest {
	if r, ok := req.(*mfaRequest); ok {
		return r.AuthRequest
	}
	return req
}

func (o *testOP) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	o.mu.Lock()
	if o.nonce != "" {
		req.Nonce = o.nonce
	}
	o.mu.Unlock()
	return o.wrap(o.Storage.CreateAuthRequest(ctx, req, userID))
}

func (o *testOP) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	return o.wrap(o.Storage.AuthRequestByID(ctx, id))
}

func (o *testOP) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	return o.wrap(o.Storage.AuthRequestByCode(ctx, code))
}

func (o *testOP) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	return o.Storage.CreateAccessToken(ctx, unwrap(req))
}

func (o *testOP) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	return o.Storage.CreateAccessAndRefreshTokens(ctx, unwrap(req), current)
}
