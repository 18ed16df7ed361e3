package detect

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/smart"
)

// API is what the handlers of the security API (/security/…) share,
// here and in other packages (incidents): the guard that lets only
// auditors in, and the audit entry each request makes before anything
// leaves.
type API struct {
	Auth Authenticator
	Log  phivault.AuditLog // required
	Now  func() time.Time  // nil means time.Now
}

var (
	errUnauthenticated = phivault.Errorf(phivault.EUNAUTHORIZED, "A bearer token is required.")
	errNotAuditor      = phivault.Errorf(phivault.EFORBIDDEN, "The security API is for privacy officers and security admins.")
	errNoAuditScope    = phivault.Errorf(phivault.EFORBIDDEN, "The token's scopes do not include reading AuditEvent.")
)

// Guard authenticates r and lets only auditors through to next; a refusal
// is recorded as an entry of targetType and answered. A request without a
// token accepted by a.Auth gets 401 with the RFC 6750 challenge that
// [api.Authenticate] sets, the same as on the FHIR, admin and audit routes;
// any other failure of a.Auth is answered with its own error.
func (a *API) Guard(targetType string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, err := api.Authenticate(w, r, a.Auth, api.Realm)
		if err != nil {
			if err == api.ErrNoToken {
				err = errUnauthenticated
			}
			fhir.WriteOutcome(w, err)
			return
		}
		r = r.WithContext(ctx)
		p := phivault.PrincipalFromContext(ctx)
		refusal := errNotAuditor
		if p.Auditor() {
			refusal = nil
			if !smart.ReadsAuditTrail(p) {
				refusal = errNoAuditScope
			}
		}
		if refusal != nil {
			e := a.Entry(r, phivault.ActionExport, targetType, "")
			e.Outcome = phivault.ErrorCode(refusal)
			a.Log.Append(context.WithoutCancel(ctx), e)
			fhir.WriteOutcome(w, refusal)
			return
		}
		next(w, r)
	}
}

// Entry returns the audit entry of r: action on targetType/targetID by
// the request's principal, with the names of its query parameters that
// are among known (never values; unknown names are the caller's words).
func (a *API) Entry(r *http.Request, action, targetType, targetID string, known ...string) *phivault.AuditEntry {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	e := phivault.NewRequestEntry(r.Context(), r.RemoteAddr, now(), action, targetType, targetID)
	e.SearchParams = knownParams(slices.Sorted(maps.Keys(r.URL.Query())), known)
	return e
}

// Record appends e before anything leaves; if it cannot, it answers 503
// and returns false.
func (a *API) Record(w http.ResponseWriter, r *http.Request, e *phivault.AuditEntry) bool {
	if err := a.Log.Append(r.Context(), e); err != nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; try again later."))
		return false
	}
	return true
}

// Refuse records e as failed with err and answers err: its message if
// it is a *phivault.Error, else an internal error whose cause is not
// shown.
func (a *API) Refuse(w http.ResponseWriter, r *http.Request, e *phivault.AuditEntry, err error) {
	var pe *phivault.Error
	if !errors.As(err, &pe) {
		err = phivault.Errorf(phivault.EINTERNAL, "Internal error.")
	}
	e.Outcome = phivault.ErrorCode(err)
	if !a.Record(w, r, e) {
		return
	}
	fhir.WriteOutcome(w, err)
}

// WriteJSON answers v as JSON with status, not to be cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// knownParams returns the names among names that are in known, sorted.
func knownParams(names, known []string) []string {
	var out []string
	for _, n := range names {
		if slices.Contains(known, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
