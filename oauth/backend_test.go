package oauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/phivault/phivault"
)

func TestBackend_OK(t *testing.T) {
	e := newEnv(t)
	status, m := e.post("/oauth/token", backendForm(assertion(t, e.key, jose.ES384, "k1", e.claims()), "system/Observation.rs system/Patient.r"))
	if status != 200 {
		t.Fatalf("client_credentials = %d %v, want 200", status, m)
	}
	if m["token_type"] != "Bearer" || m["scope"] != "system/Observation.rs system/Patient.r" || m["expires_in"] != float64(900) {
		t.Errorf("response %v", m)
	}
	if _, ok := m["refresh_token"]; ok {
		t.Error("a backend client got a refresh token")
	}
	tok, _ := m["access_token"].(string)
	if got := e.read(tok); got != http.StatusOK {
		t.Fatalf("read with the backend token = %d, want 200", got)
	}
	if got := e.audit.last(t, phivault.ActionTokenIssue); got.Actor != e.backend.ID || got.Client != e.backend.ID || got.Outcome != "ok" {
		t.Errorf("audit %+v", got)
	}
	// The token ends with its access token lifetime: there is no refresh.
	e.clock.Advance(15 * time.Minute)
	if got := e.read(tok); got != http.StatusUnauthorized {
		t.Errorf("read after 15 minutes = %d, want 401", got)
	}
}

func TestBackend_RS384(t *testing.T) {
	e := newEnv(t)
	key := newRSAKey(t)
	e.backend.JWKS = jwks(t, "r1", &key.PublicKey, "RS384")
	e.backend.Version++
	if err := e.db.UpdateClient(t.Context(), e.backend); err != nil {
		t.Fatal(err)
	}
	status, m := e.post("/oauth/token", backendForm(assertion(t, key, jose.RS384, "r1", e.claims()), "system/Patient.rs"))
	if status != 200 {
		t.Fatalf("RS384 assertion = %d %v, want 200", status, m)
	}
	// RS256 is not among the allowed algorithms.
	status, m = e.post("/oauth/token", backendForm(assertion(t, key, jose.RS256, "r1", e.claims()), "system/Patient.rs"))
	wantError(t, status, m, 401, "invalid_client")
}

func TestBackend_refused(t *testing.T) {
	e := newEnv(t)
	other, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  any
		alg  jose.SignatureAlgorithm
		edit func(*jwt.Claims)
	}{
		{"wrong key", other, jose.ES384, func(*jwt.Claims) {}},
		{"wrong alg", p256, jose.ES256, func(*jwt.Claims) {}},
		{"expired", e.key, jose.ES384, func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(e.clock.Now().Add(-time.Second)) }},
		{"no exp", e.key, jose.ES384, func(c *jwt.Claims) { c.Expiry = nil }},
		{"exp too far", e.key, jose.ES384, func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(e.clock.Now().Add(6 * time.Minute)) }},
		{"wrong aud", e.key, jose.ES384, func(c *jwt.Claims) { c.Audience = jwt.Audience{e.base} }},
		{"wrong sub", e.key, jose.ES384, func(c *jwt.Claims) { c.Subject = "someone-else" }},
		{"unknown iss", e.key, jose.ES384, func(c *jwt.Claims) { c.Issuer, c.Subject = "nobody", "nobody" }},
		{"public client", e.key, jose.ES384, func(c *jwt.Claims) { c.Issuer, c.Subject = e.public.ID, e.public.ID }},
		{"no jti", e.key, jose.ES384, func(c *jwt.Claims) { c.ID = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.claims()
			tt.edit(&c)
			status, m := e.post("/oauth/token", backendForm(assertion(t, tt.key, tt.alg, "k1", c), "system/Patient.rs"))
			wantError(t, status, m, 401, "invalid_client")
			if got := e.audit.last(t, phivault.ActionTokenIssue); got.Outcome != phivault.EUNAUTHORIZED {
				t.Errorf("audit outcome %q, want %q", got.Outcome, phivault.EUNAUTHORIZED)
			}
		})
	}
	t.Run("replayed jti", func(t *testing.T) {
		a := assertion(t, e.key, jose.ES384, "k1", e.claims())
		if status, m := e.post("/oauth/token", backendForm(a, "system/Patient.rs")); status != 200 {
			t.Fatalf("first use = %d %v", status, m)
		}
		status, m := e.post("/oauth/token", backendForm(a, "system/Patient.rs"))
		wantError(t, status, m, 401, "invalid_client")
	})
	t.Run("wrong assertion type", func(t *testing.T) {
		f := backendForm(assertion(t, e.key, jose.ES384, "k1", e.claims()), "system/Patient.rs")
		f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		status, m := e.post("/oauth/token", f)
		wantError(t, status, m, 401, "invalid_client")
	})
	t.Run("suspended client", func(t *testing.T) {
		c := *e.backend
		c.Status = phivault.AccountSuspended
		c.Version++
		if err := e.db.UpdateClient(t.Context(), &c); err != nil {
			t.Fatal(err)
		}
		defer func() {
			c.Status = phivault.AccountActive
			c.Version++
			e.db.UpdateClient(t.Context(), &c)
		}()
		status, m := e.post("/oauth/token", backendForm(assertion(t, e.key, jose.ES384, "k1", e.claims()), "system/Patient.rs"))
		wantError(t, status, m, 401, "invalid_client")
	})
}

func TestBackend_scopes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		give string
		want string // "" for invalid_scope
	}{
		{"system/*.rs", "system/Observation.rs system/Patient.rs"},
		{"system/*.cruds", "system/Observation.cruds system/Patient.rs"},
		{"system/Observation.read", "system/Observation.rs"},
		{"system/Observation.rs?category=laboratory", "system/Observation.rs?category=laboratory"},
		{"system/Patient.cud", ""},
		{"user/*.rs patient/*.rs", ""},
		{"system/Encounter.rs", ""},
		{"system/Nonsense.rs", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			status, m := e.post("/oauth/token", backendForm(assertion(t, e.key, jose.ES384, "k1", e.claims()), tt.give))
			if tt.want == "" {
				wantError(t, status, m, 400, "invalid_scope")
				return
			}
			if status != 200 || m["scope"] != tt.want {
				t.Fatalf("scope %q: %d %v, want scope %q", tt.give, status, m["scope"], tt.want)
			}
		})
	}
}

func TestRevoke_backend(t *testing.T) {
	e := newEnv(t)
	_, m := e.post("/oauth/token", backendForm(assertion(t, e.key, jose.ES384, "k1", e.claims()), "system/Patient.rs"))
	tok, _ := m["access_token"].(string)
	// Without a client assertion a backend client cannot revoke.
	status, m := e.post("/oauth/revoke", map[string][]string{"token": {tok}, "client_id": {e.backend.ID}})
	wantError(t, status, m, 401, "invalid_client")
	f := backendForm(assertion(t, e.key, jose.ES384, "k1", e.claims()), "")
	f.Del("scope")
	f.Set("token", tok)
	if status, m := e.post("/oauth/revoke", f); status != 200 {
		t.Fatalf("revoke = %d %v", status, m)
	}
	if got := e.read(tok); got != http.StatusUnauthorized {
		t.Errorf("read after revocation = %d, want 401", got)
	}
	if got := e.audit.last(t, phivault.ActionTokenRevoke); got.Actor != e.backend.ID || got.Outcome != "ok" {
		t.Errorf("audit %+v", got)
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"} {
		res, err := e.ts.Client().Get(e.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		decodeJSON(t, res, &m)
		if m["token_endpoint"] != e.ts.URL+"/oauth/token" || m["authorization_endpoint"] != e.ts.URL+"/oauth/authorize" || m["issuer"] != e.ts.URL {
			t.Errorf("%s: endpoints %v", path, m)
		}
		caps := strings.Join(toStrings(m["capabilities"]), " ")
		for _, want := range []string{"launch-standalone", "client-public", "client-confidential-asymmetric", "permission-v2", "context-standalone-patient"} {
			if !strings.Contains(caps, want) {
				t.Errorf("%s: capabilities %q lack %s", path, caps, want)
			}
		}
		if strings.Contains(caps, "sso-openid-connect") {
			t.Errorf("%s: sso-openid-connect advertised without an id_token", path)
		}
		if got := strings.Join(toStrings(m["code_challenge_methods_supported"]), " "); got != "S256" {
			t.Errorf("%s: code_challenge_methods_supported %q", path, got)
		}
	}
}
