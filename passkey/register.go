package passkey

import (
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/phivault/phivault"
)

var (
	errNoToken        = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "Authentication required: send Authorization: Bearer <token>."}
	errNotPerson      = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "Only a person's account can register a passkey."}
	errNotFresh       = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "Log in again (with MFA) before registering a passkey."}
	errInactive       = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "The account is not active."}
	errTooMany        = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "The account has the most passkeys allowed; remove one first."}
	errCeremony       = &phivault.Error{Code: phivault.EINVALID, Message: "The passkey ceremony has expired or was already used; start again."}
	errBadCredential  = &phivault.Error{Code: phivault.EINVALID, Message: "The passkey response could not be read."}
	errNotAccepted    = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "The passkey was not accepted."}
	errAlreadyPresent = &phivault.Error{Code: phivault.ECONFLICT, Message: "This passkey is already registered."}
)

// account authenticates the request's bearer token and returns the
// account of its principal.
func (h *Handler) account(r *http.Request) (*phivault.Account, error) {
	token, ok := phivault.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		return nil, errNoToken
	}
	ctx, err := h.o.Authenticate(r.Context(), token)
	if err != nil {
		return nil, err
	}
	p := phivault.PrincipalFromContext(ctx)
	if p == nil || p.ID == "" || p.Kind == phivault.PrincipalSystem {
		return nil, errNotPerson
	}
	if p.AuthTime.IsZero() || h.o.Now().Sub(p.AuthTime) > h.o.FreshAuth {
		return nil, errNotFresh
	}
	a, err := h.o.Accounts.AccountByID(r.Context(), p.ID)
	if phivault.ErrorCode(err) == phivault.ENOTFOUND {
		return nil, errNotPerson
	} else if err != nil {
		return nil, err
	}
	if a.Status != phivault.AccountActive {
		return nil, errInactive
	}
	return a, nil
}

// registerBegin starts registering a credential for the caller's account.
func (h *Handler) registerBegin(w http.ResponseWriter, r *http.Request) {
	a, err := h.account(r)
	if err != nil {
		h.writeError(w, err)
		return
	}
	u, err := newUser(a)
	if err != nil {
		h.writeError(w, err)
		return
	}
	if len(u.creds) >= h.o.MaxCredentials {
		h.writeError(w, errTooMany)
		return
	}
	exclude := make([]protocol.CredentialDescriptor, len(u.creds))
	for i, c := range u.creds {
		exclude[i] = c.Descriptor()
	}
	creation, session, err := h.wa.BeginRegistration(u,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationRequired,
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(exclude),
	)
	if err != nil {
		h.writeError(w, err)
		return
	}
	token, err := h.sealCeremony(purposeRegister, &ceremony{Session: *session, AccountID: a.ID}, h.o.Now())
	if err != nil {
		h.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ceremony": token, "publicKey": creation.Response})
}

// registerFinish verifies the authenticator's response and stores the new
// credential.
func (h *Handler) registerFinish(w http.ResponseWriter, r *http.Request) {
	a, err := h.account(r)
	if err != nil {
		h.writeError(w, err)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		h.writeError(w, err)
		return
	}
	c, ok := h.openCeremony(purposeRegister, r.URL.Query().Get("ceremony"), h.o.Now())
	if !ok || c.AccountID != a.ID {
		h.failed(r, a.ID, "register: unknown or expired ceremony")
		h.writeError(w, errCeremony)
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		h.failed(r, a.ID, "register: unreadable response")
		h.writeError(w, errBadCredential)
		return
	}
	u, err := newUser(a)
	if err != nil {
		h.writeError(w, err)
		return
	}
	cred, err := h.wa.CreateCredential(u, c.Session, parsed)
	if err != nil {
		h.failed(r, a.ID, "register: "+reason(err))
		h.writeError(w, errNotAccepted)
		return
	}
	if !parsed.Response.AttestationObject.AuthData.Flags.HasUserVerified() {
		h.failed(r, a.ID, "register: user not verified")
		h.writeError(w, errNotAccepted)
		return
	}
	_, err = h.saveAccount(r.Context(), a.ID, func(a *phivault.Account) error {
		if a.Status != phivault.AccountActive {
			return errInactive
		}
		u, err := newUser(a)
		if err != nil {
			return err
		}
		if u.credential(cred.ID) >= 0 {
			return errAlreadyPresent
		}
		if len(u.creds) >= h.o.MaxCredentials {
			return errTooMany
		}
		a.WebAuthn, err = EncodeCredentials(append(u.creds, *cred))
		return err
	})
	if err != nil {
		h.writeError(w, err)
		return
	}
	h.o.Logger.Info("passkey registered", "account", a.ID)
	if h.o.Registered != nil {
		h.o.Registered(r, a.ID)
	}
	writeJSON(w, http.StatusCreated, map[string]string{"credential_id": base64.RawURLEncoding.EncodeToString(cred.ID)})
}

// reason returns a short, secret-free description of a go-webauthn error
// for logs and audit.
func reason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		return pe.Details
	}
	return "verification failed"
}
