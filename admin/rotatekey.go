package admin

import (
	"context"
	"net/http"
	"strconv"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/fhir"
)

// PatientKeyRotator gives one patient's compartment a new data key and
// re-encrypts its records; vault.Service is one. Options.Rotator serves
// $rotate-key, or else Options.Records if it implements it.
type PatientKeyRotator interface {
	RotatePatientKey(ctx context.Context, patientID string, progress func(done, total int)) error
}

// rotatePatientKey serves POST /admin/patients/{id}/$rotate-key. It answers
// when the rotation is done (the old key is destroyed); a rotation cut
// short (client gone, server stopped) resumes on the next call.
func (h *Handler) rotatePatientKey(w http.ResponseWriter, r *http.Request) {
	rot := h.opts.Rotator
	if rot == nil {
		rot, _ = h.opts.Records.(PatientKeyRotator)
	}
	if rot == nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.ENOTFOUND, "No such admin operation."))
		return
	}
	id := r.PathValue("id")
	versions := 0
	err := rot.RotatePatientKey(r.Context(), id, func(done, _ int) { versions = done })
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	h.log.Info("admin: patient data key rotated", "patient", id, "versions", versions, "actor", api.ActorFromContext(r.Context()))
	writeJSON(w, http.StatusOK, fhir.NewOutcome("information", "informational",
		"Patient/"+id+" has a new data key: "+strconv.Itoa(versions)+" stored versions were re-encrypted and the old key was destroyed."))
}
