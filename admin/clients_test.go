package admin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/oauth"
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

// tokenServer is the OAuth server over a harness's stores, for asking a
// backend client's token with its key.
type tokenServer struct {
	t   *testing.T
	srv *httptest.Server
	n   int // assertions made, for unique jti
}

func newTokenServer(t *testing.T, h *harness) *tokenServer {
	t.Helper()
	ts := &tokenServer{t: t}
	var s *oauth.Server
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.ServeHTTP(w, r) }))
	t.Cleanup(ts.srv.Close)
	var err error
	s, err = oauth.New(oauth.Options{BaseURL: ts.srv.URL + "/fhir", Accounts: h.db, Clients: h.db, Login: identity.NewAuthenticator(h.db), Audit: h.log})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// status asks for a client_credentials token with scope as client id,
// with an assertion signed by key, and returns the answer's status.
func (ts *tokenServer) status(id string, key *ecdsa.PrivateKey, scope string) int {
	ts.t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.n++
	a, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{ts.srv.URL + "/oauth/token"},
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute)), ID: fmt.Sprintf("jti-%d", ts.n)}).Serialize()
	if err != nil {
		ts.t.Fatal(err)
	}
	resp, err := http.PostForm(ts.srv.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}})
	if err != nil {
		ts.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// p384 returns a new ES384 key.
func p384(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// addAdmins stores the accounts of both security admins, mgr1 and mgr2,
// so that the bootstrap token's window for setup is closed.
func (h *harness) addAdmins() {
	h.t.Helper()
	h.addSelf()
	if err := h.db.CreateAccount(h.t.Context(), &phivault.Account{ID: "mgr2", Username: "mgr.two", Kind: phivault.PrincipalStaff,
		Roles: []string{"security-admin"}, Status: phivault.AccountActive, Created: h.now}); err != nil {
		h.t.Fatal(err)
	}
}

// approveClient approves change id as mgr2 and returns the client it
// answers.
func (h *harness) approveClient(id string) admin.ClientView {
	h.t.Helper()
	status, body := h.do(secondAdminToken, "POST", "/admin/changes/"+id+"/approve", nil)
	if status != http.StatusOK {
		h.t.Fatalf("approval by mgr2 = %d %s, want 200", status, body)
	}
	var v admin.ClientView
	if err := json.Unmarshal(body, &v); err != nil {
		h.t.Fatal(err)
	}
	return v
}

// storeClient stores c, active, as if registered and approved before.
func (h *harness) storeClient(c *phivault.Client) *phivault.Client {
	h.t.Helper()
	c.Status, c.Created = phivault.AccountActive, h.now
	if err := h.db.CreateClient(h.t.Context(), c); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// client returns the stored client id, or nil if there is none.
func (h *harness) client(id string) *phivault.Client {
	h.t.Helper()
	c, err := h.db.ClientByID(h.t.Context(), id)
	if errors.Is(err, phivault.ErrNotFound) {
		return nil
	} else if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// TestApproval_backendClient: one security admin registers a SMART
// Backend Services client with system/*.rs and their own key. It does not
// exist, and its key gets no token, until a second admin approves.
func TestApproval_backendClient(t *testing.T) {
	h := newHarness(t)
	h.addAdmins()
	tokens := newTokenServer(t, h)
	key := p384(t)
	req := admin.ClientCreate{Name: "lab", Kind: "backend", JWKS: jwks(t, &key.PublicKey), Scopes: []string{"system/*.rs"}}
	c := h.pending(managerToken, "POST", "/admin/clients", req)
	if c.Kind != admin.ChangeClientCreate || c.Reason != admin.ReasonGrant || c.ClientID == "" || c.AccountID != "" ||
		c.Client == nil || c.Client.ID != c.ClientID || !slices.Equal(c.Client.Scopes, req.Scopes) {
		t.Errorf("pending change %+v", c)
	}
	if got := h.client(c.ClientID); got != nil {
		t.Fatalf("the client exists before approval: %+v", got)
	}
	if got := tokens.status(c.ClientID, key, "system/*.rs"); got != http.StatusUnauthorized {
		t.Errorf("token with the key before approval = %d, want 401", got)
	}
	h.refusedApprovals(c.ID)
	if got := h.client(c.ClientID); got != nil {
		t.Fatal("a refused approval registered the client")
	}

	v := h.approveClient(c.ID)
	if v.ID != c.ClientID || v.Status != "active" || !slices.Equal(v.Scopes, req.Scopes) {
		t.Errorf("approved client %+v", v)
	}
	if got := tokens.status(c.ClientID, key, "system/*.rs"); got != http.StatusOK {
		t.Errorf("token with the key after approval = %d, want 200", got)
	}

	// So does every client whose scopes reach a patient's records, of any
	// context; one that reaches only shared resources is registered at once.
	public := func(scopes ...string) admin.ClientCreate {
		return admin.ClientCreate{Name: "app", Kind: "public", RedirectURIs: []string{"https://app.example.org/cb"}, Scopes: scopes}
	}
	for _, req := range []admin.ClientCreate{
		public("patient/*.rs", "openid"),
		public("user/Observation.rs?category=laboratory"),
		public("launch/patient", "patient/Patient.r"),
		{Name: "feed", Kind: "backend", JWKS: jwks(t, &key.PublicKey), Scopes: []string{"system/Practitioner.rs", "system/Encounter.c"}},
	} {
		h.pending(managerToken, "POST", "/admin/clients", req)
	}
	for _, req := range []admin.ClientCreate{
		public("user/Practitioner.rs", "openid", "offline_access"),
		{Name: "directory", Kind: "backend", JWKS: jwks(t, &key.PublicKey), Scopes: []string{"system/Organization.rs", "system/Location.cruds"}},
	} {
		if status, body := h.do(managerToken, "POST", "/admin/clients", req); status != http.StatusCreated {
			t.Errorf("POST clients %v = %d %s, want 201 (reaches no patient's records)", req.Scopes, status, body)
		}
	}
	// The bootstrap token, with two admins active, registers none that
	// reaches records, and asks for none.
	if status, body := h.do(adminToken, "POST", "/admin/clients", req); status != http.StatusForbidden {
		t.Errorf("bootstrap registers a system/*.rs client = %d %s, want 403", status, body)
	}
	h.must(201, "POST", "/admin/clients", public("user/Practitioner.rs"), nil)
	var list struct{ Changes []admin.PendingChange }
	h.must(200, "GET", "/admin/changes", nil, &list)
	if len(list.Changes) != 4 {
		t.Errorf("%d changes wait, want 4 (none from the bootstrap token)", len(list.Changes))
	}

	// Each step is in the audit trail, on the client.
	var steps []string
	for _, e := range h.audit() {
		if e.Action == phivault.ActionAccountChange && e.TargetType == "Client" && e.TargetID == c.ClientID {
			steps = append(steps, e.Actor+": "+e.Outcome)
		}
	}
	want := []string{"mgr1: ok", "mgr1: forbidden", "admin: forbidden", "mgr2: ok"}
	if !slices.Equal(steps, want) {
		t.Errorf("audit steps on the client %q, want %q", steps, want)
	}
}

// TestApproval_clientScopeRaise: raising a client's scopes so that they
// reach more patients' records waits; lowering them, suspending and
// activating do not.
func TestApproval_clientScopeRaise(t *testing.T) {
	h := newHarness(t)
	h.addAdmins()
	tokens := newTokenServer(t, h)
	key := p384(t)
	var dir admin.ClientView
	status, body := h.do(managerToken, "POST", "/admin/clients", admin.ClientCreate{Name: "directory", Kind: "backend",
		JWKS: jwks(t, &key.PublicKey), Scopes: []string{"system/Practitioner.rs"}})
	if status != http.StatusCreated || json.Unmarshal(body, &dir) != nil {
		t.Fatalf("a client reaching shared resources = %d %s, want 201", status, body)
	}
	path := "/admin/clients/" + dir.ID
	c := h.pending(managerToken, "PATCH", path, map[string]any{"scopes": []string{"system/Practitioner.rs", "system/*.rs"}})
	if c.Kind != admin.ChangeClientUpdate || c.Reason != admin.ReasonGrant || c.ClientID != dir.ID || c.ClientUpdate == nil {
		t.Errorf("pending change %+v", c)
	}
	if got := h.client(dir.ID); !slices.Equal(got.Scopes, []string{"system/Practitioner.rs"}) {
		t.Fatalf("scopes %v before approval", got.Scopes)
	}
	if got := tokens.status(dir.ID, key, "system/Observation.rs"); got == http.StatusOK {
		t.Error("a token for Observations before approval")
	}
	h.refusedApprovals(c.ID)
	if status, body := h.do(adminToken, "PATCH", path, map[string]any{"scopes": []string{"system/Patient.rs"}}); status != http.StatusForbidden {
		t.Errorf("bootstrap raises the scopes = %d %s, want 403", status, body)
	}
	h.approveClient(c.ID)
	if got := tokens.status(dir.ID, key, "system/Observation.rs"); got != http.StatusOK {
		t.Errorf("token for Observations after approval = %d, want 200", got)
	}
	revoked := h.revoker.Count(dir.ID)
	if revoked == 0 {
		t.Error("the approved raise did not revoke the client's tokens")
	}

	// Every scope it already allows as much of, or less, applies at once.
	for _, scopes := range [][]string{
		{"system/*.rs", "system/Observation.r"},
		{"system/Observation.rs", "system/Patient.r"},
		{"system/Observation.rs?category=laboratory"},
	} {
		if status, body := h.do(managerToken, "PATCH", path, map[string]any{"scopes": scopes}); status != http.StatusOK {
			t.Errorf("lowering to %v = %d %s, want 200", scopes, status, body)
		}
	}
	// What it did not allow waits: more interactions, another type, a
	// granular scope widened, the wildcard back.
	for _, scopes := range [][]string{
		{"system/Observation.cruds?category=laboratory"},
		{"system/Observation.rs?category=laboratory", "system/Condition.r"},
		{"system/Observation.rs"},
		{"system/*.r"},
	} {
		h.pending(managerToken, "PATCH", path, map[string]any{"scopes": scopes})
	}
	for _, st := range []string{"suspended", "active"} {
		if status, body := h.do(adminToken, "PATCH", path, map[string]any{"status": st}); status != http.StatusOK {
			t.Errorf("bootstrap sets status %s = %d %s, want 200", st, status, body)
		}
	}
	if got := h.client(dir.ID); !slices.Equal(got.Scopes, []string{"system/Observation.rs?category=laboratory"}) || got.Status != "active" {
		t.Errorf("client %+v after lowering, suspending and activating", got)
	}
}

// TestApproval_clientKeyReplacement: replacing the key of a client that
// reaches patients' records, or adding a redirect URI to one, waits; the
// old key goes on working until then. Removing them does not wait.
func TestApproval_clientKeyReplacement(t *testing.T) {
	h := newHarness(t)
	h.addAdmins()
	tokens := newTokenServer(t, h)
	owner, attacker := p384(t), p384(t)
	lab := h.storeClient(&phivault.Client{ID: "lab", Name: "lab", Kind: "backend", JWKS: jwks(t, &owner.PublicKey), Scopes: []string{"system/*.rs"}})
	path := "/admin/clients/" + lab.ID

	// The attacker's key, under the same kid.
	c := h.pending(managerToken, "PATCH", path, map[string]any{"jwks": jwks(t, &attacker.PublicKey)})
	if c.Kind != admin.ChangeClientUpdate || c.Reason != admin.ReasonCredentials {
		t.Errorf("pending change %+v", c)
	}
	if got := tokens.status(lab.ID, attacker, "system/*.rs"); got != http.StatusUnauthorized {
		t.Errorf("token with the new key before approval = %d, want 401", got)
	}
	if got := tokens.status(lab.ID, owner, "system/*.rs"); got != http.StatusOK {
		t.Errorf("token with the old key before approval = %d, want 200", got)
	}
	// Adding a key waits too; the bootstrap token cannot.
	both := jwks(t, &owner.PublicKey, &attacker.PublicKey)
	h.pending(managerToken, "PATCH", path, map[string]any{"jwks": both})
	if status, body := h.do(adminToken, "PATCH", path, map[string]any{"jwks": both}); status != http.StatusForbidden {
		t.Errorf("bootstrap adds a key = %d %s, want 403", status, body)
	}
	h.refusedApprovals(c.ID)
	if got := tokens.status(lab.ID, attacker, "system/*.rs"); got != http.StatusUnauthorized {
		t.Errorf("token with the new key after refused approvals = %d, want 401", got)
	}
	h.approveClient(c.ID)
	if got := tokens.status(lab.ID, attacker, "system/*.rs"); got != http.StatusOK {
		t.Errorf("token with the new key after approval = %d, want 200", got)
	}
	if got := tokens.status(lab.ID, owner, "system/*.rs"); got != http.StatusUnauthorized {
		t.Errorf("token with the replaced key = %d, want 401", got)
	}

	// The same keys again, or fewer, apply at once.
	for _, set := range []json.RawMessage{jwks(t, &attacker.PublicKey), jwks(t, &attacker.PublicKey, &attacker.PublicKey)} {
		if status, body := h.do(managerToken, "PATCH", path, map[string]any{"jwks": set}); status != http.StatusOK {
			t.Errorf("PATCH jwks without a new key = %d %s, want 200", status, body)
		}
	}

	// A public app: a new redirect URI is where its codes go.
	app := h.storeClient(&phivault.Client{ID: "chart", Name: "chart", Kind: "public",
		RedirectURIs: []string{"https://chart.example.org/cb", "https://old.example.org/cb"}, Scopes: []string{"user/*.rs"}})
	c = h.pending(managerToken, "PATCH", "/admin/clients/"+app.ID, map[string]any{"redirect_uris": []string{"https://evil.example.org/cb"}})
	if c.Reason != admin.ReasonCredentials {
		t.Errorf("pending change %+v", c)
	}
	if status, body := h.do(managerToken, "PATCH", "/admin/clients/"+app.ID, map[string]any{"redirect_uris": []string{"https://chart.example.org/cb"}}); status != http.StatusOK {
		t.Errorf("removing a redirect URI = %d %s, want 200", status, body)
	}

	// A client that reaches no patient's records changes keys at once.
	var dir admin.ClientView
	h.must(201, "POST", "/admin/clients", admin.ClientCreate{Name: "directory", Kind: "backend", JWKS: jwks(t, &owner.PublicKey),
		Scopes: []string{"system/Practitioner.rs"}}, &dir)
	h.must(200, "PATCH", "/admin/clients/"+dir.ID, map[string]any{"jwks": jwks(t, &attacker.PublicKey)}, nil)
	h.noSecrets()
}

// TestApproval_clientBootstrapToken: the bootstrap token, root until the
// first two security admins exist, registers and changes clients at once
// until then, and only while fewer than two are active.
func TestApproval_clientBootstrapToken(t *testing.T) {
	h := newHarness(t)
	key := p384(t)
	req := admin.ClientCreate{Name: "console", Kind: "public", RedirectURIs: []string{"https://admin.example.org/cb"}, Scopes: []string{"user/*.rs"}}
	var v admin.ClientView
	h.must(201, "POST", "/admin/clients", req, &v)
	h.must(200, "PATCH", "/admin/clients/"+v.ID, map[string]any{"redirect_uris": []string{"https://admin2.example.org/cb"}}, nil)
	var one admin.User
	h.must(201, "POST", "/admin/users", admin.UserCreate{Username: "sec.one", Roles: []string{"security-admin"}}, &one)
	h.must(201, "POST", "/admin/clients", admin.ClientCreate{Name: "lab", Kind: "backend", JWKS: jwks(t, &key.PublicKey), Scopes: []string{"system/*.rs"}}, nil)
	h.must(201, "POST", "/admin/users", admin.UserCreate{Username: "sec.two", Roles: []string{"security-admin"}}, nil)
	h.must(403, "POST", "/admin/clients", req, nil)
	h.must(403, "PATCH", "/admin/clients/"+v.ID, map[string]any{"scopes": []string{"user/*.cruds"}}, nil)
	h.must(200, "PATCH", "/admin/clients/"+v.ID, map[string]any{"scopes": []string{"user/Patient.rs"}}, nil) // lowers
	// One admin suspended: the window opens again.
	h.must(200, "PATCH", "/admin/users/"+one.ID, map[string]any{"status": "suspended"}, nil)
	h.must(201, "POST", "/admin/clients", req, nil)
}

func TestClients_UpdateStatusReason(t *testing.T) {
	h := newHarness(t)
	app := h.storeClient(&phivault.Client{ID: "chart", Name: "chart", Kind: "public",
		RedirectURIs: []string{"https://chart.example.org/cb"}, Scopes: []string{"user/*.rs"}})

	if status, body := h.do(managerToken, "PATCH", "/admin/clients/"+app.ID, map[string]any{"status": "suspended", "reason": "investigation"}); status != http.StatusOK {
		t.Fatalf("suspend with a reason = %d %s, want 200", status, body)
	}
	es := h.entriesOf("Client", app.ID)
	if len(es) != 1 || es[0].Outcome != "ok" || es[0].Decision != "status suspended (reason investigation)" {
		t.Fatalf("the suspension's entries = %+v, want one with decision \"status suspended (reason investigation)\"", es)
	}
	c := h.client(app.ID)
	for _, bad := range badReasons {
		status, body := h.do(managerToken, "PATCH", "/admin/clients/"+app.ID, map[string]any{"status": "active", "reason": bad})
		if status != http.StatusBadRequest || !strings.Contains(string(body), "lowercase letters, digits and hyphens") {
			t.Errorf("reason %q = %d %s, want 400 stating the rule", bad, status, body)
		}
	}
	status, body := h.do(managerToken, "PATCH", "/admin/clients/"+app.ID, map[string]any{"name": "chart2", "reason": "returned"})
	if status != http.StatusBadRequest || !strings.Contains(string(body), "send it with status") {
		t.Errorf("a reason without a status = %d %s, want 400", status, body)
	}
	if got := h.client(app.ID); got.Status != phivault.AccountSuspended || got.Name != "chart" || got.Version != c.Version {
		t.Errorf("refused updates changed the client: %s %q v%d (want v%d)", got.Status, got.Name, got.Version, c.Version)
	}
	for _, e := range h.entriesOf("Client", app.ID)[1:] {
		if e.Outcome != phivault.EINVALID || e.Decision != "" {
			t.Errorf("a refused update's entry = %+v, want outcome invalid and no decision", e)
		}
	}
	if status, body := h.do(managerToken, "PATCH", "/admin/clients/"+app.ID, map[string]any{"status": "active", "reason": "returned"}); status != http.StatusOK {
		t.Fatalf("activate with a reason = %d %s, want 200", status, body)
	}
	if es := h.entriesOf("Client", app.ID); es[len(es)-1].Decision != "status active (reason returned)" {
		t.Errorf("the activation's entry = %+v", es[len(es)-1])
	}
}
