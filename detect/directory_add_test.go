package detect_test

import (
	"testing"
	"time"

	"github.com/phivault/phivault/detect"
)

// TestDirectory_AddRelationship checks relationships added one by one
// are found, and replaced with their origin.
func TestDirectory_AddRelationship(t *testing.T) {
	d := detect.NewDirectory()
	at := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	for _, p := range []string{"sim:p1", "sim:p2", "sim:p3"} {
		d.AddRelationship(detect.Relationship{User: "sim:u1", Patient: p, Kind: detect.KindEncounter, Origin: "ingest:sim"})
	}
	d.AddRelationship(detect.Relationship{User: "sim:u1", Patient: "sim:p4", Kind: detect.KindEncounter, Origin: "ingest:other",
		Start: at.Add(time.Hour), End: at.Add(2 * time.Hour)})
	for _, p := range []string{"sim:p1", "sim:p2", "sim:p3"} {
		if r := d.Related("sim:u1", p, at, 0); r == nil || r.Origin != "ingest:sim" {
			t.Errorf("Related(sim:u1, %s) = %v, want the added relationship", p, r)
		}
	}
	if r := d.Related("sim:u1", "sim:p4", at, 0); r != nil {
		t.Errorf("Related(sim:u1, sim:p4) an hour before its start = %v, want nil", r)
	}
	if r := d.Related("sim:u1", "sim:p4", at, time.Hour); r == nil {
		t.Error("Related(sim:u1, sim:p4) within the slack = nil, want it")
	}
	d.SetRelationships("ingest:sim", []detect.Relationship{{User: "sim:u1", Patient: "sim:p2", Kind: detect.KindCareTeam}})
	if r := d.Related("sim:u1", "sim:p1", at, 0); r != nil {
		t.Errorf("after replacing the origin, Related(sim:u1, sim:p1) = %v, want nil", r)
	}
	if r := d.Related("sim:u1", "sim:p2", at, 0); r == nil || r.Kind != detect.KindCareTeam {
		t.Errorf("after replacing the origin, Related(sim:u1, sim:p2) = %v, want the care team", r)
	}
	if got := d.Accessors("sim:p4"); len(got) != 1 || got[0] != "sim:u1" {
		t.Errorf("Accessors(sim:p4) = %v, want [sim:u1]", got)
	}
}

// TestDirectory_RelatedAfterChange checks that Related, asked about the
// same user and patient before and after each kind of change, sees the
// change: it remembers its last answer.
func TestDirectory_RelatedAfterChange(t *testing.T) {
	at := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	related := func(d *detect.Directory) bool { return d.Related("sim:u1", "sim:p1", at, 0) != nil }
	// The user has another patient too, so that what it knew of sim:p1
	// is kept while it changes.
	withOther := func() *detect.Directory {
		d := detect.NewDirectory()
		d.AddRelationship(detect.Relationship{User: "sim:u1", Patient: "sim:p9", Kind: detect.KindCareTeam, Origin: "ingest:other"})
		return d
	}
	tests := []struct {
		name   string
		change func(d *detect.Directory)
		want   bool
	}{
		{"added", func(d *detect.Directory) {
			d.AddRelationship(detect.Relationship{User: "sim:u1", Patient: "sim:p1", Kind: detect.KindEncounter, Origin: "ingest:sim"})
		}, true},
		{"added for another patient", func(d *detect.Directory) {
			d.AddRelationship(detect.Relationship{User: "sim:u1", Patient: "sim:p2", Kind: detect.KindEncounter, Origin: "ingest:sim"})
		}, false},
		{"set", func(d *detect.Directory) {
			d.SetRelationships("ward:a", []detect.Relationship{{User: "sim:u1", Patient: "sim:p1", Kind: detect.KindCareTeam}})
		}, true},
		{"practitioner linked", func(d *detect.Directory) {
			d.PutUser(&detect.User{ID: "sim:u1", Practitioner: "pr1"})
		}, true},
		{"practitioner linked to another user", func(d *detect.Directory) {
			d.PutUser(&detect.User{ID: "sim:u2", Practitioner: "pr1"})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := withOther()
			d.PutUser(&detect.User{ID: "sim:u1"})
			d.AddRelationship(detect.Relationship{User: "Practitioner/pr1", Patient: "sim:p1", Kind: detect.KindEncounter, Origin: "ingest:sim"})
			if related(d) {
				t.Fatal("Related before the change = a relationship, want nil")
			}
			tt.change(d)
			if got := related(d); got != tt.want {
				t.Errorf("Related after the change found one: %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("replaced", func(t *testing.T) {
		d := withOther()
		d.SetRelationships("ward:a", []detect.Relationship{{User: "sim:u1", Patient: "sim:p1", Kind: detect.KindCareTeam}})
		if !related(d) {
			t.Fatal("Related before the change = nil, want the care team")
		}
		d.SetRelationships("ward:a", nil)
		if related(d) {
			t.Error("Related after the origin was emptied = a relationship, want nil")
		}
	})
}

// TestDirectory_RelatedOrder checks that Related returns the first
// relationship added that covers the time, also after others were
// removed with their origins, first or in the middle of the list.
func TestDirectory_RelatedOrder(t *testing.T) {
	at := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	d := detect.NewDirectory()
	d.SetRelationships("ward:a", []detect.Relationship{{User: "sim:u1", Patient: "sim:p1", Kind: detect.KindCareTeam, End: at.Add(-time.Hour)}})
	d.AddRelationship(detect.Relationship{User: "sim:u1", Patient: "sim:p1", Kind: detect.KindOrder, Origin: "ingest:sim"})
	d.AddRelationship(detect.Relationship{User: "sim:u1", Patient: "sim:p1", Kind: detect.KindEncounter, Origin: "ingest:other"})
	d.AddRelationship(detect.Relationship{User: "sim:u1", Patient: "sim:p1", Kind: detect.KindAppointment, Origin: "ingest:sim"})
	kind := func() string {
		if r := d.Related("sim:u1", "sim:p1", at, 0); r != nil {
			return r.Kind
		}
		return ""
	}
	steps := []struct {
		remove, want string
	}{
		{"", detect.KindOrder}, // the care team ended before
		{"ingest:sim", detect.KindEncounter},
		{"ward:a", detect.KindEncounter},
		{"ingest:other", ""},
	}
	for _, s := range steps {
		if s.remove != "" {
			d.SetRelationships(s.remove, nil)
		}
		if got := kind(); got != s.want {
			t.Errorf("after removing %q, Related = %q, want %q", s.remove, got, s.want)
		}
	}
	if got := d.Accessors("sim:p1"); len(got) != 0 {
		t.Errorf("Accessors after every origin was emptied = %v, want none", got)
	}
}

// TestDirectory_AddAfterReplace checks that a relationship added to an
// origin after the origin was replaced is replaced with it next time.
func TestDirectory_AddAfterReplace(t *testing.T) {
	at := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	d := detect.NewDirectory()
	add := func(patient string) {
		d.AddRelationship(detect.Relationship{User: "sim:u1", Patient: patient, Kind: detect.KindEncounter, Origin: "ingest:sim"})
	}
	add("sim:p1")
	d.SetRelationships("ingest:sim", nil)
	add("sim:p2")
	if d.Related("sim:u1", "sim:p2", at, 0) == nil {
		t.Fatal("Related(sim:u1, sim:p2) = nil after it was added, want it")
	}
	d.SetRelationships("ingest:sim", nil)
	for _, p := range []string{"sim:p1", "sim:p2"} {
		if r := d.Related("sim:u1", p, at, 0); r != nil {
			t.Errorf("after the origin was replaced again, Related(sim:u1, %s) = %v, want nil", p, r)
		}
	}
}
