package playbook_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident/playbook"
)

func TestDefaults(t *testing.T) {
	set, err := playbook.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range set.Playbooks {
		names = append(names, p.Name)
		if p.Description == "" || len(p.Steps) == 0 {
			t.Errorf("%s: no description or no steps", p.Name)
		}
	}
	if want := []string{"bulk-export", "honeytoken-touch", "mass-change", "stolen-credentials"}; !slices.Equal(names, want) {
		t.Fatalf("defaults %v, want %v", names, want)
	}
	// The default: a decoy touch by anyone, or a bulk export by a
	// staff account, suspends the account and revokes its tokens, at once.
	staff := playbook.User{Roles: []string{"nurse"}, Staff: true}
	for _, a := range []*detect.Alert{
		{Rule: detect.RuleHoneytoken, Severity: detect.SeverityCritical, User: "u1"},
		{Rule: detect.RuleBulkAccess, Severity: detect.SeverityHigh, User: "u1"},
	} {
		got := set.Match(a, staff)
		if len(got) != 1 {
			t.Fatalf("%s matched %d playbooks", a.Rule, len(got))
		}
		var auto []string
		for _, s := range got[0].Steps {
			if s.Approval == playbook.ApprovalAuto {
				auto = append(auto, s.Action)
			}
		}
		if !slices.Contains(auto, playbook.ActionSuspendAccount) || !slices.Contains(auto, playbook.ActionRevokeSessions) {
			t.Fatalf("%s: automatic steps %v", a.Rule, auto)
		}
	}
	// Near misses: a system client's bulk export, a medium bulk access.
	if got := set.Match(&detect.Alert{Rule: detect.RuleBulkAccess, Severity: detect.SeverityHigh}, playbook.User{}); len(got) != 0 {
		t.Fatalf("a system client's bulk export matched %s", got[0].Name)
	}
	if got := set.Match(&detect.Alert{Rule: detect.RuleBulkAccess, Severity: detect.SeverityMedium}, staff); len(got) != 0 {
		t.Fatalf("a medium bulk access matched %s", got[0].Name)
	}
	// A suspended account that signs in is someone else holding its
	// credentials; its refused attempts (the containment holding, often
	// its own revoked tokens retried) are not.
	if got := set.Match(&detect.Alert{Rule: detect.RuleSuspendedSignIn, Severity: detect.SeverityCritical, User: "u1"}, staff); len(got) != 1 || got[0].Name != "stolen-credentials" {
		t.Fatalf("a suspended account's sign-in matched %v", got)
	}
	if got := set.Match(&detect.Alert{Rule: detect.RuleSuspendedSignIn, Severity: detect.SeverityMedium, User: "u1"}, staff); len(got) != 0 {
		t.Fatalf("a suspended account's refused attempt matched %s", got[0].Name)
	}
	// Wide actions wait for a second person by default.
	mc := set.Match(&detect.Alert{Rule: detect.RuleMassChange, Severity: detect.SeverityHigh}, staff)[0]
	for _, s := range mc.Steps {
		if s.Action == playbook.ActionBlockClient && s.Approval != playbook.ApprovalTwoPerson {
			t.Fatalf("block-client approval %s", s.Approval)
		}
	}
}

func TestParse(t *testing.T) {
	p, err := playbook.Parse("p.yaml", []byte(`
name: night-vip
description: VIP records opened at night
trigger:
  rules: [vip-access, after-hours]
  min_severity: medium
  min_score: 40
  roles: [nurse]
incident:
  title: "{rule}: {user} at {severity}"
steps:
  - action: raise-detail
    for: 72h
  - action: notify
    channels: [email]
  - action: restrict-compartment
    approval: two-person
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "night-vip" || p.Trigger.MinSeverity != detect.SeverityMedium || p.Trigger.MinScore != 40 || len(p.Steps) != 3 {
		t.Fatalf("parsed %+v", p)
	}
	if s := p.Steps[0]; s.For != 72*time.Hour || s.Approval != playbook.ApprovalAuto || s.Line != 12 {
		t.Fatalf("step 0 %+v", s)
	}
	if s := p.Steps[2]; s.Approval != playbook.ApprovalTwoPerson {
		t.Fatalf("step 2 %+v", s)
	}
	a := &detect.Alert{Rule: "vip-access", Severity: detect.SeverityHigh, Score: 55, User: "u-9"}
	if !p.Trigger.Matches(a, playbook.User{Roles: []string{"clerk", "nurse"}}) {
		t.Fatal("no match")
	}
	for name, u := range map[string]playbook.User{"other role": {Roles: []string{"clerk"}}} {
		if p.Trigger.Matches(a, u) {
			t.Fatalf("%s matched", name)
		}
	}
	low := *a
	low.Score = 39
	if p.Trigger.Matches(&low, playbook.User{Roles: []string{"nurse"}}) {
		t.Fatal("a score under min_score matched")
	}
	if got := p.Incident.TitleFor(a); got != "vip-access: u-9 at high" {
		t.Fatalf("title %q", got)
	}
}

// Each mistake is reported with its file and line, and all of them at
// once.
func TestParse_mistakes(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // "line: reason fragment"
	}{
		{"not yaml", "name: [", []string{"1: not valid YAML"}},
		{"empty", "", []string{"1: no playbook"}},
		{"no name", "steps:\n  - action: notify\n", []string{"1: needs a name"}},
		{"no steps", "name: x\nincident:\n  severity: high\n", []string{"1: needs steps"}},
		{"open is gone", "name: x\nincident:\n  open: true\nsteps:\n  - action: notify\n", []string{`3: incident has no key "open"`}},
		{"bad name", "name: Night VIP\nsteps:\n  - action: notify\n", []string{"1: a name is"}},
		{"unknown key", "name: x\nwhen: always\nsteps:\n  - action: notify\n", []string{`2: a playbook has no key "when"`}},
		{"twice", "name: x\nname: y\nsteps:\n  - action: notify\n", []string{`2: a playbook has the key "name" twice`}},
		{"unknown action", "name: x\nsteps:\n  - action: notify\n  - action: shred-everything\n", []string{`4: unknown action "shred-everything"`}},
		{"bad approval", "name: x\nsteps:\n  - action: notify\n    approval: maybe\n", []string{"4: approval is auto or two-person"}},
		{"param of another action", "name: x\nsteps:\n  - action: suspend-account\n    for: 3h\n", []string{"3: suspend-account takes no for"}},
		{"bad duration", "name: x\nsteps:\n  - action: raise-detail\n    for: forever\n", []string{"4: for is a duration"}},
		{"bad channel", "name: x\nsteps:\n  - action: notify\n    channels: [pager]\n", []string{`4: unknown channel "pager"`}},
		{"twice the action", "name: x\nsteps:\n  - action: notify\n  - action: notify\n", []string{"4: the action notify is in this playbook twice"}},
		{"bad severity", "name: x\ntrigger:\n  min_severity: dire\nsteps:\n  - action: notify\n", []string{"3: a severity is"}},
		{"bad score", "name: x\ntrigger:\n  min_score: 101\nsteps:\n  - action: notify\n", []string{"3: min_score is a whole number"}},
		{"rules not a list", "name: x\ntrigger:\n  rules: honeytoken\nsteps:\n  - action: notify\n", []string{"3: rules is a list"}},
		{"several", "name: x\ntrigger:\n  min_score: -1\nsteps:\n  - action: nope\n  - approval: auto\n",
			[]string{"3: min_score", `5: unknown action "nope"`, "6: a step needs an action"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := playbook.Parse("f.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			for _, w := range tc.want {
				line, reason, _ := strings.Cut(w, ": ")
				if !strings.Contains(msg, "f.yaml:"+line+": ") || !strings.Contains(msg, reason) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			var pe *playbook.Error
			if !errors.As(err, &pe) {
				t.Errorf("%T is no *playbook.Error", err)
			}
		})
	}
}

// A folder's playbooks join the defaults, one named like a default
// replaces it, and one bad file refuses the whole folder.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("quiet-honeytoken.yaml", "name: honeytoken-touch\ntrigger:\n  rules: [honeytoken]\nsteps:\n  - action: notify\n")
	write("vip.yml", "name: vip\ntrigger:\n  rules: [vip-access]\nsteps:\n  - action: notify\n")
	write("README.txt", "not a playbook")
	set, err := playbook.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range set.Playbooks {
		names = append(names, p.Name)
	}
	if want := []string{"bulk-export", "honeytoken-touch", "mass-change", "stolen-credentials", "vip"}; !slices.Equal(names, want) {
		t.Fatalf("set %v, want %v", names, want)
	}
	if ht := set.Playbooks[1]; len(ht.Steps) != 1 || !strings.HasSuffix(ht.File, "quiet-honeytoken.yaml") {
		t.Fatalf("the folder's honeytoken-touch did not replace the default: %+v", ht)
	}
	write("broken.yaml", "name: broken\nsteps:\n  - action: explode\n")
	write("dup.yaml", "name: vip\nsteps:\n  - action: notify\n")
	_, err = playbook.Load(dir)
	if err == nil || !strings.Contains(err.Error(), "broken.yaml:3:") || !strings.Contains(err.Error(), `the name "vip" is also the name of`) {
		t.Fatalf("Load with mistakes = %v", err)
	}
	if _, err := playbook.Load(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing folder was accepted")
	}
}
