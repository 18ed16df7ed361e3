package console

import (
	"net/http"
	"net/url"
)

// peopleChange approves or rejects a change awaiting a second admin:
// POST /console/people/changes/{change}/{verdict}, verdict "approve" or
// "reject". The admin API refuses the approval of one's own request, or
// of a change to one's own account.
func (h *Handler) peopleChange(w http.ResponseWriter, r *http.Request, s *session) {
	verdict := r.PathValue("verdict")
	if verdict != "approve" && verdict != "reject" {
		h.renderError(w, r, s, http.StatusNotFound, "There is no such page in the console.")
		return
	}
	rp, err := h.api(r, s, http.MethodPost, "/fhir/admin/changes/"+url.PathEscape(r.PathValue("change"))+"/"+verdict, nil)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		if ae := err.(*apiError); ae.status < 500 {
			h.renderPeople(w, r, s, ae.status, peoplePage{Error: ae.message})
			return
		}
		h.fail(w, r, s, err)
		return
	}
	done := "approved"
	if verdict == "reject" {
		done = "rejected"
	}
	http.Redirect(w, r, "/console/people?done="+done, http.StatusSeeOther)
}
