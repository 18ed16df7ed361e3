package oauth

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/phivault/phivault"
)

// busyRetryAfter is the Retry-After, in seconds, of a login refused
// because the password hashing pool is full.
const busyRetryAfter = 5

// authCode is an issued authorization code, stored by hash.
type authCode struct {
	clientID    string
	redirectURI string
	challenge   string
	principal   phivault.Principal // SessionID set on redemption
	refresh     bool
	expires     time.Time
	used        bool
	sessionID   string // the session issued from it, once redeemed
	reuseSeen   bool   // a second use came while the first was being redeemed
}

// serveLogin answers POST /oauth/login: password and TOTP. A password
// alone never completes a login, whatever the Authenticator allows.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		writePage(w, http.StatusBadRequest, "The sign-in form could not be read.")
		return
	}
	p := s.openPending(r.PostFormValue("pending"))
	if p == nil {
		writePage(w, http.StatusBadRequest, "This sign-in request has expired or is unknown. Start again from the app.")
		return
	}
	if !checkCSRF(r, p) {
		writePage(w, http.StatusForbidden, "The sign-in form was not submitted from this browser's sign-in page. Start again from the app.")
		return
	}
	acc, err := s.opts.Login.Login(r.Context(), r.PostFormValue("username"), r.PostFormValue("password"), r.PostFormValue("totp"))
	if err == nil && len(acc.TOTPSecret) == 0 {
		err = phivault.Errorf(phivault.EFORBIDDEN, "A second factor must be enrolled first.")
	}
	if err != nil {
		code := phivault.ErrorCode(err)
		if code == phivault.EUNAVAILABLE {
			// The password hashing pool is full (identity.ErrBusy): the
			// credentials were not checked and the attempt is not counted.
			_ = s.audit(r, phivault.ActionLogin, "", p.clientID, code, "deny: sign-in busy")
			w.Header().Set("Retry-After", strconv.Itoa(busyRetryAfter))
			writePage(w, http.StatusServiceUnavailable, phivault.ErrorMessage(err))
			return
		}
		if code != phivault.EUNAUTHORIZED && code != phivault.EFORBIDDEN {
			s.opts.Logger.Error("oauth: login", "error", err.Error())
			writePage(w, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again later.")
			return
		}
		// The audit trail names the account if the username is one, never
		// the submitted username or password.
		actor := ""
		var named interface{ AccountID() string }
		if acc != nil {
			actor = acc.ID // logged in, but without a second factor
		} else if errors.As(err, &named) {
			actor = named.AccountID()
		}
		if err := s.audit(r, phivault.ActionLogin, actor, p.clientID, code, ""); err != nil {
			writePage(w, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again later.")
			return
		}
		if s.countFailure(p) {
			s.redirectError(w, r, p, "access_denied", "Too many failed sign-in attempts.")
			return
		}
		s.renderLogin(w, http.StatusUnauthorized, p, phivault.ErrorMessage(err))
		return
	}
	s.Complete(w, r, p.token, &phivault.Authentication{Account: acc, Time: s.opts.Now(), Methods: []string{"pwd", "otp"}})
}

// countFailure records a failed login on p and reports whether p is used
// up, in which case its token no longer opens.
func (s *Server) countFailure(p *pending) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.loginStateLocked(p)
	if st == nil {
		return false // table full; the account's own lockout still counts
	}
	st.attempts++
	if st.attempts >= maxLoginAttempts {
		st.spent = true
	}
	return st.spent
}

// redirectError sends the browser back to p's app with an error.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, p *pending, code, desc string) {
	http.Redirect(w, r, withParams(p.redirectURI, "error", code, "error_description", desc, "state", p.state, "iss", s.issuer(r)), http.StatusSeeOther)
}

// Complete finishes the pending authorization pendingToken for a person who
// logged in as a, by any method: it records the login in the audit log,
// issues a single-use authorization code (valid CodeTTL, bound to the
// client, redirect URI, PKCE challenge, principal and granted scopes) and
// redirects the browser back to the app. Every answer is written to w.
//
// Login handlers (password, passkey, federation) call it after their own
// ceremony succeeded; they record their own failures, Complete records the
// success. It refuses, redirecting with access_denied, an Authentication
// with fewer than two distinct methods (no MFA) or an account that is not
// active; an unknown, expired or used-up pendingToken gets a plain error page.
func (s *Server) Complete(w http.ResponseWriter, r *http.Request, pendingToken string, a *phivault.Authentication) {
	p := s.takePending(pendingToken)
	if p == nil {
		writePage(w, http.StatusBadRequest, "This sign-in request has expired or is unknown. Start again from the app.")
		return
	}
	if a == nil || a.Account == nil {
		s.redirectError(w, r, p, "access_denied", "The sign-in did not complete.")
		return
	}
	acc := a.Account
	if acc.Status != phivault.AccountActive || len(distinct(a.Methods)) < 2 {
		outcome, why := phivault.EFORBIDDEN, "deny: account not active"
		if acc.Status == phivault.AccountActive {
			why = "deny: second factor missing"
		}
		if err := s.audit(r, phivault.ActionLogin, acc.ID, p.clientID, outcome, why); err != nil {
			writePage(w, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again later.")
			return
		}
		s.redirectError(w, r, p, "access_denied", "The account cannot sign in with this method.")
		return
	}
	c, err := s.activeClient(r.Context(), p.clientID, phivault.ClientPublic)
	if err != nil {
		s.redirectError(w, r, p, "unauthorized_client", "The app is no longer registered or is suspended.")
		return
	}
	kind := acc.Kind
	if kind == "" {
		kind = phivault.PrincipalStaff
	}
	scopes := grant(p.scopes, c.Scopes, kind)
	if !hasResourceScope(scopes) {
		if err := s.audit(r, phivault.ActionLogin, acc.ID, c.ID, phivault.EFORBIDDEN, "deny: no requested scope may be granted"); err != nil {
			writePage(w, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again later.")
			return
		}
		s.redirectError(w, r, p, "invalid_scope", "None of the requested scopes may be granted to this account and app.")
		return
	}
	if err := s.audit(r, phivault.ActionLogin, acc.ID, c.ID, "ok", ""); err != nil {
		writePage(w, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again later.")
		return
	}
	code, h, err := s.sessions.newToken()
	if err != nil {
		s.opts.Logger.Error("oauth: code", "error", err.Error())
		writePage(w, http.StatusServiceUnavailable, "The sign-in service is unavailable. Try again later.")
		return
	}
	ac := &authCode{
		clientID:    c.ID,
		redirectURI: p.redirectURI,
		challenge:   p.challenge,
		principal:   principalFor(acc, kind, a, c.ID, scopes),
		refresh:     true,
		expires:     s.opts.Now().Add(s.opts.CodeTTL),
	}
	s.mu.Lock()
	s.sweepCodesLocked()
	s.codes[h] = ac
	s.mu.Unlock()
	http.Redirect(w, r, withParams(p.redirectURI, "code", code, "state", p.state, "iss", s.issuer(r)), http.StatusSeeOther)
}

// principalFor builds the principal of a person's session.
func principalFor(acc *phivault.Account, kind string, a *phivault.Authentication, clientID string, scopes []string) phivault.Principal {
	at := a.Time
	if at.IsZero() {
		at = time.Now()
	}
	return phivault.Principal{
		ID:                 acc.ID,
		Kind:               kind,
		Roles:              slices.Clone(acc.Roles),
		Department:         acc.Department,
		Organization:       acc.Organization,
		PractitionerID:     acc.PractitionerID,
		PatientID:          acc.PatientID,
		Clearances:         slices.Clone(acc.Clearances),
		TrainingValidUntil: acc.TrainingValidUntil,
		AuthTime:           at,
		Methods:            distinct(a.Methods),
		SMART:              true,
		Scopes:             scopes,
		Client:             clientID,
	}
}

// distinct returns the distinct non-empty values of s, in order.
func distinct(s []string) []string {
	var out []string
	for _, v := range s {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// hasResourceScope reports whether scopes hold a resource scope.
func hasResourceScope(scopes []string) bool {
	for _, s := range scopes {
		if slices.Contains(grantable, s) {
			continue
		}
		return true
	}
	return false
}

// sweepCodesLocked drops codes past their retention, at most once every
// sweepEvery.
func (s *Server) sweepCodesLocked() {
	now := s.opts.Now()
	if now.Before(s.nextCodeSweep) {
		return
	}
	s.nextCodeSweep = now.Add(sweepEvery)
	for h, c := range s.codes {
		if now.After(c.expires.Add(usedCodeRetention)) {
			delete(s.codes, h)
		}
	}
}
