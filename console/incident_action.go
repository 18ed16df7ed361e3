package console

import (
	"net/http"
	"net/url"
	"strings"
)

// incidentAction approves, rejects or undoes an action of an incident:
// POST /console/incidents/{id}/actions/{action}/{op}, op approve, reject
// or undo (the API refuses any other). The form carries the version of
// the incident the person saw, sent as If-Match: an incident that moved
// on since is refused (412), and the page shown again as it is now.
func (h *Handler) incidentAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, action, op := r.PathValue("id"), r.PathValue("action"), r.PathValue("op")
	var body any
	if op == "reject" {
		body = map[string]string{"reason": strings.TrimSpace(r.PostFormValue("reason"))}
	}
	path := "/security/incidents/" + url.PathEscape(id) + "/actions/" + url.PathEscape(action) + "/" + url.PathEscape(op)
	rp, err := h.api(r, s, http.MethodPost, path, body, "If-Match", ifMatch(r.PostFormValue("version")))
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		if ae := err.(*apiError); ae.status < 500 && ae.status != http.StatusNotFound {
			h.renderIncident(w, r, s, ae.status, changeDraft{}, ae.message)
			return
		}
		h.fail(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/console/incidents/"+url.PathEscape(id)+"#actions", http.StatusSeeOther)
}

// ifMatch returns the If-Match of the version a form carried; the API
// refuses one that is not a version.
func ifMatch(version string) string { return `W/"` + strings.Trim(version, `" `) + `"` }
