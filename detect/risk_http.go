package detect

import (
	"net/http"

	"github.com/phivault/phivault"
)

// UserScorer gives every user a risk score 0–100 and its top factors in
// words (RiskScorer is one). It is safe for concurrent use with the
// engine.
type UserScorer interface {
	UserRisk(user string) (int, []string)
}

var _ UserScorer = (*RiskScorer)(nil)

// TargetUserRisk is the target type of the audit entries of user risk
// reads.
const TargetUserRisk = "UserRisk"

// riskRoutes registers GET /security/users/{id}/risk: the user's risk
// score and its factors, for auditors. A user the scorer has not seen
// gets the neutral prior, so the answer does not tell whether an id
// exists.
func (h *handler) riskRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /security/users/{id}/risk", h.guard(TargetUserRisk, h.serveUserRisk))
}

func (h *handler) serveUserRisk(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("id")
	if !isIDText(user) { // the path is the caller's text: keep it out of the trail
		h.refuse(w, r, h.entry(r, phivault.ActionExport, TargetUserRisk, ""), phivault.Errorf(phivault.EINVALID, "The user id is not valid."))
		return
	}
	e := h.entry(r, phivault.ActionExport, TargetUserRisk, user)
	if h.opts.Risk == nil {
		h.refuse(w, r, e, phivault.Errorf(phivault.EUNSUPPORTED, "This server keeps no risk scores."))
		return
	}
	if !h.record(w, r, e) {
		return
	}
	score, factors := h.opts.Risk.UserRisk(user)
	if factors == nil {
		factors = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "score": score, "factors": factors})
}
