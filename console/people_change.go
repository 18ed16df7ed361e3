package console

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/phivault/phivault/admin"
)

// changesTable is the data of the table of changes awaiting a second
// admin, which the People page shows whole and the Keys page for its own
// actions. Back is the page its forms return to: "people" or "keys".
type changesTable struct {
	Changes        []admin.PendingChange
	Me, CSRF, Back string
}

// newChangesTable is the templates' changesTable function.
func newChangesTable(changes []admin.PendingChange, me, csrf, back string) changesTable {
	return changesTable{Changes: changes, Me: me, CSRF: csrf, Back: back}
}

// keyChangeKinds are the changes the Keys page lists: its own actions
// that wait for a second admin.
var keyChangeKinds = []string{admin.ChangeShred, admin.ChangeKeyCompromised}

// pendingChanges returns the changes awaiting a second admin, oldest
// first; with kinds, only changes of those kinds.
func (h *Handler) pendingChanges(r *http.Request, s *session, kinds ...string) ([]admin.PendingChange, error) {
	var out struct {
		Changes []admin.PendingChange `json:"changes"`
	}
	if err := h.getJSON(r, s, "/fhir/admin/changes", &out); err != nil {
		return nil, err
	}
	if len(kinds) > 0 {
		out.Changes = slices.DeleteFunc(out.Changes, func(c admin.PendingChange) bool { return !slices.Contains(kinds, c.Kind) })
	}
	return out.Changes, nil
}

// peopleChange approves or rejects a change awaiting a second admin:
// POST /console/people/changes/{change}/{verdict}, verdict "approve" or
// "reject", back to the page named by the form's "back" (the Keys page,
// or People). The admin API refuses the approval of one's own request, or
// of a change to one's own account.
func (h *Handler) peopleChange(w http.ResponseWriter, r *http.Request, s *session) {
	verdict := r.PathValue("verdict")
	if verdict != "approve" && verdict != "reject" {
		h.renderError(w, r, s, http.StatusNotFound, "There is no such page in the console.")
		return
	}
	keys := r.PostFormValue("back") == "keys"
	rp, err := h.api(r, s, http.MethodPost, "/fhir/admin/changes/"+url.PathEscape(r.PathValue("change"))+"/"+verdict, nil)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		switch ae := err.(*apiError); {
		case ae.status >= 500:
			h.fail(w, r, s, err)
		case keys:
			h.renderKeys(w, r, s, ae.status, keysPage{Error: ae.message})
		default:
			h.renderPeople(w, r, s, ae.status, peoplePage{Error: ae.message})
		}
		return
	}
	done := "approved"
	if verdict == "reject" {
		done = "rejected"
	}
	page := "/console/people"
	if keys {
		page = "/console/keys"
	}
	http.Redirect(w, r, page+"?done="+done, http.StatusSeeOther)
}
