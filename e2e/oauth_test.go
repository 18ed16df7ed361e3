package e2e_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/phivault/phivault"
)

// requireRequestIDs reads the whole audit trail of v and fails unless every
// entry made by an HTTP request (one with a source address) carries a
// server-made request id, and the trail has entries with each of actions.
func requireRequestIDs(t *testing.T, v *vault, actions ...string) {
	t.Helper()
	r := v.do(http.MethodGet, "/audit/export", nil)
	if r.status != http.StatusOK {
		t.Fatalf("audit export = %d %.300s", r.status, r.body)
	}
	serverID := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for line := range bytes.Lines(r.body) {
		var l struct {
			Entry struct {
				RequestID string `json:"request_id"`
				Source    string `json:"source"`
				Action    string `json:"action"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("export line %.200s: %v", line, err)
		}
		e := l.Entry
		if e.Source != "" && !serverID.MatchString(e.RequestID) {
			t.Errorf("a %s entry from %s has request id %q, want the server's", e.Action, e.Source, e.RequestID)
		}
		if e.Source != "" {
			seen[e.Action] = true
		}
	}
	for _, a := range actions {
		if !seen[a] {
			t.Errorf("the trail has no %s entry from a request", a)
		}
	}
}

// TestOAuth signs a physician in through the real binary with the SMART
// authorization code flow (PKCE, password and TOTP), reads with the token,
// gets a SMART Backend Services token for a system, and checks that
// suspending the account ends its session on the next request.
func TestOAuth(t *testing.T) {
	requireE2E(t)
	v := newVault(t)
	v.start()
	dir := t.TempDir()
	const password = "Quartz-Meadow-Sparrow-6142"
	cli := v.passwordCLI(password)

	r := v.do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","active":true}`))
	if r.status != http.StatusCreated {
		t.Fatalf("create Patient = %d %s", r.status, r.body)
	}
	var pat struct{ ID string }
	json.Unmarshal(r.body, &pat)
	// Staff read shared resources such as Practitioners without a care
	// relationship (see docs/access.md and TestDemo for patient data).
	r = v.do(http.MethodPost, "/Practitioner", []byte(`{"resourceType":"Practitioner","active":true}`))
	if r.status != http.StatusCreated {
		t.Fatalf("create Practitioner = %d %s", r.status, r.body)
	}
	var prac struct{ ID string }
	json.Unmarshal(r.body, &prac)

	// A physician with TOTP and a public app, each asked for by one
	// security admin and approved by another.
	adm := newAdmins(t, v, password)
	adm.granted("users", "add", "-username", "dr.oauth", "-role", "physician", "-training", time.Now().AddDate(1, 0, 0).Format(time.DateOnly))
	out := adm.ask(false, "users", "enroll-totp", "-user", "dr.oauth")
	key, err := otp.NewKeyFromURL(regexp.MustCompile(`otpauth://\S+`).FindString(out))
	if err != nil {
		t.Fatalf("users add printed %q: %v", out, err)
	}
	code, _ := totp.GenerateCode(key.Secret(), time.Now())
	cli(false, "users", "enroll-totp", "-user", "dr.oauth", "-code", code)
	const redirect = "https://app.example.org/cb"
	out = adm.granted("clients", "add-public", "-name", "e2e app", "-redirect-uri", redirect, "-scope", "user/*.rs offline_access")
	publicID := regexp.MustCompile(`client_id: (\S+)`).FindStringSubmatch(out)
	if publicID == nil {
		t.Fatalf("approval of clients add-public printed %q; want its client_id", out)
	}

	// Discovery.
	origin := strings.TrimSuffix(v.url, "/fhir")
	var meta struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	res, err := v.client.Get(v.url + "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&meta)
	res.Body.Close()
	if res.StatusCode != 200 || meta.TokenEndpoint != origin+"/oauth/token" {
		t.Fatalf("smart-configuration = %d %+v", res.StatusCode, meta)
	}

	// The code flow, as a browser and an app would run it.
	tok := signIn(t, v, publicID[1], redirect, "user/*.rs offline_access", person{"dr.oauth", password, key.Secret()})
	if tok.RefreshToken == "" || tok.Extra("scope") != "user/*.rs offline_access" {
		t.Errorf("token scope %v, refresh %v", tok.Extra("scope"), tok.RefreshToken != "")
	}
	read := func(token, path string) int {
		t.Helper()
		status, _ := readWith(t, v, token, path)
		return status
	}
	if got := read(tok.AccessToken, "/Practitioner/"+prac.ID); got != http.StatusOK {
		t.Fatalf("read with the physician's token = %d, want 200", got)
	}

	// SMART Backend Services: a system the bootstrap token may no longer
	// register, that one admin asks for, whose key gets no token until a
	// second admin approves.
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	jwksFile := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwksFile, set, 0o600)
	addBackend := []string{"clients", "add-backend", "-name", "e2e lab", "-jwks", jwksFile, "-scope", "system/Patient.rs"}
	cli(true, addBackend...)
	asked := adm.ask(false, addBackend...)
	backendID := regexp.MustCompile(`client_id is ([0-9a-f]{32})`).FindStringSubmatch(asked)
	if backendID == nil {
		t.Fatalf("clients add-backend printed %q; want the client_id it will have", asked)
	}
	type systemToken struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	clientCredentials := func() (int, systemToken) {
		t.Helper()
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		assertion, err := jwt.Signed(sig).Claims(jwt.Claims{
			Issuer: backendID[1], Subject: backendID[1], Audience: jwt.Audience{meta.TokenEndpoint},
			Expiry: jwt.NewNumericDate(time.Now().Add(4 * time.Minute)), ID: randomHex(12),
		}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		res, err := v.client.PostForm(meta.TokenEndpoint, url.Values{
			"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var tok systemToken
		json.NewDecoder(res.Body).Decode(&tok)
		return res.StatusCode, tok
	}
	if status, _ := clientCredentials(); status != http.StatusUnauthorized {
		t.Fatalf("client_credentials before approval = %d, want 401", status)
	}
	if out := adm.approve(asked); !strings.Contains(out, "client_id: "+backendID[1]) {
		t.Fatalf("approval of clients add-backend printed %q", out)
	}
	status, sys := clientCredentials()
	if status != 200 || sys.Scope != "system/Patient.rs" {
		t.Fatalf("client_credentials = %d %+v", status, sys)
	}
	if got := read(sys.AccessToken, "/Patient/"+pat.ID); got != http.StatusOK {
		t.Fatalf("read with the backend token = %d, want 200", got)
	}

	// Suspension ends the physician's session at once.
	cli(false, "users", "suspend", "-user", "dr.oauth")
	if got := read(tok.AccessToken, "/Practitioner/"+prac.ID); got != http.StatusUnauthorized {
		t.Errorf("read after suspension = %d, want 401", got)
	}
	// An admin operation outside the FHIR API, refused.
	if r := v.do(http.MethodPost, "/admin/keys/no-such-kek/$compromised", nil); r.status != http.StatusNotFound {
		t.Errorf("compromise an unknown KEK = %d, want 404", r.status)
	}
	requireRequestIDs(t, v, phivault.ActionLogin, phivault.ActionTokenIssue, phivault.ActionKeyCompromised, phivault.ActionRead)

	for _, secret := range []string{password, key.Secret(), tok.AccessToken, tok.RefreshToken, sys.AccessToken, "dr.oauth"} {
		if bytes.Contains(v.stderr.Bytes(), []byte(secret)) {
			t.Errorf("the server log holds a secret or username (%.6s...)", secret)
		}
	}
}
