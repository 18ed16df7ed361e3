package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault/incident/report"
)

// reportsPage is the data of "My reports".
type reportsPage struct {
	Reports  []report.ReceiptView
	Followed *report.ReceiptView // a report followed by its receipt
	Error    string
}

// reportsMine lists the person's own named reports: GET /console/reports.
func (h *Handler) reportsMine(w http.ResponseWriter, r *http.Request, s *session) {
	h.renderReports(w, r, s, http.StatusOK, nil, "")
}

func (h *Handler) renderReports(w http.ResponseWriter, r *http.Request, s *session, status int, followed *report.ReceiptView, msg string) {
	var out struct {
		Reports []report.ReceiptView `json:"reports"`
	}
	if err := h.getJSON(r, s, "/security/reports?mine", &out); err != nil {
		h.fail(w, r, s, err)
		return
	}
	h.render(w, r, s, status, "reports", "My reports", reportsPage{Reports: out.Reports, Followed: followed, Error: msg})
}

// reportFollow shows one report by its id and receipt, the way to follow
// an anonymous one: POST /console/reports/follow (a form, so that the
// receipt stays out of URLs and histories).
func (h *Handler) reportFollow(w http.ResponseWriter, r *http.Request, s *session) {
	id, receipt := strings.TrimSpace(r.PostFormValue("id")), strings.TrimSpace(r.PostFormValue("receipt"))
	if id == "" || receipt == "" {
		h.renderReports(w, r, s, http.StatusBadRequest, nil, "Give the report's number and its receipt.")
		return
	}
	rp, err := h.api(r, s, http.MethodGet, "/security/reports/"+url.PathEscape(id), nil, report.ReceiptHeader, receipt)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		if ae := err.(*apiError); ae.status < 500 {
			h.renderReports(w, r, s, ae.status, nil, "No report has this number and receipt.")
			return
		}
		h.fail(w, r, s, err)
		return
	}
	var v report.ReceiptView
	if err := json.Unmarshal(rp.body, &v); err != nil {
		h.internalError(w, r, s, "report answer", err)
		return
	}
	h.renderReports(w, r, s, http.StatusOK, &v, "")
}
