package passkey

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/sealbox"
)

// Defaults for Options.
const (
	DefaultRPDisplayName = "phivault"
	DefaultCeremonyTTL   = 2 * time.Minute // how long a begun ceremony may be finished
	// DefaultMaxLoginsPerAccount bounds the passkey logins of one account
	// within DefaultCeremonyTTL: far more than a person makes, few enough
	// that the record of used challenges stays small.
	DefaultMaxLoginsPerAccount = 30
	DefaultFreshAuth           = 15 * time.Minute // how recent the full login must be to register a credential
	DefaultMaxCredentials      = 10               // credentials per account
	maxBody                    = 64 << 10
	updateAttempts             = 3 // optimistic-version retries when saving an account
)

// Options configure a Handler. Accounts, RPID, Origins, Authenticate,
// Complete and ValidPending are required.
type Options struct {
	Accounts phivault.AccountStore
	// RPID is the WebAuthn relying party id: the site's registrable domain
	// or host name, such as "vault.example.org".
	RPID string
	// RPDisplayName is shown by authenticators; default DefaultRPDisplayName.
	RPDisplayName string
	// Origins are the exact origins ceremonies may run at, such as
	// "https://vault.example.org". A response from any other origin fails.
	Origins []string

	// Authenticate checks a bearer token (for registration) and returns
	// ctx carrying the caller's principal (phivault.PrincipalFromContext).
	Authenticate func(ctx context.Context, bearerToken string) (context.Context, error)
	// Complete finishes the pending OAuth authorization for a successful
	// login: it issues the code and redirects back to the app.
	Complete func(w http.ResponseWriter, r *http.Request, pending string, a *phivault.Authentication)
	// ValidPending reports whether a pending authorization id exists.
	ValidPending func(pending string) bool
	// Failed, if set, is called for each refused login or registration
	// with the account id ("" if unknown) and a short reason without
	// secrets, so that it can be audited.
	Failed func(r *http.Request, accountID, reason string)
	// Registered, if set, is called after a credential was added to an
	// account, so that the change can be audited.
	Registered func(r *http.Request, accountID string)

	// CeremonyKey is the 32-byte key that seals begun ceremonies into the
	// ceremony tokens browsers hold. Default: a random key made at
	// NewHandler, so a restart ends the ceremonies in progress.
	CeremonyKey []byte
	// MaxLoginsPerAccount bounds the successful passkey logins of one
	// account within CeremonyTTL; more are refused (429) until they
	// expire. Default DefaultMaxLoginsPerAccount.
	MaxLoginsPerAccount int

	Now            func() time.Time // default time.Now
	Rand           io.Reader        // the default CeremonyKey and sealing nonces; default crypto/rand.Reader
	CeremonyTTL    time.Duration    // default DefaultCeremonyTTL
	FreshAuth      time.Duration    // default DefaultFreshAuth
	MaxCredentials int              // default DefaultMaxCredentials
	Logger         *slog.Logger     // default: discard
}

// LogValue logs the relying party settings only.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.String("rp_id", o.RPID), slog.Any("origins", o.Origins))
}

// Handler serves the passkey endpoints under /oauth/passkey/. Create it
// with NewHandler; it is safe for concurrent use.
type Handler struct {
	o    Options
	wa   *webauthn.WebAuthn
	box  *sealbox.Box    // seals ceremonies; see ceremony.go
	used *usedChallenges // login challenges answered; see ceremony.go
	mux  *http.ServeMux
}

// NewHandler checks o, fills in defaults and returns the handler.
func NewHandler(o Options) (*Handler, error) {
	if o.Accounts == nil || o.Authenticate == nil || o.Complete == nil || o.ValidPending == nil {
		return nil, errors.New("passkey: Accounts, Authenticate, Complete and ValidPending are required")
	}
	if o.RPDisplayName == "" {
		o.RPDisplayName = DefaultRPDisplayName
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.CeremonyTTL <= 0 {
		o.CeremonyTTL = DefaultCeremonyTTL
	}
	if o.MaxLoginsPerAccount <= 0 {
		o.MaxLoginsPerAccount = DefaultMaxLoginsPerAccount
	}
	if o.FreshAuth <= 0 {
		o.FreshAuth = DefaultFreshAuth
	}
	if o.MaxCredentials <= 0 {
		o.MaxCredentials = DefaultMaxCredentials
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          o.RPID,
		RPDisplayName: o.RPDisplayName,
		RPOrigins:     o.Origins,
		// Timeouts are enforced here with the injected clock (CeremonyTTL);
		// these only tell the browser how long to wait.
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: o.CeremonyTTL, TimeoutUVD: o.CeremonyTTL},
			Registration: webauthn.TimeoutConfig{Timeout: o.CeremonyTTL, TimeoutUVD: o.CeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	box, err := sealbox.New(o.CeremonyKey, o.Rand)
	if err != nil {
		return nil, fmt.Errorf("passkey: CeremonyKey: %w", err)
	}
	h := &Handler{o: o, wa: wa, box: box, used: newUsedChallenges(o.MaxLoginsPerAccount, o.CeremonyTTL)}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("POST /oauth/passkey/register/begin", h.registerBegin)
	h.mux.HandleFunc("POST /oauth/passkey/register/finish", h.registerFinish)
	h.mux.HandleFunc("GET /oauth/passkey/login", h.loginPage)
	h.mux.HandleFunc("GET /oauth/passkey/login.js", h.loginScript)
	h.mux.HandleFunc("POST /oauth/passkey/login/begin", h.loginBegin)
	h.mux.HandleFunc("POST /oauth/passkey/login/finish", h.loginFinish)
	return h, nil
}

// ServeHTTP serves the routes under /oauth/passkey/.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// failed reports a refused attempt to Options.Failed and the log.
func (h *Handler) failed(r *http.Request, accountID, reason string) {
	h.o.Logger.Info("passkey refused", "account", accountID, "reason", reason)
	if h.o.Failed != nil {
		h.o.Failed(r, accountID, reason)
	}
}

// oauthErrors maps error codes to an HTTP status and an RFC 6749 error.
var oauthErrors = map[string]struct {
	status int
	code   string
}{
	phivault.EINVALID:      {http.StatusBadRequest, "invalid_request"},
	phivault.ENOTFOUND:     {http.StatusBadRequest, "invalid_request"},
	phivault.ECONFLICT:     {http.StatusConflict, "invalid_request"},
	phivault.ETOOLARGE:     {http.StatusRequestEntityTooLarge, "invalid_request"},
	phivault.EUNAUTHORIZED: {http.StatusUnauthorized, "invalid_token"},
	phivault.EFORBIDDEN:    {http.StatusForbidden, "access_denied"},
	phivault.EUNAVAILABLE:  {http.StatusServiceUnavailable, "temporarily_unavailable"},
}

// writeError answers a JSON endpoint with an RFC 6749 style error whose
// description is the error's safe message. Internal errors are logged once
// and answered with "Internal error.".
func (h *Handler) writeError(w http.ResponseWriter, err error) {
	e, ok := oauthErrors[phivault.ErrorCode(err)]
	if !ok {
		h.o.Logger.Error("passkey", "error", err.Error())
		e.status, e.code = http.StatusInternalServerError, "server_error"
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="phivault", error="invalid_token"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": phivault.ErrorMessage(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// readJSON decodes a small JSON body into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return phivault.Errorf(phivault.ETOOLARGE, "The request body is too large.")
		}
		return phivault.Errorf(phivault.EINVALID, "The request body is not valid JSON.")
	}
	return nil
}

// readBody returns a small request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, phivault.Errorf(phivault.ETOOLARGE, "The request body is too large.")
		}
		return nil, phivault.Errorf(phivault.EINVALID, "The request body could not be read.")
	}
	return b, nil
}

// saveAccount applies change to the stored account and saves it, reloading
// and retrying when a concurrent update won. change may refuse by
// returning an error.
func (h *Handler) saveAccount(ctx context.Context, id string, change func(a *phivault.Account) error) (*phivault.Account, error) {
	for attempt := 0; ; attempt++ {
		a, err := h.o.Accounts.AccountByID(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := change(a); err != nil {
			return nil, err
		}
		a.Version++
		err = h.o.Accounts.UpdateAccount(ctx, a)
		if err == nil {
			return a, nil
		}
		if phivault.ErrorCode(err) != phivault.ECONFLICT || attempt+1 >= updateAttempts {
			return nil, err
		}
	}
}
