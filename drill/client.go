package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
)

// origin is the server's origin: the base URL without /fhir.
func (t *Target) origin() string { return strings.TrimSuffix(strings.TrimSuffix(t.Base, "/"), "/fhir") }

// do sends a request with a bearer token to the origin-relative path and
// returns the status and up to 1 MiB of the body. Bodies are read and
// dropped by callers: a drill keeps no record content.
func (t *Target) do(ctx context.Context, token, method, path string, body any, header ...string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.origin()+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := t.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, strings.SplitN(path, "?", 2)[0], err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, b, err
}

// officer sends a request as the drill's officer and decodes a 2xx JSON
// answer into out (if not nil).
func (t *Target) officer(ctx context.Context, method, path string, body, out any, header ...string) (int, error) {
	status, b, err := t.do(ctx, t.Token, method, path, body, header...)
	if err != nil {
		return status, err
	}
	if status < 200 || status > 299 {
		return status, fmt.Errorf("%s %s = %d", method, strings.SplitN(path, "?", 2)[0], status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return status, fmt.Errorf("%s %s: read the answer: %w", method, strings.SplitN(path, "?", 2)[0], err)
		}
	}
	return status, nil
}

// session is a drill account signed in: its tokens.
type session struct {
	conf  *oauth2.Config
	token *oauth2.Token
}

var (
	pendingField = regexp.MustCompile(`name="pending" value="([^"]+)"`)
	csrfField    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// signIn runs the SMART authorization code flow with PKCE as a browser and
// an app would: the authorize page, the login form (password and TOTP
// code), the code exchange. A refused login is an error saying so.
func (t *Target) signIn(ctx context.Context, a Account, scope string) (*session, error) {
	return t.signInFrom(ctx, a, scope, "")
}

// signInFrom is signIn from another address: every request of the flow
// carries X-Forwarded-For: from, which a server reads only from a proxy it
// trusts (a throw-away vault trusts loopback).
func (t *Target) signInFrom(ctx context.Context, a Account, scope, from string) (*session, error) {
	origin := t.origin()
	transport := t.HTTP.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	if from != "" {
		transport = forwardedFor{next: transport, addr: from}
	}
	viaClient := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	conf := &oauth2.Config{
		ClientID:    t.App,
		Endpoint:    oauth2.Endpoint{AuthURL: origin + "/oauth/authorize", TokenURL: origin + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: t.Redirect,
		Scopes:      strings.Fields(scope),
	}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Transport: transport, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		conf.AuthCodeURL("drill", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", t.Base)), nil)
	if err != nil {
		return nil, err
	}
	res, err := browser.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	page, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	pending, csrf := pendingField.FindSubmatch(page), csrfField.FindSubmatch(page)
	if res.StatusCode != http.StatusOK || pending == nil || csrf == nil {
		return nil, fmt.Errorf("authorize = %d without a login form (is %s a public client of the server?)", res.StatusCode, t.App)
	}
	code := ""
	if a.TOTP != "" {
		at, err := t.steps.next(ctx, a.Username)
		if err != nil {
			return nil, err
		}
		if code, err = totp.GenerateCode(a.TOTP, at); err != nil {
			return nil, fmt.Errorf("TOTP of %s: %w", a.Username, err)
		}
	}
	form := url.Values{"pending": {string(pending[1])}, "csrf": {string(csrf[1])},
		"username": {a.Username}, "password": {a.Password}, "totp": {code}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, origin+"/oauth/login", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res, err = browser.Do(req); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	res.Body.Close()
	loc, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
		return nil, &signInRefused{username: a.Username, status: res.StatusCode}
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, viaClient), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("code exchange for %s refused", a.Username)
	}
	return &session{conf: conf, token: tok}, nil
}

// forwardedFor adds X-Forwarded-For to every request.
type forwardedFor struct {
	next http.RoundTripper
	addr string
}

func (f forwardedFor) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Forwarded-For", f.addr)
	return f.next.RoundTrip(req)
}

// totpPeriod is the TOTP step (RFC 6238's default, as the server's).
const totpPeriod = 30

// totpSteps remembers the last TOTP step each drill account signed in
// with: the server takes one step of skew either way, and each step once
// per account, so a drill picks the earliest step not yet used, and waits
// for the next step when all three are. Safe for concurrent use.
type totpSteps struct {
	mu   sync.Mutex
	last map[string]int64
}

// next returns a time whose TOTP step the account has not used yet.
func (s *totpSteps) next(ctx context.Context, username string) (time.Time, error) {
	for {
		now := time.Now()
		cur := now.Unix() / totpPeriod
		first := cur - 1
		if (cur+1)*totpPeriod-now.Unix() < 3 {
			first = cur // the server may be in the next step by the time it checks
		}
		s.mu.Lock()
		if s.last == nil {
			s.last = map[string]int64{}
		}
		for step := first; step <= cur+1; step++ {
			if step > s.last[username] {
				s.last[username] = step
				s.mu.Unlock()
				return time.Unix(step*totpPeriod, 0), nil
			}
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(time.Until(time.Unix((cur+1)*totpPeriod, 0)) + 100*time.Millisecond):
		}
	}
}

// signInRefused is a login the server did not accept.
type signInRefused struct {
	username string
	status   int
}

func (e *signInRefused) Error() string {
	return fmt.Sprintf("sign-in of %s refused (%d)", e.username, e.status)
}

// refresh exchanges s's refresh token for a new access token, as an app on
// the device would; an error means the server refused it.
func (t *Target) refresh(ctx context.Context, s *session) error {
	if s.token.RefreshToken == "" {
		return fmt.Errorf("no refresh token was issued")
	}
	old := &oauth2.Token{RefreshToken: s.token.RefreshToken, Expiry: time.Unix(1, 0)} // expired: force a refresh
	tok, err := s.conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, t.HTTP), old).Token()
	if err != nil {
		return fmt.Errorf("refresh refused")
	}
	s.token = tok
	return nil
}

// refused reports whether the server now refuses token (401).
func (t *Target) refused(ctx context.Context, token string) (bool, error) {
	status, _, err := t.do(ctx, token, http.MethodGet, "/fhir/Patient?_count=1", nil)
	return status == http.StatusUnauthorized, err
}

// accountID returns the account id of a username (admin API).
func (t *Target) accountID(ctx context.Context, username string) (string, error) {
	var list struct {
		Users []struct {
			ID       string `json:"id"`
			Username string `json:"username"`
			Status   string `json:"status"`
		} `json:"users"`
	}
	if _, err := t.officer(ctx, http.MethodGet, "/fhir/admin/users?username="+url.QueryEscape(username), nil, &list); err != nil {
		return "", err
	}
	for _, u := range list.Users {
		if u.Username == username {
			return u.ID, nil
		}
	}
	return "", fmt.Errorf("no account %s on the server", username)
}

// setStatus sets an account's status through the admin API, as an officer
// would.
func (t *Target) setStatus(ctx context.Context, id, status string) error {
	_, err := t.officer(ctx, http.MethodPatch, "/fhir/admin/users/"+url.PathEscape(id), map[string]string{"status": status}, nil)
	return err
}
