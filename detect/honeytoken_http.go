package detect

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Decoys makes decoy patients (honeytokens) in the vault: records that look
// like real patients' through every API and carry no mark.
type Decoys interface {
	// MakeDecoys creates n decoy patients and returns their ids.
	MakeDecoys(ctx context.Context, n int) ([]string, error)
}

// MaxDecoys bounds the decoys one request makes.
const MaxDecoys = 1000

// TargetHoneytoken is the target type of the audit entries of honeytoken
// requests. They hold counts, never the decoys' ids: a reader of the
// trail must not learn which patients are decoys.
const TargetHoneytoken = "Honeytoken"

// honeytokenRoutes registers POST /security/honeytokens {"count": n},
// which makes n decoys and registers them with the detectors, and GET
// /security/honeytokens, which lists them.
func (h *handler) honeytokenRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /security/honeytokens", h.guard(TargetHoneytoken, h.createHoneytokens))
	mux.HandleFunc("GET /security/honeytokens", h.guard(TargetHoneytoken, h.listHoneytokens))
}

func (h *handler) createHoneytokens(w http.ResponseWriter, r *http.Request) {
	e := h.entry(r, phivault.ActionCreate, TargetHoneytoken, "")
	var req struct {
		Count int `json:"count"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Count < 1 || req.Count > MaxDecoys {
		h.refuse(w, r, e, phivault.Errorf(phivault.EINVALID, "Send {\"count\": n} with n from 1 to %d.", MaxDecoys))
		return
	}
	if h.opts.Decoys == nil {
		h.refuse(w, r, e, phivault.Errorf(phivault.EUNSUPPORTED, "This server cannot make decoys."))
		return
	}
	e.Decision = "decoys requested: " + strconv.Itoa(req.Count)
	if !h.record(w, r, e) {
		return
	}
	// Decoys made before a failure are registered all the same: a decoy
	// nobody watches would be a patient record like any other.
	ids, err := h.opts.Decoys.MakeDecoys(r.Context(), req.Count)
	if len(ids) > 0 {
		recs := make([]Record, len(ids))
		for i, id := range ids {
			recs[i] = Record{Kind: RecordHoneytoken, Honeytoken: id}
		}
		// Registered even if the caller has gone: made and unwatched is
		// the one outcome to avoid.
		if _, ierr := h.opts.Store.Ingest(context.WithoutCancel(r.Context()), recs); ierr != nil {
			err = errors.Join(err, phivault.Errorf(phivault.EUNAVAILABLE, "Decoys were made but could not be registered with the detectors, so they are not watched; try again later."))
		} else if h.opts.Pipeline != nil {
			h.opts.Pipeline.Wake()
		}
	}
	if err != nil {
		failed := *e
		failed.Time = h.opts.Now().UTC()
		failed.Decision = "decoys requested: " + strconv.Itoa(req.Count) + "; made: " + strconv.Itoa(len(ids))
		h.refuse(w, r, &failed, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"honeytokens": ids})
}

func (h *handler) listHoneytokens(w http.ResponseWriter, r *http.Request) {
	if !h.record(w, r, h.entry(r, phivault.ActionExport, TargetHoneytoken, "")) {
		return
	}
	saved, err := h.opts.Store.Load(r.Context())
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	ids := saved.Honeytokens
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"honeytokens": ids})
}
