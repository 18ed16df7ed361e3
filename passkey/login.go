package passkey

import (
	"context"
	"errors"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/phivault/phivault"
)

var (
	errPending = &phivault.Error{Code: phivault.EINVALID, Message: "The sign-in request has expired or is unknown; start again from the app."}
	errCloned  = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "The passkey was not accepted: it may have been copied. Use another way to sign in and register it again."}
)

// loginBeginRequest is the body of POST /oauth/passkey/login/begin.
type loginBeginRequest struct {
	Pending  string `json:"pending"`
	Username string `json:"username"`
}

// loginBegin starts a login ceremony for a pending authorization.
func (h *Handler) loginBegin(w http.ResponseWriter, r *http.Request) {
	var req loginBeginRequest
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, err)
		return
	}
	if req.Pending == "" || !h.o.ValidPending(req.Pending) {
		h.writeError(w, errPending)
		return
	}
	uv := webauthn.WithUserVerification(protocol.VerificationRequired)
	var (
		assertion *protocol.CredentialAssertion
		session   *webauthn.SessionData
		accountID string
		err       error
	)
	if u := h.namedUser(r.Context(), req.Username); u != nil {
		accountID = u.account.ID
		assertion, session, err = h.wa.BeginLogin(u, uv)
	} else {
		assertion, session, err = h.wa.BeginDiscoverableLogin(uv)
	}
	if err != nil {
		h.writeError(w, err)
		return
	}
	token, err := h.sealCeremony(purposeLogin, &ceremony{Session: *session, AccountID: accountID, Pending: req.Pending}, h.o.Now())
	if err != nil {
		h.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ceremony": token, "publicKey": assertion.Response})
}

// namedUser returns the active account named username if it has
// credentials, or nil, in which case the login is discoverable.
func (h *Handler) namedUser(ctx context.Context, username string) *user {
	if username == "" {
		return nil
	}
	a, err := h.o.Accounts.AccountByUsername(ctx, username)
	if err != nil {
		return nil
	}
	u, err := newUser(a)
	if err != nil || len(u.creds) == 0 {
		return nil
	}
	return u
}

// loginFinish verifies an assertion (a form post of fields ceremony and
// credential) and completes the pending authorization.
func (h *Handler) loginFinish(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		h.page(w, r, http.StatusBadRequest, "", "The sign-in form could not be read.")
		return
	}
	c, ok := h.openCeremony(purposeLogin, r.PostFormValue("ceremony"), h.o.Now())
	if !ok {
		h.failed(r, "", "login: unknown or expired ceremony")
		h.page(w, r, http.StatusBadRequest, "", errCeremony.Message)
		return
	}
	a, methods, err := h.verifyAssertion(r, c, []byte(r.PostFormValue("credential")))
	if err != nil {
		status := http.StatusUnauthorized
		switch code := phivault.ErrorCode(err); {
		case errors.Is(err, errTooManyLogins):
			h.retryAfter(w)
			status = http.StatusTooManyRequests
		case code == phivault.EINVALID:
			status = http.StatusBadRequest
		case code == phivault.EFORBIDDEN:
			status = http.StatusForbidden
		case code == phivault.EUNAUTHORIZED:
		default:
			h.o.Logger.Error("passkey login", "error", err.Error())
			status = http.StatusInternalServerError
		}
		h.page(w, r, status, c.Pending, phivault.ErrorMessage(err))
		return
	}
	if !h.o.ValidPending(c.Pending) {
		h.failed(r, a.ID, "login: pending authorization gone")
		h.page(w, r, http.StatusBadRequest, "", errPending.Message)
		return
	}
	h.o.Logger.Info("passkey login", "account", a.ID)
	h.o.Complete(w, r, c.Pending, &phivault.Authentication{Account: a, Time: h.o.Now(), Methods: methods})
}

// verifyAssertion checks the assertion against the ceremony, records the
// new signature counter, and returns the account and the amr methods.
func (h *Handler) verifyAssertion(r *http.Request, c *ceremony, body []byte) (*phivault.Account, []string, error) {
	ctx := r.Context()
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		h.failed(r, c.AccountID, "login: unreadable response")
		return nil, nil, errBadCredential
	}
	var (
		u    *user
		cred *webauthn.Credential
	)
	if c.AccountID != "" { // username first
		a, err := h.o.Accounts.AccountByID(ctx, c.AccountID)
		if err != nil {
			return nil, nil, err
		}
		if u, err = newUser(a); err != nil {
			return nil, nil, err
		}
		cred, err = h.wa.ValidateLogin(u, c.Session, parsed)
		if err != nil {
			h.failed(r, c.AccountID, "login: "+reason(err))
			return nil, nil, errNotAccepted
		}
	} else { // discoverable: the user handle names the account
		var lookupErr error
		found, validated, err := h.wa.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			a, err := h.o.Accounts.AccountByID(ctx, string(userHandle))
			if err != nil {
				if phivault.ErrorCode(err) != phivault.ENOTFOUND {
					lookupErr = err
				}
				return nil, errors.New("unknown user handle")
			}
			u, err := newUser(a)
			if err != nil {
				lookupErr = err
				return nil, err
			}
			return u, nil
		}, c.Session, parsed)
		if lookupErr != nil {
			return nil, nil, lookupErr
		}
		if err != nil {
			h.failed(r, "", "login: "+reason(err))
			return nil, nil, errNotAccepted
		}
		u, cred = found.(*user), validated
	}
	a := u.account
	// The assertion verified: its challenge is used from now on, before
	// anything is stored, so that a replay is refused as a replay and
	// never counted as a cloned authenticator.
	if err := h.used.use(a.ID, c.Session.Challenge, c.expires, h.o.Now()); err != nil {
		if errors.Is(err, errCeremony) {
			h.failed(r, a.ID, "login: challenge already answered")
		} else {
			h.failed(r, a.ID, "login: too many logins for the account")
		}
		return nil, nil, err
	}
	i := u.credential(cred.ID)
	switch {
	case i < 0: // go-webauthn found it, so this cannot happen
		return nil, nil, errNotAccepted
	case !parsed.Response.AuthenticatorData.Flags.HasUserVerified():
		h.failed(r, a.ID, "login: user not verified")
		return nil, nil, errNotAccepted
	case u.creds[i].Authenticator.CloneWarning:
		h.failed(r, a.ID, "login: credential marked as cloned")
		return nil, nil, errCloned
	case a.Status != phivault.AccountActive:
		h.failed(r, a.ID, "login: account not active")
		return nil, nil, errInactive
	}
	// Record the new counter and flags. The counter is checked again
	// against the stored one, so that two concurrent logins with the same
	// counter value cannot both succeed.
	var cloned bool
	a, err = h.saveAccount(ctx, a.ID, func(a *phivault.Account) error {
		u, err := newUser(a)
		if err != nil {
			return err
		}
		j := u.credential(cred.ID)
		if j < 0 {
			return errNotAccepted // removed meanwhile
		}
		stored := &u.creds[j]
		stored.Authenticator.UpdateCounter(parsed.Response.AuthenticatorData.Counter)
		cloned = stored.Authenticator.CloneWarning
		stored.Flags = cred.Flags
		a.WebAuthn, err = EncodeCredentials(u.creds)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if cloned {
		h.failed(r, a.ID, "login: signature counter went backwards")
		return nil, nil, errCloned
	}
	if a.Status != phivault.AccountActive {
		return nil, nil, errInactive
	}
	key := "hwk"
	if cred.Flags.BackupEligible {
		key = "swk" // a synced passkey is not bound to one device
	}
	return a, []string{key, "user", "mfa"}, nil
}
