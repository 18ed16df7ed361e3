package console

import (
	"net/http"
	"net/url"

	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/playbook"
)

// incidentPage is the data of an incident's page.
type incidentPage struct {
	Incident incident.View
	Actions  []actionRow
	Phases   []string
	// Privacy is true for a privacy officer: the breach-impact report and
	// the notices are theirs (the API's rule).
	Privacy bool
	Change  changeDraft // the change form, as typed
	Error   string      // the API's message of a refused change or action
}

// actionRow is an action of the incident and what may be done to it.
type actionRow struct {
	incident.Action
	Decide bool // awaiting a second person: approve or reject
	Undo   bool // done, and of a kind that can be undone
}

// changeDraft is the change form's content, kept when the API refuses it.
type changeDraft struct {
	Phase, Owner, Note string
}

// incidentView shows one incident: GET /console/incidents/{id}.
func (h *Handler) incidentView(w http.ResponseWriter, r *http.Request, s *session) {
	h.renderIncident(w, r, s, http.StatusOK, changeDraft{}, "")
}

// renderIncident shows the incident of the request's path with status,
// the change form holding d, and msg, the API's message of a refusal.
func (h *Handler) renderIncident(w http.ResponseWriter, r *http.Request, s *session, status int, d changeDraft, msg string) {
	id := r.PathValue("id")
	p := incidentPage{Phases: incident.Phases, Privacy: privacyOfficer(&s.principal), Change: d, Error: msg}
	if err := h.getJSON(r, s, "/security/incidents/"+url.PathEscape(id), &p.Incident); err != nil {
		h.fail(w, r, s, err)
		return
	}
	for _, a := range p.Incident.Actions {
		p.Actions = append(p.Actions, actionRow{Action: a,
			Decide: a.State == incident.ActionAwaiting,
			Undo:   a.State == incident.ActionDone && playbook.Undoable(a.Kind)})
	}
	title := p.Incident.Title
	if title == "" {
		title = "Incident " + shortID(p.Incident.ID)
	}
	h.render(w, r, s, status, "incident", title, p)
}
