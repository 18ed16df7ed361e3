package notice

import (
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"
)

// MailingHeader is the header row of the mailing list.
var MailingHeader = []string{"reference", "name", "address_line_1", "address_line_2", "address_line_3", "city", "state", "postal_code", "country"}

// WriteMailing writes the mailing list of letters to w as CSV: a header
// row, then one row per letter, in the PDF's order. Only what a mail
// house needs goes in it: the reference, the name and the address.
func WriteMailing(w io.Writer, letters []*Letter) error {
	cw := csv.NewWriter(w)
	rows := [][]string{MailingHeader}
	for _, l := range letters {
		a := l.To.Address
		lines := nonEmpty(a.Lines...)
		line := func(i int) string {
			if i == 2 && len(lines) > 3 {
				return strings.Join(lines[2:], ", ")
			}
			if i < len(lines) {
				return lines[i]
			}
			return ""
		}
		rows = append(rows, []string{l.Reference, l.To.Name, line(0), line(1), line(2), a.City, a.State, a.PostalCode, a.Country})
	}
	return writeAll(cw, rows)
}

// Summary counts the individuals of the notices by how they are reached.
type Summary struct {
	Letters    int `json:"letters"`    // a letter each
	Substitute int `json:"substitute"` // no usable address: substitute notice (164.404(d)(2))
	Deceased   int `json:"deceased"`   // known to have died: next of kin, if their address is known
	Decoys     int `json:"decoys"`     // decoy patients: not people, not counted as affected
}

// Affected is how many individuals the breach affected: all but the
// decoys.
func (s Summary) Affected() int { return s.Letters + s.Substitute + s.Deceased }

// SubstituteRule says which substitute notice the count calls for
// (164.404(d)(2)); "" if none.
func (s Summary) SubstituteRule() string {
	switch {
	case s.Substitute >= 10:
		return "10 or more: a conspicuous posting on the home page of the web site for 90 days, or notice in major print or broadcast media where they likely live, with a toll-free number active for at least 90 days (45 CFR 164.404(d)(2)(ii))"
	case s.Substitute > 0:
		return "fewer than 10: an alternative form of written notice, by telephone, or by other means (45 CFR 164.404(d)(2)(i))"
	}
	return ""
}

// HHSReport is the notice to the Secretary of a breach (45 CFR
// 164.408), in the sections of the OCR breach portal's form.
type HHSReport struct {
	Request     *Request
	Breach      Breach
	Summary     Summary
	MediaStates []string // states with more than 500 residents affected
	Generated   time.Time
}

// HHSHeader is the header row of the HHS report.
var HHSHeader = []string{
	"report_type", "breach_affecting",
	"covered_entity_name", "covered_entity_type", "street", "city", "state", "zip",
	"contact_name", "contact_phone", "contact_email",
	"breach_start_date", "breach_end_date", "discovery_start_date", "discovery_end_date",
	"approximate_individuals_affected", "type_of_breach", "location_of_breached_information",
	"type_of_phi", "brief_description", "safeguards_in_place",
	"individual_notice_provided_date", "substitute_notice_required", "media_notice_required", "media_states",
	"actions_taken", "other_actions_description",
	"incident", "resources_affected", "generated",
}

// hhsPHI maps the kinds of PHI to the form's types (and subtypes).
var hhsPHI = []struct{ kind, typ string }{
	{kindDemographics, "Demographic"},
	{kindDiagnoses, "Clinical: Diagnosis/Conditions"},
	{kindResults, "Clinical: Lab Results"},
	{kindMedications, "Clinical: Medications"},
	{kindNotes, "Clinical: Other Treatment Information"},
	{kindCare, "Clinical: Other Treatment Information"},
	{kindFinancial, "Financial: Claims Information"},
	{kindOther, "Other"},
}

// WriteHHS writes the report to w as CSV: the header row and one row.
func WriteHHS(w io.Writer, rep *HHSReport) error {
	r, b, s := rep.Request, rep.Breach, rep.Summary
	o := r.Organisation
	began, ended := b.dates(r)
	affecting := "Fewer Than 500 Individuals"
	if s.Affected() >= 500 {
		affecting = "500 or More Individuals"
	}
	var phi []string
	for _, p := range hhsPHI {
		if b.ByKind[p.kind] > 0 && !contains(phi, p.typ) {
			phi = append(phi, p.typ)
		}
	}
	actions := append([]string(nil), r.HHS.Actions...)
	if len(b.ActionsDone) > 0 {
		actions = append(actions, "Other: incident containment actions done: "+strings.Join(b.ActionsDone, ", "))
	}
	contactPhone, contactEmail := o.ContactPhone, o.ContactEmail
	if contactPhone == "" {
		contactPhone = o.Phone
	}
	if contactEmail == "" {
		contactEmail = o.Email
	}
	row := []string{
		r.HHS.ReportType, affecting,
		o.Name, o.Type, strings.Join(nonEmpty(o.Address.Lines...), ", "), o.Address.City, o.Address.State, o.Address.PostalCode,
		o.Contact, contactPhone, contactEmail,
		date(began), date(ended), date(b.Discovered), date(b.Discovered),
		fmt.Sprint(s.Affected()), r.HHS.BreachType, r.HHS.Location,
		strings.Join(phi, "; "), strings.Join(paragraphs(r.WhatHappened), " "), strings.Join(r.HHS.Safeguards, "; "),
		date(r.HHS.NoticeDate), yesNo(s.Substitute > 0), yesNo(len(rep.MediaStates) > 0), strings.Join(rep.MediaStates, " "),
		strings.Join(actions, "; "), strings.Join(paragraphs(r.Mitigation), " "),
		b.Incident, fmt.Sprint(b.Resources), rep.Generated.UTC().Format(time.RFC3339),
	}
	return writeAll(csv.NewWriter(w), [][]string{HHSHeader, row})
}

func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func writeAll(cw *csv.Writer, rows [][]string) error {
	for _, row := range rows {
		for i := range row {
			row[i] = Cell(row[i])
		}
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("notice: write the CSV: %w", err)
	}
	return nil
}

// Cell returns v safe to open in a spreadsheet: a value a spreadsheet
// would read as a formula (starting with =, +, -, @, a tab or a carriage
// return) gets a leading apostrophe, as OWASP's CSV injection advice
// says. The csv package quotes the rest.
func Cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
