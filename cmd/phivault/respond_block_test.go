package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/playbook"
)

// blockApp is a vault opened by openApp and served by its own HTTP
// server (server.Server, as serve runs it) behind a trusted proxy on
// 127.0.0.1, so requests choose their source with X-Forwarded-For.
type blockApp struct {
	*app
	dir, url, token string
	close           func() // once
}

const blockTestProxies = "127.0.0.1,192.0.2.0/24"

func mustBlockApp(t *testing.T, dir string) *blockApp {
	t.Helper()
	ctx := context.Background()
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	token := ""
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "data")
		var out bytes.Buffer
		if err := run(ctx, []string{"init", "-data", dir, "-audit-witness-file", testWitness(dataDir(dir))}, &out, io.Discard); err != nil {
			t.Fatalf("init: %v", err)
		}
		_, after, _ := strings.Cut(out.String(), "only its hash is kept):\n")
		token = strings.TrimSpace(strings.SplitN(after, "\n", 2)[0])
	}
	a, err := openApp(ctx, Config{
		Data: dataDir(dir), Passphrase: "correct horse battery staple", Addr: "127.0.0.1:0", Insecure: true,
		TrustedProxies: blockTestProxies, Audit: AuditConfig{WitnessFile: testWitness(dataDir(dir))}, Detect: DetectConfig{Off: true},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	if err := a.listen(ctx); err != nil {
		a.Close()
		t.Fatalf("listen: %v", err)
	}
	b := &blockApp{app: a, dir: dir, url: a.server.URL(), token: token}
	b.close = sync.OnceFunc(func() { a.Close() })
	t.Cleanup(b.close)
	return b
}

// call sends a request from source (X-Forwarded-For) with bearer token.
func (b *blockApp) call(t *testing.T, method, path, source, bearer string, form url.Values) (int, []byte) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.url+path, body)
	req.Header.Set("X-Forwarded-For", source)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

// backendClient registers a SMART backend client and returns a function
// that requests a token for it from source on the vault b (open now, or
// reopened): the status and the token.
func (b *blockApp) backendClient(t *testing.T, id string) func(b *blockApp, source string) (int, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Use: "sig"}}})
	c := &phivault.Client{ID: id, Name: id, Kind: phivault.ClientBackend, JWKS: set, Scopes: []string{"system/Patient.rs"}, Status: phivault.AccountActive, Created: time.Now()}
	if err := b.db.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	return func(b *blockApp, source string) (int, string) {
		t.Helper()
		n++
		assertion, err := jwt.Signed(sig).Claims(jwt.Claims{
			Issuer: id, Subject: id, Audience: jwt.Audience{b.url + "/oauth/token"},
			Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute)), ID: "jti-" + strings.Repeat("x", n),
		}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		status, body := b.call(t, "POST", "/oauth/token", source, "", url.Values{
			"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
		})
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(body, &tok)
		return status, tok.AccessToken
	}
}

func (b *blockApp) trail(t *testing.T) []*phivault.AuditEntry {
	t.Helper()
	return (&auditApp{app: b.app}).trail(t)
}

func hasEntry(entries []*phivault.AuditEntry, action, targetType, targetID, decision string) bool {
	for _, e := range entries {
		if e.Action == action && e.TargetType == targetType && e.TargetID == targetID && strings.Contains(e.Decision, decision) {
			return true
		}
	}
	return false
}

// TestRespond_blockSourceAndClient carries out block-source and
// block-client through vaultControls on a served vault and attacks them
// over HTTP: the blocked address is refused on a FHIR route and on the
// OAuth token route while another is served; the blocked client's token
// issued before is refused with 401 at once; the block survives a
// restart; undoing each lets the traffic through again.
func TestRespond_blockSourceAndClient(t *testing.T) {
	ctx := context.Background()
	b := mustBlockApp(t, "")
	const bad, good = "198.51.100.7", "198.51.100.8"
	token := b.backendClient(t, "lab")
	status, labToken := token(b, good)
	if status != 200 || labToken == "" {
		t.Fatalf("client_credentials = %d", status)
	}
	if status, body := b.call(t, "GET", "/fhir/Patient?_count=1", bad, labToken, nil); status != 200 {
		t.Fatalf("search before any block = %d %s", status, body)
	}
	c := b.controls()

	src := incident.Action{ID: "act-src", Kind: playbook.ActionBlockSource, Target: incident.Target{Sources: []string{bad, "2001:db8:7::/48"}}}
	if err := c.Do(ctx, src); err != nil {
		t.Fatalf("Do(block-source) = %v", err)
	}
	for _, tt := range []struct {
		method, path, source string
		want                 int
	}{
		{"GET", "/fhir/Patient?_count=1", bad, 403},
		{"GET", "/fhir/Patient?_count=1", "2001:db8:7::9", 403},
		{"GET", "/fhir/Patient?_count=1", good, 200},
		{"GET", "/fhir/Patient?_count=1", "203.0.113.1, " + bad, 403}, // the hop our proxy saw
		{"GET", "/fhir/Patient?_count=1", bad + ", " + good, 200},     // client-written: not the source
	} {
		if status, body := b.call(t, tt.method, tt.path, tt.source, labToken, nil); status != tt.want {
			t.Errorf("%s %s from %q = %d %s, want %d", tt.method, tt.path, tt.source, status, body, tt.want)
		} else if status == 403 && !bytes.Contains(body, []byte(`"OperationOutcome"`)) {
			t.Errorf("%s %s from %q: body %s, want an OperationOutcome", tt.method, tt.path, tt.source, body)
		}
	}
	if status, _ := token(b, bad); status != 403 {
		t.Errorf("token request from the blocked address = %d, want 403", status)
	}
	if status, tok := token(b, good); status != 200 || tok == "" {
		t.Errorf("token request from another address = %d, want 200", status)
	}
	if got := blockedMetric(t, b); got != 4 {
		t.Errorf("phivault_blocked_requests_total = %v, want 4", got)
	}
	if !hasEntry(b.trail(t), phivault.ActionIncident, "Block", "act-src", "block 198.51.100.7/32,2001:db8:7::/48 until undone") {
		t.Error("no audit entry of the block")
	}

	// Refused, with the reason, and nothing blocked.
	for _, tt := range []struct{ source, why string }{
		{"0.0.0.0/0", "every address"},
		{"::/0", "every address"},
		{"192.0.2.9", "trusted proxy"},
		{"127.0.0.1", "loopback"},
		{"not-an-address", "not an address"},
	} {
		err := c.Do(ctx, incident.Action{ID: "act-x", Kind: playbook.ActionBlockSource, Target: incident.Target{Sources: []string{"203.0.113.50", tt.source}}})
		if phivault.ErrorCode(err) != phivault.EINVALID || !strings.Contains(phivault.ErrorMessage(err), tt.why) {
			t.Errorf("block-source %s = %v, want EINVALID saying %q", tt.source, err, tt.why)
		}
	}
	if status, _ := b.call(t, "GET", "/fhir/Patient?_count=1", "203.0.113.50", labToken, nil); status != 200 {
		t.Errorf("a refused block-source blocked its other address: %d", status)
	}
	if err := c.Do(ctx, incident.Action{ID: "act-y", Kind: playbook.ActionBlockSource}); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Errorf("block-source without sources = %v, want EINVALID", err)
	}

	// block-client: the token issued before fails at once; no new one.
	// A person signed in through the client: refresh token included.
	person, err := b.signIn.Sessions().Start(phivault.Principal{ID: "u-nurse", Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}, Client: "lab"}, true)
	if err != nil {
		t.Fatal(err)
	}
	cl := incident.Action{ID: "act-cl", Kind: playbook.ActionBlockClient, Target: incident.Target{Client: "lab"}}
	if err := c.Do(ctx, cl); err != nil {
		t.Fatalf("Do(block-client) = %v", err)
	}
	if status, body := b.call(t, "GET", "/fhir/Patient?_count=1", good, labToken, nil); status != 401 {
		t.Errorf("the blocked client's earlier token = %d %s, want 401", status, body)
	}
	if status, tok := token(b, good); status == 200 || tok != "" {
		t.Errorf("token request of the blocked client = %d, want a refusal", status)
	}
	if status, _ := b.call(t, "GET", "/fhir/Patient?_count=1", good, person.AccessToken, nil); status != 401 {
		t.Errorf("a person's token issued through the blocked client = %d, want 401", status)
	}
	if status, body := b.call(t, "POST", "/oauth/token", good, "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {person.RefreshToken}, "client_id": {"lab"}}); status == 200 {
		t.Errorf("refresh through the blocked client = %d %s, want a refusal", status, body)
	}
	if _, err := b.signIn.Sessions().Refresh(person.RefreshToken); err == nil {
		t.Error("the refresh token of a session through the blocked client is still live")
	}
	if !hasEntry(b.trail(t), phivault.ActionAccountChange, "Client", "lab", "status active → suspended by incident response") {
		t.Error("no audit entry of the client's suspension")
	}
	if err := c.Do(ctx, incident.Action{ID: "act-z", Kind: playbook.ActionBlockClient, Target: incident.Target{Client: "nobody"}}); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Errorf("block-client of an unknown client = %v, want EINVALID", err)
	}
	if err := c.Undo(ctx, cl); err != nil {
		t.Fatalf("Undo(block-client) = %v", err)
	}
	status, labToken = token(b, good)
	if status != 200 || labToken == "" {
		t.Errorf("token request after undoing block-client = %d, want 200", status)
	}

	// The block survives a restart.
	dir := b.dir
	b.close()
	b = mustBlockApp(t, dir)
	c = b.controls()
	status, _ = token(b, bad)
	if status != 403 {
		t.Errorf("after a restart, token request from the blocked address = %d, want 403", status)
	}
	if err := c.Undo(ctx, src); err != nil {
		t.Fatalf("Undo(block-source) = %v", err)
	}
	if status, _ := token(b, bad); status != 200 {
		t.Errorf("after undoing block-source, token request = %d, want 200", status)
	}
	if !hasEntry(b.trail(t), phivault.ActionIncident, "Block", "act-src", "unblock by incident response") {
		t.Error("no audit entry of the unblock")
	}
}

// TestRespond_requireReenrolment clears an account's credentials through
// vaultControls on a real store: its session ends, the old password and
// TOTP code no longer sign in, and an admin can start a fresh TOTP
// enrolment the way a new account gets one.
func TestRespond_requireReenrolment(t *testing.T) {
	ctx := context.Background()
	b := mustBlockApp(t, "")
	hash, err := b.hasher.Hash("glacier-mint-oboe-47")
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("12345678901234567890")
	acc := &phivault.Account{ID: "acc-nurse", Username: "nurse1", Kind: phivault.PrincipalStaff, Roles: []string{"nurse"},
		Status: phivault.AccountActive, PasswordHash: hash, TOTPSecret: secret, WebAuthn: []byte(`[{"id":"x"}]`), Created: time.Now()}
	if err := b.accounts.CreateAccount(ctx, acc); err != nil {
		t.Fatal(err)
	}
	login := func() error {
		auth := identity.NewAuthenticator(b.accounts)
		auth.Hasher = b.hasher
		code, _ := identity.TOTP{}.Code(secret, identity.TOTP{}.Step(time.Now()))
		_, err := auth.Login(ctx, "nurse1", "glacier-mint-oboe-47", code)
		return err
	}
	is, err := b.signIn.Sessions().Start(phivault.Principal{ID: acc.ID, Kind: phivault.PrincipalStaff, Roles: acc.Roles}, true)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := b.call(t, "GET", "/fhir/Patient?_count=1", "198.51.100.8", is.AccessToken, nil); status == 401 {
		t.Fatal("the session token is refused before re-enrolment")
	}

	act := incident.Action{ID: "act-re", Kind: playbook.ActionRequireReenrolment, Target: incident.Target{User: acc.ID}}
	c := b.controls()
	if err := c.Do(ctx, act); err != nil {
		t.Fatalf("Do(require-reenrolment) = %v", err)
	}
	if status, _ := b.call(t, "GET", "/fhir/Patient?_count=1", "198.51.100.8", is.AccessToken, nil); status != 401 {
		t.Errorf("the account's earlier access token = %d, want 401", status)
	}
	if _, err := b.signIn.Sessions().Refresh(is.RefreshToken); err == nil {
		t.Error("the account's earlier refresh token still refreshes")
	}
	if err := login(); err == nil || phivault.ErrorCode(err) != phivault.EUNAUTHORIZED {
		t.Errorf("login with the old password and TOTP = %v, want EUNAUTHORIZED", err)
	}
	got, err := b.accounts.AccountByID(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PasswordHash != "" || got.TOTPSecret != nil || got.WebAuthn != nil || got.Status != phivault.AccountActive {
		t.Errorf("account after re-enrolment: password %t, totp %t, passkeys %t, status %s; want none, none, none, active",
			got.PasswordHash != "", got.TOTPSecret != nil, got.WebAuthn != nil, got.Status)
	}
	if !hasEntry(b.trail(t), phivault.ActionAccountChange, "Account", acc.ID, "credentials cleared") {
		t.Error("no audit entry of the change")
	}
	// Again: nothing more to clear, no error.
	if err := c.Do(ctx, act); err != nil {
		t.Errorf("Do(require-reenrolment) again = %v", err)
	}
	// A fresh enrolment, the way a new account gets one.
	req, _ := http.NewRequest("POST", b.url+"/fhir/admin/users/"+acc.ID+"/totp", nil)
	req.Header.Set("Authorization", "Bearer "+b.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Contains(body, []byte("otpauth://")) {
		t.Errorf("TOTP enrolment after re-enrolment = %d %s, want 200 with an otpauth URI", res.StatusCode, body)
	}
	if err := c.Undo(ctx, act); phivault.ErrorCode(err) != phivault.EUNSUPPORTED {
		t.Errorf("Undo(require-reenrolment) = %v, want EUNSUPPORTED", err)
	}
	if playbook.Undoable(playbook.ActionRequireReenrolment) || !playbook.Undoable(playbook.ActionBlockSource) || !playbook.Undoable(playbook.ActionBlockClient) {
		t.Error("playbook undo flags: require-reenrolment must not be undoable, the blocks must")
	}
	if err := c.Do(ctx, incident.Action{ID: "act-o", Kind: playbook.ActionRequireReenrolment, Target: incident.Target{User: "system:ehr/alice"}}); phivault.ErrorCode(err) != phivault.EUNSUPPORTED {
		t.Errorf("require-reenrolment of another system's user = %v, want EUNSUPPORTED", err)
	}
}

// blockedMetric returns phivault_blocked_requests_total from b's registry.
func blockedMetric(t *testing.T, b *blockApp) float64 {
	t.Helper()
	families, err := b.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "phivault_blocked_requests_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("phivault_blocked_requests_total is not registered")
	return 0
}
