package federation

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Messages shown on refusal pages. They never include claims or tokens.
const (
	msgUnknownProvider = "This identity provider is not configured."
	msgPending         = "The sign-in request has expired or is unknown; start again from the app."
	msgUnavailable     = "The identity provider cannot be reached; try again later or sign in another way."
	msgTooLarge        = "This sign-in request is too large to pass through an identity provider; sign in another way, or ask the app's vendor to request fewer scopes."
)

// clientContext carries the HTTP client for go-oidc and oauth2.
func (h *Handler) clientContext(ctx context.Context) context.Context {
	ctx = oidc.ClientContext(ctx, h.o.HTTPClient)
	return context.WithValue(ctx, oauth2.HTTPClient, h.o.HTTPClient)
}

// start begins a login at the provider for a pending authorization.
func (h *Handler) start(w http.ResponseWriter, r *http.Request) {
	p := h.providers[r.PathValue("provider")]
	if p == nil {
		h.page(w, http.StatusNotFound, msgUnknownProvider)
		return
	}
	pending := r.URL.Query().Get("pending")
	if pending == "" || !h.o.ValidPending(pending) {
		h.page(w, http.StatusBadRequest, msgPending)
		return
	}
	_, _, conf, err := p.discover(h.clientContext(r.Context()), h.o.Now)
	if err != nil {
		h.o.Logger.Warn("federation discovery", "provider", p.Name, "error", err.Error())
		h.page(w, http.StatusBadGateway, msgUnavailable)
		return
	}
	var state, nonce, verifier string
	for _, v := range []*string{&state, &nonce, &verifier} {
		if *v, err = random(h.o.Rand, 32); err != nil {
			h.o.Logger.Error("federation", "error", err.Error())
			h.page(w, http.StatusInternalServerError, "Internal error.")
			return
		}
	}
	f := &flow{Provider: p.Name, Pending: pending, State: state, Nonce: nonce, Verifier: verifier}
	sealed, err := h.box.Seal(flowPurpose, f, h.o.Now().Add(h.o.StateTTL))
	if err != nil {
		h.o.Logger.Error("federation", "error", err.Error())
		h.page(w, http.StatusInternalServerError, "Internal error.")
		return
	}
	if len(sealed) > maxFlowCookie {
		h.o.Logger.Info("federated login refused", "provider", p.Name, "reason", "sealed flow too large for a cookie", "bytes", len(sealed))
		h.page(w, http.StatusBadRequest, msgTooLarge)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    sealed,
		Path:     "/",
		MaxAge:   int(h.o.StateTTL.Seconds()),
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	if len(p.MFAACR) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(p.MFAACR, " ")))
	}
	if p.MaxAge > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(int(p.MaxAge.Seconds()))))
	}
	http.Redirect(w, r, conf.AuthCodeURL(state, opts...), http.StatusFound)
}
