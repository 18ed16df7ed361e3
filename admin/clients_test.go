package admin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
)

func jwks(t *testing.T, keys ...any) json.RawMessage {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k, KeyID: "k1", Algorithm: "ES384", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestClients_CreateListUpdate(t *testing.T) {
	h := newHarness(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	var backend admin.ClientView
	h.must(201, "POST", "/admin/clients", admin.ClientCreate{Name: "lab", Kind: "backend", JWKS: jwks(t, &ec.PublicKey), Scopes: []string{"system/*.rs", "system/Observation.c"}}, &backend)
	if backend.ID == "" || backend.Status != "active" || backend.Kind != "backend" || len(backend.JWKS) == 0 {
		t.Fatalf("created %+v", backend)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(backend.JWKS, &set); err != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() || set.Keys[0].KeyID != "k1" {
		t.Errorf("stored JWKS %s: %v", backend.JWKS, err)
	}
	var public admin.ClientView
	h.must(201, "POST", "/admin/clients", admin.ClientCreate{Name: "app", Kind: "public",
		RedirectURIs: []string{"https://app.example.org/cb", "http://127.0.0.1:9000/cb", "org.example.app:/cb"},
		Scopes:       []string{"patient/*.rs", "openid", "fhirUser", "launch/patient", "user/Observation.rs?category=laboratory"}}, &public)
	var list struct{ Clients []admin.ClientView }
	h.must(200, "GET", "/admin/clients", nil, &list)
	if len(list.Clients) != 2 {
		t.Errorf("list has %d clients, want 2", len(list.Clients))
	}
	var got admin.ClientView
	h.must(200, "GET", "/admin/clients/"+public.ID, nil, &got)
	if got.Name != "app" || len(got.RedirectURIs) != 3 {
		t.Errorf("GET = %+v", got)
	}
	h.must(200, "PATCH", "/admin/clients/"+public.ID, `{"name":"renamed"}`, &got)
	if got.Name != "renamed" || h.revoker.Count(public.ID) != 0 {
		t.Errorf("rename: %+v, %d revocations, want 0", got, h.revoker.Count(public.ID))
	}
	h.must(200, "PATCH", "/admin/clients/"+backend.ID, `{"status":"suspended"}`, &got)
	if got.Status != "suspended" || h.revoker.Count(backend.ID) != 1 {
		t.Errorf("suspend: %+v, %d revocations, want 1", got, h.revoker.Count(backend.ID))
	}
	h.must(404, "PATCH", "/admin/clients/nope", `{"status":"suspended"}`, nil)
	h.must(400, "PATCH", "/admin/clients/"+backend.ID, `{"status":"deprovisioned"}`, nil)

	entries := h.audit()
	if len(entries) != 6 {
		t.Fatalf("%d audit entries, want 6", len(entries))
	}
	for _, e := range entries {
		if e.Action != phivault.ActionAccountChange || e.TargetType != "Client" {
			t.Errorf("audit entry %+v", e)
		}
	}
}

func TestClients_BadInput(t *testing.T) {
	h := newHarness(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	good := jwks(t, &ec.PublicKey)
	oct, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{"kty": "oct", "kid": "s", "k": "c2VjcmV0c2VjcmV0"}}})
	noKid, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256",
		"x": json.RawMessage(mustField(t, good, "x")), "y": json.RawMessage(mustField(t, good, "y"))}}})
	tests := []struct {
		name string
		body admin.ClientCreate
		msg  string
	}{
		{"PrivateKey", admin.ClientCreate{Name: "b", Kind: "backend", JWKS: jwks(t, ec), Scopes: []string{"system/*.rs"}}, "private"},
		{"SymmetricKey", admin.ClientCreate{Name: "b", Kind: "backend", JWKS: oct, Scopes: []string{"system/*.rs"}}, "private or symmetric"},
		{"WeakRSA", admin.ClientCreate{Name: "b", Kind: "backend", JWKS: jwks(t, &weak.PublicKey), Scopes: []string{"system/*.rs"}}, "2048"},
		{"NoKid", admin.ClientCreate{Name: "b", Kind: "backend", JWKS: noKid, Scopes: []string{"system/*.rs"}}, "kid"},
		{"NotJWKS", admin.ClientCreate{Name: "b", Kind: "backend", JWKS: json.RawMessage(`[1]`), Scopes: []string{"system/*.rs"}}, "JSON Web Key Set"},
		{"BackendNoJWKS", admin.ClientCreate{Name: "b", Kind: "backend", Scopes: []string{"system/*.rs"}}, "JWKS"},
		{"BackendUserScope", admin.ClientCreate{Name: "b", Kind: "backend", JWKS: good, Scopes: []string{"user/*.rs"}}, "cannot hold user/"},
		{"BackendOpenID", admin.ClientCreate{Name: "b", Kind: "backend", JWKS: good, Scopes: []string{"openid"}}, "only system/"},
		{"PublicSystemScope", admin.ClientCreate{Name: "a", Kind: "public", RedirectURIs: []string{"https://a.example/cb"}, Scopes: []string{"system/*.rs"}}, "cannot hold system/"},
		{"PublicNoRedirect", admin.ClientCreate{Name: "a", Kind: "public", Scopes: []string{"patient/*.rs"}}, "redirect URI"},
		{"PublicHTTPRedirect", admin.ClientCreate{Name: "a", Kind: "public", RedirectURIs: []string{"http://a.example/cb"}, Scopes: []string{"patient/*.rs"}}, "https"},
		{"PublicFragment", admin.ClientCreate{Name: "a", Kind: "public", RedirectURIs: []string{"https://a.example/cb#x"}, Scopes: []string{"patient/*.rs"}}, "fragment"},
		{"BadScope", admin.ClientCreate{Name: "a", Kind: "public", RedirectURIs: []string{"https://a.example/cb"}, Scopes: []string{"patient/*.xyz"}}, "Unknown scope"},
		{"BadScopeOrder", admin.ClientCreate{Name: "a", Kind: "public", RedirectURIs: []string{"https://a.example/cb"}, Scopes: []string{"patient/*.sr"}}, "Unknown scope"},
		{"NoScopes", admin.ClientCreate{Name: "a", Kind: "public", RedirectURIs: []string{"https://a.example/cb"}}, "scope"},
		{"NoName", admin.ClientCreate{Kind: "public", RedirectURIs: []string{"https://a.example/cb"}, Scopes: []string{"patient/*.rs"}}, "name"},
		{"BadKind", admin.ClientCreate{Name: "a", Kind: "confidential", Scopes: []string{"patient/*.rs"}}, "kind"},
	}
	for _, tt := range tests {
		status, b := h.do(adminToken, "POST", "/admin/clients", tt.body)
		if status != 400 || !strings.Contains(string(b), tt.msg) {
			t.Errorf("%s: POST /admin/clients = %d %s, want 400 with %q", tt.name, status, b, tt.msg)
		}
	}
	cs, _ := h.db.Clients(context.Background())
	if len(cs) != 0 {
		t.Errorf("%d clients stored after bad requests, want 0", len(cs))
	}
	// No private key material was echoed.
	if strings.Contains(h.bodies.String(), `"d"`) || strings.Contains(h.bodies.String(), "c2VjcmV0c2VjcmV0") {
		t.Error("an answer echoed private key material")
	}
}

// mustField returns the JSON of member name of the first key in set.
func mustField(t *testing.T, set json.RawMessage, name string) []byte {
	t.Helper()
	var s struct{ Keys []map[string]json.RawMessage }
	if err := json.Unmarshal(set, &s); err != nil || len(s.Keys) == 0 {
		t.Fatal(err)
	}
	return s.Keys[0][name]
}
