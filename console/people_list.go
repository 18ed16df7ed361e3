package console

import (
	"net/http"
	"time"

	"github.com/phivault/phivault/admin"
)

// trainingWarnDays: training that ends within this many days is flagged
// as expiring on the People page.
const trainingWarnDays = 30

// peoplePage is the data of the People page.
type peoplePage struct {
	Users   []userRow
	Clients []admin.ClientView
	Changes []admin.PendingChange
	Me      string // the signed-in admin's account id: they do not approve their own requests
	Console string // the console's own client id, marked in the client list
	Done    string // the notice of the change just made, from the redirect
	Error   string // the refusal of the form just sent
	Draft   statusDraft
	// SuspendReasons and ActivateReasons are the reason codes the status
	// forms offer.
	SuspendReasons, ActivateReasons []string
}

// userRow is an account of the People page with its training state:
// "valid", "expiring" (within trainingWarnDays), "expired" or "none".
type userRow struct {
	admin.User
	Training string
	DaysLeft int
}

// peopleDone are the notices a redirect to the People page may ask for;
// nothing the person typed travels in the address.
var peopleDone = map[string]string{
	"suspended": "The status was set to suspended; the sessions it held were ended.",
	"active":    "The status was set to active.",
	"awaits":    "The change was not applied: it awaits a second security admin, listed below.",
	"approved":  "The change was approved and applied.",
	"rejected":  "The change was rejected; nothing was applied.",
}

// peopleList shows the accounts, clients and changes awaiting a second
// admin: GET /console/people.
func (h *Handler) peopleList(w http.ResponseWriter, r *http.Request, s *session) {
	h.renderPeople(w, r, s, http.StatusOK, peoplePage{Done: peopleDone[r.URL.Query().Get("done")]})
}

// renderPeople loads the lists into p and renders the People page.
func (h *Handler) renderPeople(w http.ResponseWriter, r *http.Request, s *session, status int, p peoplePage) {
	var users struct {
		Users []admin.User `json:"users"`
	}
	var clients struct {
		Clients []admin.ClientView `json:"clients"`
	}
	for path, v := range map[string]any{"/fhir/admin/users": &users, "/fhir/admin/clients": &clients} {
		if err := h.getJSON(r, s, path, v); err != nil {
			h.fail(w, r, s, err)
			return
		}
	}
	changes, err := h.pendingChanges(r, s)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	today := h.opts.Now().UTC().Truncate(24 * time.Hour)
	for _, u := range users.Users {
		p.Users = append(p.Users, trainingRow(u, today))
	}
	p.Clients, p.Changes = clients.Clients, changes
	p.Me, p.Console = s.principal.ID, ClientID
	p.SuspendReasons, p.ActivateReasons = suspendReasons, activateReasons
	h.render(w, r, s, status, "people", "People", p)
}

// trainingRow returns u with its training state on day today (UTC
// midnight): training is valid through its whole last day.
func trainingRow(u admin.User, today time.Time) userRow {
	row := userRow{User: u, Training: "none"}
	until, err := time.Parse(time.DateOnly, u.TrainingValidUntil)
	if err != nil {
		return row
	}
	row.DaysLeft = int(until.Sub(today) / (24 * time.Hour))
	switch {
	case row.DaysLeft < 0:
		row.Training = "expired"
	case row.DaysLeft <= trainingWarnDays:
		row.Training = "expiring"
	default:
		row.Training = "valid"
	}
	return row
}

// peopleRoutes registers the People pages.
func (h *Handler) peopleRoutes() {
	h.page("/console/people", "/console/people", "People", securityAdmin, h.peopleList)
	h.mux.HandleFunc("POST /console/people/users/{id}/status", h.with(securityAdmin, h.peopleStatus("users")))
	h.mux.HandleFunc("POST /console/people/clients/{id}/status", h.with(securityAdmin, h.peopleStatus("clients")))
	h.mux.HandleFunc("POST /console/people/changes/{change}/{verdict}", h.with(securityAdmin, h.peopleChange))
}
