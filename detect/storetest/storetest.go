// Package storetest provides a conformance test suite for implementations
// of detect.Store: every store must behave as detect.MemStore does.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// Run runs the conformance tests against stores returned by open, a new
// empty one for each test.
func Run(t *testing.T, open func(t *testing.T) detect.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s detect.Store)
	}{
		{"LoadEmpty", testLoadEmpty},
		{"CommitLoad", testCommitLoad},
		{"CommitAlerts", testCommitAlerts},
		{"AlertsFilter", testAlertsFilter},
		{"AlertsPaging", testAlertsPaging},
		{"Triage", testTriage},
		{"AlertPatients", testAlertPatients},
		{"Ingest", testIngest},
		{"ReadIngestBounds", testReadIngestBounds},
		{"IngestConcurrent", testIngestConcurrent},
	}
	// A store that tells of triages must tell of each, and only of those
	// it recorded.
	probe := open(t)
	if _, ok := probe.(detect.TriageWatcher); ok {
		tests = append(tests, struct {
			name string
			fn   func(t *testing.T, s detect.Store)
		}{"WatchTriage", testWatchTriage})
	}
	probe.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

// RunReopen tests that what a store holds survives Close: open(t, path)
// opens the store kept at path, which it is given twice.
func RunReopen(t *testing.T, open func(t *testing.T, path string) detect.Store) {
	ctx := context.Background()
	path := t.TempDir() + "/detect.db"
	s := open(t, path)
	c := fullCommit()
	must(t, s.Commit(ctx, c))
	alerts := sampleAlerts()
	must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: 50, Ingest: 3}, Alerts: alerts}))
	recs := sampleRecords(3)
	if _, err := s.Ingest(ctx, recs); err != nil {
		t.Fatal(err)
	}
	tr := &detect.Triage{Alert: alerts[0].ID, Decision: detect.StateBenign, Reason: "covering-shift", Note: []byte{1, 2, 3}, By: "u-officer", At: t0, Rule: alerts[0].Rule, User: alerts[0].User}
	must(t, s.Triage(ctx, tr))
	wantSaved, err := s.Load(ctx)
	must(t, err)
	wantAlerts, err := s.Alerts(ctx, detect.AlertFilter{})
	must(t, err)
	must(t, s.Close())

	s = open(t, path)
	defer s.Close()
	saved, err := s.Load(ctx)
	must(t, err)
	if !reflect.DeepEqual(saved, wantSaved) {
		t.Errorf("after reopen, Load = %+v, want %+v", saved, wantSaved)
	}
	if saved.Cursor != (detect.Cursor{Trail: 50, Ingest: 3}) || saved.SnapshotAt != c.SnapshotAt || string(saved.Snapshot) != string(c.Snapshot) {
		t.Errorf("after reopen, cursor %+v snapshot %q at %+v", saved.Cursor, saved.Snapshot, saved.SnapshotAt)
	}
	got, err := s.Alerts(ctx, detect.AlertFilter{})
	must(t, err)
	if !reflect.DeepEqual(got, wantAlerts) || len(got) != len(alerts) {
		t.Errorf("after reopen, %d alerts differ from the %d stored", len(got), len(wantAlerts))
	}
	a, err := s.Alert(ctx, alerts[0].ID)
	must(t, err)
	if a.State != detect.StateBenign {
		t.Errorf("after reopen, triaged alert state %q", a.State)
	}
	trs, err := s.Triages(ctx, "")
	must(t, err)
	if len(trs) != 1 || !reflect.DeepEqual(trs[0], tr) {
		t.Errorf("after reopen, triages %+v", trs)
	}
	read, err := s.ReadIngest(ctx, 0, 0)
	must(t, err)
	if len(read) != 3 || read[2].Seq != 3 {
		t.Fatalf("after reopen, ReadIngest = %d records", len(read))
	}
	last, err := s.Ingest(ctx, sampleRecords(2))
	must(t, err)
	if last != 5 {
		t.Errorf("after reopen, Ingest numbered up to %d, want 5", last)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)

func tok(b byte) phivault.Token { return phivault.Token{b, b, b} }

func fullCommit() *detect.Commit {
	return &detect.Commit{
		Cursor: detect.Cursor{Trail: 10, Ingest: 4},
		Users: []*detect.User{
			{ID: "ehr:u1", Roles: []string{"nurse"}, Department: "cardio", Person: detect.Person{Family: []phivault.Token{tok(1)}, Phone: []phivault.Token{tok(2)}}},
			{ID: "ehr:u2", Status: phivault.AccountActive, Patient: "ehr:p9"},
		},
		Patients: []*detect.Patient{
			{ID: "ehr:p1", Labels: []string{detect.LabelVIP}, Deceased: true, Person: detect.Person{Address: []phivault.Token{tok(3)}, Street: []phivault.Token{tok(4)}}},
		},
		Relationships: []detect.Relationship{
			{User: "ehr:u1", Patient: "ehr:p1", Kind: detect.KindEncounter, Start: t0, End: t0.Add(time.Hour), Origin: "ingest"},
		},
		Honeytokens: []string{"ehr:p7"},
		Snapshot:    []byte(`{"rule":"c3RhdGU="}`),
		SnapshotAt:  detect.Cursor{Trail: 8, Ingest: 2},
	}
}

func testLoadEmpty(t *testing.T, s detect.Store) {
	saved, err := s.Load(context.Background())
	must(t, err)
	if !reflect.DeepEqual(saved, &detect.Saved{}) {
		t.Errorf("Load of an empty store = %+v, want zero", saved)
	}
	n, err := s.IngestSize(context.Background())
	if err != nil || n != 0 {
		t.Errorf("IngestSize = %d, %v; want 0", n, err)
	}
}

func testCommitLoad(t *testing.T, s detect.Store) {
	ctx := context.Background()
	c := fullCommit()
	must(t, s.Commit(ctx, c))
	saved, err := s.Load(ctx)
	must(t, err)
	want := &detect.Saved{
		Cursor: c.Cursor, Snapshot: c.Snapshot, SnapshotAt: c.SnapshotAt,
		Users: c.Users, Patients: c.Patients, Relationships: c.Relationships, Honeytokens: c.Honeytokens,
	}
	if !reflect.DeepEqual(saved, want) {
		t.Fatalf("Load = %+v\nwant %+v", saved, want)
	}

	// A second commit: a user changed (it moves last), a patient added, a
	// relationship added, a honeytoken repeated and one added, no snapshot
	// (the saved one stays).
	u1 := *c.Users[0]
	u1.Department = "oncology"
	c2 := &detect.Commit{
		Cursor:        detect.Cursor{Trail: 20, Ingest: 6},
		Users:         []*detect.User{&u1},
		Patients:      []*detect.Patient{{ID: "ehr:p2", Employee: "ehr:u2"}},
		Relationships: []detect.Relationship{{User: "ehr:u2", Patient: "ehr:p2", Kind: detect.KindCareTeam, Origin: "ingest"}},
		Honeytokens:   []string{"ehr:p7", "ehr:p8"},
	}
	must(t, s.Commit(ctx, c2))
	saved, err = s.Load(ctx)
	must(t, err)
	want = &detect.Saved{
		Cursor: c2.Cursor, Snapshot: c.Snapshot, SnapshotAt: c.SnapshotAt,
		Users:         []*detect.User{c.Users[1], &u1},
		Patients:      []*detect.Patient{c.Patients[0], c2.Patients[0]},
		Relationships: append(slices.Clone(c.Relationships), c2.Relationships...),
		Honeytokens:   []string{"ehr:p7", "ehr:p8"},
	}
	if !reflect.DeepEqual(saved, want) {
		t.Fatalf("after a second commit, Load = %+v\nwant %+v", saved, want)
	}

	// A new snapshot replaces the old one.
	must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: 21, Ingest: 6}, Snapshot: []byte(`{}`), SnapshotAt: detect.Cursor{Trail: 21, Ingest: 6}}))
	saved, err = s.Load(ctx)
	must(t, err)
	if string(saved.Snapshot) != `{}` || saved.SnapshotAt != (detect.Cursor{Trail: 21, Ingest: 6}) || saved.Cursor != saved.SnapshotAt {
		t.Errorf("after a new snapshot, Load = cursor %+v snapshot %q at %+v", saved.Cursor, saved.Snapshot, saved.SnapshotAt)
	}
}

// sampleAlerts returns alerts over two rules, three users and a few
// patients, states and scores; two pairs share a detection time.
func sampleAlerts() []*detect.Alert {
	var out []*detect.Alert
	for i := range 12 {
		rule := []string{"self-access", "volume-spike"}[i%2]
		key := fmt.Sprintf("u%d|p%d", i%3, i)
		a := &detect.Alert{
			ID: detect.AlertID(rule, key), Rule: rule, Key: key,
			Severity: detect.Severity(1 + i%4), Score: i * 9,
			User:     fmt.Sprintf("u%d", i%3),
			Patients: []string{fmt.Sprintf("p%d", i%4)},
			First:    t0.Add(time.Duration(i) * time.Minute), Last: t0.Add(time.Duration(i+1) * time.Minute),
			Detected: t0.Add(time.Duration(i/2) * time.Second),
			Why:      "u reads p without a care relationship.",
			Evidence: []string{fmt.Sprintf("trail/%d", i)},
			Events:   int64(i + 1),
			Factors:  []string{"volume"},
			State:    detect.StateOpen,
		}
		if i%5 == 0 {
			a.Patients = append(a.Patients, "p-shared")
			a.State = detect.StateTruePositive
			a.Suppressed = true
		}
		out = append(out, a)
	}
	// One detected a nanosecond after another, one in another year.
	out[10].Detected = out[9].Detected.Add(time.Nanosecond)
	out[11].Detected = t0.AddDate(-3, 0, 0)
	return out
}

func testCommitAlerts(t *testing.T, s detect.Store) {
	ctx := context.Background()
	alerts := sampleAlerts()
	must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: 1}, Alerts: alerts}))
	for _, a := range alerts {
		got, err := s.Alert(ctx, a.ID)
		must(t, err)
		if !reflect.DeepEqual(got, a) {
			t.Errorf("Alert(%s) = %+v, want %+v", a.ID, got, a)
		}
	}
	// Replacing an alert replaces every field, patients included, but
	// its state (only Triage changes that).
	b := *alerts[0]
	b.Events, b.Patients, b.State, b.Score, b.Evidence = 7, []string{"p-other"}, detect.StateOpen, 3, []string{"trail/0", "ingest/4"}
	must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: 2}, Alerts: []*detect.Alert{&b}}))
	got, err := s.Alert(ctx, b.ID)
	must(t, err)
	b.State = alerts[0].State
	if !reflect.DeepEqual(got, &b) {
		t.Errorf("replaced alert = %+v, want %+v", got, &b)
	}
	if list, err := s.Alerts(ctx, detect.AlertFilter{State: alerts[0].State, Patient: "p-other"}); err != nil || len(list) != 1 {
		t.Errorf("Alerts(state %s) after a replace = %d alerts, %v", alerts[0].State, len(list), err)
	}
	for _, f := range []detect.AlertFilter{{Patient: "p0"}, {Patient: "p-shared"}} {
		list, err := s.Alerts(ctx, f)
		must(t, err)
		if slices.ContainsFunc(list, func(x *detect.Alert) bool { return x.ID == b.ID }) {
			t.Errorf("filter by a patient the alert no longer has (%s) still returns it", f.Patient)
		}
	}
	list, err := s.Alerts(ctx, detect.AlertFilter{Patient: "p-other"})
	must(t, err)
	if len(list) != 1 || list[0].ID != b.ID {
		t.Errorf("filter by the replaced alert's patient = %d alerts", len(list))
	}
	// The returned alert is a copy.
	got.Patients[0] = "changed"
	again, err := s.Alert(ctx, b.ID)
	must(t, err)
	if again.Patients[0] != "p-other" {
		t.Error("changing a returned alert changed the store")
	}
	if _, err := s.Alert(ctx, "0000000000000000"); !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Alert of an unknown id: %v, want ErrNotFound", err)
	}
}

// expect returns what Store.Alerts must return for f over all: the
// reference semantics of detect.MemStore.
func expect(all []*detect.Alert, f detect.AlertFilter) []string {
	var out []*detect.Alert
	for _, a := range all {
		if f.Match(a) {
			out = append(out, a)
		}
	}
	detect.SortAlerts(out)
	if f.After != "" {
		i := slices.IndexFunc(out, func(a *detect.Alert) bool { return a.ID == f.After })
		if i < 0 {
			return nil
		}
		out = out[i+1:]
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return ids(out)
}

func ids(alerts []*detect.Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.ID)
	}
	return out
}

func testAlertsFilter(t *testing.T, s detect.Store) {
	ctx := context.Background()
	all := sampleAlerts()
	must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: 1}, Alerts: all}))
	filters := []detect.AlertFilter{
		{},
		{Rule: "self-access"},
		{Rule: "nope"},
		{User: "u1"},
		{Patient: "p-shared"},
		{Patient: "p1"},
		{State: detect.StateTruePositive},
		{MinScore: 50},
		{MinScore: 99},
		{Since: all[4].Detected},
		{Since: all[9].Detected.Add(time.Nanosecond)},
		{Since: t0.AddDate(-4, 0, 0)},
		{Rule: "volume-spike", User: "u0", Since: t0},
		{Patient: "p-shared", State: detect.StateTruePositive, MinScore: 40},
		{Limit: 5},
		{Rule: "self-access", Limit: 2},
	}
	for _, f := range filters {
		got, err := s.Alerts(ctx, f)
		must(t, err)
		if want := expect(all, f); !slices.Equal(ids(got), want) {
			t.Errorf("Alerts(%+v) = %v, want %v", f, ids(got), want)
		}
	}
	// Independent of the reference: the order is newest first, then id.
	got, err := s.Alerts(ctx, detect.AlertFilter{})
	must(t, err)
	if len(got) != len(all) || got[0].ID != all[10].ID || got[len(got)-1].ID != all[11].ID {
		t.Fatalf("Alerts() order = %v", ids(got))
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.Detected.Before(b.Detected) || a.Detected.Equal(b.Detected) && a.ID > b.ID {
			t.Errorf("alerts %s and %s out of order", a.ID, b.ID)
		}
	}
	got, err = s.Alerts(ctx, detect.AlertFilter{Patient: "p-shared"})
	must(t, err)
	want := []string{all[10].ID, all[5].ID, all[0].ID}
	if !slices.Equal(ids(got), want) {
		t.Errorf("Alerts(patient p-shared) = %v, want %v", ids(got), want)
	}
}

func testAlertsPaging(t *testing.T, s detect.Store) {
	ctx := context.Background()
	all := sampleAlerts()
	must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: 1}, Alerts: all}))
	for _, f := range []detect.AlertFilter{{Limit: 3}, {Limit: 1, Rule: "self-access"}, {Limit: 2, Patient: "p-shared"}} {
		var pages []string
		for n := 0; ; n++ {
			page, err := s.Alerts(ctx, f)
			must(t, err)
			if want := expect(all, f); !slices.Equal(ids(page), want) {
				t.Fatalf("page %d of %+v = %v, want %v", n, f, ids(page), want)
			}
			if len(page) == 0 {
				break
			}
			if len(page) > f.Limit {
				t.Fatalf("page of %d alerts, limit %d", len(page), f.Limit)
			}
			pages = append(pages, ids(page)...)
			f.After = page[len(page)-1].ID
		}
		f.After, f.Limit = "", 0
		if want := expect(all, f); !slices.Equal(pages, want) || len(pages) == 0 {
			t.Errorf("pages of %+v = %v, want %v", f, pages, want)
		}
	}
	// After an id not in the (filtered) order: nothing.
	for _, f := range []detect.AlertFilter{
		{After: "0000000000000000"},
		{After: all[1].ID, Rule: "self-access"}, // all[1] is a volume-spike alert
	} {
		got, err := s.Alerts(ctx, f)
		must(t, err)
		if len(got) != 0 {
			t.Errorf("Alerts(%+v) = %v, want none", f, ids(got))
		}
	}
	got, err := s.Alerts(ctx, detect.AlertFilter{After: all[11].ID})
	must(t, err)
	if len(got) != 0 {
		t.Errorf("Alerts after the last = %v, want none", ids(got))
	}
}

func testTriage(t *testing.T, s detect.Store) {
	ctx := context.Background()
	all := sampleAlerts()
	must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: 1}, Alerts: all}))
	a, b := all[1], all[2]
	t1 := &detect.Triage{Alert: a.ID, Decision: detect.StateFalsePositive, By: "u-officer", At: t0.Add(time.Hour), Rule: a.Rule, User: a.User}
	t2 := &detect.Triage{Alert: b.ID, Decision: detect.StateBenign, Reason: "covering-shift", Note: []byte("sealed"), By: "u-officer", At: t0.Add(2 * time.Hour), Rule: b.Rule, User: b.User}
	t3 := &detect.Triage{Alert: a.ID, Decision: detect.StateTruePositive, By: "u-admin", At: t0.Add(3 * time.Hour), Rule: a.Rule, User: a.User}
	for _, tr := range []*detect.Triage{t1, t2, t3} {
		must(t, s.Triage(ctx, tr))
	}
	got, err := s.Alert(ctx, a.ID)
	must(t, err)
	if got.State != detect.StateTruePositive {
		t.Errorf("state after two triages = %q, want the last decision", got.State)
	}
	got, err = s.Alert(ctx, b.ID)
	must(t, err)
	if got.State != detect.StateBenign {
		t.Errorf("state after triage = %q", got.State)
	}
	list, err := s.Alerts(ctx, detect.AlertFilter{State: detect.StateBenign})
	must(t, err)
	if !slices.Equal(ids(list), []string{b.ID}) {
		t.Errorf("Alerts(state benign) = %v, want [%s]", ids(list), b.ID)
	}
	// A commit of the alert as the pipeline read it before the triage
	// (state open, one more event) keeps the decision.
	stale := *b
	stale.Events++
	must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: 2}, Alerts: []*detect.Alert{&stale}}))
	got, err = s.Alert(ctx, b.ID)
	must(t, err)
	if got.State != detect.StateBenign || got.Events != stale.Events {
		t.Errorf("after a commit racing a triage: state %q, events %d; want benign, %d", got.State, got.Events, stale.Events)
	}
	if stale.State != detect.StateBenign {
		t.Errorf("the committed alert's state is %q after the commit, want the stored benign (what pages must see)", stale.State)
	}
	trs, err := s.Triages(ctx, "")
	must(t, err)
	if !reflect.DeepEqual(trs, []*detect.Triage{t1, t2, t3}) {
		t.Errorf("Triages() = %+v", trs)
	}
	trs, err = s.Triages(ctx, a.ID)
	must(t, err)
	if !reflect.DeepEqual(trs, []*detect.Triage{t1, t3}) {
		t.Errorf("Triages(a) = %+v", trs)
	}
	trs, err = s.Triages(ctx, all[3].ID)
	if err != nil || len(trs) != 0 {
		t.Errorf("Triages of an untriaged alert = %v, %v", trs, err)
	}
	err = s.Triage(ctx, &detect.Triage{Alert: "0000000000000000", Decision: detect.StateBenign, By: "u-officer", At: t0})
	if !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Triage of an unknown alert: %v, want ErrNotFound", err)
	}
	trs, err = s.Triages(ctx, "")
	must(t, err)
	if len(trs) != 3 {
		t.Errorf("a refused triage was recorded: %d triages", len(trs))
	}
}

// testAlertPatients commits one alert again and again, its patients
// growing (as findings merge into it) and then replaced (as a commit may
// do): the patient filter finds it by exactly the patients of its last
// commit.
func testAlertPatients(t *testing.T, s detect.Store) {
	ctx := context.Background()
	a := sampleAlerts()[0]
	for i, patients := range [][]string{
		{"p-a", "p-b"},
		{"p-a", "p-b", "p-c"},        // grown at the end
		{"p-a", "p-x", "p-c", "p-d"}, // one changed within the stored ones
		{"p-d"},                      // fewer
		{},
		{"p-e"},
	} {
		a.Patients = patients
		must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: int64(i + 1)}, Alerts: []*detect.Alert{a.Clone()}}))
		for _, p := range []string{"p-a", "p-b", "p-c", "p-d", "p-e", "p-x"} {
			got, err := s.Alerts(ctx, detect.AlertFilter{Patient: p})
			must(t, err)
			if want := slices.Contains(patients, p); (len(got) == 1) != want {
				t.Errorf("commit %d (patients %v): Alerts(patient %s) = %v, want found %v", i, patients, p, ids(got), want)
			}
		}
	}
}

// testWatchTriage checks that every watcher hears of each triage
// recorded, once it is stored, and of no refused one.
func testWatchTriage(t *testing.T, s detect.Store) {
	ctx := context.Background()
	all := sampleAlerts()
	must(t, s.Commit(ctx, &detect.Commit{Cursor: detect.Cursor{Trail: 1}, Alerts: all}))
	var heard [2][]string
	for i := range heard {
		s.(detect.TriageWatcher).WatchTriage(func(id string) {
			got, err := s.Alert(ctx, id)
			if err != nil || got.State != detect.StateBenign {
				t.Errorf("watcher %d told of %s before its triage was stored: %+v, %v", i, id, got, err)
			}
			heard[i] = append(heard[i], id)
		})
	}
	a := all[1]
	must(t, s.Triage(ctx, &detect.Triage{Alert: a.ID, Decision: detect.StateBenign, Reason: "covering-shift", By: "u-officer", At: t0, Rule: a.Rule, User: a.User}))
	err := s.Triage(ctx, &detect.Triage{Alert: "0000000000000000", Decision: detect.StateBenign, By: "u-officer", At: t0})
	if !errors.Is(err, phivault.ErrNotFound) {
		t.Errorf("Triage of an unknown alert: %v, want ErrNotFound", err)
	}
	for i, ids := range heard {
		if !slices.Equal(ids, []string{a.ID}) {
			t.Errorf("watcher %d heard of %v, want [%s] (the refused triage not)", i, ids, a.ID)
		}
	}
}

func sampleRecords(n int) []detect.Record {
	var out []detect.Record
	for i := range n {
		switch i % 3 {
		case 0:
			out = append(out, detect.Record{Kind: detect.RecordAccess, Event: &detect.Event{
				Stream: detect.StreamIngest, Time: t0.Add(time.Duration(i) * time.Second), System: "ehr",
				User: "ehr:u1", Roles: []string{"nurse"}, Action: phivault.ActionRead, ResourceType: "Patient",
				ResourceID: "ehr:p1", Patients: []string{"ehr:p1"}, Count: 1, OK: true, Outcome: "ok",
			}})
		case 1:
			out = append(out, detect.Record{Kind: detect.RecordStaff, User: &detect.User{ID: fmt.Sprintf("ehr:u%d", i), Roles: []string{"clerk"}}})
		default:
			out = append(out, detect.Record{Kind: detect.RecordHoneytoken, Honeytoken: fmt.Sprintf("ehr:p%d", i)})
		}
	}
	return out
}

func testIngest(t *testing.T, s detect.Store) {
	ctx := context.Background()
	recs := sampleRecords(5)
	recs[0].Seq = 99 // ignored: the store numbers
	last, err := s.Ingest(ctx, recs[:2])
	must(t, err)
	if last != 2 {
		t.Errorf("first Ingest returned %d, want 2", last)
	}
	last, err = s.Ingest(ctx, recs[2:])
	must(t, err)
	if last != 5 {
		t.Errorf("second Ingest returned %d, want 5", last)
	}
	last, err = s.Ingest(ctx, nil)
	if err != nil || last != 5 {
		t.Errorf("empty Ingest = %d, %v; want 5", last, err)
	}
	if n, err := s.IngestSize(ctx); err != nil || n != 5 {
		t.Errorf("IngestSize = %d, %v; want 5", n, err)
	}
	if recs[0].Seq != 99 || recs[1].Seq != 0 {
		t.Error("Ingest changed its argument")
	}
	got, err := s.ReadIngest(ctx, 0, 0)
	must(t, err)
	if len(got) != 5 {
		t.Fatalf("ReadIngest(0, 0) = %d records, want 5", len(got))
	}
	for i := range got {
		want := recs[i]
		want.Seq = int64(i + 1)
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("record %d = %+v, want %+v", i+1, got[i], want)
		}
	}
}

func testReadIngestBounds(t *testing.T, s detect.Store) {
	ctx := context.Background()
	if got, err := s.ReadIngest(ctx, 0, 10); err != nil || len(got) != 0 {
		t.Errorf("ReadIngest of an empty stream = %d, %v", len(got), err)
	}
	_, err := s.Ingest(ctx, sampleRecords(10))
	must(t, err)
	for _, c := range []struct {
		after       int64
		limit       int
		first, last int64 // 0: none
	}{
		{0, 0, 1, 10},
		{0, -1, 1, 10},
		{0, 3, 1, 3},
		{3, 3, 4, 6},
		{8, 5, 9, 10},
		{9, 0, 10, 10},
		{10, 0, 0, 0},
		{11, 5, 0, 0},
		{-1, 5, 0, 0},
	} {
		got, err := s.ReadIngest(ctx, c.after, c.limit)
		must(t, err)
		var first, last int64
		if len(got) > 0 {
			first, last = got[0].Seq, got[len(got)-1].Seq
		}
		if first != c.first || last != c.last || (len(got) > 0 && int64(len(got)) != last-first+1) {
			t.Errorf("ReadIngest(%d, %d) = %d records %d..%d, want %d..%d", c.after, c.limit, len(got), first, last, c.first, c.last)
		}
	}
}

func testIngestConcurrent(t *testing.T, s detect.Store) {
	ctx := context.Background()
	const workers, batches, size = 4, 5, 7
	var wg sync.WaitGroup
	errs := make(chan error, workers*batches)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range batches {
				if _, err := s.Ingest(ctx, sampleRecords(size)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.ReadIngest(ctx, 0, 0)
	must(t, err)
	if len(got) != workers*batches*size {
		t.Fatalf("%d records after concurrent ingests, want %d", len(got), workers*batches*size)
	}
	for i, r := range got {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has sequence %d", i+1, r.Seq)
		}
	}
	// Each batch is contiguous: its kinds follow sampleRecords' pattern.
	for i := 0; i < len(got); i += size {
		for j := range size {
			if want := sampleRecords(size)[j].Kind; got[i+j].Kind != want {
				t.Fatalf("batch at %d interleaved with another", i+1)
			}
		}
	}
}
