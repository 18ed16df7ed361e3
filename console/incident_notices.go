package console

import (
	"net/http"
	"net/url"
	"strings"
)

// incidentNotices asks the API for an incident's breach notices and
// passes the file on as a download: POST /console/incidents/{id}/notices.
// The API writes them for privacy officers only and refuses anyone else
// (its 403, shown as it is); a notice it refuses for what was typed shows
// the breach page again with its message and the form as typed.
func (h *Handler) incidentNotices(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	d := noticeDraft{}
	for _, f := range []struct {
		name string
		v    *string
	}{
		{"format", &d.Format}, {"name", &d.Name}, {"phone", &d.Phone}, {"email", &d.Email}, {"contact", &d.Contact},
		{"what_happened", &d.WhatHappened}, {"steps", &d.Steps}, {"mitigation", &d.Mitigation},
	} {
		*f.v = strings.TrimSpace(r.PostFormValue(f.name))
	}
	rp, err := h.api(r, s, http.MethodPost, "/security/incidents/"+url.PathEscape(id)+"/notices", d.request())
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		if ae := err.(*apiError); ae.status < 500 && ae.status != http.StatusForbidden && ae.status != http.StatusNotFound {
			h.renderBreach(w, r, s, ae.status, d, ae.message)
			return
		}
		h.fail(w, r, s, err)
		return
	}
	download(w, rp, "notices")
}
