package drill

import (
	"strings"
	"testing"
)

// TestReport_finish: a drill passes when detected, contained and every
// required step done; a step only expected never fails it.
func TestReport_finish(t *testing.T) {
	tests := []struct {
		name   string
		give   Report
		pass   bool
		reason string
	}{
		{"ok", Report{DetectMS: 10, ContainMS: 20, Steps: []Step{{Action: "suspend-account", Required: true, Outcome: StepDone},
			{Action: "notify", Outcome: StepNotCarried, Reason: "not yet"}}}, true, ""},
		{"not detected", Report{DetectMS: -1, ContainMS: -1}, false, "not detected"},
		{"not contained", Report{DetectMS: 10, ContainMS: -1}, false, "not contained"},
		{"required step failed", Report{DetectMS: 10, ContainMS: 20, Steps: []Step{{Action: "revoke-sessions", Required: true, Outcome: StepFailed}}},
			false, "required step revoke-sessions: failed"},
		{"required step not carried out", Report{DetectMS: 10, ContainMS: 20, Steps: []Step{{Action: "block-source", Required: true, Outcome: StepNotCarried}}},
			false, "required step block-source: not carried out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.give
			r.finish()
			if r.Pass != tt.pass || tt.reason != "" && !strings.Contains(strings.Join(r.Failures, "; "), tt.reason) {
				t.Errorf("finish: pass %v failures %q; want pass %v with %q", r.Pass, r.Failures, tt.pass, tt.reason)
			}
		})
	}
}
