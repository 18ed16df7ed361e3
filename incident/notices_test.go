package incident_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/notice"
)

// addressBook is an incident.Addressees in memory. It checks, at each
// call, that the trail already holds the notices' entry naming the
// patient.
type addressBook struct {
	log    *trail
	book   map[string]notice.Addressee
	decoys []string

	mu       sync.Mutex
	calls    []string
	unlogged []string // patients read before an entry named them
}

func (b *addressBook) Decoys(context.Context) ([]string, error) { return b.decoys, nil }

func (b *addressBook) Addressee(_ context.Context, p string) (notice.Addressee, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, p)
	if !slices.ContainsFunc(b.log.all(), func(e *phivault.AuditEntry) bool {
		return strings.HasPrefix(e.Decision, "breach notices") && e.Outcome == "ok" && slices.Contains(e.Compartments, p)
	}) {
		b.unlogged = append(b.unlogged, p)
	}
	if a, ok := b.book[p]; ok {
		return a, nil
	}
	return notice.Addressee{Status: notice.StatusGone}, nil // shredded
}

func (b *addressBook) read() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

const (
	quixote  = "Zebulon Quixote"
	larkspur = "12 Larkspur Lane"
)

type noticesFixture struct {
	*apiFixture
	book *addressBook
	id   string
}

// newNoticesFixture opens an incident whose porter read six patients:
// one to write to, one shredded, one without an address, one deceased,
// a decoy, and one (p-6) whose name is a formula.
func newNoticesFixture(t *testing.T) *noticesFixture {
	f := &noticesFixture{apiFixture: newAPIFixture(t)}
	t0 := f.now.Add(-3 * time.Hour)
	read := func(m int, p string, returned ...string) *phivault.AuditEntry {
		return &phivault.AuditEntry{Time: t0.Add(time.Duration(m) * time.Minute), Actor: "u-porter", Action: phivault.ActionRead, Outcome: "ok",
			Compartments: []string{p}, Returned: returned}
	}
	tr := sliceTrail{
		read(0, "p-1", "Patient/p-1/_history/1", "Observation/o-1/_history/1"),
		read(1, "p-2", "Patient/p-2/_history/1", "Claim/k-2/_history/1"),
		read(2, "p-3", "Condition/c-3/_history/1"),
		read(3, "p-4", "Patient/p-4/_history/1"),
		read(4, "p-decoy", "Patient/p-decoy/_history/1"),
		read(5, "p-6", "Patient/p-6/_history/1"),
		{Time: t0, Actor: "u-other", Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{"p-9"}, Returned: []string{"Patient/p-9/_history/1"}},
	}
	f.book = &addressBook{log: f.log, decoys: []string{"p-decoy"}, book: map[string]notice.Addressee{
		"p-1":     {Status: notice.StatusMail, Name: quixote, Address: notice.Address{Lines: []string{larkspur}, City: "Boston", State: "MA", PostalCode: "02110"}},
		"p-3":     {Status: notice.StatusMail, Name: "Ida Noaddress"},
		"p-4":     {Status: notice.StatusDeceased},
		"p-6":     {Status: notice.StatusMail, Name: "=cmd|' /C calc'!A0", Address: notice.Address{Lines: []string{"@1 Formula Way"}, City: "Salem", State: "NH"}},
		"p-decoy": {Status: notice.StatusMail, Name: "Decoy Person", Address: notice.Address{Lines: []string{"1 Nowhere"}, City: "Boston"}},
	}}
	f.h = incident.NewHandler(incident.HandlerOptions{
		Service: f.svc, API: &detect.API{Auth: people, Log: f.log, Now: func() time.Time { return f.now }},
		Trail: tr, Addressees: f.book,
	})
	w := f.do(t, "officer", "POST", "/security/incidents", `{"title":"porter","severity":"high","scope":{"users":["u-porter"]}}`)
	f.id = decodeView(t, w).ID
	return f
}

func noticesBody(format string) string {
	b, _ := json.Marshal(map[string]any{
		"format": format,
		"organisation": map[string]any{"name": "Hillside Clinic", "phone": "1-800-555-0100", "email": "privacy@hillside.example",
			"contact": "Ada Byrne, Privacy Officer", "address": map[string]any{"lines": []string{"1 Main Street"}, "city": "Springfield", "state": "MA", "postal_code": "01101"}},
		"what_happened": "A porter opened records without a reason.",
		"steps":         "Watch your insurer's statements.",
		"mitigation":    "We suspended the porter's access.",
	})
	return string(b)
}

// trailBytes returns the trail's entries as JSON, to scan for PHI.
func (f *noticesFixture) trailBytes() []byte {
	b, _ := json.Marshal(f.log.all())
	return b
}

func TestAPI_notices_refused(t *testing.T) {
	f := newNoticesFixture(t)
	path := "/security/incidents/" + f.id + "/notices"
	people["privacy-client"] = &phivault.Principal{ID: "etl", Kind: phivault.PrincipalSystem, Roles: []string{phivault.RolePrivacyOfficer}}
	t.Cleanup(func() { delete(people, "privacy-client") })
	for token, want := range map[string]int{"security": 403, "nurse": 403, "privacy-client": 403, "": 401} {
		if w := f.do(t, token, "POST", path, noticesBody("pdf")); w.Code != want || bytes.Contains(w.Body.Bytes(), []byte("Quixote")) {
			t.Errorf("%q: POST notices = %d %s, want %d", token, w.Code, w.Body, want)
		}
	}
	for name, body := range map[string]string{
		"bad format":    strings.Replace(noticesBody("pdf"), `"pdf"`, `"docx"`, 1),
		"no phone":      strings.Replace(noticesBody("pdf"), `"1-800-555-0100"`, `""`, 1),
		"unknown field": strings.Replace(noticesBody("pdf"), `"steps"`, `"stepz"`, 1),
		"not JSON":      "format=pdf",
	} {
		if w := f.do(t, "officer", "POST", path, body); w.Code != 400 {
			t.Errorf("%s: POST notices = %d %s", name, w.Code, w.Body)
		}
	}
	if w := f.do(t, "officer", "POST", "/security/incidents/inc-00000000000000000000000000000000/notices", noticesBody("pdf")); w.Code != 404 {
		t.Errorf("no such incident: %d", w.Code)
	}
	// An incident whose scope read nothing has nobody to notify.
	w := f.do(t, "officer", "POST", "/security/incidents", `{"title":"quiet","severity":"low","scope":{"users":["u-none"]}}`)
	if w := f.do(t, "officer", "POST", "/security/incidents/"+decodeView(t, w).ID+"/notices", noticesBody("pdf")); w.Code != 400 {
		t.Errorf("nobody left: %d %s", w.Code, w.Body)
	}
	if calls := f.book.read(); len(calls) != 0 {
		t.Fatalf("refused requests read addressees %v", calls)
	}
	// Every refusal is an entry.
	refused := 0
	for _, e := range f.log.all() {
		if e.Action == phivault.ActionExport && e.TargetType == incident.TargetType && e.Outcome != "ok" {
			refused++
		}
	}
	if refused < 9 {
		t.Errorf("%d refusals recorded, want 9 or more", refused)
	}
}

// TestAPI_notices_auditFirst: if the entry cannot be written, no name or
// address is read, and no file is answered.
func TestAPI_notices_auditFirst(t *testing.T) {
	f := newNoticesFixture(t)
	f.log.mu.Lock()
	f.log.fail = true
	f.log.mu.Unlock()
	w := f.do(t, "officer", "POST", "/security/incidents/"+f.id+"/notices", noticesBody("csv"))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Content-Disposition") != "" || bytes.Contains(w.Body.Bytes(), []byte("Quixote")) {
		t.Fatalf("POST notices with the trail failing = %d %v %s", w.Code, w.Header(), w.Body)
	}
	if calls := f.book.read(); len(calls) != 0 {
		t.Fatalf("addressees read with the trail failing: %v", calls)
	}
}

func TestAPI_notices_pdf(t *testing.T) {
	f := newNoticesFixture(t)
	w := f.do(t, "officer", "POST", "/security/incidents/"+f.id+"/notices", noticesBody("pdf"))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/pdf" || w.Header().Get("Cache-Control") != "no-store" ||
		w.Header().Get("Content-Disposition") != `attachment; filename="notices-`+f.id+`.pdf"` {
		t.Fatalf("POST notices = %d %v %.200s", w.Code, w.Header(), w.Body)
	}
	b := w.Body.Bytes()
	if !bytes.HasPrefix(b, []byte("%PDF-")) || !bytes.HasSuffix(bytes.TrimSpace(b), []byte("%%EOF")) {
		t.Fatalf("not a PDF")
	}
	// p-1 and p-6 get letters; p-2 (shredded) and p-3 (no address) need
	// substitute notice; p-4 died; the decoy is nobody.
	for h, want := range map[string]string{incident.HeaderLetters: "2", incident.HeaderSubstitute: "2", incident.HeaderDeceased: "1", incident.HeaderDecoys: "1"} {
		if got := w.Header().Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	f.checkAudited(t, "pdf")
}

// checkAudited checks the notices' entry names the patients but no name.
func (f *noticesFixture) checkAudited(t *testing.T, format string) {
	t.Helper()
	if un := f.book.unlogged; len(un) > 0 {
		t.Errorf("addressees read before an entry named them: %v", un)
	}
	if calls := f.book.read(); slices.Contains(calls, "p-decoy") {
		t.Errorf("the decoy's addressee was read: %v", calls)
	}
	var e *phivault.AuditEntry
	for _, x := range f.log.all() {
		if x.Decision == "breach notices "+format {
			e = x
		}
	}
	if e == nil || e.Action != phivault.ActionExport || e.TargetType != incident.TargetType || e.TargetID != f.id || e.Actor != "po-1" ||
		!slices.Equal(e.Compartments, []string{"p-1", "p-2", "p-3", "p-4", "p-6", "p-decoy"}) {
		t.Fatalf("the notices' entry: %+v", e)
	}
	for _, s := range []string{"Quixote", "Larkspur", "Noaddress", "calc"} {
		if bytes.Contains(f.trailBytes(), []byte(s)) {
			t.Errorf("the trail holds %q", s)
		}
	}
}

func TestAPI_notices_csv(t *testing.T) {
	f := newNoticesFixture(t)
	w := f.do(t, "officer", "POST", "/security/incidents/"+f.id+"/notices", noticesBody("csv"))
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") ||
		w.Header().Get("Content-Disposition") != `attachment; filename="notices-`+f.id+`.csv"` {
		t.Fatalf("POST notices = %d %v %s", w.Code, w.Header(), w.Body)
	}
	rows, err := csv.NewReader(w.Body).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("rows %q, %v", rows, err)
	}
	if r := rows[1]; r[1] != quixote || r[2] != larkspur || r[5] != "Boston" || !strings.HasSuffix(r[0], "-0001") {
		t.Errorf("row %q", r)
	}
	if r := rows[2]; r[1] != "'=cmd|' /C calc'!A0" || r[2] != "'@1 Formula Way" {
		t.Errorf("the formula row %q", r)
	}
	f.checkAudited(t, "csv")
}

func TestAPI_notices_hhs(t *testing.T) {
	f := newNoticesFixture(t)
	w := f.do(t, "officer", "POST", "/security/incidents/"+f.id+"/notices", noticesBody("hhs-csv"))
	if w.Code != 200 || w.Header().Get("Content-Disposition") != `attachment; filename="hhs-`+f.id+`.csv"` {
		t.Fatalf("POST notices = %d %v %s", w.Code, w.Header(), w.Body)
	}
	rows, err := csv.NewReader(w.Body).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %q, %v", rows, err)
	}
	got := map[string]string{}
	for i, h := range rows[0] {
		got[h] = rows[1][i]
	}
	day := f.now.Add(-3 * time.Hour).Format(time.DateOnly)
	for field, want := range map[string]string{
		"approximate_individuals_affected": "5", "breach_affecting": "Fewer Than 500 Individuals",
		"substitute_notice_required": "Yes", "media_notice_required": "No", "breach_start_date": day,
		"type_of_phi":        "Demographic; Clinical: Diagnosis/Conditions; Clinical: Lab Results; Financial: Claims Information",
		"resources_affected": "8", "incident": f.id,
	} {
		if got[field] != want {
			t.Errorf("%s = %q, want %q", field, got[field], want)
		}
	}
	if strings.Contains(w.Body.String(), "Quixote") {
		t.Errorf("the HHS report names a patient")
	}
	f.checkAudited(t, "hhs-csv")
}

// TestExpose checks each patient's kinds, and that Expose finds the same
// patients as Assess.
func TestExpose(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	tr := entries(
		&phivault.AuditEntry{Time: t0, Actor: "u1", Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{"p1"}, Returned: []string{"Patient/p1/_history/1"}},
		// Two compartments: the Patient resource is p2's alone; the
		// claim counts for both.
		&phivault.AuditEntry{Time: t0.Add(time.Hour), Actor: "u1", Action: phivault.ActionSearch, Outcome: "ok", Compartments: []string{"p2", "p3"},
			Returned: []string{"Patient/p2/_history/1", "Claim/k1/_history/1"}},
		&phivault.AuditEntry{Time: t0.Add(2 * time.Hour), Actor: "u1", Action: phivault.ActionRead, Outcome: phivault.EFORBIDDEN, Compartments: []string{"p4"}, Returned: []string{"Patient/p4/_history/1"}},
		&phivault.AuditEntry{Time: t0.Add(3 * time.Hour), Actor: "u2", Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{"p5"}, Returned: []string{"Patient/p5/_history/1"}},
	)
	s := incident.Scope{Users: []string{"u1"}}
	x := incident.Expose(tr, s)
	if !slices.Equal(x.Patients(), incident.Assess(tr, s).Patients) || !slices.Equal(x.Patients(), []string{"p1", "p2", "p3"}) {
		t.Fatalf("patients %v", x.Patients())
	}
	for p, want := range map[string][]string{"p1": {"demographics"}, "p2": {"demographics", "financial"}, "p3": {"financial"}} {
		if !slices.Equal(x.Kinds[p], want) {
			t.Errorf("%s: kinds %v, want %v", p, x.Kinds[p], want)
		}
	}
	if !x.Began.Equal(t0) || !x.Ended.Equal(t0.Add(time.Hour)) || x.Resources != 3 {
		t.Errorf("began %v ended %v resources %d", x.Began, x.Ended, x.Resources)
	}
}
