package console

import (
	"mime"
	"net/http"
	"net/url"
	"strconv"
)

// incidentEvidence passes on the incident's signed evidence archive as a
// file to save: GET /console/incidents/{id}/evidence. The API makes the
// archive whole and records the export before it answers; the console
// holds that answer in memory (as every API answer, bounded by maxReply)
// and sends it on as it came.
func (h *Handler) incidentEvidence(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	rp, err := h.api(r, s, http.MethodGet, "/security/incidents/"+url.PathEscape(id)+"/evidence", nil)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		h.fail(w, r, s, err)
		return
	}
	download(w, rp, "incident.phivault-evidence")
}

// download sends rp, an API's file, on to the browser as an attachment:
// its Content-Type, and its file name if it gave one, else name.
func download(w http.ResponseWriter, rp *reply, name string) {
	ctype := rp.header.Get("Content-Type")
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	// The name is re-encoded, never copied: a header the API wrote goes
	// to the browser only as a parsed file name.
	if _, params, err := mime.ParseMediaType(rp.header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		name = params["filename"]
	}
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	hd.Set("Content-Length", strconv.Itoa(len(rp.body)))
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(rp.body)
}
