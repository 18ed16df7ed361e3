package e2e_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
)

// person is someone who signs in with a password and a TOTP secret.
type person struct {
	username, password, totpSecret string
}

// signIn runs the SMART authorization code flow with PKCE against v as a
// browser and an app would: it opens the authorize URL, submits the login
// form with p's password and a TOTP code, and exchanges the code. The TOTP
// code is that of the next 30-second step (the server allows one step of
// skew), so that a code used just before, e.g. to confirm enrollment, is
// not reused.
func signIn(t *testing.T, v *vault, clientID, redirect, scope string, p person) *oauth2.Token {
	t.Helper()
	origin := strings.TrimSuffix(v.url, "/fhir")
	conf := &oauth2.Config{
		ClientID:    clientID,
		Endpoint:    oauth2.Endpoint{AuthURL: origin + "/oauth/authorize", TokenURL: origin + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirect,
		Scopes:      strings.Fields(scope),
	}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Transport: v.client.Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := browser.Get(conf.AuthCodeURL("e2e-state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", v.url)))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	pending := regexp.MustCompile(`name="pending" value="([^"]+)"`).FindSubmatch(page)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if res.StatusCode != 200 || pending == nil || csrf == nil {
		t.Fatalf("authorize = %d\n%s", res.StatusCode, page)
	}
	code, err := totp.GenerateCode(p.totpSecret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	res, err = browser.PostForm(origin+"/oauth/login", url.Values{
		"pending": {string(pending[1])}, "csrf": {string(csrf[1])},
		"username": {p.username}, "password": {p.password}, "totp": {code},
	})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != "e2e-state" {
		t.Fatalf("login as %s = %d Location %q", p.username, res.StatusCode, res.Header.Get("Location"))
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, v.client)
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange for %s: %v", p.username, err)
	}
	return tok
}

// readWith sends GET path (relative to the FHIR base) with a bearer token
// and returns the status and body.
func readWith(t *testing.T, v *vault, token, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", v.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/fhir+json")
	res, err := v.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}
