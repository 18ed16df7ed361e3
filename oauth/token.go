package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"mime"
	"net/http"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/smart"
)

// Grant types.
const (
	grantCode              = "authorization_code"
	grantRefresh           = "refresh_token"
	grantClientCredentials = "client_credentials"
)

// tokenResponse is the RFC 6749 section 5.1 answer, with SMART's patient
// launch context.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Patient      string `json:"patient,omitempty"`
}

// parseForm reads an application/x-www-form-urlencoded POST body.
func parseForm(w http.ResponseWriter, r *http.Request) *oauthError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return errf("invalid_request", "The body must be application/x-www-form-urlencoded.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return errf("invalid_request", "The form could not be read.")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return errf("invalid_request", "Parameter "+safeName(k)+" is repeated.")
		}
	}
	return nil
}

// safeName returns a parameter name fit for an error message.
func safeName(k string) string {
	if len(k) > 40 || !isBase64URL(strings.ReplaceAll(k, "_", "")) {
		return "(unnamed)"
	}
	return k
}

// serveToken answers POST /oauth/token.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if e := parseForm(w, r); e != nil {
		writeError(w, e)
		return
	}
	var (
		res *tokenResponse
		e   *oauthError
	)
	switch gt := r.PostFormValue("grant_type"); gt {
	case grantCode:
		res, e = s.redeemCode(r)
	case grantRefresh:
		res, e = s.refresh(r)
	case grantClientCredentials:
		res, e = s.clientCredentials(r)
	case "":
		e = errf("invalid_request", "grant_type is required.")
	default:
		e = errf("unsupported_grant_type", "Supported: authorization_code, refresh_token, client_credentials.")
	}
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// issue starts a session for p, audits it and returns the response. If the
// audit append fails, the session is ended and nothing is returned.
func (s *Server) issue(r *http.Request, p phivault.Principal, refresh bool, decision string) (*tokenResponse, *oauthError) {
	out, err := s.sessions.Start(p, refresh)
	if err != nil {
		s.opts.Logger.Error("oauth: start session", "error", err.Error())
		return nil, errf("server_error", "The token could not be issued.")
	}
	return s.respond(r, out, decision)
}

// respond audits the issue of out and returns the token response.
func (s *Server) respond(r *http.Request, out *Issued, decision string) (*tokenResponse, *oauthError) {
	p := out.Principal
	if err := s.audit(r, phivault.ActionTokenIssue, p.ID, p.Client, "ok", decision); err != nil {
		s.sessions.RevokeSession(p.SessionID)
		return nil, errUnavailable
	}
	res := &tokenResponse{
		AccessToken:  out.AccessToken,
		TokenType:    "Bearer",
		ExpiresIn:    int64(out.ExpiresIn.Seconds()),
		Scope:        strings.Join(p.Scopes, " "),
		RefreshToken: out.RefreshToken,
	}
	if p.Kind == phivault.PrincipalPatient {
		res.Patient = p.PatientID
	}
	return res, nil
}

// refuse audits a refused token request and returns e. If the audit
// append fails, the caller gets temporarily_unavailable instead.
func (s *Server) refuse(r *http.Request, actor, client string, e *oauthError) *oauthError {
	if err := s.audit(r, phivault.ActionTokenIssue, actor, client, e.auditOutcome(), "deny: "+e.Code); err != nil {
		return errUnavailable
	}
	return e
}

// redeemCode handles grant_type=authorization_code with PKCE.
func (s *Server) redeemCode(r *http.Request) (*tokenResponse, *oauthError) {
	clientID := r.PostFormValue("client_id")
	if r.PostFormValue("client_assertion") != "" {
		return nil, errf("invalid_client", "Public clients authenticate with client_id and PKCE only.")
	}
	h, ok := hashToken(r.PostFormValue("code"))
	verifier := r.PostFormValue("code_verifier")
	if !ok || clientID == "" || verifier == "" {
		return nil, errf("invalid_request", "code, client_id, redirect_uri and code_verifier are required.")
	}
	s.mu.Lock()
	c := s.codes[h]
	var (
		ac      authCode
		reused  bool
		expired bool
	)
	if c != nil {
		reused = c.used
		if reused && c.sessionID == "" {
			c.reuseSeen = true // being redeemed right now: that redemption fails
		}
		expired = !s.opts.Now().Before(c.expires)
		c.used = true // a code is spent by any attempt, right or wrong
		ac = *c
	}
	s.mu.Unlock()
	switch {
	case c == nil:
		return nil, s.refuse(r, "", clientID, errf("invalid_grant", "The authorization code is unknown or expired."))
	case reused:
		// RFC 6749 section 4.1.2: revoke what the code gave.
		if ac.sessionID != "" && s.sessions.RevokeSession(ac.sessionID) {
			if err := s.audit(r, phivault.ActionTokenRevoke, ac.principal.ID, ac.clientID, "ok", "authorization code reused"); err != nil {
				return nil, errUnavailable
			}
		}
		return nil, s.refuse(r, ac.principal.ID, clientID, errf("invalid_grant", "The authorization code was already used."))
	case expired:
		return nil, s.refuse(r, ac.principal.ID, clientID, errf("invalid_grant", "The authorization code is unknown or expired."))
	case ac.clientID != clientID:
		return nil, s.refuse(r, ac.principal.ID, clientID, errf("invalid_grant", "The authorization code was issued to another client."))
	case ac.redirectURI != r.PostFormValue("redirect_uri"):
		return nil, s.refuse(r, ac.principal.ID, clientID, errf("invalid_grant", "redirect_uri does not match the authorization request."))
	case !checkPKCE(verifier, ac.challenge):
		return nil, s.refuse(r, ac.principal.ID, clientID, errf("invalid_grant", "The code_verifier does not match the code_challenge."))
	}
	if e := s.stillAllowed(r, &ac.principal); e != nil {
		return nil, s.refuse(r, ac.principal.ID, clientID, e)
	}
	out, err := s.sessions.Start(ac.principal, ac.refresh)
	if err != nil {
		s.opts.Logger.Error("oauth: start session", "error", err.Error())
		return nil, errf("server_error", "The token could not be issued.")
	}
	s.mu.Lock()
	c.sessionID = out.Principal.SessionID
	raced := c.reuseSeen
	s.mu.Unlock()
	if raced {
		s.sessions.RevokeSession(out.Principal.SessionID)
		return nil, s.refuse(r, ac.principal.ID, clientID, errf("invalid_grant", "The authorization code was already used."))
	}
	return s.respond(r, out, "authorization_code")
}

// checkPKCE reports whether verifier (RFC 7636 section 4.1) hashes to
// challenge under S256.
func checkPKCE(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !(isBase64URL(verifier[i:i+1]) || c == '.' || c == '~') {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// stillAllowed checks that the account (for a person) and the client are
// still active, so that suspension stops tokens even without revocation.
func (s *Server) stillAllowed(r *http.Request, p *phivault.Principal) *oauthError {
	ctx := r.Context()
	if p.Kind != phivault.PrincipalSystem {
		acc, err := s.opts.Accounts.AccountByID(ctx, p.ID)
		if phivault.ErrorCode(err) == phivault.ENOTFOUND || err == nil && acc.Status != phivault.AccountActive {
			return errf("invalid_grant", "The account is not active.")
		} else if err != nil {
			s.opts.Logger.Error("oauth: account lookup", "error", err.Error())
			return errf("temporarily_unavailable", "Try again later.")
		}
	}
	if p.Client != "" {
		c, err := s.opts.Clients.ClientByID(ctx, p.Client)
		if phivault.ErrorCode(err) == phivault.ENOTFOUND || err == nil && c.Status != phivault.AccountActive {
			return errf("invalid_grant", "The client is not active.")
		} else if err != nil {
			s.opts.Logger.Error("oauth: client lookup", "error", err.Error())
			return errf("temporarily_unavailable", "Try again later.")
		}
	}
	return nil
}

// refresh handles grant_type=refresh_token: the refresh token is replaced
// by a new one; a replaced one used again ends the session.
func (s *Server) refresh(r *http.Request) (*tokenResponse, *oauthError) {
	clientID := r.PostFormValue("client_id")
	tok := r.PostFormValue("refresh_token")
	if tok == "" || clientID == "" {
		return nil, errf("invalid_request", "refresh_token and client_id are required.")
	}
	p, err := s.sessions.RefreshPrincipal(tok)
	if err == ErrTokenReused {
		if err := s.audit(r, phivault.ActionTokenRevoke, p.ID, p.Client, "ok", "refresh token reused: session ended"); err != nil {
			return nil, errUnavailable
		}
		return nil, s.refuse(r, p.ID, clientID, errf("invalid_grant", "The refresh token was already used; the session has been ended."))
	} else if err != nil {
		return nil, s.refuse(r, "", clientID, errf("invalid_grant", "The refresh token is not valid."))
	}
	if p.Client != clientID {
		return nil, s.refuse(r, p.ID, clientID, errf("invalid_grant", "The refresh token was issued to another client."))
	}
	if sc := r.PostFormValue("scope"); sc != "" && !subset(strings.Fields(sc), p.Scopes) {
		return nil, s.refuse(r, p.ID, clientID, errf("invalid_scope", "A refresh cannot add scopes."))
	}
	if e := s.stillAllowed(r, p); e != nil {
		if e.Code == "invalid_grant" {
			s.sessions.RevokeSession(p.SessionID)
		}
		return nil, s.refuse(r, p.ID, clientID, e)
	}
	out, err := s.sessions.Refresh(tok)
	if err == ErrTokenReused {
		if err := s.audit(r, phivault.ActionTokenRevoke, p.ID, clientID, "ok", "refresh token reused: session ended"); err != nil {
			return nil, errUnavailable
		}
		return nil, s.refuse(r, p.ID, clientID, errf("invalid_grant", "The refresh token was already used; the session has been ended."))
	} else if err != nil {
		return nil, s.refuse(r, p.ID, clientID, errf("invalid_grant", "The refresh token is not valid."))
	}
	return s.respond(r, out, "refresh_token")
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// clientCredentials handles SMART Backend Services: client_credentials with
// a private_key_jwt client assertion.
func (s *Server) clientCredentials(r *http.Request) (*tokenResponse, *oauthError) {
	c, e := s.authenticateClient(r)
	if e != nil {
		return nil, s.refuse(r, "", "", e)
	}
	if c.Kind != phivault.ClientBackend {
		return nil, s.refuse(r, c.ID, c.ID, errf("unauthorized_client", "Only backend clients may use client_credentials."))
	}
	requested, err := smart.Parse(r.PostFormValue("scope"))
	if err != nil || len(requested) == 0 {
		return nil, s.refuse(r, c.ID, c.ID, errf("invalid_scope", "scope must be a list of valid SMART system/ scopes."))
	}
	scopes := grant(requested, c.Scopes, phivault.PrincipalSystem)
	if !hasResourceScope(scopes) {
		return nil, s.refuse(r, c.ID, c.ID, errf("invalid_scope", "None of the requested scopes may be granted to this client."))
	}
	p := phivault.Principal{
		ID:       c.ID,
		Kind:     phivault.PrincipalSystem,
		AuthTime: s.opts.Now(),
		SMART:    true,
		Scopes:   scopes,
		Client:   c.ID,
	}
	return s.issue(r, p, false, "client_credentials")
}
