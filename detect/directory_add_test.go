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
