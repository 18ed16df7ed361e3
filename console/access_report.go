package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// accessPurposes are the purpose-of-use codes (v3-ActReason) offered as
// filters of the access report; the API takes any such code.
var accessPurposes = []struct{ Code, Label string }{
	{"TREAT", "treatment"}, {"ETREAT", "emergency treatment"}, {"BTG", "break the glass"},
	{"HPAYMT", "payment"}, {"HOPERAT", "operations"}, {"PATRQT", "patient's request"},
	{"HRESCH", "research"}, {"HLEGAL", "legal"}, {"PUBHLTH", "public health"},
}

// accessFilter is the access report's filters, as the person gave them.
type accessFilter struct {
	From, To, Action, Purpose string // from and to: dates, YYYY-MM-DD, UTC
}

// readAccessFilter reads the filters of r, or returns a message for the
// person if one is not valid.
func readAccessFilter(r *http.Request) (accessFilter, string) {
	in := r.URL.Query()
	f := accessFilter{From: strings.TrimSpace(in.Get("from")), To: strings.TrimSpace(in.Get("to")),
		Action: in.Get("action"), Purpose: strings.TrimSpace(in.Get("purpose"))}
	for _, d := range []string{f.From, f.To} {
		if _, err := time.Parse(time.DateOnly, d); d != "" && err != nil {
			return f, "Give the dates as YYYY-MM-DD."
		}
	}
	if f.Action != "" && !slices.ContainsFunc(auditActions, func(a struct{ Code, Label string }) bool { return a.Code == f.Action }) {
		return f, "The action must be one of C, R, U, D or E."
	}
	return f, ""
}

// query returns the report API's query for f and format: every filter
// is the API's (date, action, purpose), none is applied here.
func (f accessFilter) query(format string) url.Values {
	q := url.Values{"format": {format}}
	if f.From != "" {
		q.Add("date", "ge"+f.From)
	}
	if f.To != "" {
		q.Add("date", "le"+f.To)
	}
	if f.Action != "" {
		q.Set("action", f.Action)
	}
	if f.Purpose != "" {
		q.Set("purpose", f.Purpose)
	}
	return q
}

// encode returns f as the console's own query string, for the export links.
func (f accessFilter) encode() string {
	q := f.query("")
	q.Del("format")
	q.Del("date")
	if f.From != "" {
		q.Set("from", f.From)
	}
	if f.To != "" {
		q.Set("to", f.To)
	}
	return q.Encode()
}

// reportPath returns the API path of patient's access report.
func reportPath(patient string, f accessFilter, format string) string {
	return "/fhir/admin/reports/patients/" + url.PathEscape(patient) + "/access?" + f.query(format).Encode()
}

// accessReportPage is the data of a patient's access report.
type accessReportPage struct {
	Patient  string
	Filter   accessFilter
	Actions  []struct{ Code, Label string }
	Purposes []struct{ Code, Label string }
	Rows     []auditRow
	Total    int64
	Query    string // the filters, for the export links
	Error    string
}

// accessReport shows a patient's accounting of disclosures, from the
// access report API: GET /console/access/{patient}?from=&to=&action=&purpose=.
// GET /console/access/{patient}.csv and .pdf export it.
func (h *Handler) accessReport(w http.ResponseWriter, r *http.Request, s *session) {
	patient := r.PathValue("patient")
	if id, ok := strings.CutSuffix(patient, ".csv"); ok {
		h.accessCSV(w, r, s, id)
		return
	}
	if id, ok := strings.CutSuffix(patient, ".pdf"); ok {
		h.accessPDF(w, r, s, id)
		return
	}
	f, msg := readAccessFilter(r)
	p := accessReportPage{Patient: patient, Filter: f, Actions: auditActions, Purposes: accessPurposes, Query: f.encode()}
	if msg != "" {
		p.Error = msg
		h.render(w, r, s, http.StatusBadRequest, "access_report", "Access report", p)
		return
	}
	var b auditBundle
	if err := h.getJSON(r, s, reportPath(patient, f, "json"), &b); err != nil {
		if ae, ok := err.(*apiError); ok && ae.status == http.StatusBadRequest {
			p.Error = ae.message
			h.render(w, r, s, ae.status, "access_report", "Access report", p)
			return
		}
		h.fail(w, r, s, err)
		return
	}
	for _, e := range b.Entry {
		p.Rows = append(p.Rows, rowOf(e.Resource))
	}
	p.Total = b.Total
	h.render(w, r, s, http.StatusOK, "access_report", "Access report", p)
}
