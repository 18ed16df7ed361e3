package detect

import (
	"context"
	"net/http"
	"time"

	"github.com/phivault/phivault"
)

// Authenticator checks a request's bearer token and returns a context
// carrying its principal (phivault.WithPrincipal), or an EUNAUTHORIZED
// *phivault.Error for a token it does not accept; [api.Authenticator] is the
// same interface.
type Authenticator interface {
	Authenticate(ctx context.Context, bearerToken string) (context.Context, error)
}

// Tokenizer computes blind-index tokens with the vault's index key (the
// envelope's Sealer, with a store transaction bound).
type Tokenizer interface {
	Tokens(ctx context.Context, values []phivault.IndexValue) ([]phivault.Token, error)
}

// NoteSealer seals and opens triage notes (free text that may hold PHI),
// each bound to the alert it is about: a note copied to another alert's
// triage fails to open.
type NoteSealer interface {
	Seal(alert string, plaintext []byte) ([]byte, error)
	Open(alert string, sealed []byte) ([]byte, error)
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Store    Store
	Pipeline *Pipeline // for GET /security/detector and Wake after ingest
	Auth     Authenticator
	// Log records every read and triage of alerts, and every ingest,
	// before the answer; if it cannot, the request fails with 503.
	// Required.
	Log       phivault.AuditLog
	Tokenizer Tokenizer  // turns ingested names, addresses and phones into tokens
	Notes     NoteSealer // seals triage notes; without it, triage notes are refused
	// OnTriage, if set, is called with each triage stored (without its
	// note), e.g. TriageSuppressor.Observe.
	OnTriage func(t *Triage)
	// Decoys makes honeytokens; nil: POST /security/honeytokens is refused.
	Decoys Decoys
	// Risk gives every user a risk score (GET /security/users/{id}/risk);
	// nil: that route answers 404.
	Risk UserScorer
	Now  func() time.Time
}

// Target types of the audit entries the security API makes.
const (
	TargetDetector = "Detector" // the detector's status
	TargetAlert    = "Alert"    // alerts: read, listed, triaged
	TargetIngest   = "Ingest"   // records ingested from another system
	TargetIncident = "Incident" // incidents (package incident): read, changed, acted on
)

// NewHandler returns the security API, for absolute paths under
// /security/. Every request needs a bearer token opts.Auth accepts, of a
// principal that is an auditor (phivault.Principal.Auditor: a privacy
// officer, a security admin or the operator); others get 403 and are
// recorded. Answers hold ids, never PHI.
//
//	GET  /security/detector           the pipeline's Status
//	POST /security/ingest/{kind}      access, staff, patients, relationships (ingest_http.go)
//	GET  /security/alerts             alerts (alerts_http.go)
//	GET  /security/alerts/{id}
//	POST /security/alerts/{id}/triage
//	POST /security/honeytokens        make decoy patients (honeytoken_http.go)
//	GET  /security/honeytokens
//	GET  /security/users/{id}/risk    a user's risk score and its factors (risk_http.go)
func NewHandler(opts HandlerOptions) http.Handler {
	if opts.Log == nil {
		panic("detect: NewHandler needs a Log to record reads of alerts")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &handler{opts: opts, api: API{Auth: opts.Auth, Log: opts.Log, Now: opts.Now}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /security/detector", h.guard(TargetDetector, h.serveStatus))
	h.ingestRoutes(mux)
	h.alertRoutes(mux)
	h.honeytokenRoutes(mux)
	h.riskRoutes(mux)
	return mux
}

type handler struct {
	opts HandlerOptions
	api  API
}

func (h *handler) guard(targetType string, next http.HandlerFunc) http.HandlerFunc {
	return h.api.Guard(targetType, next)
}

func (h *handler) entry(r *http.Request, action, targetType, targetID string, params ...string) *phivault.AuditEntry {
	return h.api.Entry(r, action, targetType, targetID, params...)
}

func (h *handler) record(w http.ResponseWriter, r *http.Request, e *phivault.AuditEntry) bool {
	return h.api.Record(w, r, e)
}

func (h *handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	if !h.record(w, r, h.entry(r, phivault.ActionExport, TargetDetector, "")) {
		return
	}
	var s Status
	if h.opts.Pipeline != nil {
		s = h.opts.Pipeline.Status()
	}
	writeJSON(w, http.StatusOK, s)
}

func writeJSON(w http.ResponseWriter, status int, v any) { WriteJSON(w, status, v) }
