package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOIDCConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "corp.secret"), "file-secret\n")
	t.Setenv("PHIVAULT_TEST_OIDC_SECRET", "env-secret")
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(dir, "ok.json")
		writeFile(t, path, `{"providers":[
			{"name":"corp","display_name":"Hospital SSO","issuer":"https://login.example.org","client_id":"phivault",
			 "client_secret_file":"corp.secret","mfa_amr":["mfa"],"link_claim":"email","max_age_seconds":3600},
			{"name":"partner","issuer":"https://id.partner.example","client_id":"pv","client_secret_env":"PHIVAULT_TEST_OIDC_SECRET","mfa_acr":["urn:partner:mfa"]}]}`)
		ps, err := loadOIDCConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 || ps[0].ClientSecret != "file-secret" || ps[1].ClientSecret != "env-secret" ||
			ps[0].LinkClaim != "email" || ps[0].MaxAge.Hours() != 1 || !slices.Equal(ps[1].MFAACR, []string{"urn:partner:mfa"}) {
			t.Errorf("loadOIDCConfig = %+v; want both providers with their secrets", ps)
		}
	})
	for name, content := range map[string]string{
		"ErrLiteralSecret": `{"providers":[{"name":"corp","issuer":"https://op","client_id":"c","client_secret":"oops"}]}`,
		"ErrBothSecrets":   `{"providers":[{"name":"corp","issuer":"https://op","client_id":"c","client_secret_file":"corp.secret","client_secret_env":"PHIVAULT_TEST_OIDC_SECRET"}]}`,
		"ErrNoSecret":      `{"providers":[{"name":"corp","issuer":"https://op","client_id":"c"}]}`,
		"ErrEmptyEnv":      `{"providers":[{"name":"corp","issuer":"https://op","client_id":"c","client_secret_env":"PHIVAULT_TEST_UNSET"}]}`,
		"ErrMissingFile":   `{"providers":[{"name":"corp","issuer":"https://op","client_id":"c","client_secret_file":"nope"}]}`,
		"ErrJSON":          `{"providers":`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".json")
			writeFile(t, path, content)
			_, err := loadOIDCConfig(path)
			if err == nil {
				t.Fatalf("loadOIDCConfig(%s) succeeded; want an error", content)
			}
			if strings.Contains(err.Error(), "oops") || strings.Contains(err.Error(), "file-secret") || strings.Contains(err.Error(), "env-secret") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
}

func TestLoginConfig_passkeySite(t *testing.T) {
	tests := []struct {
		cfg     LoginConfig
		base    string
		rpID    string
		origins []string
	}{
		{LoginConfig{}, "https://vault.example.org/fhir", "vault.example.org", []string{"https://vault.example.org"}},
		{LoginConfig{}, "https://vault.example.org:8443/fhir", "vault.example.org", []string{"https://vault.example.org:8443"}},
		{LoginConfig{WebAuthnRPID: "example.org", WebAuthnOrigins: "https://a.example.org, https://b.example.org"}, "https://vault.example.org/fhir", "example.org", []string{"https://a.example.org", "https://b.example.org"}},
		{LoginConfig{WebAuthnRPID: "off"}, "https://vault.example.org/fhir", "", nil},
		{LoginConfig{}, "", "", nil},
	}
	for _, tt := range tests {
		rpID, origins, err := tt.cfg.passkeySite(tt.base)
		if err != nil || rpID != tt.rpID || !slices.Equal(origins, tt.origins) {
			t.Errorf("%+v.passkeySite(%q) = %q, %q, %v; want %q, %q", tt.cfg, tt.base, rpID, origins, err, tt.rpID, tt.origins)
		}
	}
	if _, _, err := (LoginConfig{}).passkeySite("ftp://x"); err == nil {
		t.Errorf("passkeySite(ftp://x) succeeded; want an error")
	}
}

// TestLogin_wiring opens a vault with passkeys and an OpenID provider and
// checks that their routes are mounted, answer, and are linked from the
// OAuth server.
func TestLogin_wiring(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	witness := filepath.Join(filepath.Dir(dir), "witness.log")
	if err := run(ctx, []string{"init", "-data", dir, "-audit-witness-file", witness}, io.Discard, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	oidcPath := filepath.Join(t.TempDir(), "oidc.json")
	t.Setenv("PHIVAULT_TEST_OIDC_SECRET", "s3cret")
	writeFile(t, oidcPath, `{"providers":[{"name":"corp","display_name":"Hospital SSO","issuer":"https://login.example.org","client_id":"phivault","client_secret_env":"PHIVAULT_TEST_OIDC_SECRET"}]}`)
	cfg := Config{Data: dataDir(dir), Passphrase: "correct horse battery staple", BaseURL: "https://vault.example.org/fhir",
		Login: LoginConfig{OIDCConfig: oidcPath}, Audit: AuditConfig{WitnessFile: witness}}
	a, err := openApp(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	mux := http.NewServeMux()
	for p, h := range a.routes {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if a.routes["/oauth/passkey/"] == nil || a.routes["/oauth/federated/"] == nil {
		a.Close()
		t.Fatalf("routes = %v; want /oauth/passkey/ and /oauth/federated/", a.routes)
	}
	for _, path := range []string{"/oauth/passkey/login?pending=unknown", "/oauth/federated/corp/start?pending=unknown"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d; want 400 from the mounted handler", path, resp.StatusCode)
		}
	}
	login, err := cfg.Login.resolve(cfg.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	if passkeys, providers := login.links(); !passkeys || len(providers) != 1 || providers[0].ID != "corp" || providers[0].Name != "Hospital SSO" {
		t.Errorf("links = %v, %+v; want passkeys and corp", passkeys, providers)
	}

	// Without a base URL a provider has no redirect URI: refused at start.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.BaseURL = ""
	b, err := openApp(ctx, cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		b.Close()
		t.Fatalf("openApp with a provider and no base URL succeeded; want an error")
	}
	if !strings.Contains(err.Error(), "base URL") {
		t.Errorf("openApp with a provider and no base URL: %v; want it to ask for the base URL", err)
	}
}
