package detect

import (
	"net/http"
	"strconv"
	"time"

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
// gets the neutral prior, so the score does not tell whether an id
// exists; its days (the baseline the score is made against, from a
// scorer that keeps them) do, to auditors, who read the trail anyway.
func (h *handler) riskRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /security/users/{id}/risk", h.guard(TargetUserRisk, h.serveUserRisk))
	mux.HandleFunc("GET /security/risk", h.guard(TargetUserRisk, h.serveRisk))
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
	out := map[string]any{"user": user, "score": score, "factors": factors}
	if d, ok := h.opts.Risk.(interface{ UserDays(string) []UserDay }); ok {
		out["days"] = nonNilDays(d.UserDays(user))
	}
	writeJSON(w, http.StatusOK, out)
}

// RiskRanker ranks users by risk and counts accesses per hour;
// RiskScorer is one. A UserScorer that is not gets 501 on GET
// /security/risk.
type RiskRanker interface {
	TopUsers(n int) []UserScore
	HourlyAccesses() (time.Time, [24]int)
}

var _ RiskRanker = (*RiskScorer)(nil)

// Bounds of GET /security/risk?top=N.
const (
	DefaultTopUsers = 10
	MaxTopUsers     = 100
)

// RiskSummary is the answer of GET /security/risk: the users with the
// highest risk scores, and the accesses in each hour of the scorer's
// current day.
type RiskSummary struct {
	Users  []UserScore `json:"users"`
	Day    time.Time   `json:"day,omitzero"`
	Hourly [24]int     `json:"hourly"`
}

// serveRisk answers GET /security/risk?top=N. Its entry lists the users
// it returns.
func (h *handler) serveRisk(w http.ResponseWriter, r *http.Request) {
	e := h.entry(r, phivault.ActionExport, TargetUserRisk, "", "top")
	n := DefaultTopUsers
	if v := r.URL.Query().Get("top"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxTopUsers {
			h.refuse(w, r, e, phivault.Errorf(phivault.EINVALID, "top must be a number from 1 to %d.", MaxTopUsers))
			return
		}
	}
	ranker, ok := h.opts.Risk.(RiskRanker)
	if !ok {
		h.refuse(w, r, e, phivault.Errorf(phivault.EUNSUPPORTED, "This server ranks no users by risk."))
		return
	}
	var out RiskSummary
	out.Users = ranker.TopUsers(n)
	out.Day, out.Hourly = ranker.HourlyAccesses()
	for _, u := range out.Users {
		e.Returned = append(e.Returned, TargetUserRisk+"/"+u.User)
	}
	if !h.record(w, r, e) {
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNilDays(d []UserDay) []UserDay {
	if d == nil {
		return []UserDay{}
	}
	return d
}
