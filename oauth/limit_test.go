package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/oauth"
)

// backend is a registered backend client and its key.
type backend struct {
	e   *env
	id  string
	key *ecdsa.PrivateKey
}

// addBackend registers another active backend client id.
func (e *env) addBackend(t *testing.T, id string) *backend {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &phivault.Client{ID: id, Name: id, Kind: phivault.ClientBackend, JWKS: jwks(t, "k1", &key.PublicKey, ""),
		Scopes: []string{"system/Patient.rs"}, Status: phivault.AccountActive, Created: t0}
	if err := e.db.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	return &backend{e: e, id: id, key: key}
}

// assertion returns a fresh valid assertion of b.
func (b *backend) assertion(t *testing.T) string {
	c := b.e.claims()
	c.Issuer, c.Subject = b.id, b.id
	return assertion(t, b.key, jose.ES384, "k1", jwt.Claims(c))
}

// TestAuthorize_flood sends floodRequests (20,000) anonymous authorize
// requests, each from its own address so that no rate limit stops them,
// and then signs in: the requests store nothing, so they crowd out no one.
func TestAuthorize_flood(t *testing.T) {
	e := newEnv(t)
	authURL := e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base))
	for i := range floodRequests {
		req := httptest.NewRequest("GET", authURL, nil)
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:40000", i>>16&255, i>>8&255, i&255)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("authorize request %d = %d, want 200", i, rec.Code)
		}
	}
	if tok := e.login("drhouse", "user/*.rs"); tok.AccessToken == "" {
		t.Fatal("no access token after the flood")
	}
}

// TestAuthorize_tamperedPending checks that the sealed pending
// authorization cannot be altered or forged.
func TestAuthorize_tamperedPending(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	pending, csrf := e.loginPage(b, e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
	flipped := []byte(pending)
	if flipped[40] == 'A' {
		flipped[40] = 'B'
	} else {
		flipped[40] = 'A'
	}
	for _, p := range []string{string(flipped), pending[:len(pending)-4], "", "not-a-token"} {
		if e.srv.Pending(p) {
			t.Errorf("Pending(%.20q...) = true for a forged token", p)
		}
		if res := e.submit(b, p, csrf, "drhouse", testPassword, e.totp()); res.StatusCode != http.StatusBadRequest {
			t.Errorf("login with a forged pending = %d, want 400", res.StatusCode)
		}
	}
	// Expired after PendingTTL.
	e.clock.Advance(oauth.DefaultPendingTTL)
	if e.srv.Pending(pending) {
		t.Error("Pending = true after PendingTTL")
	}
}

// TestLogin_completedOnce checks that a pending authorization completes
// once: the same login form cannot be replayed for a second code.
func TestLogin_completedOnce(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	pending, csrf := e.loginPage(b, e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
	if res := e.submit(b, pending, csrf, "drhouse", testPassword, e.totp()); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login = %d, want 303", res.StatusCode)
	}
	if e.srv.Pending(pending) {
		t.Error("Pending = true after completion")
	}
	if res := e.submit(b, pending, csrf, "drhouse", testPassword, e.totp()); res.StatusCode != http.StatusBadRequest {
		t.Errorf("second login with the same pending = %d, want 400", res.StatusCode)
	}
}

// TestLimit_perSource floods the token endpoint from one address: it gets
// 429 with Retry-After and an OAuth error, while another address is served.
func TestLimit_perSource(t *testing.T) {
	e := newEnv(t)
	post := func(source string) *httptest.ResponseRecorder {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}, "client_id": {e.public.ID}}
		req := httptest.NewRequest("POST", e.ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = source + ":5000"
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		return rec
	}
	var limited *httptest.ResponseRecorder
	for i := range oauth.DefaultLimitBurst + 10 {
		if rec := post("192.0.2.7"); rec.Code == http.StatusTooManyRequests {
			limited = rec
			if i < oauth.DefaultLimitBurst {
				t.Fatalf("limited after %d requests, want at least the burst %d", i, oauth.DefaultLimitBurst)
			}
			break
		}
	}
	if limited == nil {
		t.Fatalf("%d requests from one address were never limited", oauth.DefaultLimitBurst+10)
	}
	if ra, err := strconv.Atoi(limited.Header().Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds", limited.Header().Get("Retry-After"))
	}
	var body map[string]string
	if err := json.Unmarshal(limited.Body.Bytes(), &body); err != nil || body["error"] != "slow_down" {
		t.Errorf("429 body %q, want an OAuth error slow_down", limited.Body)
	}
	if rec := post("192.0.2.8"); rec.Code == http.StatusTooManyRequests {
		t.Error("another address was limited too")
	}
	// The bucket refills with time.
	e.clock.Advance(time.Minute)
	if rec := post("192.0.2.7"); rec.Code == http.StatusTooManyRequests {
		t.Error("still limited a minute later")
	}
}

func TestLimiter_bounded(t *testing.T) {
	l := oauth.NewLimiter(1, 2, 100)
	now := t0
	l.Now = func() time.Time { return now }
	for i := range 1000 {
		if ok, _ := l.Allow(fmt.Sprintf("10.0.%d.%d", i>>8, i&255)); !ok {
			t.Fatalf("new source %d refused", i)
		}
	}
	if l.Len() != 100 {
		t.Errorf("Len = %d after 1000 sources, want the bound 100", l.Len())
	}
	// IPv6 sources share their /64.
	l.Allow("2001:db8::1")
	l.Allow("2001:db8::2")
	if ok, wait := l.Allow("2001:db8::3"); ok || wait <= 0 {
		t.Errorf("third request from one /64 = %v, %v; want refused with a wait", ok, wait)
	}
	if ok, _ := l.Allow("2001:db8:0:1::1"); !ok {
		t.Error("another /64 was refused")
	}
}

// TestLimiter_ipv6Blocks sends, on a stopped clock, requests from 1,000
// IPv6 /64s of one /48, each until it is refused: together they get what
// LimitShare48 sources would, the /64s of one /56 what LimitShare56 would,
// the table grows by the buckets of allowed requests only, and other
// sources are not affected.
func TestLimiter_ipv6Blocks(t *testing.T) {
	const burst = oauth.DefaultLimitBurst
	newLimiter := func() *oauth.Limiter {
		l := oauth.NewLimiter(oauth.DefaultLimitRate, burst, oauth.DefaultLimitSources)
		l.Now = func() time.Time { return t0 }
		return l
	}
	// flood sends from n /64s, the i-th named by source(i), each until
	// refused, and returns how many requests passed.
	flood := func(l *oauth.Limiter, n int, source func(i int) string) int {
		allowed := 0
		for i := range n {
			for range burst + 1 {
				ok, wait := l.Allow(source(i))
				if !ok {
					if wait <= 0 {
						t.Fatalf("refused %s without a wait", source(i))
					}
					break
				}
				allowed++
			}
		}
		return allowed
	}

	l := newLimiter()
	in48 := func(i int) string { return fmt.Sprintf("2001:db8:abcd:%x::1", i) } // 1,000 /64s in 4 /56s
	if got, want := flood(l, 1000, in48), oauth.LimitShare48*burst; got != want {
		t.Errorf("1,000 /64s of one /48 made %d requests, want %d (LimitShare48 sources' burst)", got, want)
	}
	if got, max := l.Len(), 1+4+oauth.LimitShare48*burst; got > max {
		t.Errorf("Len = %d after the flood, want at most %d: refused requests make no buckets", got, max)
	}
	for _, other := range []string{"2001:db8:abce::1", "192.0.2.1", "::ffff:192.0.2.2"} {
		if ok, _ := l.Allow(other); !ok {
			t.Errorf("Allow(%s) refused after a flood from 2001:db8:abcd::/48", other)
		}
	}

	l = newLimiter()
	in56 := func(i int) string { return fmt.Sprintf("2001:db8:abcd:ff%02x::%x", i, i+1) } // 256 /64s of one /56
	if got, want := flood(l, 256, in56), oauth.LimitShare56*burst; got != want {
		t.Errorf("256 /64s of one /56 made %d requests, want %d (LimitShare56 sources' burst)", got, want)
	}
	if ok, _ := l.Allow("2001:db8:abcd:fe00::1"); !ok {
		t.Error("another /56 of the same /48 was refused")
	}
}

// TestLimit_ipv6Flood floods the token endpoint from 1,000 IPv6 /64s of
// one /48, twice from each: no more requests reach the endpoint than
// LimitShare48 sources' burst, and a person then signs in from another
// address.
func TestLimit_ipv6Flood(t *testing.T) {
	e := newEnv(t)
	counts := map[int]int{}
	for i := range 2000 {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}, "client_id": {e.public.ID}}
		req := httptest.NewRequest("POST", e.ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = fmt.Sprintf("[2001:db8:abcd:%x::%x]:5000", i%1000, i)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		counts[rec.Code]++
	}
	if got, want := 2000-counts[http.StatusTooManyRequests], oauth.LimitShare48*oauth.DefaultLimitBurst; got != want {
		t.Errorf("%d of 2,000 requests from one /48 reached the endpoint (%v), want %d", got, counts, want)
	}
	if tok := e.login("drhouse", "user/*.rs"); tok.AccessToken == "" {
		t.Fatal("no access token after the flood")
	}
}

// TestBackend_jtiPerClient fills one backend client's replay cache: that
// client is refused, another client still gets tokens, and a replay is
// still refused.
func TestBackend_jtiPerClient(t *testing.T) {
	e := newEnv(t, func(o *oauth.Options) { o.MaxAssertionsPerClient = 20 })
	other := e.addBackend(t, "lab-2")
	var first string
	for i := range 20 {
		a := assertion(t, e.key, jose.ES384, "k1", e.claims())
		if i == 0 {
			first = a
		}
		if status, m := e.post("/oauth/token", backendForm(a, "system/Patient.rs")); status != 200 {
			t.Fatalf("assertion %d = %d %v, want 200", i, status, m)
		}
	}
	status, m := e.post("/oauth/token", backendForm(assertion(t, e.key, jose.ES384, "k1", e.claims()), "system/Patient.rs"))
	wantError(t, status, m, http.StatusTooManyRequests, "slow_down")
	status, m = e.post("/oauth/token", backendForm(first, "system/Patient.rs"))
	wantError(t, status, m, http.StatusUnauthorized, "invalid_client")
	if status, m := e.post("/oauth/token", backendForm(other.assertion(t), "system/Patient.rs")); status != 200 {
		t.Fatalf("the other client = %d %v, want 200", status, m)
	}
	// Once its assertions expire the flooding client is served again.
	e.clock.Advance(5 * time.Minute)
	if status, m := e.post("/oauth/token", backendForm(assertion(t, e.key, jose.ES384, "k1", e.claims()), "system/Patient.rs")); status != 200 {
		t.Fatalf("after expiry = %d %v, want 200", status, m)
	}
}

// TestLogin_busy fills the password hashing pool: a login then gets 503
// with Retry-After, is audited, and does not count as a failed attempt.
func TestLogin_busy(t *testing.T) {
	e := newEnv(t)
	pool := identity.NewPool(64)
	holding, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	pool.Started = func(context.Context, int64) { first.Do(func() { close(holding); <-release }) }
	e.auth.Hasher = &identity.Hasher{Params: e.auth.Hasher.Params, Pool: pool}
	done := make(chan struct{})
	go func() { e.auth.Hasher.Hash("hold the pool"); close(done) }()
	<-holding
	pool.Wait = time.Nanosecond

	b := e.browser()
	pending, csrf := e.loginPage(b, e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.base)))
	res := e.submit(b, pending, csrf, "drhouse", testPassword, e.totp())
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("login with a full pool = %d Retry-After %q, want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if got := e.audit.last(t, phivault.ActionLogin); got.Outcome != phivault.EUNAVAILABLE {
		t.Errorf("audit outcome %q, want %q", got.Outcome, phivault.EUNAVAILABLE)
	}
	close(release)
	<-done
	pool.Wait = -1
	if res := e.submit(b, pending, csrf, "drhouse", testPassword, e.totp()); res.StatusCode != http.StatusSeeOther {
		t.Errorf("login once the pool is free = %d, want 303", res.StatusCode)
	}
}

// floodKey marks the context of a request that belongs to a flood.
type floodKey struct{}

// signIn runs authorize and a login form post for username straight
// through the server, from source, in ctx, and returns the login's answer
// and the PKCE verifier of its code.
func (e *env) signIn(ctx context.Context, source, username, password, totp string) (*httptest.ResponseRecorder, string) {
	e.t.Helper()
	verifier := oauth2.GenerateVerifier()
	authURL := e.config("user/*.rs").AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", e.base))
	req := httptest.NewRequest("GET", authURL, nil).WithContext(ctx)
	req.RemoteAddr = source + ":40000"
	page := httptest.NewRecorder()
	e.srv.ServeHTTP(page, req)
	p, c := pendingRe.FindStringSubmatch(page.Body.String()), csrfRe.FindStringSubmatch(page.Body.String())
	if page.Code != http.StatusOK || p == nil || c == nil {
		e.t.Errorf("authorize from %s = %d, want the login page", source, page.Code)
		return page, ""
	}
	form := url.Values{"pending": {p[1]}, "csrf": {c[1]}, "username": {username}, "password": {password}, "totp": {totp}}
	req = httptest.NewRequest("POST", e.ts.URL+"/oauth/login", strings.NewReader(form.Encode())).WithContext(ctx)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = source + ":40000"
	for _, ck := range page.Result().Cookies() {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return rec, verifier
}

// TestLogin_poolFlood floods /oauth/login from six addresses with failed
// logins, for unknown usernames and for one account, whose hashes hold
// their memory until released. Then a person signs in from another
// address: the login gets memory at once and the code flow ends with a
// token, because the flood holds only the shared half of the hashing pool
// and one hash for the account it names.
func TestLogin_poolFlood(t *testing.T) {
	e := newEnv(t)
	memory := int64(e.auth.Hasher.Params.Memory)
	pool := identity.NewPool(4 * memory)
	pool.Wait = -1 // the flood waits for as long as it takes
	release := make(chan struct{})
	held := make(chan struct{}, 64)
	var holding atomic.Int64
	pool.Started = func(ctx context.Context, inUse int64) {
		if ctx.Value(floodKey{}) != nil {
			holding.Add(1)
			held <- struct{}{}
			<-release
			holding.Add(-1)
		}
	}
	e.auth.Hasher = &identity.Hasher{Params: e.auth.Hasher.Params, Pool: pool}
	totp := e.totp() // the clock stands still from here on

	flood := context.WithValue(t.Context(), floodKey{}, true)
	const sources, each = 6, 4
	var wg sync.WaitGroup
	codes := make(chan int, sources*each)
	for i := range sources * each {
		source, user := fmt.Sprintf("198.51.100.%d", i%sources+1), fmt.Sprintf("nobody-%d", i)
		if i%2 == 0 {
			user = "pat"
		}
		wg.Go(func() {
			rec, _ := e.signIn(flood, source, user, "wrong-password-1234", "000000")
			codes <- rec.Code
		})
	}
	maxHeld := pool.SharedBudget()/memory + 1
	for range maxHeld {
		<-held
	}
	// Every login of the flood is in the pool before the person's.
	for holding.Load()+pool.Waiting() < sources*each {
		time.Sleep(time.Millisecond)
	}

	// The deadline only bounds how long a pool without a reserve makes
	// this login wait before 503: with one, it gets memory at once.
	ctx, cancel := context.WithTimeout(t.Context(), identity.DefaultHashWait)
	defer cancel()
	rec, verifier := e.signIn(ctx, "203.0.113.5", "drhouse", testPassword, totp)
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
		t.Errorf("login during the flood = %d Location %q, want 303 with a code", rec.Code, rec.Header().Get("Location"))
	} else if tok, err := e.config("user/*.rs").Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil || tok.AccessToken == "" {
		t.Errorf("Exchange after the login during the flood: %v", err)
	}
	if got := holding.Load(); got != maxHeld {
		t.Errorf("the flood held %d hashes at once, want %d (the shared half and one for the named account)", got, maxHeld)
	}

	close(release)
	wg.Wait()
	close(codes)
	n := 0
	for code := range codes {
		n++
		if code != http.StatusUnauthorized {
			t.Errorf("flood login = %d, want 401", code)
		}
	}
	if n != sources*each {
		t.Errorf("%d flood logins answered, want %d", n, sources*each)
	}
}
