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

// accessSearch shows the access report's patient search: GET
// /console/access. GET /console/access?patient=ID opens a report by the
// patient's id. A search is a form posted to accessFind: a name or an
// identifier in the address would stay in the browser's history, in
// proxies' logs and in the page a sign-in returns to, so a GET that
// carries one is refused (400) and not searched.
func (h *Handler) accessSearch(w http.ResponseWriter, r *http.Request, s *session) {
	in := r.URL.Query()
	if id := strings.TrimSpace(in.Get("patient")); id != "" {
		http.Redirect(w, r, "/console/access/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	if in.Has("q") {
		h.renderError(w, r, s, http.StatusBadRequest, "Search with the form on the Access report page: a patient's name or identifier is not sent in the address.")
		return
	}
	h.render(w, r, s, http.StatusOK, "access", "Access report", accessSearchPage{By: "name"})
}

// accessFind finds a patient whose access report to open, by name or
// identifier, through the privacy officers' patient lookup as the
// signed-in person: POST /console/access with by=name|identifier and q
// asks GET /fhir/admin/reports/patients?name= or ?identifier= (an
// in-process call: the name goes nowhere else).
func (h *Handler) accessFind(w http.ResponseWriter, r *http.Request, s *session) {
	p := accessSearchPage{Q: strings.TrimSpace(r.PostFormValue("q")), By: r.PostFormValue("by")}
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
	h.mux.HandleFunc("POST /console/access", h.with(privacyOfficer, h.accessFind))
	h.mux.HandleFunc("GET /console/access/{patient}", h.with(privacyOfficer, h.accessReport))
}
