package notice

import (
	"fmt"
	"strings"
	"time"
)

// Breach is what the audit trail and the incident tell of a breach.
type Breach struct {
	Incident string
	// Began and Ended are the first and last read in the incident's
	// scope that returned records; zero if unknown.
	Began, Ended time.Time
	// Discovered is the HIPAA discovery date of the incident.
	Discovered time.Time
	// Resources counts the resource versions that left.
	Resources int
	// ByKind counts them by kind of PHI (incident.Kind…).
	ByKind map[string]int
	// ActionsDone are the incident's containment actions carried out
	// (their kinds: suspend-account, revoke-sessions, …).
	ActionsDone []string
}

// dates returns the breach's dates, r's overrides first.
func (b Breach) dates(r *Request) (began, ended time.Time) {
	began, ended = b.Began, b.Ended
	if !r.BreachStart.IsZero() {
		began = r.BreachStart
	}
	if !r.BreachEnd.IsZero() {
		ended = r.BreachEnd
	}
	return began, ended
}

// Elements of 45 CFR 164.404(c)(1) a letter's sections carry.
const (
	ElementWhatHappened = "A" // what happened, the date of the breach and of its discovery
	ElementInformation  = "B" // the types of unsecured PHI involved
	ElementSteps        = "C" // steps individuals should take
	ElementMitigation   = "D" // what the covered entity is doing
	ElementContact      = "E" // contact procedures
)

// Section is a headed part of a letter.
type Section struct {
	Element    string // the 164.404(c)(1) element it meets
	Heading    string
	Paragraphs []string
}

// Letter is one individual's notice, as plain text in sections.
type Letter struct {
	// Reference identifies the letter to the mail house and on returned
	// mail: the incident's and the letter's number, not the patient's.
	Reference string
	Date      time.Time
	From      Organisation
	To        Addressee
	Subject   string
	Greeting  string
	Opening   string
	Sections  []Section
	Closing   string
	Signature string
}

// Compose writes the letter to the individual to of breach b, whose
// kinds of PHI that left are kinds (incident.Kind…), with the officer's
// texts of r (validated), dated date.
func Compose(b Breach, kinds []string, to Addressee, r *Request, date time.Time, ref string) *Letter {
	org := r.Organisation
	l := &Letter{
		Reference: ref, Date: date, From: org, To: to,
		Subject:  "Notice of a privacy incident involving your health information",
		Greeting: "Dear " + strings.TrimSpace(to.Name) + ",",
		Opening: fmt.Sprintf("We are writing to tell you about an incident that involved some of your health information held by %s. "+
			"We take the privacy of your information seriously, and we are sorry this happened.", org.Name),
		Closing:   "Sincerely,",
		Signature: r.Signature,
	}
	began, ended := b.dates(r)
	var when string
	switch {
	case began.IsZero():
		when = "At a date we are still establishing, "
	case ended.IsZero() || sameDay(began, ended):
		when = "On " + day(began) + ", "
	default:
		when = "Between " + day(began) + " and " + day(ended) + ", "
	}
	happened := when + "someone who was not allowed to see it looked at information from your health record. " +
		"We found out about it on " + day(b.Discovered) + "."
	l.Sections = append(l.Sections, Section{ElementWhatHappened, "What happened", append([]string{happened}, paragraphs(r.WhatHappened)...)})

	var items []string
	for _, k := range KindOrder {
		if contains(kinds, k) {
			items = append(items, plainKinds[k])
		}
	}
	if len(items) == 0 {
		items = []string{plainKinds[kindOther]}
	}
	l.Sections = append(l.Sections, Section{ElementInformation, "What information was involved",
		[]string{"The information involved was " + list(items) + ".",
			"This letter lists the kinds of information that were seen. It does not repeat the information itself."}})
	l.Sections = append(l.Sections, Section{ElementSteps, "What you can do", paragraphs(r.Steps)})
	l.Sections = append(l.Sections, Section{ElementMitigation, "What we are doing", paragraphs(r.Mitigation)})

	contact := []string{"If you have questions, please call us free of charge at " + org.Phone + "."}
	if org.Email != "" {
		contact = append(contact, "E-mail: "+org.Email)
	}
	if org.Website != "" {
		contact = append(contact, "Website: "+org.Website)
	}
	if org.Address.mailable() {
		contact = append(contact, "Write to: "+strings.Join(append([]string{org.Name}, org.Address.Block()...), ", "))
	}
	contact = append(contact, "Please mention reference "+ref+" when you contact us.")
	l.Sections = append(l.Sections, Section{ElementContact, "For more information", contact})
	return l
}

// Text returns the letter as plain text, as the PDF prints it.
func (l *Letter) Text() string {
	var b strings.Builder
	for _, line := range append([]string{l.From.Name}, l.From.Address.Block()...) {
		b.WriteString(line + "\n")
	}
	b.WriteString("\n" + day(l.Date) + "\n\n")
	for _, line := range append([]string{l.To.Name}, l.To.Address.Block()...) {
		b.WriteString(line + "\n")
	}
	b.WriteString("\nReference: " + l.Reference + "\n\n" + l.Subject + "\n\n" + l.Greeting + "\n\n" + l.Opening + "\n")
	for _, s := range l.Sections {
		b.WriteString("\n" + s.Heading + "\n")
		for _, p := range s.Paragraphs {
			b.WriteString(p + "\n")
		}
	}
	b.WriteString("\n" + l.Closing + "\n" + l.Signature + "\n" + l.From.Name + "\n")
	return b.String()
}

// paragraphs splits text at blank lines, joining the lines within each.
func paragraphs(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out []string
	for _, p := range strings.Split(text, "\n\n") {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// list joins items in plain English: "a; b; and c" (items hold commas).
func list(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return strings.Join(items[:len(items)-1], "; ") + "; and " + items[len(items)-1]
}

// day writes t as a date in words, "March 4, 2026", in UTC.
func day(t time.Time) string {
	if t.IsZero() {
		return "a date we are still establishing"
	}
	return t.UTC().Format("January 2, 2006")
}

func sameDay(a, b time.Time) bool {
	a, b = a.UTC(), b.UTC()
	return a.YearDay() == b.YearDay() && a.Year() == b.Year()
}
