package detect

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
