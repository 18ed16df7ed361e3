// Package scim implements a SCIM 2.0 service provider (RFC 7643, RFC 7644)
// so that an identity provider can provision phivault's staff accounts.
//
// Routes, relative to where the handler is mounted (it expects paths that
// start with /scim/v2/):
//
//	GET    /scim/v2/Users                 list; filter (RFC 7644 §3.4.2.2), startIndex, count
//	POST   /scim/v2/Users                 create a staff account
//	GET    /scim/v2/Users/{id}            one account
//	PUT    /scim/v2/Users/{id}            replace its attributes
//	PATCH  /scim/v2/Users/{id}            add, replace, remove (active, roles, ...)
//	DELETE /scim/v2/Users/{id}            deprovision: the account is kept, disabled, for the audit trail
//	GET    /scim/v2/Groups[/{id}]         the fixed roles as groups; members are the accounts with the role
//	PATCH  /scim/v2/Groups/{id}           add or remove members (grant or withdraw the role)
//	PUT    /scim/v2/Groups/{id}           replace the members
//	GET    /scim/v2/ServiceProviderConfig, /ResourceTypes, /Schemas
//
// # Mapping
//
// userName is the username, externalId the account's ExternalID, active is
// status "active" (false suspends), roles[].value the account's roles, and
// the enterprise extension's department and organization the account's.
// Groups are the roles of [admin.DefaultRoles], with the role name as id
// and displayName. Suspension, deprovisioning and any change of roles,
// department or organization revoke every session and token of the
// account at once (phivault.SessionRevoker). Deprovisioned accounts are
// gone as far as SCIM is concerned (404), as RFC 7644 §3.6 requires after
// DELETE. Passwords may be set (never read back); TOTP and WebAuthn are
// enrolled through the admin API or the login flow.
//
// # Trust
//
// The SCIM client is the organisation's identity provider, its source of
// truth for who works there and in which role, with its own joiner,
// mover and leaver approvals. Its changes apply at once, roles included:
// SCIM creates a physician, or grants a role, without the second admin
// that the admin API's grants wait for (admin.GrantRoles). That trust
// is the SCIM token's alone: it is made with the data folder in hand
// ("phivault users scim-token") and given to the identity provider, not
// to a person, and the handler refuses every request that carries a
// principal, a security admin's or the bootstrap token's included. SCIM
// sets no clearances, practitioner links, patient accounts or second
// factors. Whoever administers the identity provider can therefore give
// an account a clinical role; keep those people apart from phivault's
// security admins, or do not enable SCIM.
//
// Every change is an audit entry with action account-change, target type
// Account and the account id, and no username or other personal data.
// Errors are SCIM error responses (application/scim+json) whose detail
// never echoes a submitted value.
package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/identity"
)

// SCIM schema and message URNs.
const (
	SchemaUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	SchemaList       = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	SchemaPatch      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	SchemaError      = "urn:ietf:params:scim:api:messages:2.0:Error"
)

// Defaults of a Handler.
const (
	DefaultCount = 100  // results per page when the request names no count
	MaxCount     = 1000 // most results per page
	maxBody      = 256 << 10
	retries      = 3 // optimistic-concurrency retries of one change
)

// MediaType is the SCIM media type (RFC 7644 §3.1).
const MediaType = "application/scim+json"

// Options configures a Handler.
type Options struct {
	// Authenticator checks the provisioning client's bearer token;
	// required, nil refuses every request. Only a request it authenticates
	// without a principal (the dedicated SCIM token) is served: a person
	// or another client, even a security admin or the bootstrap token, is
	// refused, because SCIM applies changes at once (see the package doc,
	// "Trust").
	Authenticator api.Authenticator
	Accounts      phivault.AccountStore   // required
	Audit         phivault.AuditLog       // required for changes; without it they answer 503
	Revoker       phivault.SessionRevoker // nil revokes nothing (no session server)
	Hasher        *identity.Hasher        // nil means identity.NewHasher()
	BaseURL       string                  // e.g. https://vault.example.org/scim/v2, for meta.location; "" leaves it out
	Rand          io.Reader               // account ids; nil means crypto/rand
	Now           func() time.Time        // nil means time.Now
	Logger        *slog.Logger            // nil discards
}

// Handler serves SCIM. It is safe for concurrent use.
type Handler struct {
	opts Options
	mux  *http.ServeMux
	log  *slog.Logger
}

// NewHandler returns a Handler for opts.
func NewHandler(opts Options) *Handler {
	if opts.Hasher == nil {
		opts.Hasher = identity.NewHasher() // one memory-bounded pool for all of h
	}
	h := &Handler{opts: opts, mux: http.NewServeMux(), log: opts.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.mux.HandleFunc("GET /scim/v2/Users", h.listUsers)
	h.mux.HandleFunc("POST /scim/v2/Users", h.createUser)
	h.mux.HandleFunc("GET /scim/v2/Users/{id}", h.getUser)
	h.mux.HandleFunc("PUT /scim/v2/Users/{id}", h.replaceUser)
	h.mux.HandleFunc("PATCH /scim/v2/Users/{id}", h.patchUser)
	h.mux.HandleFunc("DELETE /scim/v2/Users/{id}", h.deleteUser)
	h.mux.HandleFunc("GET /scim/v2/Groups", h.listGroups)
	h.mux.HandleFunc("GET /scim/v2/Groups/{id}", h.getGroup)
	h.mux.HandleFunc("PATCH /scim/v2/Groups/{id}", h.patchGroup)
	h.mux.HandleFunc("PUT /scim/v2/Groups/{id}", h.replaceGroup)
	h.mux.HandleFunc("POST /scim/v2/Groups", h.fixedGroups)
	h.mux.HandleFunc("DELETE /scim/v2/Groups/{id}", h.fixedGroups)
	h.mux.HandleFunc("GET /scim/v2/ServiceProviderConfig", h.serviceProviderConfig)
	h.mux.HandleFunc("GET /scim/v2/ResourceTypes", h.resourceTypes)
	h.mux.HandleFunc("GET /scim/v2/Schemas", h.schemas)
	h.mux.HandleFunc("/scim/v2/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, phivault.Errorf(phivault.ENOTFOUND, "No such SCIM endpoint."))
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ctx, err := api.Authenticate(w, r, h.opts.Authenticator, "phivault-scim")
	if errors.Is(err, api.ErrNoToken) {
		err = phivault.Errorf(phivault.EUNAUTHORIZED, "Authentication required: send Authorization: Bearer <SCIM token>.")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if p := phivault.PrincipalFromContext(ctx); p != nil {
		h.log.Warn("scim: refused", "principal", p)
		err := phivault.Errorf(phivault.EFORBIDDEN, "SCIM serves the identity provider's SCIM token only; people manage accounts through the admin API.")
		h.record(ctx, r.PathValue("id"), err)
		writeError(w, err)
		return
	}
	if h.opts.Accounts == nil {
		writeError(w, phivault.Errorf(phivault.EUNAVAILABLE, "This server manages no accounts."))
		return
	}
	h.mux.ServeHTTP(w, r.WithContext(ctx))
}

// scimError is a SCIM error response (RFC 7644 §3.12).
type scimError struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail"`
}

// typedError is an error with a SCIM scimType.
type typedError struct {
	scimType string
	err      *phivault.Error
}

func (e *typedError) Error() string { return e.err.Error() }
func (e *typedError) Unwrap() error { return e.err }

// invalid returns a 400 error of scimType typ.
func invalid(typ, format string, args ...any) error {
	return &typedError{typ, phivault.Errorf(phivault.EINVALID, format, args...)}
}

func writeError(w http.ResponseWriter, err error) {
	code := phivault.ErrorCode(err)
	status := fhir.Status(code)
	e := scimError{Schemas: []string{SchemaError}, Status: strconv.Itoa(status), Detail: phivault.ErrorMessage(err)}
	var te *typedError
	switch {
	case errors.As(err, &te):
		e.ScimType = te.scimType
	case code == phivault.EINVALID:
		e.ScimType = "invalidValue"
	case code == phivault.ECONFLICT:
		e.ScimType = "uniqueness"
	}
	if status >= 500 {
		e.Detail = "Internal error."
		if code == phivault.EUNAVAILABLE {
			e.Detail = phivault.ErrorMessage(err)
		}
	}
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"schemas":["`+SchemaError+`"],"status":"500","detail":"Internal error."}`)
	}
	w.Header().Set("Content-Type", MediaType)
	w.WriteHeader(status)
	w.Write(b)
}

// decode reads a JSON body of at most maxBody bytes into v. Unknown
// attributes are ignored (RFC 7644 §3.3 lets a provider ignore what it
// does not store).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return phivault.Errorf(phivault.ETOOLARGE, "The request body is over %d bytes.", maxBody)
	}
	defer clear(body) // it may hold a password
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return invalid("invalidSyntax", "The request body must be one JSON object of the right shape.")
	}
	if dec.More() {
		return invalid("invalidSyntax", "The request body must be one JSON object.")
	}
	return nil
}

// record appends an account-change audit entry with ids only; it returns
// EUNAVAILABLE if the entry could not be written.
func (h *Handler) record(ctx context.Context, id string, err error) error {
	return admin.RecordChange(ctx, h.opts.Audit, h.log, h.now(), "Account", id, err)
}

// finish records a change to account id and answers with err or v.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, id string, err error, status int, v any) {
	if aerr := h.record(r.Context(), id, err); aerr != nil && err == nil {
		err = aerr
	}
	if err != nil {
		if phivault.ErrorCode(err) == phivault.EINTERNAL {
			h.log.Error("scim: account change", "id", id, "error", err.Error())
		}
		writeError(w, err)
		return
	}
	if v == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}

func (h *Handler) now() time.Time {
	if h.opts.Now != nil {
		return h.opts.Now()
	}
	return time.Now()
}

func (h *Handler) newID() (string, error) {
	return admin.NewID(h.opts.Rand)
}

// revoke ends every session of account id.
func (h *Handler) revoke(ctx context.Context, id string) error {
	if h.opts.Revoker == nil {
		return nil
	}
	if err := h.opts.Revoker.RevokeSubject(context.WithoutCancel(ctx), id); err != nil {
		h.log.Error("scim: revoke sessions", "subject", id, "error", err.Error())
		return phivault.Errorf(phivault.EUNAVAILABLE, "The change was saved but the sessions could not be revoked; retry the request.")
	}
	return nil
}

// location returns the meta.location of a resource, or "".
func (h *Handler) location(kind, id string) string {
	if h.opts.BaseURL == "" {
		return ""
	}
	return strings.TrimSuffix(h.opts.BaseURL, "/") + "/" + kind + "/" + id
}

// page reads startIndex and count (RFC 7644 §3.4.2.4): startIndex below 1
// is 1, a negative count is 0, and count is at most MaxCount.
func page(r *http.Request) (start, count int, err error) {
	start, count = 1, DefaultCount
	q := r.URL.Query()
	if s := q.Get("startIndex"); s != "" {
		if start, err = strconv.Atoi(s); err != nil {
			return 0, 0, invalid("invalidValue", "startIndex must be an integer.")
		}
		start = max(start, 1)
	}
	if s := q.Get("count"); s != "" {
		if count, err = strconv.Atoi(s); err != nil {
			return 0, 0, invalid("invalidValue", "count must be an integer.")
		}
		count = min(max(count, 0), MaxCount)
	}
	return start, count, nil
}

// listResponse is a ListResponse (RFC 7644 §3.4.2).
type listResponse struct {
	Schemas      []string `json:"schemas"`
	TotalResults int      `json:"totalResults"`
	StartIndex   int      `json:"startIndex"`
	ItemsPerPage int      `json:"itemsPerPage"`
	Resources    []any    `json:"Resources"`
}

// pageOf returns the page of all that startIndex and count select.
func pageOf[T any](all []T, start, count int) listResponse {
	lr := listResponse{Schemas: []string{SchemaList}, TotalResults: len(all), StartIndex: start, Resources: []any{}}
	for i := start - 1; i < len(all) && len(lr.Resources) < count; i++ {
		lr.Resources = append(lr.Resources, all[i])
	}
	lr.ItemsPerPage = len(lr.Resources)
	return lr
}
