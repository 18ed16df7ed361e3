// Package notice writes the notices a breach of unsecured protected
// health information calls for: the letters to the individuals, with
// the elements 45 CFR 164.404(c) requires, as one PDF; the mailing list
// of those letters for a mail house, as CSV; and the fields of the notice
// to the Secretary of HHS (the OCR breach portal's form), as a one-row
// CSV.
//
// The package does no I/O of its own and knows nothing of the vault: the
// incident package gathers what the audit trail tells (who was affected,
// which kinds of PHI, when), reads the addressees inside the vault, and
// hands them here. An [Addressee] holds a name and a postal address: its
// LogValue names its status only, so a log line can never print them.
//
// # The letter
//
// A [Letter] is built by [Compose] as plain text in five sections, one
// per element of 164.404(c)(1): what happened (with the dates of the
// breach and of its discovery), what information was involved (the kinds
// of PHI that left of that individual's record, in plain words), what the
// individual can do, what the organisation is doing, and how to reach it
// (a toll-free number and an e-mail address, web site or postal address).
// The privacy officer writes the description, the steps and the
// mitigation in a [Request]; the rest comes from the trail.
package notice

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/phivault/phivault"
)

// Formats of the notices.
const (
	FormatPDF = "pdf"     // the letters, one PDF
	FormatCSV = "csv"     // the letters' mailing list, one row per letter
	FormatHHS = "hhs-csv" // the notice to the Secretary, one row
)

// Limits of a request's free text, in characters.
const (
	MaxText  = 4000 // a paragraph text (description, steps, mitigation)
	MaxField = 200  // a one-line field (a name, a phone number)
	MaxList  = 20   // items of a list (safeguards, actions)
)

// Kinds of PHI, as the incident package names them (incident.Kind…).
const (
	kindDemographics = "demographics"
	kindDiagnoses    = "diagnoses"
	kindMedications  = "medications"
	kindResults      = "results"
	kindNotes        = "notes"
	kindFinancial    = "financial"
	kindCare         = "care"
	kindOther        = "other"
)

// KindOrder is the order the kinds of PHI are listed in.
var KindOrder = []string{kindDemographics, kindDiagnoses, kindMedications, kindResults, kindNotes, kindFinancial, kindCare, kindOther}

// plainKinds says each kind of PHI in plain words, for a letter.
var plainKinds = map[string]string{
	kindDemographics: "your name and the details that identify you, such as your address, date of birth and phone number",
	kindDiagnoses:    "your diagnoses, health conditions and allergies",
	kindMedications:  "your medicines and prescriptions",
	kindResults:      "your test results and measurements",
	kindNotes:        "notes and documents written about your care",
	kindFinancial:    "your insurance, billing and claims information",
	kindCare:         "information about your visits, treatments and care plans",
	kindOther:        "other information in your health record",
}

// Address is a postal address.
type Address struct {
	Lines      []string `json:"lines"`
	City       string   `json:"city"`
	State      string   `json:"state"`
	PostalCode string   `json:"postal_code"`
	Country    string   `json:"country,omitempty"`
}

// Block returns the address as the lines of an envelope's address block.
func (a Address) Block() []string {
	out := nonEmpty(a.Lines...)
	last := strings.TrimSpace(a.City)
	if rest := strings.Join(nonEmpty(a.State, a.PostalCode), " "); rest != "" {
		if last != "" {
			last += ", "
		}
		last += rest
	}
	if last != "" {
		out = append(out, last)
	}
	if c := strings.TrimSpace(a.Country); c != "" {
		out = append(out, c)
	}
	return out
}

// mailable reports whether a letter can be sent to a: a street line and
// a city or postal code.
func (a Address) mailable() bool {
	return len(nonEmpty(a.Lines...)) > 0 && (strings.TrimSpace(a.City) != "" || strings.TrimSpace(a.PostalCode) != "")
}

// Statuses of an addressee.
const (
	// StatusMail: a letter is written to the individual.
	StatusMail = "mail"
	// StatusNoAddress: the record holds no usable name or postal
	// address; the individual needs substitute notice (164.404(d)(2)).
	StatusNoAddress = "no-address"
	// StatusGone: the record was deleted or crypto-shredded; its
	// contact details are gone with it, and the individual needs
	// substitute notice.
	StatusGone = "gone"
	// StatusDeceased: the individual is known to have died. Notice goes
	// to the next of kin or personal representative if their address is
	// known (164.404(d)(1)(ii)), which this package does not write; no
	// substitute notice is required for them.
	StatusDeceased = "deceased"
	// StatusDecoy: a decoy patient (honeytoken), a made-up person: never
	// written to, never counted as affected.
	StatusDecoy = "decoy"
)

// Addressee is whom a letter goes to, read from a patient's record inside
// the vault. Its name and address are PHI: LogValue shows the status only.
type Addressee struct {
	Status  string
	Name    string
	Address Address
}

// LogValue logs the addressee's status only, never the name or address.
func (a Addressee) LogValue() slog.Value { return slog.StringValue(a.Status) }

// String is LogValue's text, so a %v never prints the name.
func (a Addressee) String() string { return "addressee(" + a.Status + ")" }

// GoString is String, for %#v.
func (a Addressee) GoString() string { return a.String() }

// Check returns a with its status set to StatusNoAddress if a letter
// cannot be sent to it.
func (a Addressee) Check() Addressee {
	if a.Status == StatusMail && (strings.TrimSpace(a.Name) == "" || !a.Address.mailable()) {
		a.Status = StatusNoAddress
	}
	return a
}

// Organisation is the covered entity's profile, as the privacy officer
// gives it: who sends the letters and how individuals reach it.
type Organisation struct {
	Name string `json:"name"`
	// Type is the kind of covered entity, as the HHS form names it:
	// "Healthcare Provider", "Health Plan" or "Healthcare Clearinghouse".
	Type    string  `json:"type"`
	Address Address `json:"address"`
	// Phone is the toll-free number individuals call (164.404(c)(1)(E)).
	Phone   string `json:"phone"`
	Email   string `json:"email"`
	Website string `json:"website"`
	// Contact is the person HHS may reach, and who signs the letters
	// unless Signature is set: "Jane Roe, Privacy Officer".
	Contact      string `json:"contact"`
	ContactPhone string `json:"contact_phone"`
	ContactEmail string `json:"contact_email"`
}

// HHSFields are the fields of the notice to the Secretary the trail
// cannot tell.
type HHSFields struct {
	// ReportType is "Initial" (the default) or "Addendum".
	ReportType string `json:"report_type"`
	// BreachType is one of BreachTypes; "Unauthorized Access/Disclosure"
	// by default, as a breach the trail shows is a read by someone in
	// the incident's scope.
	BreachType string `json:"breach_type"`
	// Location is one of Locations; "Electronic Medical Record" by
	// default.
	Location string `json:"location"`
	// Safeguards in place before the breach, and Actions taken in
	// response, in the form's words.
	Safeguards []string `json:"safeguards"`
	Actions    []string `json:"actions"`
	// NoticeDate is when the letters were (or will be) mailed, if known.
	NoticeDate time.Time `json:"notice_date,omitzero"`
}

// BreachTypes and Locations are the choices of the HHS form.
var (
	BreachTypes = []string{"Hacking/IT Incident", "Improper Disposal", "Loss", "Theft", "Unauthorized Access/Disclosure", "Other"}
	Locations   = []string{"Desktop Computer", "Electronic Medical Record", "Email", "Laptop", "Network Server",
		"Other Portable Electronic Devices", "Paper/Films", "Other"}
)

// Request is what the privacy officer supplies for the notices of an
// incident. The texts are the officer's own words, in plain language;
// the letters add the dates, the kinds of PHI and the contact details.
type Request struct {
	Format       string       `json:"format"`
	Organisation Organisation `json:"organisation"`
	// WhatHappened describes the breach (164.404(c)(1)(A)); the letter
	// puts the dates before it.
	WhatHappened string `json:"what_happened"`
	// Steps are what individuals should do to protect themselves (C).
	Steps string `json:"steps"`
	// Mitigation is what the organisation is doing to investigate, to
	// mitigate harm and to protect against further breaches (D).
	Mitigation string `json:"mitigation"`
	// Signature signs the letters; Organisation.Contact by default.
	Signature string `json:"signature"`
	// BreachStart and BreachEnd override the dates of the breach the
	// trail tells (the first and last read in scope).
	BreachStart time.Time `json:"breach_start,omitzero"`
	BreachEnd   time.Time `json:"breach_end,omitzero"`
	HHS         HHSFields `json:"hhs"`
}

// Validate checks r, filling in defaults. Its errors are EINVALID with a
// message safe to show, naming the field but never echoing its value.
func (r *Request) Validate() error {
	switch r.Format {
	case FormatPDF, FormatCSV, FormatHHS:
	default:
		return invalid("format must be %s, %s or %s.", FormatPDF, FormatCSV, FormatHHS)
	}
	o := &r.Organisation
	for name, v := range map[string]string{
		"organisation.name": o.Name, "organisation.phone": o.Phone,
		"what_happened": r.WhatHappened, "steps": r.Steps, "mitigation": r.Mitigation,
	} {
		if strings.TrimSpace(v) == "" {
			return invalid("%s is required: the letters must say it (45 CFR 164.404(c)).", name)
		}
	}
	if o.Email == "" && o.Website == "" && !o.Address.mailable() {
		return invalid("organisation needs an email, a website or a postal address besides the toll-free phone (45 CFR 164.404(c)(1)(E)).")
	}
	fields := map[string]string{
		"organisation.name": o.Name, "organisation.type": o.Type, "organisation.phone": o.Phone,
		"organisation.email": o.Email, "organisation.website": o.Website, "organisation.contact": o.Contact,
		"organisation.contact_phone": o.ContactPhone, "organisation.contact_email": o.ContactEmail,
		"organisation.address.city": o.Address.City, "organisation.address.state": o.Address.State,
		"organisation.address.postal_code": o.Address.PostalCode, "organisation.address.country": o.Address.Country,
		"signature": r.Signature, "hhs.report_type": r.HHS.ReportType, "hhs.breach_type": r.HHS.BreachType, "hhs.location": r.HHS.Location,
	}
	if len(o.Address.Lines) > 4 {
		return invalid("organisation.address.lines holds at most 4 lines.")
	}
	for i, l := range o.Address.Lines {
		fields[fmt.Sprintf("organisation.address.lines[%d]", i)] = l
	}
	for name, v := range fields {
		if err := checkText(name, v, MaxField, false); err != nil {
			return err
		}
	}
	for name, v := range map[string]string{"what_happened": r.WhatHappened, "steps": r.Steps, "mitigation": r.Mitigation} {
		if err := checkText(name, v, MaxText, true); err != nil {
			return err
		}
	}
	for name, list := range map[string][]string{"hhs.safeguards": r.HHS.Safeguards, "hhs.actions": r.HHS.Actions} {
		if len(list) > MaxList {
			return invalid("%s holds at most %d items.", name, MaxList)
		}
		for _, v := range list {
			if err := checkText(name, v, MaxField, false); err != nil {
				return err
			}
		}
	}
	if r.Signature == "" {
		r.Signature = o.Contact
	}
	if r.HHS.ReportType == "" {
		r.HHS.ReportType = "Initial"
	}
	if r.HHS.ReportType != "Initial" && r.HHS.ReportType != "Addendum" {
		return invalid("hhs.report_type must be Initial or Addendum.")
	}
	if r.HHS.BreachType == "" {
		r.HHS.BreachType = "Unauthorized Access/Disclosure"
	}
	if !contains(BreachTypes, r.HHS.BreachType) {
		return invalid("hhs.breach_type must be one of: %s.", strings.Join(BreachTypes, ", "))
	}
	if r.HHS.Location == "" {
		r.HHS.Location = "Electronic Medical Record"
	}
	if !contains(Locations, r.HHS.Location) {
		return invalid("hhs.location must be one of: %s.", strings.Join(Locations, ", "))
	}
	if !r.BreachStart.IsZero() && !r.BreachEnd.IsZero() && r.BreachEnd.Before(r.BreachStart) {
		return invalid("breach_end is before breach_start.")
	}
	return nil
}

// checkText refuses text longer than max characters, not UTF-8, or with
// control characters (newlines only where multiline).
func checkText(name, v string, max int, multiline bool) error {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > max {
		return invalid("%s must be UTF-8 text of at most %d characters.", name, max)
	}
	for _, c := range v {
		if unicode.IsControl(c) && !(multiline && (c == '\n' || c == '\r' || c == '\t')) {
			return invalid("%s holds a control character.", name)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return phivault.Errorf(phivault.EINVALID, format, args...)
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

func nonEmpty(vs ...string) []string {
	var out []string
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}
