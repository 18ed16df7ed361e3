package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// patientMatch is a patient found for the access report: the name and
// birth date are shown on purpose, to tell patients apart.
type patientMatch struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	BirthDate string `json:"birthDate"`
}

// patientsFound is the answer of the privacy officers' patient lookup:
// the id, name and birth date of each match, nothing else of a patient.
type patientsFound struct {
	Patients []patientMatch `json:"patients"`
	Total    int            `json:"total"`
}

// maxPatients bounds the matches of one patient search (the lookup's
// largest _count).
const maxPatients = 50

// accessSearchPage is the data of the access report's patient search.
type accessSearchPage struct {
	Q, By    string
	Searched bool
	Matches  []patientMatch
	More     bool   // more matches than shown
	Refused  string // the API's refusal of the search, if it refused
}

// accessSearch finds a patient whose access report to open, by name or
// identifier, through the privacy officers' patient lookup as the signed-in
// person: GET /console/access?by=name|identifier&q= asks
// GET /fhir/admin/reports/patients?name= or ?identifier=. GET
// /console/access?patient=ID opens a report by the patient's id.
func (h *Handler) accessSearch(w http.ResponseWriter, r *http.Request, s *session) {
	in := r.URL.Query()
	if id := strings.TrimSpace(in.Get("patient")); id != "" {
		http.Redirect(w, r, "/console/access/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	p := accessSearchPage{Q: strings.TrimSpace(in.Get("q")), By: in.Get("by")}
	if p.By == "" {
		p.By = "name"
	}
	if p.By != "name" && p.By != "identifier" {
		h.renderError(w, r, s, http.StatusBadRequest, "Search by name or by identifier.")
		return
	}
	if p.Q == "" {
		h.render(w, r, s, http.StatusOK, "access", "Access report", p)
		return
	}
	p.Searched = true
	q := url.Values{p.By: {p.Q}, "_count": {strconv.Itoa(maxPatients)}}
	var found patientsFound
	if err := h.getJSON(r, s, "/fhir/admin/reports/patients?"+q.Encode(), &found); err != nil {
		// A refusal is shown with the search form, and the way on by id.
		if ae, ok := err.(*apiError); ok && ae.status != http.StatusUnauthorized && (ae.status < 500 || ae.status == http.StatusServiceUnavailable) {
			p.Refused = ae.message
			h.render(w, r, s, ae.status, "access", "Access report", p)
			return
		}
		h.fail(w, r, s, err)
		return
	}
	p.Matches = found.Patients
	p.More = found.Total > len(p.Matches)
	h.render(w, r, s, http.StatusOK, "access", "Access report", p)
}

// accessRoutes registers the patient access report pages.
func (h *Handler) accessRoutes() {
	h.page("/console/access", "/console/access", "Access report", privacyOfficer, h.accessSearch)
	h.mux.HandleFunc("GET /console/access/{patient}", h.with(privacyOfficer, h.accessReport))
}
