package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/fhir"
)

// AccessControl is what the access layer offers the admin API:
// break-the-glass, its review queue, and policy explanations. Each method
// decides on the principal in ctx and returns a JSON-encodable value.
type AccessControl interface {
	// BreakGlass opens time-boxed emergency access to one patient. It
	// returns EUNAUTHORIZED when the caller's login is not fresh.
	BreakGlass(ctx context.Context, patientID, purpose, reason string) (any, error)
	// BreakGlassQueue lists the accesses not yet reviewed.
	BreakGlassQueue(ctx context.Context) (any, error)
	// Review records a privacy officer's verdict on one access.
	Review(ctx context.Context, record, verdict, comment string) (any, error)
	// Explain shows how the policy decides an action of a user on a
	// resource, and which policies decided.
	Explain(ctx context.Context, user, action, resource, purpose string) (any, error)
}

// AccessOptions configures NewAccessHandler.
type AccessOptions struct {
	// Authenticator must put the caller's phivault.Principal in the
	// context (people log in through OAuth; the bootstrap token is a
	// system client). Nil refuses every request.
	Authenticator api.Authenticator
	Access        AccessControl // required
}

// maxAccessBody caps the JSON body of access requests.
const maxAccessBody = 16 << 10

// NewAccessHandler returns the handler of the access routes, relative to
// where it is mounted (paths start with /admin/):
//
//	POST /admin/break-glass          {"patient","purpose","reason"}: open emergency access (201)
//	GET  /admin/break-glass/queue    unreviewed break-the-glass accesses (privacy officers)
//	POST /admin/break-glass/review   {"record","verdict","comment"}: review one access
//	POST /admin/policy/explain       {"user","action","resource","purpose"}: explain a decision
//
// Breaking the glass needs a login within the last 5 minutes; a stale one
// is answered 401 with an RFC 9470 step-up challenge (max_age=300).
func NewAccessHandler(opts AccessOptions) http.Handler {
	mux := http.NewServeMux()
	h := &accessHandler{opts: opts}
	mux.HandleFunc("POST /admin/break-glass", h.breakGlass)
	mux.HandleFunc("GET /admin/break-glass/queue", h.queue)
	mux.HandleFunc("POST /admin/break-glass/review", h.review)
	mux.HandleFunc("POST /admin/policy/explain", h.explain)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, err := api.Authenticate(w, r, opts.Authenticator, api.Realm)
		if err != nil {
			fhir.WriteOutcome(w, err)
			return
		}
		if opts.Access == nil {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNAVAILABLE, "This server has no access layer."))
			return
		}
		mux.ServeHTTP(w, r.WithContext(ctx))
	})
}

type accessHandler struct{ opts AccessOptions }

// decode reads a JSON object body into v, refusing unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAccessBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return phivault.Errorf(phivault.EINVALID, "The body must be a JSON object with the documented fields, under 16 KiB.")
	}
	if dec.More() {
		return phivault.Errorf(phivault.EINVALID, "The body must hold one JSON object.")
	}
	return nil
}

func (h *accessHandler) breakGlass(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Patient string `json:"patient"`
		Purpose string `json:"purpose"`
		Reason  string `json:"reason"`
	}
	if err := decode(r, &req); err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	out, err := h.opts.Access.BreakGlass(r.Context(), req.Patient, req.Purpose, req.Reason)
	if err != nil {
		if phivault.ErrorCode(err) == phivault.EUNAUTHORIZED {
			// RFC 9470: ask the client to have the user log in again.
			w.Header().Set("WWW-Authenticate", `Bearer realm="phivault", error="insufficient_user_authentication", `+
				`error_description="A login within the last 5 minutes is required", max_age=300`)
		}
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (h *accessHandler) queue(w http.ResponseWriter, r *http.Request) {
	out, err := h.opts.Access.BreakGlassQueue(r.Context())
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *accessHandler) review(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Record  string `json:"record"`
		Verdict string `json:"verdict"`
		Comment string `json:"comment"`
	}
	if err := decode(r, &req); err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	out, err := h.opts.Access.Review(r.Context(), req.Record, req.Verdict, req.Comment)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *accessHandler) explain(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User     string `json:"user"`
		Action   string `json:"action"`
		Resource string `json:"resource"`
		Purpose  string `json:"purpose"`
	}
	if err := decode(r, &req); err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	out, err := h.opts.Access.Explain(r.Context(), req.User, req.Action, req.Resource, req.Purpose)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
