package console

import (
	"net/http"
	"net/url"
	"strings"
)

// incidentChange changes an incident's phase or owner, or adds a note:
// POST /console/incidents/{id}/change, as PATCH with the version the
// person saw as If-Match. Fields left empty are not changed.
func (h *Handler) incidentChange(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	d := changeDraft{Phase: r.PostFormValue("phase"), Owner: strings.TrimSpace(r.PostFormValue("owner")), Note: r.PostFormValue("note")}
	body := map[string]string{}
	for name, v := range map[string]string{"phase": d.Phase, "owner": d.Owner, "note": strings.TrimSpace(d.Note)} {
		if v != "" {
			body[name] = v
		}
	}
	if len(body) == 0 {
		h.renderIncident(w, r, s, http.StatusBadRequest, d, "Choose a phase, give an owner or write a note: the form was empty.")
		return
	}
	rp, err := h.api(r, s, http.MethodPatch, "/security/incidents/"+url.PathEscape(id), body, "If-Match", ifMatch(r.PostFormValue("version")))
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		if ae := err.(*apiError); ae.status < 500 && ae.status != http.StatusNotFound {
			h.renderIncident(w, r, s, ae.status, d, ae.message)
			return
		}
		h.fail(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/console/incidents/"+url.PathEscape(id), http.StatusSeeOther)
}
