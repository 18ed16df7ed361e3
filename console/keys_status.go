package console

import (
	"errors"
	"net/http"
	"time"

	"github.com/phivault/phivault/admin"
)

// keyStatus is GET /fhir/admin/keys/status: the key-encryption key
// versions and the rewrap of stored keys under the current one.
type keyStatus struct {
	Current  string `json:"current"`
	Versions []struct {
		ID          string     `json:"id"`
		Created     time.Time  `json:"created"`
		Current     bool       `json:"current"`
		Compromised *time.Time `json:"compromised"`
		Retired     *time.Time `json:"retired"`
		Keys        int        `json:"keys"`
	} `json:"versions"`
	Rewrap struct {
		Running  bool       `json:"running"`
		Done     int        `json:"done"`
		Total    int        `json:"total"`
		Started  *time.Time `json:"started"`
		Finished *time.Time `json:"finished"`
		Error    string     `json:"error"`
	} `json:"rewrap"`
	// Due says why rotation is due; empty if it is not.
	Due []string `json:"due"`
}

// keysPage is the data of the Keys and vault page.
type keysPage struct {
	Status      *keyStatus // nil if the API gave none
	Unavailable string     // then, the API's reason (a sealed vault says so)
	CurrentAge  int        // days since the current version was made
	Percent     int        // of the rewrap
	Done        string     // the notice of the action just taken
	Error       string     // the refusal of the form just sent
	Draft       keysDraft
	// NeedApproval says that shreds and compromise marks wait for a
	// second admin (Options.KeyActionsNeedApproval); Changes are those
	// that wait, and Me the signed-in admin, who does not approve their
	// own.
	NeedApproval bool
	Changes      []admin.PendingChange
	Me           string
}

// keysDraft is a keys form as sent, kept when it is refused.
type keysDraft struct {
	Action, Target string
}

// keysDone are the notices a redirect to the Keys page may ask for.
var keysDone = map[string]string{
	"rotate":      "A new key-encryption key version is current; stored keys are being rewrapped under it.",
	"compromised": "The key version was marked compromised and is being forced out of use.",
	"rotate-key":  "The patient has a new data key; their records were re-encrypted and the old key destroyed.",
	"shred":       "The patient was crypto-shredded: their records can no longer be read.",
	"seal":        "The vault is sealed: no records are served until it is unsealed.",
	"awaits":      "Nothing was done yet: the action awaits a second security admin, listed below.",
	"approved":    "The action was approved and applied.",
	"rejected":    "The action was rejected; nothing was done.",
}

// keysView shows the key status and the key and vault actions:
// GET /console/keys.
func (h *Handler) keysView(w http.ResponseWriter, r *http.Request, s *session) {
	h.renderKeys(w, r, s, http.StatusOK, keysPage{Done: keysDone[r.URL.Query().Get("done")]})
}

// renderKeys loads the key status into p and renders the Keys page. A
// status the API does not give (a sealed vault, a keyring that reports
// none) is shown with the API's reason, and the actions stay.
func (h *Handler) renderKeys(w http.ResponseWriter, r *http.Request, s *session, status int, p keysPage) {
	var st keyStatus
	err := h.getJSON(r, s, "/fhir/admin/keys/status", &st)
	var ae *apiError
	switch {
	case err == nil:
		p.Status = &st
		for _, v := range st.Versions {
			if v.Current {
				p.CurrentAge = int(h.opts.Now().Sub(v.Created) / (24 * time.Hour))
			}
		}
		if st.Rewrap.Total > 0 {
			p.Percent = st.Rewrap.Done * 100 / st.Rewrap.Total
		}
	case errors.As(err, &ae) && (ae.status == http.StatusServiceUnavailable || ae.status == http.StatusUnsupportedMediaType || ae.status == http.StatusNotImplemented):
		p.Unavailable = ae.message
	default:
		h.fail(w, r, s, err)
		return
	}
	if p.NeedApproval = h.opts.KeyActionsNeedApproval; p.NeedApproval {
		changes, err := h.pendingChanges(r, s, keyChangeKinds...)
		if err != nil {
			h.fail(w, r, s, err)
			return
		}
		p.Changes, p.Me = changes, s.principal.ID
	}
	h.render(w, r, s, status, "keys", "Keys and vault", p)
}

// keysRoutes registers the Keys and vault pages.
func (h *Handler) keysRoutes() {
	h.page("/console/keys", "/console/keys", "Keys & vault", securityAdmin, h.keysView)
	h.mux.HandleFunc("POST /console/keys/{action}", h.with(securityAdmin, h.keysAction))
}
