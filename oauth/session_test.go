package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/oauth"
)

// refresh posts a refresh_token grant.
func (e *env) refresh(tok string) (int, map[string]any) {
	e.t.Helper()
	return e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "client_id": {e.public.ID}})
}

func TestRefresh_rotation(t *testing.T) {
	e := newEnv(t)
	tok := e.login("drhouse", "user/*.rs")
	status, m := e.refresh(tok.RefreshToken)
	if status != 200 {
		t.Fatalf("refresh = %d %v", status, m)
	}
	access2, _ := m["access_token"].(string)
	refresh2, _ := m["refresh_token"].(string)
	if refresh2 == "" || refresh2 == tok.RefreshToken || access2 == tok.AccessToken {
		t.Fatal("refresh did not issue new tokens")
	}
	if m["scope"] != "user/*.rs" {
		t.Errorf("scope after refresh = %v", m["scope"])
	}
	if got := e.read(access2); got != http.StatusOK {
		t.Fatalf("read with the refreshed token = %d, want 200", got)
	}
	if got := e.audit.last(t, phivault.ActionTokenIssue); got.Decision != "refresh_token" || got.Outcome != "ok" {
		t.Errorf("refresh audit %+v", got)
	}

	// The replaced refresh token used again: theft. The whole session ends.
	status, m = e.refresh(tok.RefreshToken)
	wantError(t, status, m, 400, "invalid_grant")
	for _, at := range []string{tok.AccessToken, access2} {
		if got := e.read(at); got != http.StatusUnauthorized {
			t.Errorf("read after refresh token reuse = %d, want 401", got)
		}
	}
	status, m = e.refresh(refresh2)
	wantError(t, status, m, 400, "invalid_grant")
	if got := e.audit.last(t, phivault.ActionTokenRevoke); got.Actor != e.staff.ID {
		t.Errorf("reuse revoke audit %+v", got)
	}
}

func TestRefresh_otherClient(t *testing.T) {
	e := newEnv(t)
	tok := e.login("drhouse", "user/*.rs")
	status, m := e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"another-app"}})
	wantError(t, status, m, 400, "invalid_grant")
	status, m = e.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {e.public.ID}, "scope": {"user/*.cruds"}})
	wantError(t, status, m, 400, "invalid_scope")
}

func TestRefresh_suspendedAccount(t *testing.T) {
	e := newEnv(t)
	tok := e.login("drhouse", "user/*.rs")
	e.setStatus(e.staff.ID, phivault.AccountSuspended)
	status, m := e.refresh(tok.RefreshToken)
	wantError(t, status, m, 400, "invalid_grant")
	if got := e.read(tok.AccessToken); got != http.StatusUnauthorized {
		t.Errorf("read after a refused refresh of a suspended account = %d, want 401", got)
	}
}

func TestSession_accessTokenExpiry(t *testing.T) {
	e := newEnv(t)
	tok := e.login("drhouse", "user/*.rs")
	e.clock.Advance(oauth.DefaultAccessTokenTTL - time.Second)
	if got := e.read(tok.AccessToken); got != http.StatusOK {
		t.Fatalf("read just before expiry = %d, want 200", got)
	}
	e.clock.Advance(time.Second)
	if got := e.read(tok.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("read at expiry = %d, want 401", got)
	}
	if status, m := e.refresh(tok.RefreshToken); status != 200 {
		t.Fatalf("refresh after the access token expired = %d %v, want 200", status, m)
	}
}

func TestSession_idleTimeout(t *testing.T) {
	e := newEnv(t)
	tok := e.login("drhouse", "user/*.rs")
	// Use within the idle timeout keeps the session alive.
	e.clock.Advance(10 * time.Minute)
	if got := e.read(tok.AccessToken); got != http.StatusOK {
		t.Fatalf("read after 10 min = %d", got)
	}
	e.clock.Advance(oauth.DefaultIdleTimeout - time.Second)
	status, m := e.refresh(tok.RefreshToken)
	if status != 200 {
		t.Fatalf("refresh within the idle timeout = %d %v, want 200", status, m)
	}
	refresh2 := m["refresh_token"].(string)
	e.clock.Advance(oauth.DefaultIdleTimeout)
	status, m = e.refresh(refresh2)
	wantError(t, status, m, 400, "invalid_grant")
}

func TestSession_idleTimeoutOnAccess(t *testing.T) {
	e := newEnv(t)
	e.srv.Sessions().AccessTokenTTL = time.Hour // longer than idle, to see idle alone
	tok := e.login("drhouse", "user/*.rs")
	e.clock.Advance(oauth.DefaultIdleTimeout)
	if got := e.read(tok.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("read after the idle timeout = %d, want 401", got)
	}
}

func TestSession_absoluteLifetime(t *testing.T) {
	e := newEnv(t)
	tok := e.login("drhouse", "user/*.rs")
	start := e.clock.Now()
	rt, at := tok.RefreshToken, tok.AccessToken
	for e.clock.Now().Sub(start) < oauth.DefaultSessionLifetime-20*time.Minute {
		e.clock.Advance(14 * time.Minute)
		if got := e.read(at); got != http.StatusOK {
			t.Fatalf("read at %v = %d, want 200", e.clock.Now().Sub(start), got)
		}
		status, m := e.refresh(rt)
		if status != 200 {
			t.Fatalf("refresh at %v = %d %v", e.clock.Now().Sub(start), status, m)
		}
		rt, at = m["refresh_token"].(string), m["access_token"].(string)
		if exp := m["expires_in"].(float64); time.Duration(exp)*time.Second > oauth.DefaultSessionLifetime-e.clock.Now().Sub(start) {
			t.Fatalf("expires_in %v outlives the session", exp)
		}
	}
	e.clock.Advance(oauth.DefaultSessionLifetime - e.clock.Now().Sub(start))
	if got := e.read(at); got != http.StatusUnauthorized {
		t.Errorf("read at the absolute lifetime = %d, want 401", got)
	}
	status, m := e.refresh(rt)
	wantError(t, status, m, 400, "invalid_grant")
}

func TestRevoke_nextRequest(t *testing.T) {
	e := newEnv(t)
	t.Run("access token", func(t *testing.T) {
		tok := e.login("drhouse", "user/*.rs")
		if status, m := e.post("/oauth/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {e.public.ID}}); status != 200 {
			t.Fatalf("revoke = %d %v", status, m)
		}
		if got := e.read(tok.AccessToken); got != http.StatusUnauthorized {
			t.Errorf("read after revoking = %d, want 401", got)
		}
		// The session lives on: the refresh token still works.
		if status, m := e.refresh(tok.RefreshToken); status != 200 {
			t.Errorf("refresh after revoking the access token = %d %v", status, m)
		}
	})
	t.Run("refresh token", func(t *testing.T) {
		tok := e.login("drhouse", "user/*.rs")
		if status, m := e.post("/oauth/revoke", url.Values{"token": {tok.RefreshToken}, "client_id": {e.public.ID}}); status != 200 {
			t.Fatalf("revoke = %d %v", status, m)
		}
		if got := e.read(tok.AccessToken); got != http.StatusUnauthorized {
			t.Errorf("read after revoking the refresh token = %d, want 401", got)
		}
	})
	t.Run("other client", func(t *testing.T) {
		tok := e.login("drhouse", "user/*.rs")
		other := *e.public
		other.ID = "app-2"
		if err := e.db.CreateClient(t.Context(), &other); err != nil {
			t.Fatal(err)
		}
		status, m := e.post("/oauth/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {"app-2"}})
		wantError(t, status, m, 400, "unauthorized_client")
		if got := e.read(tok.AccessToken); got != http.StatusOK {
			t.Errorf("read after another client's revocation attempt = %d, want 200", got)
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		if status, m := e.post("/oauth/revoke", url.Values{"token": {"nope"}, "client_id": {e.public.ID}}); status != 200 {
			t.Errorf("revoke unknown = %d %v, want 200", status, m)
		}
	})
}

func TestRevokeSubject(t *testing.T) {
	e := newEnv(t)
	a := e.login("drhouse", "user/*.rs")
	b := e.login("drhouse", "user/*.rs")
	p := e.login("pat", "patient/*.rs")
	var revoker phivault.SessionRevoker = e.srv
	if err := revoker.RevokeSubject(context.Background(), e.staff.ID); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{a.AccessToken, b.AccessToken} {
		if got := e.read(tok); got != http.StatusUnauthorized {
			t.Errorf("read after RevokeSubject = %d, want 401", got)
		}
	}
	status, m := e.refresh(a.RefreshToken)
	wantError(t, status, m, 400, "invalid_grant")
	if got := e.read(p.AccessToken); got != http.StatusOK {
		t.Errorf("another subject's read = %d, want 200", got)
	}
	// Revoking the app ends the sessions of people signed in through it.
	if err := revoker.RevokeSubject(context.Background(), e.public.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.read(p.AccessToken); got != http.StatusUnauthorized {
		t.Errorf("read after revoking the app = %d, want 401", got)
	}
}

func TestSessions_Authenticate(t *testing.T) {
	c := &clock{t: t0}
	s := oauth.NewSessions()
	s.Now = c.Now
	out, err := s.Start(phivault.Principal{ID: "acc-1", Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}, Client: "app"}, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := s.Authenticate(context.Background(), out.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	p := phivault.PrincipalFromContext(ctx)
	if p == nil || p.ID != "acc-1" || p.SessionID == "" || api.ActorFromContext(ctx) != "acc-1" {
		t.Fatalf("principal %+v, actor %q", p, api.ActorFromContext(ctx))
	}
	for _, bad := range []string{"", "x", out.RefreshToken, out.AccessToken + "x", string(make([]byte, 1000))} {
		if _, err := s.Authenticate(context.Background(), bad); phivault.ErrorCode(err) != phivault.EUNAUTHORIZED {
			t.Errorf("Authenticate(bad) = %v, want EUNAUTHORIZED", err)
		}
	}
	if !s.RevokeSession(p.SessionID) {
		t.Fatal("RevokeSession found no session")
	}
	if _, err := s.Authenticate(context.Background(), out.AccessToken); err == nil {
		t.Fatal("Authenticate after RevokeSession succeeded")
	}
}

func TestSessions_sweep(t *testing.T) {
	c := &clock{t: t0}
	s := oauth.NewSessions()
	s.Now = c.Now
	for range 3 {
		if _, err := s.Start(phivault.Principal{ID: "acc-1"}, true); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(oauth.DefaultIdleTimeout + time.Minute)
	if _, err := s.Start(phivault.Principal{ID: "acc-2"}, false); err != nil {
		t.Fatal(err)
	}
	if got := s.Active(); got != 1 {
		t.Errorf("Active() = %d after the idle sessions ended, want 1", got)
	}
}
