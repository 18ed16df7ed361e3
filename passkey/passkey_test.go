package passkey_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/passkey"
	"github.com/phivault/phivault/sqlite"
)

const (
	rpID   = "vault.example.org"
	origin = "https://vault.example.org"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is a passkey handler on a real SQLite database, with a fake OAuth
// server behind Complete and ValidPending.
type env struct {
	t        *testing.T
	db       *sqlite.DB
	clock    *clock
	h        *passkey.Handler
	srv      *httptest.Server
	mu       sync.Mutex
	pending  map[string]bool
	complete []*phivault.Authentication // Complete calls
	failures []string                   // Failed reasons
	added    []string                   // Registered accounts
}

// newEnv returns an env whose handler options are changed by each of
// with, in order.
func newEnv(t *testing.T, with ...func(*passkey.Options)) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "phivault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, db: db, clock: &clock{now: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)}, pending: map[string]bool{"p1": true, "p2": true, "p3": true}}
	for _, a := range []*phivault.Account{
		{ID: "acc-alice", Username: "alice", Status: phivault.AccountActive, Roles: []string{"nurse"}},
		{ID: "acc-bob", Username: "bob", Status: phivault.AccountActive, Roles: []string{"physician"}},
	} {
		if err := db.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	o := passkey.Options{
		Accounts: db,
		RPID:     rpID,
		Origins:  []string{origin},
		Authenticate: func(ctx context.Context, token string) (context.Context, error) {
			id, ok := strings.CutPrefix(token, "token-")
			if !ok {
				return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "bad token")
			}
			authTime := e.clock.Now().Add(-time.Minute)
			if strings.HasSuffix(id, "-stale") {
				id, authTime = strings.TrimSuffix(id, "-stale"), authTime.Add(-time.Hour)
			}
			return phivault.WithPrincipal(ctx, &phivault.Principal{ID: id, Kind: phivault.PrincipalStaff, AuthTime: authTime}), nil
		},
		Complete: func(w http.ResponseWriter, r *http.Request, pending string, a *phivault.Authentication) {
			e.mu.Lock()
			e.complete = append(e.complete, a)
			delete(e.pending, pending) // a pending authorization completes once
			e.mu.Unlock()
			http.Redirect(w, r, "https://app.example.org/cb?code=xyz", http.StatusFound)
		},
		ValidPending: func(p string) bool { e.mu.Lock(); defer e.mu.Unlock(); return e.pending[p] },
		Failed: func(r *http.Request, account, reason string) {
			e.mu.Lock()
			e.failures = append(e.failures, account+": "+reason)
			e.mu.Unlock()
		},
		Registered: func(r *http.Request, account string) {
			e.mu.Lock()
			e.added = append(e.added, account)
			e.mu.Unlock()
		},
		Now: e.clock.Now,
	}
	for _, f := range with {
		f(&o)
	}
	h, err := passkey.NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// do sends a request and returns the status and body.
func (e *env) do(method, path, token, contentType string, body []byte) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type beginResponse struct {
	Ceremony  string          `json:"ceremony"`
	PublicKey json.RawMessage `json:"publicKey"`
}

func (e *env) begin(path, token string, body any) beginResponse {
	e.t.Helper()
	b, _ := json.Marshal(body)
	status, resp := e.do("POST", path, token, "application/json", b)
	if status != http.StatusOK {
		e.t.Fatalf("POST %s = %d %s; want 200", path, status, resp)
	}
	var br beginResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		e.t.Fatal(err)
	}
	return br
}

// register runs both registration calls for account with a.
func (e *env) register(account string, a *softAuthenticator) (int, []byte) {
	e.t.Helper()
	br := e.begin("/oauth/passkey/register/begin", "token-"+account, struct{}{})
	var opts creationOptions
	if err := json.Unmarshal(br.PublicKey, &opts); err != nil {
		e.t.Fatal(err)
	}
	return e.do("POST", "/oauth/passkey/register/finish?ceremony="+br.Ceremony, "token-"+account, "application/json", a.create(e.t, opts))
}

func (e *env) mustRegister(account string, a *softAuthenticator) {
	e.t.Helper()
	if status, body := e.register(account, a); status != http.StatusCreated {
		e.t.Fatalf("register %s = %d %s; want 201", account, status, body)
	}
}

// loginBegin starts a login for pending and returns the ceremony id and
// challenge.
func (e *env) loginBegin(pending, username string) (ceremony, challenge string, allow int) {
	e.t.Helper()
	br := e.begin("/oauth/passkey/login/begin", "", map[string]string{"pending": pending, "username": username})
	var opts struct {
		Challenge        string            `json:"challenge"`
		UserVerification string            `json:"userVerification"`
		AllowCredentials []json.RawMessage `json:"allowCredentials"`
	}
	if err := json.Unmarshal(br.PublicKey, &opts); err != nil {
		e.t.Fatal(err)
	}
	if opts.UserVerification != "required" {
		e.t.Errorf("login userVerification = %q; want required", opts.UserVerification)
	}
	return br.Ceremony, opts.Challenge, len(opts.AllowCredentials)
}

// loginFinish posts an assertion as the login page's form does.
func (e *env) loginFinish(ceremony string, assertion []byte) (int, []byte) {
	e.t.Helper()
	form := url.Values{"ceremony": {ceremony}, "credential": {string(assertion)}}
	return e.do("POST", "/oauth/passkey/login/finish", "", "application/x-www-form-urlencoded", []byte(form.Encode()))
}

// login runs a whole discoverable login with a for pending.
func (e *env) login(pending string, a *softAuthenticator) (int, []byte) {
	e.t.Helper()
	ceremony, challenge, _ := e.loginBegin(pending, "")
	return e.loginFinish(ceremony, a.get(e.t, challenge))
}

func (e *env) completions() []*phivault.Authentication {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.complete)
}

func TestPasskey_RegisterAndLogin(t *testing.T) {
	t.Run("Discoverable", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)

		stored, err := e.db.AccountByID(context.Background(), "acc-alice")
		if err != nil {
			t.Fatal(err)
		}
		creds, err := passkey.DecodeCredentials(stored.WebAuthn)
		if err != nil || len(creds) != 1 || !bytes.Equal(creds[0].ID, a.credID) || !creds[0].Flags.UserVerified {
			t.Fatalf("stored credentials = %+v, %v; want one, user-verified, with the authenticator's id", creds, err)
		}
		if e.added == nil || !slices.Equal(e.added, []string{"acc-alice"}) {
			t.Errorf("Registered calls = %v; want [acc-alice]", e.added)
		}
		if !bytes.HasPrefix(stored.WebAuthn, []byte(`{"v":1,`)) {
			t.Errorf("Account.WebAuthn = %.20s...; want the versioned encoding", stored.WebAuthn)
		}

		status, body := e.login("p1", a)
		if status != http.StatusFound {
			t.Fatalf("login finish = %d %s; want 302 from Complete", status, body)
		}
		got := e.completions()
		if len(got) != 1 || got[0].Account.ID != "acc-alice" || !got[0].Time.Equal(e.clock.Now()) {
			t.Fatalf("Complete calls = %+v; want one for acc-alice at the clock's time", got)
		}
		if want := []string{"hwk", "user", "mfa"}; !slices.Equal(got[0].Methods, want) {
			t.Errorf("Methods = %v; want %v", got[0].Methods, want)
		}
		stored, _ = e.db.AccountByID(context.Background(), "acc-alice")
		creds, _ = passkey.DecodeCredentials(stored.WebAuthn)
		if creds[0].Authenticator.SignCount != 1 {
			t.Errorf("stored sign count = %d; want 1", creds[0].Authenticator.SignCount)
		}
	})
	t.Run("UsernameFirst", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-bob", a)
		ceremony, challenge, allow := e.loginBegin("p1", "bob")
		if allow != 1 {
			t.Errorf("allowCredentials for bob = %d; want 1", allow)
		}
		if status, body := e.loginFinish(ceremony, a.get(t, challenge)); status != http.StatusFound {
			t.Fatalf("login finish = %d %s; want 302", status, body)
		}
		if got := e.completions(); len(got) != 1 || got[0].Account.ID != "acc-bob" {
			t.Fatalf("Complete calls = %+v; want one for acc-bob", got)
		}
		// An unknown name gets a discoverable ceremony, like a known one
		// without passkeys: the answer tells nothing.
		for _, name := range []string{"nobody", "alice"} {
			if _, _, allow := e.loginBegin("p2", name); allow != 0 {
				t.Errorf("allowCredentials for %q = %d; want 0", name, allow)
			}
		}
	})
	t.Run("SyncedPasskey", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		a.synced = true
		e.mustRegister("acc-alice", a)
		if status, body := e.login("p1", a); status != http.StatusFound {
			t.Fatalf("login = %d %s; want 302", status, body)
		}
		if got := e.completions(); len(got) != 1 || !slices.Equal(got[0].Methods, []string{"swk", "user", "mfa"}) {
			t.Fatalf("Complete calls = %+v; want methods swk user mfa", got)
		}
	})
}

func TestPasskey_Login(t *testing.T) {
	t.Run("ErrWrongOrigin", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		a.origin = "https://vault.example.org.evil.test"
		if status, _ := e.login("p1", a); status != http.StatusUnauthorized {
			t.Errorf("login from another origin = %d; want 401", status)
		}
		a.origin, a.rpID = origin, "evil.test"
		if status, _ := e.login("p1", a); status != http.StatusUnauthorized {
			t.Errorf("login for another RP ID = %d; want 401", status)
		}
		if got := e.completions(); len(got) != 0 {
			t.Errorf("Complete calls = %d; want 0", len(got))
		}
	})
	t.Run("ErrReplayedChallenge", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		ceremony, challenge, _ := e.loginBegin("p1", "")
		assertion := a.get(t, challenge)
		if status, body := e.loginFinish(ceremony, assertion); status != http.StatusFound {
			t.Fatalf("first finish = %d %s; want 302", status, body)
		}
		e.mu.Lock()
		e.pending["p1"] = true // even if the app retried the authorization
		e.mu.Unlock()
		if status, _ := e.loginFinish(ceremony, assertion); status != http.StatusBadRequest {
			t.Errorf("replayed finish = %d; want 400", status)
		}
		// The same signed challenge in a new ceremony fails too.
		ceremony2, _, _ := e.loginBegin("p2", "")
		if status, _ := e.loginFinish(ceremony2, assertion); status != http.StatusUnauthorized {
			t.Errorf("old assertion in a new ceremony = %d; want 401", status)
		}
		if got := e.completions(); len(got) != 1 {
			t.Errorf("Complete calls = %d; want 1", len(got))
		}
		// The replays were refused as replays: the credential is not taken
		// for a cloned one and still signs in.
		if status, body := e.login("p3", a); status != http.StatusFound {
			t.Errorf("login after the replays = %d %s; want 302", status, body)
		}
	})
	t.Run("ErrReplayedSyncedPasskey", func(t *testing.T) {
		// A synced passkey's counter stays 0, so only the record of used
		// challenges stops a replay of its assertion with its ceremony.
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		a.synced, a.fixedCounter = true, true
		e.mustRegister("acc-alice", a)
		ceremony, challenge, _ := e.loginBegin("p1", "")
		assertion := a.get(t, challenge)
		if status, body := e.loginFinish(ceremony, assertion); status != http.StatusFound {
			t.Fatalf("first finish = %d %s; want 302", status, body)
		}
		e.mu.Lock()
		e.pending["p1"] = true
		e.mu.Unlock()
		if status, _ := e.loginFinish(ceremony, assertion); status != http.StatusBadRequest {
			t.Errorf("replayed finish = %d; want 400", status)
		}
		if got := e.completions(); len(got) != 1 {
			t.Errorf("Complete calls = %d; want 1", len(got))
		}
	})
	t.Run("ErrReplayRace", func(t *testing.T) {
		// Concurrent finishes of one ceremony: one signs in (run with
		// -race).
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		a.synced, a.fixedCounter = true, true
		e.mustRegister("acc-alice", a)
		ceremony, challenge, _ := e.loginBegin("p1", "")
		assertion := a.get(t, challenge)
		form := url.Values{"ceremony": {ceremony}, "credential": {string(assertion)}}.Encode()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				req := httptest.NewRequest("POST", "/oauth/passkey/login/finish", strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				e.h.ServeHTTP(httptest.NewRecorder(), req)
			})
		}
		wg.Wait()
		if got := e.completions(); len(got) != 1 {
			t.Errorf("Complete calls = %d; want 1", len(got))
		}
	})
	t.Run("ErrForgedCeremony", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		ceremony, challenge, _ := e.loginBegin("p1", "")
		flipped := []byte(ceremony)
		flipped[len(flipped)/2] ^= 1
		// A registration ceremony is sealed under the same key, for
		// another purpose.
		reg := e.begin("/oauth/passkey/register/begin", "token-acc-alice", struct{}{})
		for name, c := range map[string]string{"changed": string(flipped), "cut": ceremony[:len(ceremony)-2], "registration": reg.Ceremony} {
			if status, _ := e.loginFinish(c, a.get(t, challenge)); status != http.StatusBadRequest {
				t.Errorf("finish with a %s ceremony = %d; want 400", name, status)
			}
		}
		if got := e.completions(); len(got) != 0 {
			t.Errorf("Complete calls = %d; want 0", len(got))
		}
	})
	t.Run("ErrExpiredCeremony", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		ceremony, challenge, _ := e.loginBegin("p1", "")
		e.clock.Advance(passkey.DefaultCeremonyTTL + time.Second)
		if status, _ := e.loginFinish(ceremony, a.get(t, challenge)); status != http.StatusBadRequest {
			t.Errorf("finish after the TTL = %d; want 400", status)
		}
	})
	t.Run("ErrUserNotVerified", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		a.uv = false
		if status, _ := e.login("p1", a); status != http.StatusUnauthorized {
			t.Errorf("login without UV = %d; want 401", status)
		}
		if got := e.completions(); len(got) != 0 {
			t.Errorf("Complete calls = %d; want 0", len(got))
		}
	})
	t.Run("ErrClonedAuthenticator", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		clone := a.clone()
		for range 3 {
			if status, body := e.login("p1", a); status != http.StatusFound {
				t.Fatalf("login = %d %s; want 302", status, body)
			}
			e.mu.Lock()
			e.pending["p1"] = true
			e.mu.Unlock()
		}
		// The clone signs with counter 1, behind the stored 3.
		if status, body := e.login("p2", clone); status != http.StatusUnauthorized || !strings.Contains(string(body), "copied") {
			t.Errorf("login with the clone = %d %s; want 401 saying it may have been copied", status, body)
		}
		// The credential stays refused, even with the original.
		if status, _ := e.login("p3", a); status != http.StatusUnauthorized {
			t.Errorf("login with the original after a clone was seen = %d; want 401", status)
		}
		if got := e.completions(); len(got) != 3 {
			t.Errorf("Complete calls = %d; want 3", len(got))
		}
	})
	t.Run("ErrUnknownCredential", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		stranger := newSoftAuthenticator(t, rpID, origin)
		stranger.userHandle = []byte("acc-alice") // claims alice, with a key she never registered
		if status, _ := e.login("p1", stranger); status != http.StatusUnauthorized {
			t.Errorf("login with an unregistered credential = %d; want 401", status)
		}
		stranger.userHandle = []byte("acc-nobody")
		if status, _ := e.login("p1", stranger); status != http.StatusUnauthorized {
			t.Errorf("login with an unknown user handle = %d; want 401", status)
		}
		// Bob's key presented in a username-first ceremony for alice.
		bobKey := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-bob", bobKey)
		ceremony, challenge, _ := e.loginBegin("p1", "alice")
		if status, _ := e.loginFinish(ceremony, bobKey.get(t, challenge)); status != http.StatusUnauthorized {
			t.Errorf("bob's key in alice's ceremony = %d; want 401", status)
		}
		if got := e.completions(); len(got) != 0 {
			t.Errorf("Complete calls = %d; want 0", len(got))
		}
	})
	t.Run("ErrSuspended", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		ctx := context.Background()
		acc, _ := e.db.AccountByID(ctx, "acc-alice")
		acc.Status = phivault.AccountSuspended
		acc.Version++
		if err := e.db.UpdateAccount(ctx, acc); err != nil {
			t.Fatal(err)
		}
		if status, _ := e.login("p1", a); status != http.StatusForbidden {
			t.Errorf("login of a suspended account = %d; want 403", status)
		}
		if got := e.completions(); len(got) != 0 {
			t.Errorf("Complete calls = %d; want 0", len(got))
		}
	})
	t.Run("ErrPending", func(t *testing.T) {
		e := newEnv(t)
		b, _ := json.Marshal(map[string]string{"pending": "nope"})
		if status, _ := e.do("POST", "/oauth/passkey/login/begin", "", "application/json", b); status != http.StatusBadRequest {
			t.Errorf("begin for an unknown pending id = %d; want 400", status)
		}
		if status, _ := e.do("GET", "/oauth/passkey/login?pending=nope", "", "", nil); status != http.StatusBadRequest {
			t.Errorf("page for an unknown pending id = %d; want 400", status)
		}
		if status, body := e.do("GET", "/oauth/passkey/login?pending=p1", "", "", nil); status != http.StatusOK || !strings.Contains(string(body), `data-pending="p1"`) {
			t.Errorf("page = %d %s; want 200 with the pending id", status, body)
		}
		if status, _ := e.do("POST", "/oauth/passkey/login/begin", "", "application/json", []byte("{")); status != http.StatusBadRequest {
			t.Errorf("begin with bad JSON = %d; want 400", status)
		}
		if status, _ := e.loginFinish("nope", []byte("{}")); status != http.StatusBadRequest {
			t.Errorf("finish with an unknown ceremony = %d; want 400", status)
		}
	})
	t.Run("ErrGarbage", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		for _, body := range []string{"", "{", `{"id":"AA","type":"public-key","response":{}}`, "\x00\xff"} {
			ceremony, _, _ := e.loginBegin("p1", "")
			if status, _ := e.loginFinish(ceremony, []byte(body)); status != http.StatusBadRequest {
				t.Errorf("finish with %q = %d; want 400", body, status)
			}
		}
	})
}

// TestPasskey_loginsPerAccount checks the bound on one account's record
// of used challenges: over it, a login is refused with 429 and
// Retry-After and changes nothing, other accounts still sign in, and the
// account signs in again once its ceremonies expired.
func TestPasskey_loginsPerAccount(t *testing.T) {
	e := newEnv(t, func(o *passkey.Options) { o.MaxLoginsPerAccount = 2 })
	alice, bob := newSoftAuthenticator(t, rpID, origin), newSoftAuthenticator(t, rpID, origin)
	e.mustRegister("acc-alice", alice)
	e.mustRegister("acc-bob", bob)
	for range 2 {
		if status, body := e.login("p1", alice); status != http.StatusFound {
			t.Fatalf("login = %d %s; want 302", status, body)
		}
		e.mu.Lock()
		e.pending["p1"] = true
		e.mu.Unlock()
	}
	before, _ := e.db.AccountByID(context.Background(), "acc-alice")
	ceremony, challenge, _ := e.loginBegin("p1", "")
	req := httptest.NewRequest("POST", "/oauth/passkey/login/finish", strings.NewReader(url.Values{"ceremony": {ceremony}, "credential": {string(alice.get(t, challenge))}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "120" {
		t.Errorf("third login = %d, Retry-After %q; want 429 and 120", rec.Code, rec.Header().Get("Retry-After"))
	}
	if after, _ := e.db.AccountByID(context.Background(), "acc-alice"); after.Version != before.Version {
		t.Errorf("the refused login changed the account (version %d to %d)", before.Version, after.Version)
	}
	if status, body := e.login("p2", bob); status != http.StatusFound {
		t.Errorf("bob's login = %d %s; want 302", status, body)
	}
	e.clock.Advance(passkey.DefaultCeremonyTTL)
	if status, body := e.login("p1", alice); status != http.StatusFound {
		t.Errorf("alice's login once her ceremonies expired = %d %s; want 302", status, body)
	}
	if got := len(e.completions()); got != 4 {
		t.Errorf("Complete calls = %d; want 4", got)
	}
}

func TestPasskey_Register(t *testing.T) {
	t.Run("ErrNoToken", func(t *testing.T) {
		e := newEnv(t)
		if status, _ := e.do("POST", "/oauth/passkey/register/begin", "", "application/json", []byte("{}")); status != http.StatusUnauthorized {
			t.Errorf("begin without a token = %d; want 401", status)
		}
		if status, _ := e.do("POST", "/oauth/passkey/register/begin", "bogus", "application/json", []byte("{}")); status != http.StatusUnauthorized {
			t.Errorf("begin with a bad token = %d; want 401", status)
		}
	})
	t.Run("ErrNotFresh", func(t *testing.T) {
		e := newEnv(t)
		if status, _ := e.do("POST", "/oauth/passkey/register/begin", "token-acc-alice-stale", "application/json", []byte("{}")); status != http.StatusForbidden {
			t.Errorf("begin with an old login = %d; want 403", status)
		}
	})
	t.Run("ErrUserNotVerified", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		a.uv = false
		if status, _ := e.register("acc-alice", a); status != http.StatusUnauthorized {
			t.Errorf("register without UV = %d; want 401", status)
		}
	})
	t.Run("ErrWrongOrigin", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, "https://evil.test")
		if status, _ := e.register("acc-alice", a); status != http.StatusUnauthorized {
			t.Errorf("register from another origin = %d; want 401", status)
		}
	})
	t.Run("ErrOtherAccountsCeremony", func(t *testing.T) {
		e := newEnv(t)
		br := e.begin("/oauth/passkey/register/begin", "token-acc-alice", struct{}{})
		var opts creationOptions
		json.Unmarshal(br.PublicKey, &opts)
		a := newSoftAuthenticator(t, rpID, origin)
		if status, _ := e.do("POST", "/oauth/passkey/register/finish?ceremony="+br.Ceremony, "token-acc-bob", "application/json", a.create(t, opts)); status != http.StatusBadRequest {
			t.Errorf("finishing alice's ceremony as bob = %d; want 400", status)
		}
	})
	t.Run("ErrDuplicate", func(t *testing.T) {
		e := newEnv(t)
		a := newSoftAuthenticator(t, rpID, origin)
		e.mustRegister("acc-alice", a)
		if status, _ := e.register("acc-alice", a); status != http.StatusConflict {
			t.Errorf("registering the same credential again = %d; want 409", status)
		}
	})
}

func TestDecodeCredentials(t *testing.T) {
	creds := []webauthn.Credential{{ID: []byte{1, 2, 3}, PublicKey: []byte{4}, Authenticator: webauthn.Authenticator{SignCount: 7}}}
	b, err := passkey.EncodeCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	got, err := passkey.DecodeCredentials(b)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].ID, creds[0].ID) || got[0].Authenticator.SignCount != 7 {
		t.Errorf("DecodeCredentials(EncodeCredentials(x)) = %+v, %v; want x", got, err)
	}
	if got, err := passkey.DecodeCredentials(nil); got != nil || err != nil {
		t.Errorf("DecodeCredentials(nil) = %v, %v; want nil, nil", got, err)
	}
	for _, bad := range []string{`{"v":2,"credentials":[]}`, `[]`, `{`} {
		if _, err := passkey.DecodeCredentials([]byte(bad)); err == nil {
			t.Errorf("DecodeCredentials(%s) succeeded; want an error", bad)
		}
	}
}
