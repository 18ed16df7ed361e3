package console

import (
	"net/http"
	"net/url"
	"strings"
)

// Reason codes the status forms offer; the admin API takes any code
// (phivault.IsCode) and refuses anything else, with a message that says
// the rule.
var (
	suspendReasons  = []string{"left-organisation", "leave-of-absence", "investigation", "account-compromised"}
	activateReasons = []string{"returned", "error-corrected", "investigation-closed"}
)

// statusForm is the data of a suspend-or-activate form of the People
// page: for an account (kind "users") or a client ("clients").
type statusForm struct {
	Kind, Letter, ID, Status, Label, CSRF string
	Draft                                 statusDraft
}

// newStatusForm is the People template's statusForm function.
func newStatusForm(kind, id, status, label, csrf string, draft statusDraft) statusForm {
	return statusForm{Kind: kind, Letter: kind[:1], ID: id, Status: status, Label: label, CSRF: csrf, Draft: draft}
}

// statusDraft is a status form as sent, kept when it is refused so that
// the reason typed is not lost.
type statusDraft struct {
	Kind   string // "users" or "clients"
	ID     string
	Status string
	Reason string
}

// peopleStatus returns the handler that suspends or activates an account
// (kind "users") or a client ("clients") with a reason code:
// POST /console/people/{kind}/{id}/status. The admin API's PATCH decides,
// and refuses a reason that is not a code; it records the reason in the
// change's audit entry, and suspending ends the account's or client's
// sessions there. A change the API holds for a second admin is listed as
// such.
func (h *Handler) peopleStatus(kind string) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		d := statusDraft{Kind: kind, ID: r.PathValue("id"), Status: r.PostFormValue("status"),
			Reason: strings.TrimSpace(r.PostFormValue("reason"))}
		again := func(status int, msg string) {
			h.renderPeople(w, r, s, status, peoplePage{Error: msg, Draft: d})
		}
		switch {
		case d.Status != "active" && d.Status != "suspended":
			again(http.StatusBadRequest, "Choose to suspend or to activate; nothing was changed.")
			return
		case d.Reason == "":
			again(http.StatusBadRequest, "Give a reason code for the change, e.g. left-organisation; nothing was changed.")
			return
		}
		rp, err := h.api(r, s, http.MethodPatch, "/fhir/admin/"+kind+"/"+url.PathEscape(d.ID), map[string]string{"status": d.Status, "reason": d.Reason})
		if err != nil {
			h.fail(w, r, s, err)
			return
		}
		if err := rp.refusal(); err != nil {
			if ae := err.(*apiError); ae.status < 500 && ae.status != http.StatusForbidden && ae.status != http.StatusNotFound {
				again(ae.status, ae.message)
				return
			}
			h.fail(w, r, s, err)
			return
		}
		done := d.Status
		if rp.status == http.StatusAccepted {
			done = "awaits"
		}
		http.Redirect(w, r, "/console/people?done="+done, http.StatusSeeOther)
	}
}
