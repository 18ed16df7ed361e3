package console

import (
	"net/http"
	"net/url"
	"strings"
)

// alertTriage records a triage decision: POST /console/alerts/{id}/triage.
func (h *Handler) alertTriage(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	body := map[string]string{"decision": r.PostFormValue("decision"), "note": strings.TrimSpace(r.PostFormValue("note"))}
	if body["decision"] == "benign" {
		body["reason"] = strings.TrimSpace(r.PostFormValue("reason"))
	}
	rp, err := h.api(r, s, http.MethodPost, "/security/alerts/"+url.PathEscape(id)+"/triage", body)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		if ae := err.(*apiError); ae.status < 500 && ae.status != http.StatusForbidden && ae.status != http.StatusNotFound {
			h.renderAlert(w, r, s, ae.status, ae.message)
			return
		}
		h.fail(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/console/alerts/"+url.PathEscape(id)+"?triaged=1", http.StatusSeeOther)
}
