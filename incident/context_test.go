package incident_test

import (
	"context"
	"testing"

	"github.com/phivault/phivault/incident"
)

// incidentControls records the incident each call's context names.
type incidentControls struct{ got []string }

func (c *incidentControls) Do(ctx context.Context, _ incident.Action) error {
	c.got = append(c.got, incident.IncidentFromContext(ctx))
	return nil
}

func (c *incidentControls) Undo(ctx context.Context, _ incident.Action) error {
	c.got = append(c.got, incident.IncidentFromContext(ctx))
	return nil
}

// The controls learn the incident an action is carried out (or undone)
// for: collect-evidence writes that incident's archive.
func TestResponder_incidentInContext(t *testing.T) {
	f, r, _ := newResponder(t)
	c := &incidentControls{}
	r.Controls = c
	ins := r.Answer(context.Background(), decoyAlert(f.now))
	if len(ins) != 1 || len(c.got) == 0 {
		t.Fatalf("%d incidents, controls called %d times", len(ins), len(c.got))
	}
	in := ins[0]
	var done incident.Action
	for _, a := range in.Actions {
		if a.Kind == "suspend-account" {
			done = a
		}
	}
	before := len(c.got)
	act, err := f.svc.Undoing(officer(), in.ID, done.ID, in.Version)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revert(officer(), in.ID, *act); err != nil {
		t.Fatal(err)
	}
	if len(c.got) != before+1 {
		t.Fatalf("the undo was not handed to the controls: %v", c.got)
	}
	for i, id := range c.got {
		if id != in.ID {
			t.Fatalf("call %d named incident %q, want %q", i, id, in.ID)
		}
	}
	if incident.IncidentFromContext(context.Background()) != "" {
		t.Fatal("a bare context names an incident")
	}
}
