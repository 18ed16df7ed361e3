package federation

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/phivault/phivault"
	"golang.org/x/oauth2"
)

const (
	msgFlow      = "The sign-in has expired, was already used, or was started in another browser; start again from the app."
	msgRefused   = "The identity provider did not complete the sign-in."
	msgExchange  = "The identity provider did not accept the sign-in; start again."
	msgToken     = "The identity provider's answer could not be verified."
	msgExpired   = "The identity provider's answer has expired; start again."
	msgTooOld    = "The sign-in at the identity provider is too old; sign in there again."
	msgNoMFA     = "Your identity provider did not report multi-factor authentication, which this server requires. Sign in there with a second factor, or use another way to sign in."
	msgNoAccount = "No account here is linked to this identity. Ask your administrator to link it."
	msgInactive  = "The account is not active."
)

// idClaims are the ID token claims read beyond go-oidc's IDToken fields.
type idClaims struct {
	AMR      []string `json:"amr"`
	ACR      string   `json:"acr"`
	AuthTime int64    `json:"auth_time"`
	// For linking; see linkClaims.
	Email             string `json:"email"`
	EmailVerified     *bool  `json:"email_verified"`
	PreferredUsername string `json:"preferred_username"`
}

// callback finishes a login: takes the flow, exchanges the code, verifies
// the ID token, checks MFA, finds the account and completes the pending
// authorization.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	p := h.providers[r.PathValue("provider")]
	if p == nil {
		h.page(w, http.StatusNotFound, msgUnknownProvider)
		return
	}
	// The browser's flow ends here, whatever happens next. A copy of the
	// cookie replayed elsewhere gets no further: the provider redeems its
	// code once, and Complete completes the pending authorization once.
	var f *flow
	if c, err := r.Cookie(CookieName); err == nil {
		var sealed flow
		if _, err := h.box.Open(flowPurpose, c.Value, h.o.Now(), &sealed); err == nil {
			f = &sealed
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	if f == nil || f.Provider != p.Name || f.State == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		h.refuse(w, r, http.StatusBadRequest, "", "no flow for this browser, or state mismatch", msgFlow)
		return
	}
	if q.Get("error") != "" {
		h.refuse(w, r, http.StatusForbidden, "", "provider returned an error", msgRefused)
		return
	}
	ctx := h.clientContext(r.Context())
	oidcProvider, verifier, conf, err := p.discover(ctx, h.o.Now)
	if err != nil {
		h.o.Logger.Warn("federation discovery", "provider", p.Name, "error", err.Error())
		h.page(w, http.StatusBadGateway, msgUnavailable)
		return
	}
	token, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			h.refuse(w, r, http.StatusBadRequest, "", "code exchange refused: "+re.ErrorCode, msgExchange)
			return
		}
		h.o.Logger.Warn("federation exchange", "provider", p.Name, "error", err.Error())
		h.page(w, http.StatusBadGateway, msgUnavailable)
		return
	}
	rawID, _ := token.Extra("id_token").(string)
	if rawID == "" {
		h.refuse(w, r, http.StatusBadGateway, "", "no id_token in the token response", msgToken)
		return
	}
	idToken, err := verifier.Verify(ctx, rawID)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			h.refuse(w, r, http.StatusUnauthorized, "", "id token expired", msgExpired)
			return
		}
		h.refuse(w, r, http.StatusUnauthorized, "", "id token not valid", msgToken)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(f.Nonce)) != 1 {
		h.refuse(w, r, http.StatusUnauthorized, "", "nonce mismatch", msgToken)
		return
	}
	var claims idClaims
	if err := idToken.Claims(&claims); err != nil {
		h.refuse(w, r, http.StatusUnauthorized, "", "id token claims unreadable", msgToken)
		return
	}
	now := h.o.Now()
	authTime := now
	if claims.AuthTime > 0 {
		if t := time.Unix(claims.AuthTime, 0); t.Before(now) {
			authTime = t
		}
	}
	if p.MaxAge > 0 && (claims.AuthTime == 0 || now.Sub(authTime) > p.MaxAge) {
		h.refuse(w, r, http.StatusUnauthorized, "", "auth_time missing or older than max_age", msgTooOld)
		return
	}
	methods, ok := mfaMethods(&p.Provider, &claims)
	subject := idToken.Issuer + " " + idToken.Subject
	if !ok {
		h.refuse(w, r, http.StatusForbidden, "", "no multi-factor amr or acr", msgNoMFA)
		return
	}
	a, reason, err := h.account(ctx, p, subject, idToken.Subject, &claims, oidcProvider, token)
	if err != nil {
		h.o.Logger.Error("federation account", "provider", p.Name, "error", err.Error())
		h.page(w, http.StatusInternalServerError, "Internal error.")
		return
	}
	if a == nil {
		h.refuse(w, r, http.StatusForbidden, "", reason, msgNoAccount)
		return
	}
	if a.Status != phivault.AccountActive {
		h.refuse(w, r, http.StatusForbidden, a.ID, "account not active", msgInactive)
		return
	}
	if !h.o.ValidPending(f.Pending) {
		h.refuse(w, r, http.StatusBadRequest, a.ID, "pending authorization gone", msgPending)
		return
	}
	h.o.Logger.Info("federated login", "provider", p.Name, "account", a.ID)
	h.o.Complete(w, r, f.Pending, &phivault.Authentication{Account: a, Time: authTime, Methods: methods})
}

// amrValue is the shape of amr values kept; others are dropped.
var amrValue = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,32}$`)

// mfaMethods returns the login's methods, "fed" and the provider's amr,
// and whether the ID token proves MFA by amr or acr.
func mfaMethods(p *Provider, c *idClaims) ([]string, bool) {
	methods := []string{"fed"}
	mfa := false
	for _, m := range c.AMR {
		if !amrValue.MatchString(m) || slices.Contains(methods, m) || len(methods) > 16 {
			continue
		}
		methods = append(methods, m)
		if slices.Contains(p.MFAMethods, m) {
			mfa = true
		}
	}
	if !mfa && c.ACR != "" && slices.Contains(p.MFAACR, c.ACR) {
		mfa = true
		if !slices.Contains(methods, "mfa") {
			methods = append(methods, "mfa")
		}
	}
	return methods, mfa
}
