// Package admin implements phivault's administrative HTTP API: operations an
// operator runs on a live server, such as crypto-shredding a patient and
// rotating the key-encryption key. Every request needs a bearer token that
// the configured Authenticator accepts; every answer is JSON, errors an
// OperationOutcome.
//
// Routes, relative to where the handler is mounted (it expects paths that
// start with /admin/):
//
//	POST /admin/patients/{id}/$shred   crypto-shred one patient's compartment
//	POST /admin/patients/{id}/$rotate-key new data key for one patient; re-encrypt its records
//	POST /admin/keys/$rotate           new KEK version; rewrap in the background
//	POST /admin/keys/{kek}/$compromised mark a KEK version compromised; forces it out
//	GET  /admin/keys/status            KEK versions, ages, DEKs per version, rewrap progress
//	POST /admin/$unseal                unseal: {"passphrase": "..."}, or empty for a KMS or HSM
//	POST /admin/$seal                  seal: drop the keyring and every cached key at once
//
// With Options.ApproveKeyActions, $shred and $compromised wait for a
// second security admin (see approval.go).
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/identity"
)

// Shredder crypto-shreds a patient compartment; vault.Service is one.
type Shredder interface {
	Shred(ctx context.Context, patientID string) (time.Time, error)
}

// Keys manages the key-encryption keys of a running server.
type Keys interface {
	// Rotate makes a new KEK version current and starts rewrapping every
	// stored key under it in the background. It returns the new version.
	Rotate(ctx context.Context) (phivault.KeyID, error)
	// MarkCompromised records that KEK version id may have been exposed
	// and forces it out of use: a rotation if it is current, else a
	// rewrap of the keys it still wraps.
	MarkCompromised(ctx context.Context, id phivault.KeyID) error
	// Status describes the KEK versions and the rewrap in progress, as a
	// JSON-encodable value.
	Status(ctx context.Context) (any, error)
}

// Options configures a Handler.
type Options struct {
	Authenticator api.Authenticator // required; nil refuses every request
	Records       Shredder          // required for $shred
	Keys          Keys              // optional; nil answers 501 for key routes
	Rotator       PatientKeyRotator // for $rotate-key; nil uses Records if it is one
	Unsealer      Unsealer          // optional; nil answers 415 for $seal and $unseal
	Logger        *slog.Logger      // nil discards
	Now           func() time.Time  // nil means time.Now; times the unseal backoff

	// Accounts, Clients, Revoker and Audit serve the user, client and
	// training routes (users.go, clients.go, training.go); nil Accounts or
	// Clients answers 415 there. Changes are refused (503) without Audit.
	// A nil Revoker revokes nothing (no session server).
	Accounts   phivault.AccountStore
	Clients    phivault.ClientStore
	Revoker    phivault.SessionRevoker
	Audit      phivault.AuditLog
	Hasher     *identity.Hasher // nil means identity.NewHasher()
	Rand       io.Reader        // ids and TOTP secrets; nil means crypto/rand
	TOTPIssuer string           // default DefaultTOTPIssuer

	// ApproveKeyActions makes the actions that cannot be undone, $shred
	// and $compromised, wait for a second security admin, as grants do
	// (see approval.go): a security admin who signed in asks, another
	// approves, and the bootstrap token and other system clients are
	// refused them. Off, they apply at once.
	ApproveKeyActions bool
}

// Handler serves the admin API. It is safe for concurrent use.
type Handler struct {
	opts Options
	mux  *http.ServeMux
	log  *slog.Logger

	approvals approvals // changes awaiting a second admin; see approval.go
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
	h.mux.Handle("POST /admin/patients/{id}/{op}", h.secure(h.patientOp))
	h.mux.Handle("POST /admin/keys/{op}", h.secure(h.keysOp))
	h.mux.Handle("GET /admin/keys/status", h.secure(h.status))
	h.mux.Handle("POST /admin/keys/{kek}/{op}", h.secure(h.kekOp))
	registerSeal(h)
	registerApprovals(h)
	registerUsers(h)
	registerClients(h)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, err := api.Authenticate(w, r, h.opts.Authenticator, api.Realm)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	h.mux.ServeHTTP(w, r.WithContext(ctx))
}

// secure authorizes a key, seal or shred route: the same callers as the
// user routes (see MayManage), since all of them change security state.
// Every change, allowed or refused, is recorded in the audit trail before
// its answer leaves (see securityEntry); if it cannot be recorded the
// answer is 503.
func (h *Handler) secure(next func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := h.securityEntry(r)
		if p := phivault.PrincipalFromContext(r.Context()); !MayManage(p) {
			h.log.Warn("admin: security operation refused", "principal", p, "path", r.URL.Path)
			h.refuse(w, r, e, errNotSecurityAdmin)
			return
		}
		if e != nil && h.awaitsSecondAdmin(e.Action) {
			if person(r) == nil {
				h.refuse(w, r, e, errDestructiveNeedsPerson)
				return
			}
			next(w, r) // a pending change: approval.go records its steps
			return
		}
		if e == nil || e.Action == phivault.ActionShred { // auditlog.NewShredder records shreds that run
			next(w, r)
			return
		}
		buf := &bufferedResponse{header: w.Header()}
		next(buf, r)
		e.Outcome = statusOutcome(buf.code())
		if err := h.appendEntry(r.Context(), e); err != nil {
			h.log.Error("admin: security operation not recorded", "action", e.Action, "status", buf.code())
			fhir.WriteOutcome(w, err)
			return
		}
		w.WriteHeader(buf.code())
		w.Write(buf.body.Bytes())
	})
}

// refuse records e (if not nil) as forbidden and answers err, or 503 if
// the entry cannot be written.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, e *phivault.AuditEntry, err error) {
	if e != nil {
		e.Outcome = phivault.EFORBIDDEN
		if aerr := h.appendEntry(r.Context(), e); aerr != nil {
			err = aerr
		}
	}
	fhir.WriteOutcome(w, err)
}

// securityEntry starts the audit entry of a key, seal, shred or
// patient-key change, or returns nil for a route that changes nothing (key
// status).
func (h *Handler) securityEntry(r *http.Request) *phivault.AuditEntry {
	e := &phivault.AuditEntry{Time: h.now().UTC()}
	switch op := r.PathValue("op"); {
	case r.Method != http.MethodPost:
		return nil
	case op == "$shred":
		e.Action, e.TargetType, e.TargetID = phivault.ActionShred, "Patient", r.PathValue("id")
		e.Compartments = []string{e.TargetID}
	case r.PathValue("id") != "":
		e.Action, e.TargetType, e.TargetID = phivault.ActionKeyRotate, "Patient", r.PathValue("id")
		e.Compartments = []string{e.TargetID}
	case r.PathValue("kek") != "":
		e.Action, e.TargetType, e.TargetID = phivault.ActionKeyCompromised, "Key", r.PathValue("kek")
	case op == "$rotate":
		e.Action, e.TargetType = phivault.ActionKeyRotate, "Key"
	case strings.HasSuffix(r.URL.Path, "/$seal"):
		e.Action, e.TargetType = phivault.ActionSeal, "Vault"
	case strings.HasSuffix(r.URL.Path, "/$unseal"):
		e.Action, e.TargetType = phivault.ActionUnseal, "Vault"
	default:
		e.Action, e.TargetType = "admin", "Vault"
	}
	setCaller(r.Context(), e)
	return e
}

// appendEntry writes e to the audit log, even if the caller went away.
func (h *Handler) appendEntry(ctx context.Context, e *phivault.AuditEntry) error {
	if h.opts.Audit == nil {
		return nil // a server without an audit trail (tests of other routes)
	}
	if err := h.opts.Audit.Append(context.WithoutCancel(ctx), e); err != nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the operation's result is withheld.")
	}
	return nil
}

// statusCodes are the error codes an answer's status maps back to through
// fhir.Status, the one code-to-status table. EINTEGRITY is left out: a 500
// is recorded as EINTERNAL.
var statusCodes = []string{
	phivault.EINVALID, phivault.EUNPROCESSABLE, phivault.ENOTFOUND, phivault.EGONE, phivault.ECONFLICT,
	phivault.EPRECONDITION, phivault.EUNAUTHORIZED, phivault.EFORBIDDEN, phivault.ETOOLARGE,
	phivault.EUNSUPPORTED, phivault.EUNAVAILABLE, phivault.EINTERNAL,
}

// statusOutcome is the audit outcome of an HTTP status: "ok" or the
// phivault error code that answers with it. A 405 is EUNSUPPORTED and a
// 429 (unseal throttled) EUNAVAILABLE; anything unknown is EINTERNAL.
func statusOutcome(status int) string {
	switch status {
	case http.StatusMethodNotAllowed:
		return phivault.EUNSUPPORTED
	case http.StatusTooManyRequests:
		return phivault.EUNAVAILABLE
	}
	if status < 400 {
		return "ok"
	}
	for _, c := range statusCodes {
		if fhir.Status(c) == status {
			return c
		}
	}
	return phivault.EINTERNAL
}

// bufferedResponse holds an answer until its audit entry is written.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// code is the answer's status: 200 for a handler that wrote nothing, as
// net/http answers it.
func (b *bufferedResponse) code() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

var errNotSecurityAdmin = phivault.Errorf(phivault.EFORBIDDEN, "Key, seal and shred operations need the security-admin role.")

func (h *Handler) patientOp(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("op") == "$rotate-key" {
		h.rotatePatientKey(w, r)
		return
	}
	if r.PathValue("op") != "$shred" || h.opts.Records == nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.ENOTFOUND, "No such admin operation."))
		return
	}
	id := r.PathValue("id")
	if h.awaitsSecondAdmin(phivault.ActionShred) {
		h.requestChange(w, r, &pendingChange{
			PendingChange: PendingChange{PatientID: id, Kind: ChangeShred, Reason: ReasonDestructive},
			apply:         func(ctx context.Context) (any, error) { return h.shred(ctx, id) },
		})
		return
	}
	out, err := h.shred(r.Context(), id)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// shred crypto-shreds patient id (Records records it in the audit trail)
// and returns the answer that says so.
func (h *Handler) shred(ctx context.Context, id string) (*fhir.OperationOutcome, error) {
	at, err := h.opts.Records.Shred(ctx, id)
	pending := errors.Is(err, phivault.ErrErasePending)
	if err != nil && !pending {
		return nil, err
	}
	done := "Patient/" + id + " was crypto-shredded at " + at.UTC().Format(time.RFC3339Nano) + "; its records can no longer be read."
	if pending {
		// The shred is done; only the erasure of the old key bytes
		// waits. The cause is for the operator (a lock held too long,
		// the database role not owning the key table).
		h.log.Warn("admin: patient shredded; erasure of the old key bytes pending", "patient", id, "at", at,
			"actor", api.ActorFromContext(ctx), "cause", err.Error())
		return fhir.NewOutcome("warning", "informational", done+
			" Erasing the destroyed key's old bytes from the database files is pending: it is retried at the next shred and when the server starts."), nil
	}
	h.log.Info("admin: patient shredded", "patient", id, "at", at, "actor", api.ActorFromContext(ctx))
	return fhir.NewOutcome("information", "informational", done), nil
}

func (h *Handler) keysOp(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("op") != "$rotate" {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.ENOTFOUND, "No such admin operation."))
		return
	}
	if h.opts.Keys == nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNSUPPORTED, "This server's keyring cannot be rotated online."))
		return
	}
	id, err := h.opts.Keys.Rotate(r.Context())
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	h.log.Info("admin: key-encryption key rotated", "kek", string(id), "actor", api.ActorFromContext(r.Context()))
	writeJSON(w, http.StatusAccepted, fhir.NewOutcome("information", "informational",
		"The key-encryption key "+string(id)+" is now current; stored keys are being rewrapped in the background (GET keys/status)."))
}

func (h *Handler) kekOp(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("op") != "$compromised" {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.ENOTFOUND, "No such admin operation."))
		return
	}
	if h.opts.Keys == nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNSUPPORTED, "This server's keyring cannot be managed online."))
		return
	}
	id := phivault.KeyID(r.PathValue("kek"))
	if h.awaitsSecondAdmin(phivault.ActionKeyCompromised) {
		c := &pendingChange{PendingChange: PendingChange{KeyID: string(id), Kind: ChangeKeyCompromised, Reason: ReasonDestructive}}
		c.apply = func(ctx context.Context) (any, error) {
			// secure recorded only the request: the mark is recorded here.
			out, err := h.markCompromised(ctx, id)
			e := &phivault.AuditEntry{Time: h.now().UTC(), Action: phivault.ActionKeyCompromised, TargetType: "Key", TargetID: string(id),
				Outcome: "ok", Decision: "change " + c.ID + " requested by " + c.RequestedBy + " approved"}
			if err != nil {
				e.Outcome = phivault.ErrorCode(err)
			}
			setCaller(ctx, e)
			if aerr := h.appendEntry(ctx, e); aerr != nil && err == nil {
				err = aerr
			}
			return out, err
		}
		h.requestChange(w, r, c)
		return
	}
	out, err := h.markCompromised(r.Context(), id)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, out)
}

// markCompromised marks KEK version id compromised and returns the answer
// that says so.
func (h *Handler) markCompromised(ctx context.Context, id phivault.KeyID) (*fhir.OperationOutcome, error) {
	if err := h.opts.Keys.MarkCompromised(ctx, id); err != nil {
		return nil, err
	}
	h.log.Warn("admin: key-encryption key marked compromised", "kek", string(id), "actor", api.ActorFromContext(ctx))
	return fhir.NewOutcome("information", "informational",
		"The key-encryption key version was marked compromised; it is being rotated out (GET keys/status)."), nil
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	if h.opts.Keys == nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNSUPPORTED, "This server reports no key status."))
		return
	}
	st, err := h.opts.Keys.Status(r.Context())
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
