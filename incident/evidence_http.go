package incident

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/phivault/phivault"
)

// Evidence writes the evidence archive of an incident and its timeline;
// evidence.Writer is one.
type Evidence interface {
	WriteEvidence(ctx context.Context, w io.Writer, in *Incident, timeline []*Event) error
}

// evidenceArchive serves GET /security/incidents/{id}/evidence: the
// incident's signed evidence archive, made in full and recorded (an
// export of the incident naming its patients) before any of it is sent.
func (h *handler) evidenceArchive(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	id := r.PathValue("id")
	e := a.Entry(r, phivault.ActionExport, TargetType, safeID(id))
	if h.opts.Evidence == nil {
		a.Refuse(w, r, e, phivault.Errorf(phivault.EUNAVAILABLE, "This server makes no evidence archives."))
		return
	}
	in, err := h.opts.Service.Get(r.Context(), id)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	tl, err := h.opts.Service.Timeline(r.Context(), id)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	var buf bytes.Buffer
	if err := h.opts.Evidence.WriteEvidence(r.Context(), &buf, in, tl); err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	e.Decision = "evidence archive"
	e.Compartments = vaultPatients(in.Scope.Patients)
	e.Returned = []string{TargetType + "/" + in.ID}
	if !a.Record(w, r, e) {
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="`+in.ID+`.phivault-evidence"`)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}
