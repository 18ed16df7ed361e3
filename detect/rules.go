package detect

import (
	"slices"
	"strings"
	"time"
)

// DefaultRules returns a fresh instance of every rule, each on by
// default, with default settings (docs/detection.md lists them).
func DefaultRules() []Rule {
	var rules []Rule
	rules = append(rules, peopleRules()...)    // rules_people.go
	rules = append(rules, behaviourRules()...) // rules_behaviour.go
	rules = append(rules, authRules()...)      // rules_auth.go
	rules = append(rules, controlRules()...)   // rules_control.go
	return rules
}

// Settings are what a site declares to the detectors; the zero value is
// every default. serve, "phivault detect replay" and "phivault
// simulate" all build their engines with NewEngineFor, so what the
// simulator measures is what serve runs.
type Settings struct {
	// ChangeWindows are when control changes (policy reloads, key
	// operations, seal and unseal) are expected; outside them they alert.
	ChangeWindows ChangeWindows
	// Disabled names rules not to run.
	Disabled []string
}

// Rules returns DefaultRules with s applied.
func (s Settings) Rules() []Rule {
	var rules []Rule
	for _, r := range DefaultRules() {
		if slices.Contains(s.Disabled, r.Name()) {
			continue
		}
		switch r := r.(type) {
		case *PolicyReload:
			r.Windows = s.ChangeWindows
		case *KeyOperation:
			r.Windows = s.ChangeWindows
		case *SealUnseal:
			r.Windows = s.ChangeWindows
		}
		rules = append(rules, r)
	}
	return rules
}

// NewEngineFor returns an Engine over dir with s's rules and the learned
// scoring (RiskScorer), as serve runs it. known is as for NewEngine.
func NewEngineFor(s Settings, dir *Directory, known func(id string) *Alert) *Engine {
	e := NewEngine(dir, s.Rules(), known)
	e.Scorer = NewRiskScorer()
	return e
}

// ParseSettings reads the settings serve takes as flags: change windows
// (comma-separated ParseChangeWindows declarations, read in loc) and
// disabled rules (comma-separated names, each a rule of DefaultRules).
func ParseSettings(loc *time.Location, windows, disabled string) (Settings, error) {
	var s Settings
	if windows != "" {
		w, err := ParseChangeWindows(loc, commaList(windows)...)
		if err != nil {
			return s, err
		}
		s.ChangeWindows = w
	}
	if disabled != "" {
		known := map[string]bool{}
		for _, r := range DefaultRules() {
			known[r.Name()] = true
		}
		for _, name := range commaList(disabled) {
			if !known[name] {
				return s, &unknownRuleError{name}
			}
			s.Disabled = append(s.Disabled, name)
		}
	}
	return s, nil
}

type unknownRuleError struct{ name string }

func (e *unknownRuleError) Error() string { return "no rule named " + e.name }

// commaList splits a comma-separated flag value, dropping empty items.
func commaList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
