package console

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"

	"github.com/phivault/phivault/auditlog"
)

// accessCSV streams the access report API's own CSV as an attachment:
// GET /console/access/{patient}.csv with the report's filters.
func (h *Handler) accessCSV(w http.ResponseWriter, r *http.Request, s *session, patient string) {
	f, msg := readAccessFilter(r)
	if msg != "" {
		h.renderError(w, r, s, http.StatusBadRequest, msg)
		return
	}
	rp, err := h.api(r, s, http.MethodGet, reportPath(patient, f, "csv"), nil)
	if err == nil {
		err = rp.refusal()
	}
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	disp := rp.header.Get("Content-Disposition")
	if !strings.HasPrefix(disp, "attachment") {
		disp = `attachment; filename="access-report.csv"`
	}
	w.Header().Set("Content-Disposition", disp)
	w.Write(rp.body)
}

// accessPDF renders the access report as a simple table in a PDF:
// GET /console/access/{patient}.pdf with the report's filters. The rows
// are the report API's (JSON), as the page shows them.
func (h *Handler) accessPDF(w http.ResponseWriter, r *http.Request, s *session, patient string) {
	f, msg := readAccessFilter(r)
	if msg != "" {
		h.renderError(w, r, s, http.StatusBadRequest, msg)
		return
	}
	var b auditBundle
	if err := h.getJSON(r, s, reportPath(patient, f, "json"), &b); err != nil {
		h.fail(w, r, s, err)
		return
	}
	rows := make([]auditRow, 0, len(b.Entry))
	for _, e := range b.Entry {
		rows = append(rows, rowOf(e.Resource))
	}
	var buf bytes.Buffer
	if err := writeAccessPDF(&buf, patient, f, rows, h.opts.Now()); err != nil {
		h.internalError(w, r, s, "access report PDF", err)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Disposition", `attachment; filename="access-report-patient-`+auditlog.SafeFileName(patient)+`.pdf"`)
	w.Write(buf.Bytes())
}

// writeAccessPDF writes the report as a landscape table on US Letter
// paper, its header row repeated on every page, dated now. The text is
// set in the embedded Go font, as the notice letters are.
func writeAccessPDF(w io.Writer, patient string, f accessFilter, rows []auditRow, now time.Time) error {
	pdf := fpdf.New("L", "mm", "Letter", "")
	pdf.SetCreationDate(now)
	pdf.SetModificationDate(now)
	pdf.SetTitle("Accounting of disclosures, patient "+patient, true)
	pdf.SetCreator("phivault", true)
	pdf.AddUTF8FontFromBytes("go", "", goregular.TTF)
	pdf.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	pdf.SetMargins(12, 12, 12)
	pdf.SetAutoPageBreak(true, 14)
	pdf.SetFooterFunc(func() {
		pdf.SetY(-10)
		pdf.SetFont("go", "", 7)
		pdf.CellFormat(0, 4, fmt.Sprintf("Patient %s · made %s · page %d", patient, now.UTC().Format("2006-01-02 15:04 UTC"), pdf.PageNo()), "", 0, "C", false, 0, "")
	})
	cols := []struct {
		head  string
		width float64
		cell  func(auditRow) string
	}{
		{"Entry", 14, func(r auditRow) string { return r.Index }},
		{"When (UTC)", 36, func(r auditRow) string { return r.When }},
		{"Who", 62, func(r auditRow) string { return r.Actor }},
		{"Roles", 34, func(r auditRow) string { return strings.Join(r.Roles, ", ") }},
		{"Action", 34, func(r auditRow) string { return strings.TrimSpace(r.Action + " " + r.Subtype) }},
		{"Purpose", 30, func(r auditRow) string { return strings.Join(r.Purposes, ", ") }},
		{"Outcome", 45, func(r auditRow) string { return r.Outcome }},
	}
	header := func() {
		pdf.SetFont("go", "B", 8)
		pdf.SetFillColor(230, 234, 240)
		for _, c := range cols {
			pdf.CellFormat(c.width, 6, c.head, "1", 0, "L", true, 0, "")
		}
		pdf.Ln(-1)
		pdf.SetFont("go", "", 8)
	}
	pdf.SetHeaderFuncMode(func() {
		if pdf.PageNo() > 1 {
			header()
		}
	}, true)
	pdf.AddPage()
	pdf.SetFont("go", "B", 13)
	pdf.CellFormat(0, 7, "Accounting of disclosures", "", 1, "L", false, 0, "")
	pdf.SetFont("go", "", 9)
	for _, line := range []string{
		"Patient " + patient + ": every recorded access to the patient's records, oldest first.",
		"Filters: " + f.describe() + ". " + fmt.Sprintf("%d entr%s.", len(rows), map[bool]string{true: "y", false: "ies"}[len(rows) == 1]),
	} {
		pdf.MultiCell(0, 5, line, "", "L", false)
	}
	pdf.Ln(2)
	header()
	for _, r := range rows {
		for _, c := range cols {
			pdf.CellFormat(c.width, 5.5, fit(pdf, c.cell(r), c.width-2), "1", 0, "L", false, 0, "")
		}
		pdf.Ln(-1)
	}
	if len(rows) == 0 {
		pdf.CellFormat(0, 6, "No access matches these filters.", "1", 1, "L", false, 0, "")
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("console: access report PDF: %w", err)
	}
	return nil
}

// fit shortens s with an ellipsis to width mm in the current font.
func fit(pdf *fpdf.Fpdf, s string, width float64) string {
	if pdf.GetStringWidth(s) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && pdf.GetStringWidth(string(r)+"…") > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

// describe says the filters in words, for the PDF.
func (f accessFilter) describe() string {
	var out []string
	if f.From != "" {
		out = append(out, "from "+f.From)
	}
	if f.To != "" {
		out = append(out, "to "+f.To)
	}
	if f.Action != "" {
		out = append(out, "action "+f.Action)
	}
	if f.Purpose != "" {
		out = append(out, "purpose "+f.Purpose)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
