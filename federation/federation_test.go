package federation_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/federation"
	"github.com/phivault/phivault/sqlite"
)

const (
	clientID     = "phivault"
	clientSecret = "op-client-secret"
	password     = "verysecure"
)

// fedEnv is a relying party (the federation handler on an HTTPS test
// server with a real SQLite database) and a real OP, with a fake OAuth
// server behind Complete and ValidPending.
type fedEnv struct {
	t    *testing.T
	db   *sqlite.DB
	op   *testOP
	rp   *httptest.Server
	h    *federation.Handler
	mu   sync.Mutex
	pend map[string]bool
	done []*phivault.Authentication
	fail []string
}

// config adjusts the environment before the handler is built.
type config struct {
	provider func(p *federation.Provider)
	options  func(o *federation.Options)
}

func newFedEnv(t *testing.T, c config) *fedEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "phivault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &fedEnv{t: t, db: db, pend: map[string]bool{"p1": true}}

	rpMux := http.NewServeMux()
	e.rp = httptest.NewTLSServer(rpMux)
	t.Cleanup(e.rp.Close)
	e.op = startOP(t, clientID, clientSecret, e.rp.URL+"/oauth/federated/corp/callback", opUsers{
		"u-alice": {ID: "u-alice", Username: "alice@op", Password: password, Email: "alice@example.org", EmailVerified: true},
		"u-bob":   {ID: "u-bob", Username: "bob@op", Password: password, Email: "bob@example.org", EmailVerified: true},
		"u-carol": {ID: "u-carol", Username: "carol@op", Password: password, Email: "carol@example.org", EmailVerified: false},
		"u-dave":  {ID: "u-dave", Username: "dave@op", Password: password, Email: "dave@example.org", EmailVerified: true},
	})
	issuer := e.op.srv.URL
	for _, a := range []*phivault.Account{
		{ID: "acc-alice", Username: "alice", Status: phivault.AccountActive, FederatedSubject: issuer + " u-alice"},
		{ID: "acc-bob", Username: "bob@example.org", Status: phivault.AccountActive},
		{ID: "acc-carol", Username: "carol@example.org", Status: phivault.AccountActive},
		{ID: "acc-dave", Username: "dave", Status: phivault.AccountSuspended, FederatedSubject: issuer + " u-dave"},
	} {
		if err := db.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	p := federation.Provider{Name: "corp", DisplayName: "Corp SSO", Issuer: issuer, ClientID: clientID, ClientSecret: clientSecret}
	if c.provider != nil {
		c.provider(&p)
	}
	o := federation.Options{
		Providers: []federation.Provider{p},
		Accounts:  db,
		BaseURL:   e.rp.URL,
		Complete: func(w http.ResponseWriter, r *http.Request, pending string, a *phivault.Authentication) {
			e.mu.Lock()
			e.done = append(e.done, a)
			delete(e.pend, pending)
			e.mu.Unlock()
			io.WriteString(w, "completed "+a.Account.ID)
		},
		ValidPending: func(p string) bool { e.mu.Lock(); defer e.mu.Unlock(); return e.pend[p] },
		Failed: func(r *http.Request, account, reason string) {
			e.mu.Lock()
			e.fail = append(e.fail, reason)
			e.mu.Unlock()
		},
	}
	if c.options != nil {
		c.options(&o)
	}
	e.h, err = federation.NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	rpMux.Handle("/oauth/federated/", e.h)
	return e
}

// browser returns a client with its own cookie jar that trusts the test
// servers and stops before following a redirect to the relying party's
// callback when stopAtCallback is set.
func (e *fedEnv) browser(stopAtCallback bool) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := e.rp.Client()
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if stopAtCallback && strings.HasSuffix(req.URL.Path, "/callback") && strings.HasPrefix(req.URL.String(), e.rp.URL) {
			return http.ErrUseLastResponse
		}
		if len(via) > 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return c
}

var loginFormID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signIn starts a login for pending and submits the OP's login form as
// username. It returns the last response's status and body.
func (e *fedEnv) signIn(b *http.Client, pending, username string) (int, string) {
	e.t.Helper()
	status, body := get(e.t, b, e.rp.URL+"/oauth/federated/corp/start?pending="+pending)
	m := loginFormID.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		e.t.Fatalf("start: %d %s; want the OP's login page", status, body)
	}
	resp, err := b.PostForm(e.op.srv.URL+"/login/username", url.Values{"id": {m[1]}, "username": {username}, "password": {password}})
	if err != nil {
		e.t.Fatal(err)
	}
	return read(e.t, resp)
}

// callbackURL signs in but stops at the redirect to the relying party's
// callback, and returns that URL.
func (e *fedEnv) callbackURL(b *http.Client, pending, username string) *url.URL {
	e.t.Helper()
	status, body := get(e.t, b, e.rp.URL+"/oauth/federated/corp/start?pending="+pending)
	m := loginFormID.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		e.t.Fatalf("start: %d %s; want the OP's login page", status, body)
	}
	resp, err := b.PostForm(e.op.srv.URL+"/login/username", url.Values{"id": {m[1]}, "username": {username}, "password": {password}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	u, err := resp.Location()
	if err != nil || !strings.HasSuffix(u.Path, "/callback") {
		e.t.Fatalf("sign-in ended at %d %v; want a redirect to the callback", resp.StatusCode, u)
	}
	return u
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return read(t, resp)
}

func read(t *testing.T, resp *http.Response) (int, string) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (e *fedEnv) completions() []*phivault.Authentication {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.done)
}

func (e *fedEnv) wantRefused(status int, body string, wantStatus int, wantText string) {
	e.t.Helper()
	if status != wantStatus || !strings.Contains(body, wantText) {
		e.t.Errorf("callback = %d %q; want %d saying %q", status, body, wantStatus, wantText)
	}
	if got := e.completions(); len(got) != 0 {
		e.t.Errorf("Complete called %d times; want 0", len(got))
	}
}

func TestFederation_Login(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		e := newFedEnv(t, config{})
		before := time.Now()
		status, body := e.signIn(e.browser(false), "p1", "alice@op")
		if status != http.StatusOK || body != "completed acc-alice" {
			t.Fatalf("sign-in = %d %q; want Complete for acc-alice", status, body)
		}
		got := e.completions()
		if len(got) != 1 || got[0].Account.ID != "acc-alice" {
			t.Fatalf("Complete calls = %+v; want one for acc-alice", got)
		}
		if want := []string{"fed", "pwd", "otp"}; !slices.Equal(got[0].Methods, want) {
			t.Errorf("Methods = %v; want %v", got[0].Methods, want)
		}
		if at := got[0].Time; at.Before(before.Add(-2*time.Second)) || at.After(time.Now()) {
			t.Errorf("Time = %v; want the OP's auth_time, just now", at)
		}
	})
	t.Run("OKByACR", func(t *testing.T) {
		e := newFedEnv(t, config{provider: func(p *federation.Provider) { p.MFAACR = []string{"urn:example:loa:mfa"} }})
		e.op.set([]string{"pwd"}, "urn:example:loa:mfa", "")
		if status, body := e.signIn(e.browser(false), "p1", "alice@op"); status != http.StatusOK {
			t.Fatalf("sign-in = %d %q; want Complete", status, body)
		}
		if got := e.completions(); len(got) != 1 || !slices.Equal(got[0].Methods, []string{"fed", "pwd", "mfa"}) {
			t.Fatalf("Complete calls = %+v; want one with methods fed pwd mfa", got)
		}
	})
	t.Run("OKFirstLoginLinks", func(t *testing.T) {
		e := newFedEnv(t, config{provider: func(p *federation.Provider) { p.LinkClaim = federation.LinkEmail }})
		if status, body := e.signIn(e.browser(false), "p1", "bob@op"); status != http.StatusOK || body != "completed acc-bob" {
			t.Fatalf("sign-in = %d %q; want Complete for acc-bob", status, body)
		}
		a, err := e.db.AccountByID(context.Background(), "acc-bob")
		if err != nil || a.FederatedSubject != e.op.srv.URL+" u-bob" {
			t.Fatalf("acc-bob FederatedSubject = %q, %v; want the OP's issuer and u-bob", a.FederatedSubject, err)
		}
	})
	t.Run("ErrUnknownSubject", func(t *testing.T) {
		e := newFedEnv(t, config{})
		status, body := e.signIn(e.browser(false), "p1", "bob@op")
		e.wantRefused(status, body, http.StatusForbidden, "No account here is linked")
	})
	t.Run("ErrLinkEmailNotVerified", func(t *testing.T) {
		e := newFedEnv(t, config{provider: func(p *federation.Provider) { p.LinkClaim = federation.LinkEmail }})
		status, body := e.signIn(e.browser(false), "p1", "carol@op")
		e.wantRefused(status, body, http.StatusForbidden, "No account here is linked")
		if a, _ := e.db.AccountByID(context.Background(), "acc-carol"); a.FederatedSubject != "" {
			t.Errorf("acc-carol linked to %q; want not linked", a.FederatedSubject)
		}
	})
	t.Run("ErrNoMFA", func(t *testing.T) {
		e := newFedEnv(t, config{})
		e.op.set([]string{"pwd"}, "", "")
		status, body := e.signIn(e.browser(false), "p1", "alice@op")
		e.wantRefused(status, body, http.StatusForbidden, "did not report multi-factor")
	})
	t.Run("ErrWrongACR", func(t *testing.T) {
		e := newFedEnv(t, config{provider: func(p *federation.Provider) { p.MFAACR = []string{"urn:example:loa:mfa"} }})
		e.op.set([]string{"pwd"}, "urn:example:loa:1fa", "")
		status, body := e.signIn(e.browser(false), "p1", "alice@op")
		e.wantRefused(status, body, http.StatusForbidden, "did not report multi-factor")
	})
	t.Run("ErrWrongNonce", func(t *testing.T) {
		e := newFedEnv(t, config{})
		e.op.set([]string{"pwd", "otp"}, "", "a-nonce-from-another-login")
		status, body := e.signIn(e.browser(false), "p1", "alice@op")
		e.wantRefused(status, body, http.StatusUnauthorized, "could not be verified")
	})
	t.Run("ErrWrongState", func(t *testing.T) {
		e := newFedEnv(t, config{})
		b := e.browser(true)
		u := e.callbackURL(b, "p1", "alice@op")
		q := u.Query()
		q.Set("state", "forged"+q.Get("state"))
		u.RawQuery = q.Encode()
		status, body := get(t, b, u.String())
		e.wantRefused(status, body, http.StatusBadRequest, "start again")
	})
	t.Run("ErrOtherBrowser", func(t *testing.T) {
		e := newFedEnv(t, config{})
		u := e.callbackURL(e.browser(true), "p1", "alice@op")
		status, body := get(t, e.browser(false), u.String()) // no cookie
		e.wantRefused(status, body, http.StatusBadRequest, "another browser")
	})
	t.Run("ErrReplay", func(t *testing.T) {
		e := newFedEnv(t, config{})
		b := e.browser(true)
		u := e.callbackURL(b, "p1", "alice@op")
		if status, body := get(t, b, u.String()); status != http.StatusOK {
			t.Fatalf("callback = %d %q; want Complete", status, body)
		}
		e.mu.Lock()
		e.pend["p1"] = true
		e.mu.Unlock()
		if status, _ := get(t, b, u.String()); status != http.StatusBadRequest {
			t.Errorf("replayed callback = %d; want 400", status)
		}
		if got := e.completions(); len(got) != 1 {
			t.Errorf("Complete calls = %d; want 1", len(got))
		}
	})
	t.Run("ErrExpiredIDToken", func(t *testing.T) {
		// The OP issues ID tokens valid for an hour; the relying party's
		// clock is 90 minutes ahead (its flows last longer here, so only
		// the token's expiry can refuse).
		e := newFedEnv(t, config{options: func(o *federation.Options) {
			o.Now = func() time.Time { return time.Now().Add(90 * time.Minute) }
			o.StateTTL = 3 * time.Hour
		}})
		status, body := e.signIn(e.browser(false), "p1", "alice@op")
		e.wantRefused(status, body, http.StatusUnauthorized, "has expired")
	})
	t.Run("ErrSuspended", func(t *testing.T) {
		e := newFedEnv(t, config{})
		status, body := e.signIn(e.browser(false), "p1", "dave@op")
		e.wantRefused(status, body, http.StatusForbidden, "not active")
	})
	t.Run("ErrReplayedCookie", func(t *testing.T) {
		// Someone who copied the browser's cookie and the callback URL
		// replays them after the person signed in: the provider redeems
		// its code once.
		e := newFedEnv(t, config{})
		b := e.browser(true)
		u := e.callbackURL(b, "p1", "alice@op")
		rp, _ := url.Parse(e.rp.URL)
		copied := b.Jar.Cookies(rp)
		if status, body := get(t, b, u.String()); status != http.StatusOK {
			t.Fatalf("callback = %d %q; want Complete", status, body)
		}
		e.mu.Lock()
		e.pend["p1"] = true
		e.mu.Unlock()
		other := e.browser(true)
		other.Jar.SetCookies(rp, copied)
		if status, body := get(t, other, u.String()); status != http.StatusBadRequest || !strings.Contains(body, "did not accept") {
			t.Errorf("replayed callback with the copied cookie = %d %q; want 400 from the code exchange", status, body)
		}
		if got := e.completions(); len(got) != 1 {
			t.Errorf("Complete calls = %d; want 1", len(got))
		}
	})
	t.Run("ErrForgedCookie", func(t *testing.T) {
		e := newFedEnv(t, config{})
		b := e.browser(true)
		u := e.callbackURL(b, "p1", "alice@op")
		rp, _ := url.Parse(e.rp.URL)
		c := b.Jar.Cookies(rp)[0]
		v := []byte(c.Value)
		v[len(v)/2] ^= 1
		c.Value = string(v)
		b.Jar.SetCookies(rp, []*http.Cookie{c})
		status, body := get(t, b, u.String())
		e.wantRefused(status, body, http.StatusBadRequest, "another browser")
	})
	t.Run("ErrExpiredFlow", func(t *testing.T) {
		var mu sync.Mutex
		ahead := time.Duration(0)
		e := newFedEnv(t, config{options: func(o *federation.Options) {
			o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(ahead) }
		}})
		b := e.browser(true)
		u := e.callbackURL(b, "p1", "alice@op")
		mu.Lock()
		ahead = federation.DefaultStateTTL
		mu.Unlock()
		status, body := get(t, b, u.String())
		e.wantRefused(status, body, http.StatusBadRequest, "has expired")
	})
	t.Run("ErrProviderError", func(t *testing.T) {
		e := newFedEnv(t, config{})
		b := e.browser(true)
		u := e.callbackURL(b, "p1", "alice@op")
		q := u.Query()
		q.Del("code")
		q.Set("error", "access_denied")
		u.RawQuery = q.Encode()
		status, body := get(t, b, u.String())
		e.wantRefused(status, body, http.StatusForbidden, "did not complete")
	})
}

func TestFederation_Start(t *testing.T) {
	e := newFedEnv(t, config{})
	b := e.browser(false)
	if status, _ := get(t, b, e.rp.URL+"/oauth/federated/corp/start?pending=nope"); status != http.StatusBadRequest {
		t.Errorf("start with an unknown pending id = %d; want 400", status)
	}
	if status, _ := get(t, b, e.rp.URL+"/oauth/federated/other/start?pending=p1"); status != http.StatusNotFound {
		t.Errorf("start with an unknown provider = %d; want 404", status)
	}
	// The redirect carries state, nonce and an S256 PKCE challenge, and
	// the cookie is HttpOnly, Secure, SameSite=Lax.
	nb := e.browser(false)
	nb.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nb.Get(e.rp.URL + "/oauth/federated/corp/start?pending=p1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			t.Errorf("authorization request %s = %q; want 256 random bits", k, q.Get(k))
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("client_id") != clientID || !strings.HasPrefix(loc.String(), e.op.srv.URL) {
		t.Errorf("authorization request = %s; want S256 PKCE for %s at the OP", loc, clientID)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != federation.CookieName || !cookies[0].HttpOnly || !cookies[0].Secure ||
		cookies[0].SameSite != http.SameSiteLaxMode || cookies[0].Path != "/" || cookies[0].Value == q.Get("state") {
		t.Errorf("cookies = %+v; want one HttpOnly Secure SameSite=Lax %s not equal to the state", cookies, federation.CookieName)
	}
}

// TestStart_tooLarge checks that a pending authorization too large for the
// cookie is refused with a page that says so, and sets no cookie.
func TestStart_tooLarge(t *testing.T) {
	e := newFedEnv(t, config{})
	huge := strings.Repeat("p", 3000)
	e.mu.Lock()
	e.pend[huge] = true
	e.mu.Unlock()
	resp, err := e.browser(false).Get(e.rp.URL + "/oauth/federated/corp/start?pending=" + huge)
	if err != nil {
		t.Fatal(err)
	}
	cookies := resp.Cookies()
	status, body := read(t, resp)
	if status != http.StatusBadRequest || !strings.Contains(body, "too large") || len(cookies) != 0 {
		t.Errorf("start = %d %q, cookies %v; want 400 saying too large, and no cookie", status, body, cookies)
	}
}

func TestNewHandler(t *testing.T) {
	base := federation.Options{
		Accounts:     (*sqlite.DB)(nil),
		BaseURL:      "https://vault.example.org",
		Complete:     func(http.ResponseWriter, *http.Request, string, *phivault.Authentication) {},
		ValidPending: func(string) bool { return false },
	}
	for _, p := range []federation.Provider{
		{Name: "Bad Name", Issuer: "https://op", ClientID: "c"},
		{Name: "corp", ClientID: "c"},
		{Name: "corp", Issuer: "https://op", ClientID: "c", LinkClaim: "name"},
	} {
		o := base
		o.Providers = []federation.Provider{p}
		if _, err := federation.NewHandler(o); err == nil {
			t.Errorf("NewHandler(%+v) succeeded; want an error", p)
		}
	}
	o := base
	o.Providers = []federation.Provider{{Name: "corp", Issuer: "https://op", ClientID: "c", ClientSecret: "s3cret"}}
	h, err := federation.NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Providers(); len(got) != 1 || got[0].DisplayName != "corp" {
		t.Errorf("Providers() = %+v; want corp", got)
	}
	var sb strings.Builder
	logger := slog.New(slog.NewTextHandler(&sb, nil))
	logger.Info("config", "options", o, "provider", o.Providers[0])
	if strings.Contains(sb.String(), "s3cret") {
		t.Errorf("log line %q contains the client secret", sb.String())
	}
}
