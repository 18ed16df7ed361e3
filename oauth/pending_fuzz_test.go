package oauth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/oauth2"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/oauth"
)

// oneClient is a ClientStore holding the public test app only.
type oneClient struct{ phivault.ClientStore }

func (oneClient) ClientByID(_ context.Context, id string) (*phivault.Client, error) {
	if id != "app-1" {
		return nil, phivault.ErrNotFound
	}
	return &phivault.Client{ID: "app-1", Name: "Test App", Kind: phivault.ClientPublic, RedirectURIs: []string{redirectURI},
		Scopes: []string{"user/*.rs"}, Status: phivault.AccountActive}, nil
}

type noLogin struct{}

func (noLogin) Login(context.Context, string, string, string) (*phivault.Account, error) {
	return nil, phivault.ErrNotFound
}

type noAudit struct{}

func (noAudit) Append(context.Context, ...*phivault.AuditEntry) error { return nil }

// FuzzPending checks the one decryption path of a pending authorization:
// any token opens only if it is exactly one the server sealed; no input
// panics, and no single-bit change of a sealed token opens.
func FuzzPending(f *testing.F) {
	srv, err := oauth.New(oauth.Options{BaseURL: "https://vault.example/fhir", Accounts: struct{ phivault.AccountStore }{},
		Clients: oneClient{}, Login: noLogin{}, Audit: noAudit{}})
	if err != nil {
		f.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "app-1", RedirectURL: redirectURI, Scopes: []string{"user/*.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: "https://vault.example/oauth/authorize"}}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("aud", "https://vault.example/fhir")), nil))
	m := pendingRe.FindStringSubmatch(rec.Body.String())
	if rec.Code != http.StatusOK || m == nil {
		f.Fatalf("authorize = %d, no pending token", rec.Code)
	}
	valid := m[1]
	if !srv.Pending(valid) {
		f.Fatal("the sealed token does not open")
	}
	f.Add(valid, 0)
	f.Add(valid[:len(valid)-1], 0)
	f.Add("", 3)
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 7)
	f.Fuzz(func(t *testing.T, token string, bit int) {
		if token != valid && srv.Pending(token) {
			t.Fatalf("Pending(%q) = true for a token the server did not seal", token)
		}
		// Flip one bit of the sealed token's bytes (as base64url text, a
		// changed character): it must not open.
		b := []byte(valid)
		i := (bit & 0x7fffffff) % len(b)
		b[i] ^= 1 << (uint(bit) % 6)
		if string(b) != valid && srv.Pending(string(b)) {
			t.Fatalf("a token changed at character %d opens", i)
		}
	})
}
