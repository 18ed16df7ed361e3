package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
)

// TestOAuth_wiring gets a SMART Backend Services token from a vault opened
// by openApp and reads with it through the FHIR API, which still accepts
// the bootstrap admin token too.
func TestOAuth_wiring(t *testing.T) {
	a := mustAuditApp(t)
	for _, p := range oauthRoutes {
		if a.routes[p] == nil {
			t.Fatalf("route %s is not mounted", p)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/", a.fhirAndAdmin())
	for p, h := range a.routes {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","active":true}`)
	if status != http.StatusCreated {
		t.Fatalf("create with the admin token = %d %s", status, body)
	}
	var pat struct{ ID string }
	json.Unmarshal(body, &pat)

	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Use: "sig"}}})
	c := &phivault.Client{ID: "lab", Name: "Lab", Kind: phivault.ClientBackend, JWKS: set, Scopes: []string{"system/Patient.rs"}, Status: phivault.AccountActive, Created: time.Now()}
	if err := a.db.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	assertion, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: "lab", Subject: "lab", Audience: jwt.Audience{srv.URL + "/oauth/token"},
		Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: "jti-1",
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.PostForm(srv.URL+"/oauth/token", url.Values{
		"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if res.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("client_credentials = %d", res.StatusCode)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/fhir/Patient/"+pat.ID, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("read with the session token = %d, want 200", res.StatusCode)
	}
	// The trail names the backend client as the reader.
	found := false
	for _, e := range a.trail(t) {
		if e.Action == phivault.ActionRead && e.TargetID == pat.ID && e.Actor == "lab" {
			found = true
		}
	}
	if !found {
		t.Error("no audit entry of the read by lab")
	}
	res, err = http.Get(srv.URL + "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("smart-configuration = %d", res.StatusCode)
	}
}

type stubAuth struct {
	actor string
	err   error
}

func (s stubAuth) Authenticate(ctx context.Context, _ string) (context.Context, error) {
	if s.err != nil {
		return nil, s.err
	}
	return api.WithActor(ctx, s.actor), nil
}

func TestBearerChain(t *testing.T) {
	bad := &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "no"}
	down := errors.New("store down")
	tests := []struct {
		name      string
		chain     bearerChain
		wantActor string
		wantErr   error
	}{
		{"first", bearerChain{stubAuth{actor: "a"}, stubAuth{actor: "b"}}, "a", nil},
		{"second", bearerChain{stubAuth{err: bad}, stubAuth{actor: "b"}}, "b", nil},
		{"none", bearerChain{stubAuth{err: bad}, stubAuth{err: bad}}, "", bad},
		{"stops on failure", bearerChain{stubAuth{err: down}, stubAuth{actor: "b"}}, "", down},
		{"empty", bearerChain{}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, err := tt.chain.Authenticate(context.Background(), "s3cr3t-xyz")
			if tt.wantActor != "" {
				if err != nil || api.ActorFromContext(ctx) != tt.wantActor {
					t.Fatalf("= %v, actor %q; want %q", err, api.ActorFromContext(ctx), tt.wantActor)
				}
				return
			}
			if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || phivault.ErrorCode(err) == "" {
				t.Fatalf("= %v, want an error like %v", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Error("error holds the token")
			}
		})
	}
}
