package drill

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/phivault/phivault/internal/jsonl"
)

// Outcomes of a Step.
const (
	StepDone       = "done"
	StepFailed     = "failed"
	StepNotCarried = "not carried out" // the build cannot do it yet, or it waits for a person
	StepMissing    = "not seen"        // expected, and no incident lists it
)

// Expectation is what a scenario expects, as the report restates it.
type Expectation struct {
	Rules     []string `json:"rules,omitempty"`     // one of them must alert
	Playbooks []string `json:"playbooks,omitempty"` // expected to answer
	Required  []string `json:"required,omitempty"`  // steps that must be done
	Expected  []string `json:"expected,omitempty"`  // steps listed, not required today
}

// Step is one containment step of the drill and how it went.
type Step struct {
	Action   string `json:"action"`             // a playbook action, or a check the drill makes
	Playbook string `json:"playbook,omitempty"` // the playbook that asked for it; "" for a drill check
	Required bool   `json:"required"`
	Outcome  string `json:"outcome"` // StepDone, StepFailed, StepNotCarried, StepMissing
	Reason   string `json:"reason,omitempty"`
	// MS is when it finished, in milliseconds after the first malicious
	// request (0 if unknown).
	MS int64 `json:"ms,omitempty"`
}

// Evidence is the result of checking an incident's evidence bundle.
type Evidence struct {
	Incident string `json:"incident,omitempty"`
	Status   string `json:"status"` // EvidenceVerified, EvidenceFailed, EvidenceUnavailable
	Detail   string `json:"detail,omitempty"`
}

// Report is what one drill found. It holds ids, names and times only.
type Report struct {
	Scenario    string      `json:"scenario"`
	Started     time.Time   `json:"started"`
	Live        bool        `json:"live,omitempty"`
	Expect      Expectation `json:"expect"`
	Containment string      `json:"containment"` // what contained means for this scenario
	// Skipped says why the scenario was not played (isolated only).
	Skipped string `json:"skipped,omitempty"`
	// Alert is the alert that detected the attack, and its rule.
	Alert string `json:"alert,omitempty"`
	Rule  string `json:"rule,omitempty"`
	// Incidents are those the drill's alert or report opened or joined.
	Incidents []string `json:"incidents,omitempty"`
	// DetectMS is from the first malicious request to the alert (or the
	// report of the loss) being recorded; -1 if never.
	DetectMS int64 `json:"detect_ms"`
	// ContainMS is from the first malicious request to the required
	// containment holding; -1 if never.
	ContainMS int64     `json:"contain_ms"`
	Steps     []Step    `json:"steps,omitempty"`
	Evidence  *Evidence `json:"evidence,omitempty"`
	Notes     []string  `json:"notes,omitempty"`
	Pass      bool      `json:"pass"`
	Failures  []string  `json:"failures,omitempty"`
	Finished  time.Time `json:"finished"`
}

// finish decides pass or fail: detected, contained, and every required
// step done.
func (r *Report) finish() {
	r.Finished = time.Now().UTC()
	if r.DetectMS < 0 && !slices.Contains(r.Failures, "not detected") {
		r.Failures = append([]string{"not detected"}, r.Failures...)
	}
	if r.ContainMS < 0 && !slices.Contains(r.Failures, "not contained") {
		r.Failures = append(r.Failures, "not contained")
	}
	for _, s := range r.Steps {
		if s.Required && s.Outcome != StepDone {
			r.Failures = append(r.Failures, fmt.Sprintf("required step %s: %s", s.Action, s.Outcome))
		}
	}
	r.Pass = len(r.Failures) == 0
}

// Text writes the report for a person to read.
func (r *Report) Text(w io.Writer) {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	if r.Skipped != "" {
		fmt.Fprintf(w, "drill %s: skipped (%s)\n", r.Scenario, r.Skipped)
		return
	}
	fmt.Fprintf(w, "drill %s: %s\n", r.Scenario, verdict)
	ms := func(n int64) string {
		if n < 0 {
			return "never"
		}
		return (time.Duration(n) * time.Millisecond).String()
	}
	if r.Rule != "" {
		fmt.Fprintf(w, "  detected:  %s by %s (alert %s)\n", ms(r.DetectMS), r.Rule, r.Alert)
	} else {
		fmt.Fprintf(w, "  detected:  %s\n", ms(r.DetectMS))
	}
	fmt.Fprintf(w, "  contained: %s (%s)\n", ms(r.ContainMS), r.Containment)
	for _, i := range r.Incidents {
		fmt.Fprintf(w, "  incident:  %s\n", i)
	}
	for _, s := range r.Steps {
		req := "expected"
		if s.Required {
			req = "required"
		}
		line := fmt.Sprintf("  step %-22s %-8s %s", s.Action, req, s.Outcome)
		if s.Reason != "" {
			line += ": " + s.Reason
		}
		if s.Playbook != "" {
			line += " [" + s.Playbook + "]"
		}
		fmt.Fprintln(w, line)
	}
	if r.Evidence != nil {
		fmt.Fprintf(w, "  evidence:  %s", r.Evidence.Status)
		if r.Evidence.Detail != "" {
			fmt.Fprintf(w, " (%s)", r.Evidence.Detail)
		}
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAILED: %s\n", f)
	}
}

// History keeps drill reports, one JSON line each, in a file readable by
// its owner only. Append is safe for use by one process at a time.
type History struct {
	// Path is the history file; its folder is made (0700) on first use.
	Path string
}

// HistoryFile is the name of the history file in a data folder's drills/.
const HistoryFile = "history.jsonl"

// NewHistory returns the history kept in dataDir/drills/.
func NewHistory(dataDir string) *History {
	return &History{Path: filepath.Join(dataDir, "drills", HistoryFile)}
}

// Append adds r to the history.
func (h *History) Append(r *Report) error {
	if err := jsonl.Append(h.Path, r); err != nil {
		return fmt.Errorf("drill history: %w", err)
	}
	return nil
}

// Read returns the reports in the history, oldest first; none if there is
// no history yet. A line that is not a report is an error naming it.
func (h *History) Read() ([]*Report, error) {
	out, err := jsonl.Read[Report](h.Path)
	if err != nil {
		return nil, fmt.Errorf("drill history %w", err)
	}
	return out, nil
}
