package console

import (
	"net/http"
	"net/url"

	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/notice"
)

// breachPage is the data of an incident's breach-impact page.
type breachPage struct {
	ID        string
	Report    incident.Report
	Resources int // how many resource versions left
	Patients  int // of how many patients
	Draft     noticeDraft
	Formats   []string
	Error     string // the API's message of refused notices
}

// noticeDraft is the notices form's content, kept when the API refuses
// it so that nothing typed is lost.
type noticeDraft struct {
	Format, Name, Phone, Email, Contact, WhatHappened, Steps, Mitigation string
}

// request returns the notices request of d.
func (d noticeDraft) request() notice.Request {
	return notice.Request{
		Format:       d.Format,
		Organisation: notice.Organisation{Name: d.Name, Phone: d.Phone, Email: d.Email, Contact: d.Contact},
		WhatHappened: d.WhatHappened, Steps: d.Steps, Mitigation: d.Mitigation,
	}
}

// incidentBreach shows an incident's breach-impact report, and the form
// of its notices: GET /console/incidents/{id}/breach, for privacy
// officers, as the report is theirs. It is a page of its own, not a part
// of the incident's: each report reads the trail in the incident's
// window and is an export entry naming every patient concerned.
func (h *Handler) incidentBreach(w http.ResponseWriter, r *http.Request, s *session) {
	h.renderBreach(w, r, s, http.StatusOK, noticeDraft{Format: notice.FormatPDF}, "")
}

// renderBreach shows the breach page of the incident of the request's
// path with status, the notices form holding d, and msg, the API's
// message of a refusal.
func (h *Handler) renderBreach(w http.ResponseWriter, r *http.Request, s *session, status int, d noticeDraft, msg string) {
	id := r.PathValue("id")
	p := breachPage{ID: id, Draft: d, Error: msg, Formats: []string{notice.FormatPDF, notice.FormatCSV, notice.FormatHHS}}
	if err := h.getJSON(r, s, "/security/incidents/"+url.PathEscape(id)+"/breach", &p.Report); err != nil {
		h.fail(w, r, s, err)
		return
	}
	if im := p.Report.Impact; im != nil {
		p.Resources, p.Patients = len(im.Resources), len(im.Patients)
	}
	h.render(w, r, s, status, "incident_breach", "Breach impact of incident "+shortID(id), p)
}
