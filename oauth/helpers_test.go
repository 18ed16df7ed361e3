package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/internal/plainseal"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/oauth"
	"github.com/phivault/phivault/sqlite"
	"github.com/phivault/phivault/vault"
	"golang.org/x/oauth2"
)

const (
	testPassword = "glacier-mint-oboe-47"
	redirectURI  = "https://app.example/callback"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// clock is an injected clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recLog is the real audit log, recording what it was given and failing on
// demand.
type recLog struct {
	log  *auditlog.Log
	mu   sync.Mutex
	all  []phivault.AuditEntry
	fail bool
}

func (l *recLog) Append(ctx context.Context, entries ...*phivault.AuditEntry) error {
	l.mu.Lock()
	fail := l.fail
	l.mu.Unlock()
	if fail {
		return errors.New("audit log down")
	}
	if err := l.log.Append(ctx, entries...); err != nil {
		return err
	}
	l.mu.Lock()
	for _, e := range entries {
		l.all = append(l.all, *e)
	}
	l.mu.Unlock()
	return nil
}

func (l *recLog) setFail(b bool) {
	l.mu.Lock()
	l.fail = b
	l.mu.Unlock()
}

func (l *recLog) entries() []phivault.AuditEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]phivault.AuditEntry(nil), l.all...)
}

// last returns the last entry with action, or fails.
func (l *recLog) last(t *testing.T, action string) phivault.AuditEntry {
	t.Helper()
	all := l.entries()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Action == action {
			return all[i]
		}
	}
	t.Fatalf("no audit entry with action %s in %d entries", action, len(all))
	return phivault.AuditEntry{}
}

// env is a running vault: SQLite, audit log, FHIR API and OAuth server
// behind one TLS test server.
type env struct {
	t     *testing.T
	clock *clock
	db    *sqlite.DB
	audit *recLog
	srv   *oauth.Server
	ts    *httptest.Server
	base  string // FHIR base URL
	auth  *identity.Authenticator

	patientID string // a Patient resource id
	staff     *phivault.Account
	patient   *phivault.Account // a patient account whose record is patientID
	noMFA     *phivault.Account
	public    *phivault.Client
	backend   *phivault.Client
	key       *ecdsa.PrivateKey // the backend client's key
}

var totpSecret = []byte("12345678901234567890")

func newEnv(t *testing.T, configure ...func(*oauth.Options)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: &clock{t: t0}}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	e.audit = &recLog{log: storetest.OpenAuditLog(t, db)}

	e.auth = identity.NewAuthenticator(db)
	e.auth.Hasher = &identity.Hasher{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}
	e.auth.Now = e.clock.Now

	records := vault.New(db, plainseal.Sealer{})
	pat, _, err := records.Create(ctx, "Patient", []byte(`{"resourceType":"Patient","name":[{"family":"Testperson"}]}`), phivault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.patientID = pat.ID

	e.staff = e.addAccount("drhouse", func(a *phivault.Account) { a.Roles = []string{"physician"}; a.Department = "cardiology" })
	e.patient = e.addAccount("pat", func(a *phivault.Account) { a.Kind = phivault.PrincipalPatient; a.PatientID = pat.ID })
	e.noMFA = e.addAccount("nomfa", func(a *phivault.Account) { a.TOTPSecret = nil })

	e.public = &phivault.Client{ID: "app-1", Name: "Test App", Kind: phivault.ClientPublic, RedirectURIs: []string{redirectURI},
		Scopes: []string{"user/*.cruds", "patient/*.rs", "launch/patient", "offline_access", "openid"}, Status: phivault.AccountActive, Created: t0}
	if err := db.CreateClient(ctx, e.public); err != nil {
		t.Fatal(err)
	}
	e.key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.backend = &phivault.Client{ID: "lab-1", Name: "Lab", Kind: phivault.ClientBackend, JWKS: jwks(t, "k1", &e.key.PublicKey, ""),
		Scopes: []string{"system/Observation.cruds", "system/Patient.rs"}, Status: phivault.AccountActive, Created: t0}
	if err := db.CreateClient(ctx, e.backend); err != nil {
		t.Fatal(err)
	}

	e.ts = httptest.NewUnstartedServer(nil)
	e.ts.StartTLS()
	t.Cleanup(e.ts.Close)
	e.base = e.ts.URL + "/fhir"
	opts := oauth.Options{
		BaseURL:  e.base,
		Accounts: db,
		Clients:  db,
		Login:    e.auth,
		Audit:    e.audit,
		Now:      e.clock.Now,
		Logger:   slog.New(slog.DiscardHandler),
	}
	for _, c := range configure {
		c(&opts)
	}
	e.srv, err = oauth.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	fhirAPI := api.NewHandler(records, api.Options{BaseURL: e.base, Authenticator: e.srv.Sessions(), Logger: slog.New(slog.DiscardHandler), Now: e.clock.Now})
	mux := http.NewServeMux()
	mux.Handle("/fhir/", fhirAPI)
	mux.Handle("/fhir/.well-known/", e.srv)
	mux.Handle("/oauth/", e.srv)
	mux.Handle("/.well-known/", e.srv)
	e.ts.Config.Handler = mux
	return e
}

// addAccount creates an active account with password testPassword and a
// TOTP secret, changed by edit.
func (e *env) addAccount(username string, edit func(*phivault.Account)) *phivault.Account {
	e.t.Helper()
	hash, err := e.auth.Hasher.Hash(testPassword)
	if err != nil {
		e.t.Fatal(err)
	}
	a := &phivault.Account{ID: "acc-" + username, Username: username, Status: phivault.AccountActive,
		PasswordHash: hash, TOTPSecret: totpSecret, Created: t0}
	edit(a)
	if err := e.db.CreateAccount(context.Background(), a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// setStatus changes an account's status in the store.
func (e *env) setStatus(id, status string) {
	e.t.Helper()
	ctx := context.Background()
	a, err := e.db.AccountByID(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	a.Status = status
	a.Version++
	if err := e.db.UpdateAccount(ctx, a); err != nil {
		e.t.Fatal(err)
	}
}

// totp advances the clock one TOTP step and returns the code for it.
func (e *env) totp() string {
	e.t.Helper()
	e.clock.Advance(identity.DefaultTOTPPeriod)
	code, err := identity.TOTP{}.Code(totpSecret, identity.TOTP{}.Step(e.clock.Now()))
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// config is the OAuth client configuration of the public app.
func (e *env) config(scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    e.public.ID,
		Endpoint:    oauth2.Endpoint{AuthURL: e.ts.URL + "/oauth/authorize", TokenURL: e.ts.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirectURI,
		Scopes:      scopes,
	}
}

// ctx returns a context whose oauth2 requests go to the test server.
func (e *env) ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, e.ts.Client())
}

// browser returns an HTTP client with a cookie jar that does not follow
// redirects.
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Transport:     e.ts.Client().Transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var (
	pendingRe = regexp.MustCompile(`name="pending" value="([^"]+)"`)
	csrfRe    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// loginPage fetches authURL in b and returns the page's pending id and CSRF
// token.
func (e *env) loginPage(b *http.Client, authURL string) (pending, csrf string) {
	e.t.Helper()
	res, err := b.Get(authURL)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		e.t.Fatalf("GET authorize = %d %s, want 200 (Location %q)", res.StatusCode, body, res.Header.Get("Location"))
	}
	p, c := pendingRe.FindSubmatch(body), csrfRe.FindSubmatch(body)
	if p == nil || c == nil {
		e.t.Fatalf("login page without pending or csrf:\n%s", body)
	}
	return string(p[1]), string(c[1])
}

// submit posts the login form and returns the response.
func (e *env) submit(b *http.Client, pending, csrf, username, password, totp string) *http.Response {
	e.t.Helper()
	res, err := b.PostForm(e.ts.URL+"/oauth/login", url.Values{
		"pending": {pending}, "csrf": {csrf}, "username": {username}, "password": {password}, "totp": {totp},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// authorize runs the browser part of the code flow for username with conf
// and verifier, and returns the redirect's query.
func (e *env) authorize(conf *oauth2.Config, verifier, username string) url.Values {
	e.t.Helper()
	b := e.browser()
	pending, csrf := e.loginPage(b, conf.AuthCodeURL("st-123", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", e.base)))
	res := e.submit(b, pending, csrf, username, testPassword, e.totp())
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, redirectURI) {
		e.t.Fatalf("POST login = %d Location %q, want 303 to %s", res.StatusCode, loc, redirectURI)
	}
	u, err := url.Parse(loc)
	if err != nil {
		e.t.Fatal(err)
	}
	return u.Query()
}

// login runs the whole code flow for username and returns the token.
func (e *env) login(username string, scopes ...string) *oauth2.Token {
	e.t.Helper()
	conf := e.config(scopes...)
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(conf, verifier, username)
	if q.Get("code") == "" || q.Get("state") != "st-123" {
		e.t.Fatalf("redirect query %v, want a code and state st-123", q)
	}
	tok, err := conf.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("Exchange: %v", err)
	}
	return tok
}

// read GETs Patient/patientID with token and returns the status.
func (e *env) read(token string) int {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.base+"/Patient/"+e.patientID, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/fhir+json")
	res, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// post posts form to path and decodes the JSON answer.
func (e *env) post(path string, form url.Values) (int, map[string]any) {
	e.t.Helper()
	res, err := e.ts.Client().PostForm(e.ts.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		e.t.Errorf("POST %s: Cache-Control %q, want no-store", path, cc)
	}
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		e.t.Fatalf("POST %s: %d, body not JSON: %v", path, res.StatusCode, err)
	}
	return res.StatusCode, m
}

// wantError checks an RFC 6749 error answer.
func wantError(t *testing.T, status int, m map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || m["error"] != wantCode {
		t.Fatalf("got %d %v, want %d error=%s", status, m, wantStatus, wantCode)
	}
}

// jwks returns a JWKS holding pub under kid.
func jwks(t testing.TB, kid string, pub any, alg string) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertion returns a client assertion signed with key, with claims edited
// by edit.
func assertion(t testing.TB, key any, alg jose.SignatureAlgorithm, kid string, claims jwt.Claims) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claims returns valid assertion claims for the backend client.
func (e *env) claims() jwt.Claims {
	now := e.clock.Now()
	jti := make([]byte, 8)
	rand.Read(jti)
	return jwt.Claims{
		Issuer:   e.backend.ID,
		Subject:  e.backend.ID,
		Audience: jwt.Audience{e.ts.URL + "/oauth/token"},
		Expiry:   jwt.NewNumericDate(now.Add(4 * time.Minute)),
		IssuedAt: jwt.NewNumericDate(now),
		ID:       hex.EncodeToString(jti),
	}
}

// backendForm returns a client_credentials request with assertion a.
func backendForm(a, scope string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {a},
	}
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func decodeJSON(t *testing.T, res *http.Response, v any) {
	t.Helper()
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("%s = %d, want 200", res.Request.URL.Path, res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
