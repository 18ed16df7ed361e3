package oauth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/oauth"
	"github.com/phivault/phivault/passkey"
	"golang.org/x/oauth2"
)

func TestCodeFlow_OK(t *testing.T) {
	e := newEnv(t)
	if got := e.read("not-a-token"); got != http.StatusUnauthorized {
		t.Fatalf("read without a session = %d, want 401", got)
	}
	tok := e.login("drhouse", "user/*.rs", "offline_access", "openid")
	if tok.TokenType != "Bearer" || tok.RefreshToken == "" {
		t.Fatalf("token type %q, refresh %v; want Bearer with a refresh token", tok.TokenType, tok.RefreshToken != "")
	}
	if got := tok.Extra("scope"); got != "user/*.rs offline_access" {
		t.Errorf("scope = %q, want %q (openid is never granted: no id_token)", got, "user/*.rs offline_access")
	}
	if got := tok.Extra("expires_in"); got != float64(900) {
		t.Errorf("expires_in = %v, want 900", got)
	}
	if got := tok.Extra("patient"); got != nil {
		t.Errorf("staff token carries patient %v", got)
	}
	if got := e.read(tok.AccessToken); got != http.StatusOK {
		t.Fatalf("read with the access token = %d, want 200", got)
	}
	if got := e.read(tok.RefreshToken); got != http.StatusUnauthorized {
		t.Errorf("read with the refresh token = %d, want 401", got)
	}
	login := e.audit.last(t, phivault.ActionLogin)
	issue := e.audit.last(t, phivault.ActionTokenIssue)
	if login.Actor != e.staff.ID || login.Outcome != "ok" || login.Client != e.public.ID {
		t.Errorf("login audit = %+v, want actor %s ok", login, e.staff.ID)
	}
	if issue.Actor != e.staff.ID || issue.Outcome != "ok" {
		t.Errorf("token audit = %+v, want actor %s ok", issue, e.staff.ID)
	}
}

func TestCodeFlow_patient(t *testing.T) {
	e := newEnv(t)
	tok := e.login("pat", "patient/*.rs", "user/*.rs", "launch/patient")
	if got := tok.Extra("patient"); got != e.patientID {
		t.Errorf("patient = %v, want %s", got, e.patientID)
	}
	if got := tok.Extra("scope"); got != "patient/*.rs launch/patient" {
		t.Errorf("scope = %q, want only patient scopes", got)
	}
	if got := e.read(tok.AccessToken); got != http.StatusOK {
		t.Fatalf("read = %d, want 200", got)
	}
}

func TestCodeFlow_wrongVerifier(t *testing.T) {
	e := newEnv(t)
	conf := e.config("user/*.rs")
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(conf, verifier, "drhouse")
	if _, err := conf.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("Exchange with another verifier: %v, want invalid_grant", err)
	}
	// The failed attempt spent the code.
	if _, err := conf.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier)); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("Exchange after a failed attempt: %v, want invalid_grant", err)
	}
	if got := e.audit.last(t, phivault.ActionTokenIssue); got.Outcome != phivault.EUNAUTHORIZED {
		t.Errorf("audit outcome %q, want %q", got.Outcome, phivault.EUNAUTHORIZED)
	}
}

func TestCodeFlow_reusedCode(t *testing.T) {
	e := newEnv(t)
	conf := e.config("user/*.rs")
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(conf, verifier, "drhouse")
	tok, err := conf.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.read(tok.AccessToken); got != http.StatusOK {
		t.Fatalf("read = %d, want 200", got)
	}
	if _, err := conf.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier)); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("second Exchange: %v, want invalid_grant", err)
	}
	if got := e.read(tok.AccessToken); got != http.StatusUnauthorized {
		t.Errorf("read with a token from a reused code = %d, want 401", got)
	}
	if got := e.audit.last(t, phivault.ActionTokenRevoke); got.Actor != e.staff.ID {
		t.Errorf("revoke audit actor %q, want %s", got.Actor, e.staff.ID)
	}
}

func TestCodeFlow_expiredCode(t *testing.T) {
	e := newEnv(t)
	conf := e.config("user/*.rs")
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(conf, verifier, "drhouse")
	e.clock.Advance(61e9)
	if _, err := conf.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier)); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("Exchange after 61 s: %v, want invalid_grant", err)
	}
}

func TestCodeFlow_wrongRedirectURI(t *testing.T) {
	e := newEnv(t)
	t.Run("authorize", func(t *testing.T) {
		conf := e.config("user/*.rs")
		conf.RedirectURL = "https://evil.example/callback"
		res, err := e.browser().Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
			t.Fatalf("authorize with an unregistered redirect_uri = %d Location %q, want 400 and no redirect", res.StatusCode, res.Header.Get("Location"))
		}
	})
	t.Run("token", func(t *testing.T) {
		conf := e.config("user/*.rs")
		verifier := oauth2.GenerateVerifier()
		q := e.authorize(conf, verifier, "drhouse")
		status, m := e.post("/oauth/token", url.Values{
			"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "client_id": {e.public.ID},
			"redirect_uri": {redirectURI + "/other"}, "code_verifier": {verifier},
		})
		wantError(t, status, m, 400, "invalid_grant")
	})
}

func TestAuthorize_errors(t *testing.T) {
	e := newEnv(t)
	verifier := oauth2.GenerateVerifier()
	tests := []struct {
		name     string
		edit     func(url.Values)
		wantCode string // "" for a plain page (no redirect)
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, ""},
		{"backend client", func(q url.Values) { q.Set("client_id", e.backend.ID) }, ""},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", verifier) }, "invalid_request"},
		{"no PKCE", func(q url.Values) { q.Del("code_challenge_method"); q.Del("code_challenge") }, "invalid_request"},
		{"wrong aud", func(q url.Values) { q.Set("aud", "https://other.example/fhir") }, "invalid_request"},
		{"no state", func(q url.Values) { q.Del("state") }, "invalid_request"},
		{"token response", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"bad scope", func(q url.Values) { q.Set("scope", "patient/Nonsense.rs") }, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse(e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", e.base)))
			q := u.Query()
			tt.edit(q)
			u.RawQuery = q.Encode()
			res, err := e.browser().Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			loc := res.Header.Get("Location")
			if tt.wantCode == "" {
				if res.StatusCode != http.StatusBadRequest || loc != "" {
					t.Fatalf("= %d Location %q, want a 400 page", res.StatusCode, loc)
				}
				return
			}
			lu, err := url.Parse(loc)
			if err != nil || res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, redirectURI) || lu.Query().Get("error") != tt.wantCode {
				t.Fatalf("= %d Location %q, want a redirect with error=%s", res.StatusCode, loc, tt.wantCode)
			}
			if lu.Query().Get("code") != "" {
				t.Fatal("error redirect carries a code")
			}
		})
	}
}

func TestLogin_headers(t *testing.T) {
	e := newEnv(t)
	res, err := e.browser().Get(e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	var csrf *http.Cookie
	for _, c := range res.Cookies() {
		if strings.HasPrefix(c.Name, "__Host-phivault-csrf-") {
			csrf = c
		}
	}
	if csrf == nil || !csrf.Secure || !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode {
		t.Errorf("CSRF cookie %+v, want __Host-, Secure, HttpOnly, SameSite=Strict", csrf)
	}
}

func TestLogin_links(t *testing.T) {
	e := newEnv(t, func(o *oauth.Options) {
		o.Passkeys = true
		o.Federated = []oauth.Provider{{ID: "corp", Name: "Corp SSO"}}
	})
	res, err := e.browser().Get(e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	p := pendingRe.FindSubmatch(body)
	if p == nil {
		t.Fatal("no pending id")
	}
	for _, want := range []string{`href="passkey/login?pending=` + string(p[1]), `href="federated/corp/start?pending=` + string(p[1]), "Corp SSO"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	if !e.srv.Pending(string(p[1])) || e.srv.Pending("nope") {
		t.Error("Pending does not tell the live id from an unknown one")
	}
	e.clock.Advance(oauth.DefaultPendingTTL)
	if e.srv.Pending(string(p[1])) {
		t.Error("Pending is true after DefaultPendingTTL")
	}
}

func TestLogin_csrf(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	pending, csrf := e.loginPage(b, e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
	// Another browser (no cookie) posting the same form.
	if res := e.submit(e.browser(), pending, csrf, "drhouse", testPassword, e.totp()); res.StatusCode != http.StatusForbidden {
		t.Errorf("login without the CSRF cookie = %d, want 403", res.StatusCode)
	}
	if res := e.submit(b, pending, "wrong", "drhouse", testPassword, e.totp()); res.StatusCode != http.StatusForbidden {
		t.Errorf("login with a wrong CSRF token = %d, want 403", res.StatusCode)
	}
	// A cross-site form post is refused before anything else.
	req, _ := http.NewRequest("POST", e.ts.URL+"/oauth/login", strings.NewReader(url.Values{"pending": {pending}, "csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site login post = %d, want 403", res.StatusCode)
	}
}

func TestLogin_refused(t *testing.T) {
	e := newEnv(t)
	e.setStatus(e.patient.ID, phivault.AccountSuspended)
	tests := []struct {
		name      string
		username  string
		password  string
		wantActor string
	}{
		{"wrong password", "drhouse", "wrong-password-123", e.staff.ID},
		{"unknown username", "nobody-here", testPassword, ""},
		{"no second factor", "nomfa", testPassword, e.noMFA.ID},
		{"suspended", "pat", testPassword, e.patient.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			pending, csrf := e.loginPage(b, e.config("user/*.rs", "patient/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
			res := e.submit(b, pending, csrf, tt.username, tt.password, e.totp())
			if res.StatusCode == http.StatusSeeOther || res.Header.Get("Location") != "" {
				t.Fatalf("login = %d Location %q, want no redirect", res.StatusCode, res.Header.Get("Location"))
			}
			got := e.audit.last(t, phivault.ActionLogin)
			if got.Actor != tt.wantActor || got.Outcome == "ok" {
				t.Errorf("audit actor %q outcome %q, want actor %q and a failure", got.Actor, got.Outcome, tt.wantActor)
			}
		})
	}
	for _, en := range e.audit.entries() {
		if strings.Contains(en.Actor+en.Decision+en.Client, "nobody-here") || strings.Contains(en.Decision, testPassword) {
			t.Errorf("audit entry holds the submitted username or password: %+v", en)
		}
	}
}

func TestLogin_tooManyFailures(t *testing.T) {
	e := newEnv(t)
	e.auth.LockAfter = 100 // test the pending limit, not the account lock
	e.auth.BackoffAfter = 100
	b := e.browser()
	pending, csrf := e.loginPage(b, e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
	var res *http.Response
	for range 5 {
		res = e.submit(b, pending, csrf, "drhouse", "wrong-password-123", e.totp())
	}
	if loc := res.Header.Get("Location"); !strings.Contains(loc, "error=access_denied") {
		t.Fatalf("fifth failure: Location %q, want access_denied", loc)
	}
	if e.srv.Pending(pending) {
		t.Error("the pending authorization survives five failures")
	}
}

func TestToken_auditDown(t *testing.T) {
	e := newEnv(t)
	conf := e.config("user/*.rs")
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(conf, verifier, "drhouse")
	e.audit.setFail(true)
	status, m := e.post("/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "client_id": {e.public.ID},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier},
	})
	wantError(t, status, m, 503, "temporarily_unavailable")
	if e.srv.Sessions().Active() != 0 {
		t.Errorf("%d sessions left after a refused issue, want 0", e.srv.Sessions().Active())
	}
}

func TestToken_errors(t *testing.T) {
	e := newEnv(t)
	status, m := e.post("/oauth/token", url.Values{"grant_type": {"password"}})
	wantError(t, status, m, 400, "unsupported_grant_type")
	status, m = e.post("/oauth/token", url.Values{})
	wantError(t, status, m, 400, "invalid_request")
	status, m = e.post("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "client_id": {e.public.ID}, "code_verifier": {oauth2.GenerateVerifier()}})
	wantError(t, status, m, 400, "invalid_grant")
	res, err := e.ts.Client().Post(e.ts.URL+"/oauth/token", "application/json", strings.NewReader(`{"grant_type":"client_credentials"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("JSON body = %d, want 400", res.StatusCode)
	}
}

// isOAuthError reports whether err is an oauth2 RetrieveError with code.
func isOAuthError(err error, code string) bool {
	re, ok := err.(*oauth2.RetrieveError)
	return ok && re.ErrorCode == code
}

// TestLoginRefused_requestID runs a real passkey handler wired to the
// server as cmd/phivault wires it, behind a layer that puts a request id in
// the context, and checks a refused passkey login's audit entry.
func TestLoginRefused_requestID(t *testing.T) {
	e := newEnv(t)
	pk, err := passkey.NewHandler(passkey.Options{
		Accounts:     e.db,
		RPID:         "vault.example.org",
		Origins:      []string{"https://vault.example.org"},
		Authenticate: e.srv.Sessions().Authenticate,
		Complete:     e.srv.Complete,
		ValidPending: e.srv.Pending,
		Failed:       e.srv.LoginRefused("passkey"),
		Now:          e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := phivault.WithRequestInfo(r.Context(), phivault.RequestInfo{ID: "req-pk-1"})
		pk.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(ts.Close)
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/oauth/passkey/login/finish", strings.NewReader(url.Values{"ceremony": {"no-such-ceremony"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Request-Id", "from-the-client") // the context's id wins
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("finish with an unknown ceremony = %d, want 400", res.StatusCode)
	}
	got := e.audit.last(t, phivault.ActionLogin)
	if got.RequestID != "req-pk-1" || got.Outcome != phivault.EUNAUTHORIZED || got.Decision != "deny: passkey: login: unknown or expired ceremony" {
		t.Errorf("audit entry request id %q outcome %q decision %q, want req-pk-1, %s and the passkey reason", got.RequestID, got.Outcome, got.Decision, phivault.EUNAUTHORIZED)
	}
}

// TestCodeFlow_pathRedirect: a client registered with a path (the
// console's) may be sent back to that path on this server's own origin,
// and nowhere else.
func TestCodeFlow_pathRedirect(t *testing.T) {
	e := newEnv(t)
	c := &phivault.Client{ID: "same-origin", Name: "Console", Kind: phivault.ClientPublic, RedirectURIs: []string{"/console/callback"},
		Scopes: []string{"user/*.rs"}, Status: phivault.AccountActive, Created: t0}
	if err := e.db.CreateClient(e.ctx(), c); err != nil {
		t.Fatal(err)
	}
	origin := strings.TrimSuffix(e.base, "/fhir")
	for _, tt := range []struct {
		redirect string
		want     int
	}{
		{origin + "/console/callback", http.StatusOK},
		{"/console/callback", http.StatusBadRequest}, // the path itself is not a redirect URI
		{"https://evil.example/console/callback", http.StatusBadRequest},
		{origin + "/console/callback/x", http.StatusBadRequest},
		{origin + "//console/callback", http.StatusBadRequest},
		{strings.Replace(origin, "https://", "http://", 1) + "/console/callback", http.StatusBadRequest},
	} {
		conf := e.config("user/*.rs")
		conf.ClientID, conf.RedirectURL = c.ID, tt.redirect
		res, err := e.browser().Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.want || res.Header.Get("Location") != "" {
			t.Errorf("authorize to %q = %d Location %q, want %d", tt.redirect, res.StatusCode, res.Header.Get("Location"), tt.want)
		}
	}
}
