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
	ID        string
	Name      string
	BirthDate string
}

// patientBundle is what the access search reads of a Patient searchset.
type patientBundle struct {
	Total int `json:"total"`
	Entry []struct {
		Resource struct {
			ID   string `json:"id"`
			Name []struct {
				Text   string   `json:"text"`
				Family string   `json:"family"`
				Given  []string `json:"given"`
			} `json:"name"`
			BirthDate string `json:"birthDate"`
		} `json:"resource"`
	} `json:"entry"`
}

// maxPatients bounds the matches of one patient search.
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
// identifier, through the FHIR search API as the privacy officer:
// GET /console/access?by=name|identifier&q=. GET /console/access?patient=ID
// opens a report by the patient's id.
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
	var b patientBundle
	if err := h.getJSON(r, s, "/fhir/Patient?"+q.Encode(), &b); err != nil {
		// A refusal is shown with the search form, and the way on by id.
		if ae, ok := err.(*apiError); ok && ae.status < 500 && ae.status != http.StatusUnauthorized {
			p.Refused = ae.message
			h.render(w, r, s, ae.status, "access", "Access report", p)
			return
		}
		h.fail(w, r, s, err)
		return
	}
	for _, e := range b.Entry {
		m := patientMatch{ID: e.Resource.ID, BirthDate: e.Resource.BirthDate}
		if len(e.Resource.Name) > 0 {
			n := e.Resource.Name[0]
			m.Name = n.Text
			if m.Name == "" {
				m.Name = strings.TrimSpace(strings.Join(append(append([]string{}, n.Given...), n.Family), " "))
			}
		}
		p.Matches = append(p.Matches, m)
	}
	p.More = b.Total > len(p.Matches) || len(p.Matches) >= maxPatients
	h.render(w, r, s, http.StatusOK, "access", "Access report", p)
}

// accessRoutes registers the patient access report pages.
func (h *Handler) accessRoutes() {
	h.page("/console/access", "/console/access", "Access report", privacyOfficer, h.accessSearch)
	h.mux.HandleFunc("GET /console/access/{patient}", h.with(privacyOfficer, h.accessReport))
}
