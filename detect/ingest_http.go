package detect

import (
	"context"
	"net/http"

	"github.com/phivault/phivault"
)

// ingestRoutes registers POST /security/ingest/{kind}.
func (h *handler) ingestRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /security/ingest/{kind}", h.guard(TargetIngest, h.serveIngest))
}

// serveIngest reads one ingest request (Ingest), records it in the audit
// trail with its kind, outcome and the last sequence stored (never what
// was sent), then wakes the pipeline and answers the IngestReport. The
// entry is written after the records are stored and before the answer,
// as the vault does for its own writes, so it states the outcome; if it
// cannot be written the answer is 503 (the records stay: a retry ingests
// them again, which only adds events).
func (h *handler) serveIngest(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("kind")
	opts := IngestOptions{System: r.URL.Query().Get("system")}
	rep, err := Ingest(r.Context(), h.opts.Store, h.opts.Tokenizer, kind, r.Header.Get("Content-Type"), r.Body, opts)
	e := h.entry(r, phivault.ActionCreate, TargetIngest, kind)
	if err != nil {
		if phivault.ErrorCode(err) == phivault.EINTERNAL {
			// Not the caller's fault, and never a 500 for what was sent:
			// a read, tokenizer or store failure is worth a retry.
			err = errStoreUnavailable
		}
		e.Outcome = phivault.ErrorCode(err)
		if e.TargetID != IngestAccess && e.TargetID != IngestStaff && e.TargetID != IngestPatients && e.TargetID != IngestRelationships {
			e.TargetID = "" // the path is the caller's; keep only known kinds
		}
		h.opts.Log.Append(context.WithoutCancel(r.Context()), e)
		writeError(w, err)
		return
	}
	e.TargetVersion = rep.Last
	if !h.record(w, r, e) {
		return
	}
	if h.opts.Pipeline != nil && rep.Accepted > 0 {
		h.opts.Pipeline.Wake()
	}
	writeJSON(w, http.StatusOK, rep)
}
