package playbook_test

import (
	"slices"
	"testing"

	"github.com/phivault/phivault/incident/playbook"
)

// FuzzParse: no input makes Parse panic, and what it accepts is checked
// whole: a name, known actions each once with an approval, and a trigger
// in range.
func FuzzParse(f *testing.F) {
	set, err := playbook.Defaults()
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range set.Playbooks {
		f.Add([]byte("name: " + p.Name + "\nsteps:\n  - action: notify\n"))
	}
	f.Add([]byte("name: x\ntrigger:\n  rules: [honeytoken]\n  min_score: 40\nincident:\n  severity: high\nsteps:\n  - action: raise-detail\n    for: 72h\n"))
	f.Add([]byte("- [\n"))
	f.Add([]byte("name: &a x\nsteps: *a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := playbook.Parse("f.yaml", b)
		if err != nil {
			return
		}
		if p.Name == "" || len(p.Steps) == 0 || p.Trigger.MinScore < 0 || p.Trigger.MinScore > 100 {
			t.Fatalf("accepted %+v", p)
		}
		var seen []string
		for _, s := range p.Steps {
			if !slices.Contains(playbook.Actions(), s.Action) || slices.Contains(seen, s.Action) ||
				(s.Approval != playbook.ApprovalAuto && s.Approval != playbook.ApprovalTwoPerson) {
				t.Fatalf("accepted step %+v", s)
			}
			seen = append(seen, s.Action)
		}
	})
}
