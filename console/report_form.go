package console

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault/incident/report"
)

// reportKinds are the kinds of report, with the words the form shows.
var reportKinds = []struct{ Value, Label string }{
	{report.KindPhishing, "A suspicious e-mail, message or call (phishing)"},
	{report.KindLostDevice, "A lost or stolen device or badge"},
	{report.KindOddAccess, "Someone looking at records they should not"},
	{report.KindMisdirectedRecord, "A record sent or given to the wrong person"},
	{report.KindOther, "Something else"},
}

// reportDraft is the form's content, kept when the API refuses it so
// that nothing typed is lost.
type reportDraft struct {
	Kind, Description, Occurred, Patient, User string
	Anonymous                                  bool
}

// reportFormPage is the data of the report form.
type reportFormPage struct {
	Kinds []struct{ Value, Label string }
	Draft reportDraft
	Error string
}

// reportForm shows the form: GET /console/report.
func (h *Handler) reportForm(w http.ResponseWriter, r *http.Request, s *session) {
	h.render(w, r, s, http.StatusOK, "report", "Report something suspicious", reportFormPage{Kinds: reportKinds, Draft: reportDraft{Kind: report.KindPhishing}})
}

// reportSubmit sends the form to the reports API: POST /console/report.
// The console records nothing of its own: the API's entries of a
// reporter's requests name no account, and an anonymous report stays so.
func (h *Handler) reportSubmit(w http.ResponseWriter, r *http.Request, s *session) {
	d := reportDraft{
		Kind: r.PostFormValue("kind"), Description: r.PostFormValue("description"), Occurred: r.PostFormValue("occurred"),
		Patient: strings.TrimSpace(r.PostFormValue("patient")), User: strings.TrimSpace(r.PostFormValue("user")),
		Anonymous: r.PostFormValue("anonymous") == "on",
	}
	again := func(status int, msg string) {
		h.render(w, r, s, status, "report", "Report something suspicious", reportFormPage{Kinds: reportKinds, Draft: d, Error: msg})
	}
	body := map[string]any{"kind": d.Kind, "description": d.Description, "patient": d.Patient, "user": d.User, "anonymous": d.Anonymous}
	if d.Occurred != "" {
		t, err := time.Parse("2006-01-02T15:04", d.Occurred)
		if err != nil {
			again(http.StatusBadRequest, "Give when it happened as a date and time, or leave it empty.")
			return
		}
		body["occurred"] = t.UTC()
	}
	rp, err := h.api(r, s, http.MethodPost, "/security/reports", body)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	if err := rp.refusal(); err != nil {
		ae := err.(*apiError)
		if ae.status >= 500 {
			h.fail(w, r, s, err)
			return
		}
		again(ae.status, ae.message)
		return
	}
	var ack report.Ack
	if err := json.Unmarshal(rp.body, &ack); err != nil {
		h.internalError(w, r, s, "report answer", err)
		return
	}
	h.render(w, r, s, http.StatusCreated, "report_sent", "Report sent", ack)
}

// reportRoutes registers the staff report pages.
func (h *Handler) reportRoutes() {
	h.page("/console/report", "/console/report", "Report something", anyStaff, h.reportForm)
	h.mux.HandleFunc("POST /console/report", h.with(anyStaff, h.reportSubmit))
	h.page("/console/reports", "/console/reports", "My reports", anyStaff, h.reportsMine)
	h.mux.HandleFunc("POST /console/reports/follow", h.with(anyStaff, h.reportFollow))
}
