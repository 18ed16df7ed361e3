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
	if h.opts.Risk == nil {
		writeError(w, phivault.Errorf(phivault.ENOTFOUND, "This server keeps no risk scores."))
		return
	}
	user := r.PathValue("id")
	if !h.record(w, r, h.entry(r, phivault.ActionExport, TargetUserRisk, user)) {
		return
	}
	score, factors := h.opts.Risk.UserRisk(user)
	if factors == nil {
		factors = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "score": score, "factors": factors})
}
