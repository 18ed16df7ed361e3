package incident_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/internal/vaulttest"
)

// trail is an AuditLog keeping entries in memory; fail makes Append fail.
type trail struct {
	mu      sync.Mutex
	entries []*phivault.AuditEntry
	fail    bool
}

func (l *trail) Append(_ context.Context, es ...*phivault.AuditEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return errors.New("disk full")
	}
	l.entries = append(l.entries, es...)
	return nil
}

func (l *trail) all() []*phivault.AuditEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

type fixture struct {
	svc    *incident.Service
	store  *incident.MemStore
	log    *trail
	sealer *envelope.NoteSealer
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	keys, _ := vaulttest.Keyring(t, dir)
	db, _ := vaulttest.SQLite(t, dir)
	f := &fixture{
		store: incident.NewMemStore(), log: &trail{},
		sealer: envelope.NewNoteSealer(db, envelope.New(keys, envelope.Options{}), "incident"),
		now:    time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC),
	}
	f.svc = incident.NewService(incident.Options{
		Store: f.store, Audit: f.log, Sealer: f.sealer, Now: func() time.Time { return f.now },
	})
	return f
}

// officer is the context of a privacy officer's request.
func officer() context.Context {
	ctx := phivault.WithPrincipal(context.Background(), &phivault.Principal{ID: "po-1", Roles: []string{phivault.RolePrivacyOfficer}})
	return phivault.WithRequestInfo(ctx, phivault.RequestInfo{ID: "req-1", Actor: "po-1", Source: "10.0.0.9"})
}

const secretTitle = "Nurse looked up Jane Roe, her neighbour"

func (f *fixture) open(t *testing.T) *incident.Incident {
	t.Helper()
	in, err := f.svc.Open(officer(), incident.Draft{
		Title: secretTitle, Severity: detect.SeverityHigh, Source: incident.SourceAlert,
		Alerts: []string{"a1"}, Scope: incident.Scope{Users: []string{"u-nurse"}, Patients: []string{"p-1", "ehr:77"}},
		Discovered: f.now.Add(-2 * time.Hour), Note: "called Jane Roe's ward",
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestService_Open(t *testing.T) {
	f := newFixture(t)
	in := f.open(t)
	if in.Phase != incident.PhaseDetect || in.Version != 1 || !in.Discovered.Equal(f.now.Add(-2*time.Hour)) || !in.Opened.Equal(f.now) {
		t.Fatalf("opened %+v", in)
	}
	title, err := f.sealer.Open(in.ID, in.Title)
	if err != nil || string(title) != secretTitle {
		t.Fatalf("title %q, %v", title, err)
	}
	es := f.log.all()
	if len(es) != 1 {
		t.Fatalf("%d entries, want 1", len(es))
	}
	e := es[0]
	if e.Action != phivault.ActionIncident || e.TargetType != incident.TargetType || e.TargetID != in.ID || e.Actor != "po-1" || e.RequestID != "req-1" {
		t.Fatalf("entry %+v", e)
	}
	// The vault's own patients are the entry's compartments; another
	// system's ids are not the vault's compartments.
	if !slices.Equal(e.Compartments, []string{"p-1"}) {
		t.Fatalf("compartments %v", e.Compartments)
	}
	tl, err := f.store.Timeline(context.Background(), in.ID)
	if err != nil || len(tl) != 1 || tl[0].Kind != incident.EventOpened || tl[0].Request != "req-1" || tl[0].Actor != "po-1" {
		t.Fatalf("timeline %+v, %v", tl, err)
	}
	note, err := f.sealer.Open(in.ID, tl[0].Note)
	if err != nil || !strings.Contains(string(note), "Jane Roe") {
		t.Fatalf("note %q, %v", note, err)
	}
	assertNoPlaintext(t, f, "Jane Roe")
}

// assertNoPlaintext fails if s is in any audit entry or stored field
// outside the sealed ones.
func assertNoPlaintext(t *testing.T, f *fixture, s string) {
	t.Helper()
	for _, e := range f.log.all() {
		for _, v := range []string{e.Decision, e.TargetID, e.Purpose} {
			if strings.Contains(v, s) {
				t.Fatalf("audit entry holds %q: %+v", s, e)
			}
		}
	}
	list, _ := f.store.List(context.Background(), incident.Filter{})
	for _, in := range list {
		if bytes.Contains(in.Title, []byte(s)) {
			t.Fatal("stored title holds its plaintext")
		}
		tl, _ := f.store.Timeline(context.Background(), in.ID)
		for _, ev := range tl {
			if strings.Contains(ev.Detail, s) || bytes.Contains(ev.Note, []byte(s)) {
				t.Fatalf("timeline holds %q", s)
			}
		}
	}
}

func TestService_Open_refused(t *testing.T) {
	for name, d := range map[string]incident.Draft{
		"no title":        {Severity: detect.SeverityLow, Source: incident.SourceManual},
		"blank title":     {Title: "  ", Severity: detect.SeverityLow, Source: incident.SourceManual},
		"no severity":     {Title: "x", Source: incident.SourceManual},
		"bad source":      {Title: "x", Severity: detect.SeverityLow, Source: "rumour"},
		"alert, none":     {Title: "x", Severity: detect.SeverityLow, Source: incident.SourceAlert},
		"long title":      {Title: strings.Repeat("é", incident.MaxTitle+1), Severity: detect.SeverityLow, Source: incident.SourceManual},
		"bad source addr": {Title: "x", Severity: detect.SeverityLow, Source: incident.SourceManual, Scope: incident.Scope{Sources: []string{"not-an-ip"}}},
		"spacey id":       {Title: "x", Severity: detect.SeverityLow, Source: incident.SourceManual, Scope: incident.Scope{Users: []string{"Jane Roe"}}},
		"window reversed": {Title: "x", Severity: detect.SeverityLow, Source: incident.SourceManual,
			Scope: incident.Scope{From: time.Unix(200, 0), To: time.Unix(100, 0)}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.svc.Open(officer(), d)
			if phivault.ErrorCode(err) != phivault.EINVALID {
				t.Fatalf("err %v, want EINVALID", err)
			}
			if strings.Contains(phivault.ErrorMessage(err), "Jane Roe") {
				t.Fatal("error echoes the value")
			}
			if len(f.log.all()) != 0 {
				t.Fatal("a refused draft was recorded")
			}
		})
	}
	// The near miss: the same draft, valid, opens.
	f := newFixture(t)
	if _, err := f.svc.Open(officer(), incident.Draft{Title: "x", Severity: detect.SeverityLow, Source: incident.SourceManual,
		Scope: incident.Scope{Sources: []string{"10.1.0.0/16", "192.0.2.7"}, Users: []string{"u-1"}}}); err != nil {
		t.Fatal(err)
	}
}

func TestService_Open_auditFirst(t *testing.T) {
	f := newFixture(t)
	f.log.fail = true
	_, err := f.svc.Open(officer(), incident.Draft{Title: "x", Severity: detect.SeverityLow, Source: incident.SourceManual})
	if phivault.ErrorCode(err) != phivault.EUNAVAILABLE {
		t.Fatalf("err %v, want EUNAVAILABLE", err)
	}
	if list, _ := f.store.List(context.Background(), incident.Filter{}); len(list) != 0 {
		t.Fatal("an incident was stored without its audit entry")
	}
}

func TestService_Change(t *testing.T) {
	f := newFixture(t)
	in := f.open(t)
	f.now = f.now.Add(10 * time.Minute)
	got, err := f.svc.Change(officer(), in.ID, incident.Change{
		Version: 1, Phase: incident.PhaseContain, Owner: "po-1",
		Scope: incident.Scope{Patients: []string{"p-2", "p-1"}, Sources: []string{"198.51.100.4"}},
		Note:  "Jane Roe's chart printed",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Phase != incident.PhaseContain || got.Owner != "po-1" || !got.Acknowledged.Equal(f.now) || !got.Contained.IsZero() {
		t.Fatalf("changed %+v", got)
	}
	if !slices.Equal(got.Scope.Patients, []string{"p-1", "ehr:77", "p-2"}) {
		t.Fatalf("patients %v", got.Scope.Patients)
	}
	tl, _ := f.store.Timeline(context.Background(), in.ID)
	var kinds []string
	for _, ev := range tl {
		kinds = append(kinds, ev.Kind)
		if ev.Request == "" || ev.Actor != "po-1" {
			t.Fatalf("event without its entry: %+v", ev)
		}
	}
	if want := []string{incident.EventOpened, incident.EventPhase, incident.EventOwner, incident.EventScope, incident.EventNote}; !slices.Equal(kinds, want) {
		t.Fatalf("timeline %v, want %v", kinds, want)
	}
	es := f.log.all()
	if len(es) != 2 || es[1].TargetVersion != 2 || !strings.Contains(es[1].Decision, "detect → contain") || !strings.Contains(es[1].Decision, "+1 patients") {
		t.Fatalf("entries %+v", es[len(es)-1])
	}
	assertNoPlaintext(t, f, "Jane Roe")

	// Past contain: contained is stamped once.
	f.now = f.now.Add(time.Hour)
	got, err = f.svc.Change(officer(), in.ID, incident.Change{Version: 2, Phase: incident.PhaseEradicate})
	if err != nil || !got.Contained.Equal(f.now) {
		t.Fatalf("%+v, %v", got, err)
	}
}

func TestService_Change_version(t *testing.T) {
	f := newFixture(t)
	in := f.open(t)
	if _, err := f.svc.Change(officer(), in.ID, incident.Change{Version: 1, Owner: "po-1"}); err != nil {
		t.Fatal(err)
	}
	// A second officer working on version 1 is refused, and nothing is
	// recorded for the refused change.
	n := len(f.log.all())
	_, err := f.svc.Change(officer(), in.ID, incident.Change{Version: 1, Owner: "po-2"})
	if phivault.ErrorCode(err) != phivault.EPRECONDITION {
		t.Fatalf("err %v, want EPRECONDITION", err)
	}
	if len(f.log.all()) != n {
		t.Fatal("a refused change was recorded")
	}
	if _, err := f.svc.Change(officer(), in.ID, incident.Change{Version: 2, Owner: "po-2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Change(officer(), "inc-missing", incident.Change{Version: 1, Owner: "po-2"}); phivault.ErrorCode(err) != phivault.ENOTFOUND {
		t.Fatalf("err %v, want ENOTFOUND", err)
	}
}

func TestService_Change_rules(t *testing.T) {
	f := newFixture(t)
	in := f.open(t)
	cases := []struct {
		name string
		c    incident.Change
		code string
	}{
		{"no version", incident.Change{Owner: "x"}, phivault.EINVALID},
		{"unknown phase", incident.Change{Version: 1, Phase: "panic"}, phivault.EINVALID},
		{"later discovery", incident.Change{Version: 1, Discovered: f.now, Reason: "r"}, phivault.EINVALID},
		{"earlier discovery without reason", incident.Change{Version: 1, Discovered: f.now.Add(-48 * time.Hour)}, phivault.EINVALID},
		{"multi-line reason", incident.Change{Version: 1, Discovered: f.now.Add(-48 * time.Hour), Reason: "a\nb"}, phivault.EINVALID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.svc.Change(officer(), in.ID, tc.c); phivault.ErrorCode(err) != tc.code {
				t.Fatalf("err %v, want %s", err, tc.code)
			}
		})
	}
	// The near miss: an earlier discovery with a reason moves the clock.
	got, err := f.svc.Change(officer(), in.ID, incident.Change{Version: 1, Discovered: f.now.Add(-48 * time.Hour), Reason: "first complaint 2 days ago"})
	if err != nil || !got.Discovered.Equal(f.now.Add(-48*time.Hour)) {
		t.Fatalf("%+v, %v", got, err)
	}
	// Closing, then reopening: only to analyse, only with a reason.
	got, err = f.svc.Change(officer(), in.ID, incident.Change{Version: got.Version, Phase: incident.PhaseClosed})
	if err != nil || got.Closed.IsZero() {
		t.Fatalf("close: %+v, %v", got, err)
	}
	if _, err := f.svc.Change(officer(), in.ID, incident.Change{Version: got.Version, Phase: incident.PhaseContain, Reason: "r"}); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Fatalf("reopen to contain: %v", err)
	}
	if _, err := f.svc.Change(officer(), in.ID, incident.Change{Version: got.Version, Phase: incident.PhaseAnalyse}); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Fatalf("reopen without reason: %v", err)
	}
	got, err = f.svc.Change(officer(), in.ID, incident.Change{Version: got.Version, Phase: incident.PhaseAnalyse, Reason: "new evidence"})
	if err != nil || !got.Closed.IsZero() || got.Phase != incident.PhaseAnalyse {
		t.Fatalf("reopen: %+v, %v", got, err)
	}
}

func TestService_Change_nothing(t *testing.T) {
	f := newFixture(t)
	in := f.open(t)
	got, err := f.svc.Change(officer(), in.ID, incident.Change{Version: 1, Phase: in.Phase, Alerts: []string{"a1"}})
	if err != nil || got.Version != 1 || len(f.log.all()) != 1 {
		t.Fatalf("a change of nothing: version %d, %d entries, %v", got.Version, len(f.log.all()), err)
	}
}

// TestService_reasonsSealed checks that the reasons a person types (to
// move the discovery date, to reopen) are sealed on their events, for
// officers to open, and never reach the audit trail or the stored
// incident in clear.
func TestService_reasonsSealed(t *testing.T) {
	f := newFixture(t)
	in := f.open(t)
	const why = "Mrs Quintavalle phoned on Tuesday"
	got, err := f.svc.Change(officer(), in.ID, incident.Change{Version: 1, Discovered: f.now.Add(-48 * time.Hour), Reason: why})
	if err != nil {
		t.Fatal(err)
	}
	if got, err = f.svc.Change(officer(), in.ID, incident.Change{Version: got.Version, Phase: incident.PhaseClosed}); err != nil {
		t.Fatal(err)
	}
	if _, err = f.svc.Change(officer(), in.ID, incident.Change{Version: got.Version, Phase: incident.PhaseAnalyse, Reason: why}); err != nil {
		t.Fatal(err)
	}
	for _, e := range f.log.all() {
		if b, _ := json.Marshal(e); strings.Contains(string(b), "Quintavalle") {
			t.Fatalf("a typed reason is in the audit trail: %s", b)
		}
	}
	stored, _ := f.store.Get(context.Background(), in.ID)
	if b, _ := json.Marshal(stored); strings.Contains(string(b), "Quintavalle") {
		t.Fatalf("a typed reason is stored in clear: %s", b)
	}
	tl, err := f.svc.Timeline(context.Background(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	opened := 0
	for _, ev := range tl {
		if b, _ := json.Marshal(ev); strings.Contains(string(b), "Quintavalle") {
			t.Fatalf("a typed reason is on the timeline in clear: %s", b)
		}
		if ev.Kind != incident.EventDiscovered && ev.Kind != incident.EventPhase || ev.Note == nil {
			continue
		}
		if text, err := f.svc.OpenText(in.ID, ev.Note); err != nil || string(text) != why {
			t.Fatalf("the reason of %s opens as %q, %v", ev.Kind, text, err)
		}
		opened++
	}
	if opened != 2 {
		t.Fatalf("%d reasons on the timeline, want 2", opened)
	}
}
