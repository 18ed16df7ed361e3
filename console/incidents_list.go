package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/phivault/phivault/incident"
)

// incidentStatuses are the list's status filter: open (not closed),
// closed, or "" for every incident.
var incidentStatuses = []string{"open", "closed"}

// incidentsPage is the data of the incidents list.
type incidentsPage struct {
	Incidents []incident.View
	Status    string // the filters in use
	Phase     string
	Owner     string
	User      string
	Patient   string
	Alert     string
	Statuses  []string
	Phases    []string // the phases short of closed
	More      bool     // as many incidents as asked for: there may be more
}

// incidentList lists incidents, newest first (as the API answers),
// filtered by status, phase, owner, user, patient and alert:
// GET /console/incidents?status=&phase=&owner=&user=&patient=&alert=.
func (h *Handler) incidentList(w http.ResponseWriter, r *http.Request, s *session) {
	in := r.URL.Query()
	p := incidentsPage{Status: in.Get("status"), Phase: in.Get("phase"), Owner: in.Get("owner"), User: in.Get("user"),
		Patient: in.Get("patient"), Alert: in.Get("alert"), Statuses: incidentStatuses,
		Phases: incident.Phases[:len(incident.Phases)-1]}
	if !in.Has("status") {
		p.Status = "open"
	}
	q := url.Values{"limit": {strconv.Itoa(maxListed)}}
	switch {
	case p.Status != "" && !slices.Contains(incidentStatuses, p.Status):
		h.renderError(w, r, s, http.StatusBadRequest, "Unknown incident status; choose open, closed or any.")
		return
	case p.Phase != "" && !slices.Contains(p.Phases, p.Phase):
		h.renderError(w, r, s, http.StatusBadRequest, "Unknown incident phase.")
		return
	case p.Status == "closed" && p.Phase != "":
		h.renderError(w, r, s, http.StatusBadRequest, "A closed incident has no other phase: choose a phase or closed, not both.")
		return
	case p.Status == "open":
		q.Set("open", "true")
	case p.Status == "closed":
		q.Set("phase", incident.PhaseClosed)
	}
	for name, v := range map[string]string{"phase": p.Phase, "owner": p.Owner, "user": p.User, "patient": p.Patient, "alert": p.Alert} {
		if v != "" {
			q.Set(name, v)
		}
	}
	var list struct {
		Incidents []incident.View `json:"incidents"`
	}
	if err := h.getJSON(r, s, "/security/incidents?"+q.Encode(), &list); err != nil {
		h.fail(w, r, s, err)
		return
	}
	p.Incidents, p.More = list.Incidents, len(list.Incidents) >= maxListed
	h.render(w, r, s, http.StatusOK, "incidents", "Incidents", p)
}

// incidentRoutes registers the incident pages.
func (h *Handler) incidentRoutes() {
	h.page("/console/incidents", "/console/incidents", "Incidents", officer, h.incidentList)
	h.mux.HandleFunc("GET /console/incidents/{id}", h.with(officer, h.incidentView))
	h.mux.HandleFunc("POST /console/incidents/{id}/change", h.with(officer, h.incidentChange))
	h.mux.HandleFunc("POST /console/incidents/{id}/actions/{action}/{op}", h.with(officer, h.incidentAction))
	h.mux.HandleFunc("GET /console/incidents/{id}/evidence", h.with(officer, h.incidentEvidence))
	h.mux.HandleFunc("GET /console/incidents/{id}/breach", h.with(privacyOfficer, h.incidentBreach))
	// Open to every officer: the API, not the console, refuses the
	// notices to those who are not privacy officers.
	h.mux.HandleFunc("POST /console/incidents/{id}/notices", h.with(officer, h.incidentNotices))
}
