package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/federation"
)

func TestLoadSignInKeys(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		d := dataDir(t.TempDir())
		k1, err := loadSignInKeys(d, "")
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(d.signInKeyFile()); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("no signin.key with mode 0600 (%v)", err)
		}
		k2, err := loadSignInKeys(d, d.signInKeyFile())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k1.pending, k2.pending) || !bytes.Equal(k1.ceremony, k2.ceremony) || !bytes.Equal(k1.flow, k2.flow) {
			t.Error("the same key file gave other keys")
		}
		if len(k1.pending) != 32 || bytes.Equal(k1.pending, k1.ceremony) || bytes.Equal(k1.pending, k1.flow) || bytes.Equal(k1.ceremony, k1.flow) {
			t.Error("the three keys are not distinct 32-byte keys")
		}
		other, err := loadSignInKeys(dataDir(t.TempDir()), "")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(k1.pending, other.pending) {
			t.Error("two data folders made the same key")
		}
	})
	t.Run("ErrMissingFile", func(t *testing.T) {
		d := dataDir(t.TempDir())
		path := filepath.Join(t.TempDir(), "shared.key")
		if _, err := loadSignInKeys(d, path); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("loadSignInKeys(missing -signin-key-file) = %v, want an error", err)
		}
		if _, err := os.Stat(path); err == nil {
			t.Error("a missing -signin-key-file was made")
		}
	})
	for name, content := range map[string]string{
		"ErrShort":  strings.Repeat("ab", 31) + "\n",
		"ErrNotHex": strings.Repeat("zz", 32) + "\n",
		"ErrEmpty":  "",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signin.key")
			writeFile(t, path, content)
			if _, err := loadSignInKeys(dataDir(t.TempDir()), path); err == nil {
				t.Errorf("loadSignInKeys(%q) succeeded, want an error", content)
			}
		})
	}
}

// TestSignInKey_sharedBetweenNodes opens two vaults, as two nodes behind
// one load balancer, and starts each sign-in method on the first and
// finishes it on the second. With their own sign-in keys the second opens
// nothing the first sealed; given the first's key file with
// -signin-key-file, it opens the pending authorization, the passkey
// ceremony and the federated flow.
func TestSignInKey_sharedBetweenNodes(t *testing.T) {
	op := fakeProvider(t)
	oidcPath := filepath.Join(t.TempDir(), "oidc.json")
	t.Setenv("PHIVAULT_TEST_OIDC_SECRET", "s3cret")
	writeFile(t, oidcPath, `{"providers":[{"name":"corp","issuer":"`+op.URL+`","client_id":"phivault","client_secret_env":"PHIVAULT_TEST_OIDC_SECRET"}]}`)
	d1, _ := initTestData(t)
	d2, _ := initTestData(t)
	for _, d := range []dataDir{d1, d2} {
		if fi, err := os.Stat(d.signInKeyFile()); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("init made no signin.key with mode 0600: %v", err)
		}
	}
	open := func(d dataDir, keyFile string) *node {
		t.Helper()
		cfg := Config{Data: d, Passphrase: "correct horse battery staple", BaseURL: "https://vault.example.org/fhir",
			Login: LoginConfig{OIDCConfig: oidcPath}, SignInKeyFile: keyFile, Audit: AuditConfig{WitnessFile: testWitness(d)}}
		a, err := openApp(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("openApp: %v", err)
		}
		mux := http.NewServeMux()
		for p, h := range a.routes {
			mux.Handle(p, h)
		}
		srv := httptest.NewServer(mux)
		var once sync.Once
		closeNode := func() { once.Do(func() { srv.Close(); a.Close() }) }
		t.Cleanup(closeNode)
		c := &phivault.Client{ID: "app", Name: "App", Kind: phivault.ClientPublic, RedirectURIs: []string{"https://app.example/cb"},
			Scopes: []string{"user/*.rs"}, Status: phivault.AccountActive, Created: time.Now()}
		if err := a.db.CreateClient(context.Background(), c); err != nil && phivault.ErrorCode(err) != phivault.ECONFLICT { // opened before
			t.Fatal(err)
		}
		return &node{t: t, app: a, url: srv.URL, close: closeNode}
	}

	first := open(d1, "")
	pending := first.pending()
	ceremony := first.ceremony(pending)
	flow, state := first.flow(pending)

	alone := open(d2, "")
	if alone.app.signIn.Pending(pending) {
		t.Error("a node with its own key opened another node's pending authorization")
	}
	if body := alone.finishPasskey(ceremony); !strings.Contains(body, "ceremony has expired") {
		t.Errorf("a node with its own key answered another node's passkey ceremony with %q, want the unknown-ceremony page", body)
	}
	if body := alone.callback(flow, state); !strings.Contains(body, "was started in another browser") {
		t.Errorf("a node with its own key answered another node's federated flow with %q, want the unknown-flow page", body)
	}

	alone.close() // one server per data folder at a time
	shared := open(d2, d1.signInKeyFile())
	if !shared.app.signIn.Pending(pending) {
		t.Error("a node with the same key file did not open the other node's pending authorization")
	}
	if body := shared.finishPasskey(ceremony); !strings.Contains(body, "passkey response could not be read") {
		t.Errorf("a node with the same key file answered the other node's passkey ceremony with %q, want it opened (and the garbage assertion refused)", body)
	}
	if body := shared.callback(flow, state); !strings.Contains(body, "did not accept the sign-in") {
		t.Errorf("a node with the same key file answered the other node's federated flow with %q, want it opened (and the code refused by the provider)", body)
	}
}

// node is a vault serving its sign-in routes.
type node struct {
	t     *testing.T
	app   *app
	url   string
	close func()
}

var pendingField = regexp.MustCompile(`name="pending" value="([^"]+)"`)

// pending starts an authorization and returns its sealed pending token.
func (n *node) pending() string {
	n.t.Helper()
	q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {"https://app.example/cb"}, "state": {"st"},
		"scope": {"user/*.rs"}, "aud": {"https://vault.example.org/fhir"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	res, err := http.Get(n.url + "/oauth/authorize?" + q.Encode())
	if err != nil {
		n.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := pendingField.FindSubmatch(body)
	if res.StatusCode != http.StatusOK || m == nil {
		n.t.Fatalf("authorize = %d, want the login page with a pending token:\n%s", res.StatusCode, body)
	}
	return string(m[1])
}

// ceremony begins a passkey login for pending and returns its token.
func (n *node) ceremony(pending string) string {
	n.t.Helper()
	body, _ := json.Marshal(map[string]string{"pending": pending})
	res, err := http.Post(n.url+"/oauth/passkey/login/begin", "application/json", bytes.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct{ Ceremony string }
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK || out.Ceremony == "" {
		n.t.Fatalf("passkey login/begin = %d, %v; want a ceremony", res.StatusCode, err)
	}
	return out.Ceremony
}

// finishPasskey posts a garbage assertion for ceremony and returns the page.
func (n *node) finishPasskey(ceremony string) string {
	n.t.Helper()
	res, err := http.PostForm(n.url+"/oauth/passkey/login/finish", url.Values{"ceremony": {ceremony}, "credential": {"{}"}})
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

// flow starts a federated login for pending and returns its cookie and
// the state sent to the provider.
func (n *node) flow(pending string) (*http.Cookie, string) {
	n.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(n.url + "/oauth/federated/corp/start?pending=" + url.QueryEscape(pending))
	if err != nil {
		n.t.Fatal(err)
	}
	res.Body.Close()
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusFound || err != nil {
		n.t.Fatalf("federated start = %d Location %q, want a redirect to the provider", res.StatusCode, res.Header.Get("Location"))
	}
	for _, c := range res.Cookies() {
		if c.Name == federation.CookieName {
			return c, loc.Query().Get("state")
		}
	}
	n.t.Fatalf("federated start set no %s cookie", federation.CookieName)
	return nil, ""
}

// callback comes back from the provider with flow's cookie and state and
// returns the page.
func (n *node) callback(flow *http.Cookie, state string) string {
	n.t.Helper()
	req, _ := http.NewRequest("GET", n.url+"/oauth/federated/corp/callback?code=c0de&state="+url.QueryEscape(state), nil)
	req.AddCookie(flow)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

// fakeProvider serves an OpenID provider's discovery document and a token
// endpoint that refuses every code.
func fakeProvider(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":%q,"token_endpoint":%q,"jwks_uri":%q,"id_token_signing_alg_values_supported":["RS256"]}`,
			srv.URL, srv.URL+"/authorize", srv.URL+"/token", srv.URL+"/keys")
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_grant"}`))
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}
