package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault/admin"
)

// sealWord is what a person types to confirm sealing the vault.
const sealWord = "SEAL"

// keyAction is an action of the Keys page: the admin API path it posts
// to for a target (a patient or key version id, or none), and whether the
// person must type the target (or sealWord) to confirm it. Destructive
// actions, which cannot be undone, are confirmed.
type keyAction struct {
	target  string // what the target is, for messages; "" if none
	confirm bool
	path    func(target string) string
}

var keyActions = map[string]keyAction{
	"rotate": {path: func(string) string { return "/fhir/admin/keys/$rotate" }},
	"compromised": {target: "key version", confirm: true,
		path: func(id string) string { return "/fhir/admin/keys/" + url.PathEscape(id) + "/$compromised" }},
	"rotate-key": {target: "patient",
		path: func(id string) string { return "/fhir/admin/patients/" + url.PathEscape(id) + "/$rotate-key" }},
	"shred": {target: "patient", confirm: true,
		path: func(id string) string { return "/fhir/admin/patients/" + url.PathEscape(id) + "/$shred" }},
	"seal": {confirm: true, path: func(string) string { return "/fhir/admin/$seal" }},
}

// keysAction takes a key or vault action: POST /console/keys/{action}
// with the form's target and, for a destructive one, its typed
// confirmation, which the console checks before it calls the admin API:
// a wrong one is refused (400) and the API is not called.
func (h *Handler) keysAction(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("action")
	a, ok := keyActions[name]
	if !ok {
		h.renderError(w, r, s, http.StatusNotFound, "There is no such page in the console.")
		return
	}
	d := keysDraft{Action: name, Target: strings.TrimSpace(r.PostFormValue("target"))}
	again := func(status int, msg string) {
		h.renderKeys(w, r, s, status, keysPage{Error: msg, Draft: d})
	}
	want := sealWord
	if a.target != "" {
		if d.Target == "" {
			again(http.StatusBadRequest, "Give the "+a.target+" id; nothing was done.")
			return
		}
		want = d.Target
	} else {
		d.Target = ""
	}
	if a.confirm && r.PostFormValue("confirm") != want {
		msg := "To confirm, type the " + a.target + " id exactly as given; nothing was done."
		if a.target == "" {
			msg = "To confirm, type the word " + sealWord + " in capitals; nothing was done."
		}
		again(http.StatusBadRequest, msg)
		return
	}
	rp, err := h.api(r, s, http.MethodPost, a.path(d.Target), nil)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		if ae := err.(*apiError); ae.status < 500 && ae.status != http.StatusForbidden {
			again(ae.status, ae.message)
			return
		}
		h.fail(w, r, s, err)
		return
	}
	done := name
	if rp.status == http.StatusAccepted && awaits(rp.body) {
		done = "awaits"
	}
	http.Redirect(w, r, "/console/keys?done="+done, http.StatusSeeOther)
}

// awaits reports whether the admin API's answer body is a change that
// awaits a second admin (a 202 with the change) rather than an outcome.
func awaits(body []byte) bool {
	var out struct {
		Change *admin.PendingChange `json:"change"`
	}
	return json.Unmarshal(body, &out) == nil && out.Change != nil && out.Change.ID != ""
}
