package incident_test

import (
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident"
)

func entries(es ...*phivault.AuditEntry) func(yield func(int64, *phivault.AuditEntry) bool) {
	return func(yield func(int64, *phivault.AuditEntry) bool) {
		for i, e := range es {
			if !yield(int64(i), e) {
				return
			}
		}
	}
}

func TestAssess(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	trail := entries(
		// 0: the insider reads a patient.
		&phivault.AuditEntry{Time: at(1), Actor: "u1", Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{"p1"}, Returned: []string{"Patient/p1/_history/1"}},
		// 1: a search returning two observations and the patient again.
		&phivault.AuditEntry{Time: at(2), Actor: "u1", Action: phivault.ActionSearch, Outcome: "ok", Compartments: []string{"p1"},
			Returned: []string{"Observation/o1/_history/2", "Observation/o2/_history/1", "Patient/p1/_history/1"}},
		// 2: refused: nothing left.
		&phivault.AuditEntry{Time: at(3), Actor: "u1", Action: phivault.ActionRead, Outcome: phivault.EFORBIDDEN, Compartments: []string{"p9"}, Returned: []string{"Patient/p9/_history/1"}},
		// 3: someone else.
		&phivault.AuditEntry{Time: at(4), Actor: "u2", Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{"p8"}, Returned: []string{"Patient/p8/_history/1"}},
		// 4: the insider, before the window.
		&phivault.AuditEntry{Time: t0.Add(-time.Hour), Actor: "u1", Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{"p7"}, Returned: []string{"Patient/p7/_history/1"}},
		// 5: a write: named, nothing left.
		&phivault.AuditEntry{Time: at(5), Actor: "u1", Action: phivault.ActionUpdate, Outcome: "ok", Compartments: []string{"p1"}, Returned: []string{"Condition/c1/_history/2"}},
		// 6: an $everything of two compartments from the attacker's
		// network, unauthenticated actor name unknown.
		&phivault.AuditEntry{Time: at(6), Actor: "u3", Source: "10.9.0.7", Action: phivault.ActionEverything, Outcome: "ok", Compartments: []string{"p2", "p3"},
			Returned: []string{"Patient/p2/_history/1", "MedicationRequest/m1/_history/1", "Claim/k1/_history/1", "DocumentReference/d1/_history/1", "Basic/b1/_history/1"}},
		// 7: a client in scope.
		&phivault.AuditEntry{Time: at(7), Actor: "svc", Client: "etl", Action: phivault.ActionExport, Outcome: "ok", Compartments: []string{"p4"}, Returned: []string{"Encounter/e1/_history/1", "Condition/c9/_history/1"}},
		// 8: after the window.
		&phivault.AuditEntry{Time: at(90), Actor: "u1", Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{"p6"}, Returned: []string{"Patient/p6/_history/1"}},
	)
	im := incident.Assess(trail, incident.Scope{Users: []string{"u1"}, Clients: []string{"etl"}, Sources: []string{"10.9.0.0/16"}, From: t0, To: at(60)})
	if want := []int64{0, 1, 6, 7}; !slices.Equal(im.Entries, want) {
		t.Fatalf("entries %v, want %v", im.Entries, want)
	}
	if want := []string{"p1", "p2", "p3", "p4"}; !slices.Equal(im.Patients, want) {
		t.Fatalf("patients %v, want %v", im.Patients, want)
	}
	if len(im.Resources) != 10 || slices.Contains(im.Resources, "Patient/p9/_history/1") || slices.Contains(im.Resources, "Condition/c1/_history/2") {
		t.Fatalf("resources %v", im.Resources)
	}
	wantKinds := map[string]int{incident.KindDemographics: 2, incident.KindResults: 2, incident.KindMedications: 1, incident.KindFinancial: 1,
		incident.KindNotes: 1, incident.KindOther: 1, incident.KindCare: 1, incident.KindDiagnoses: 1}
	for k, n := range wantKinds {
		if im.ByKind[k] != n {
			t.Errorf("kind %s: %d, want %d (all %v)", k, im.ByKind[k], n, im.ByKind)
		}
	}
	if im.ByType["Patient"] != 2 || im.ByType["Observation"] != 2 {
		t.Fatalf("by type %v", im.ByType)
	}
	if !slices.Equal(im.Writes, []int64{5}) {
		t.Fatalf("writes %v", im.Writes)
	}
	// A scope of nobody covers nothing.
	if im := incident.Assess(trail, incident.Scope{From: t0}); len(im.Entries) != 0 {
		t.Fatalf("empty scope covered %v", im.Entries)
	}
}

func TestDeadlines(t *testing.T) {
	disc := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	due := disc.Add(60 * 24 * time.Hour)
	notices := func(ds []incident.Deadline) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Notice)
		}
		return out
	}
	// Small: individuals, and the annual log 60 days after the year ends.
	ds := incident.Deadlines(disc, map[string]int{"MA": 12, "": 3})
	if !slices.Equal(notices(ds), []string{"individuals", "hhs-annual-log"}) || !ds[0].Due.Equal(due) ||
		!ds[1].Due.Equal(time.Date(2027, 3, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("small breach: %+v", ds)
	}
	// 500 in all, none above 500 in a state: HHS now, no media.
	ds = incident.Deadlines(disc, map[string]int{"MA": 300, "NH": 200})
	if !slices.Equal(notices(ds), []string{"individuals", "hhs"}) {
		t.Fatalf("500 in all: %v", notices(ds))
	}
	// More than 500 in one state: media there too; exactly 500 is not
	// more than 500.
	ds = incident.Deadlines(disc, map[string]int{"MA": 501, "NH": 500})
	if !slices.Equal(notices(ds), []string{"individuals", "media MA", "hhs"}) {
		t.Fatalf("501 in MA: %v", notices(ds))
	}
	if ds := incident.Deadlines(disc, nil); ds != nil {
		t.Fatalf("nobody: %v", ds)
	}
}
