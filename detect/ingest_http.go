package detect

import (
	"context"
	"net/http"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// ingestRoutes registers POST /security/ingest/{kind}.
func (h *handler) ingestRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /security/ingest/{kind}", h.guard(TargetIngest, h.serveIngest))
}

// serveIngest reads one ingest request (ParseIngest), records it in the
// audit trail (its kind and outcome, never what was sent), then stores the
// good lines in one Store.Ingest, wakes the pipeline and answers the
// IngestReport. The entry is written before anything is stored, so no
// record enters the ingest stream without an entry naming who sent it; if
// the entry cannot be written, nothing is stored and the answer is 503.
// If the store then fails, a second entry records that, and the answer is
// 503 too.
func (h *handler) serveIngest(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("kind")
	opts := IngestOptions{System: r.URL.Query().Get("system")}
	e := h.entry(r, phivault.ActionCreate, TargetIngest, kind, "system")
	switch kind {
	case IngestAccess, IngestStaff, IngestPatients, IngestRelationships:
	default:
		e.TargetID = "" // the path is the caller's; keep only known kinds
	}
	recs, rep, err := ParseIngest(r.Context(), h.opts.Tokenizer, kind, r.Header.Get("Content-Type"), r.Body, opts)
	if err != nil {
		h.refuseIngest(w, r, e, err)
		return
	}
	if !h.record(w, r, e) {
		return
	}
	if len(recs) > 0 {
		last, err := h.opts.Store.Ingest(r.Context(), recs)
		if err != nil {
			failed := *e
			failed.Time = h.opts.Now().UTC()
			h.refuseIngest(w, r, &failed, errStoreUnavailable)
			return
		}
		rep.First, rep.Last = last-int64(len(recs))+1, last
		if h.opts.Pipeline != nil {
			h.opts.Pipeline.Wake()
		}
	}
	writeJSON(w, http.StatusOK, rep)
}

// refuseIngest records e with err's outcome and answers err. It is never
// a 500: what is not the caller's fault (a read, tokenizer or store
// failure) is worth a retry.
func (h *handler) refuseIngest(w http.ResponseWriter, r *http.Request, e *phivault.AuditEntry, err error) {
	if phivault.ErrorCode(err) == phivault.EINTERNAL {
		err = errStoreUnavailable
	}
	e.Outcome = phivault.ErrorCode(err)
	h.opts.Log.Append(context.WithoutCancel(r.Context()), e)
	fhir.WriteOutcome(w, err)
}
