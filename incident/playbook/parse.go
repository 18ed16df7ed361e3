package playbook

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/phivault/phivault/detect"
)

// MaxFile bounds a playbook file, in bytes.
const MaxFile = 64 << 10

// Parse reads and checks one playbook file named file. Every mistake is
// reported, joined, each an *Error with its line.
func Parse(file string, b []byte) (*Playbook, error) {
	if len(b) > MaxFile {
		return nil, &Error{File: file, Line: 1, Reason: fmt.Sprintf("the file is over %d bytes", MaxFile)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, &Error{File: file, Line: yamlLine(err), Reason: "not valid YAML: " + yamlReason(err)}
	}
	p := &parser{file: file, pb: &Playbook{File: file}}
	if len(doc.Content) != 1 {
		return nil, &Error{File: file, Line: 1, Reason: "the file holds no playbook"}
	}
	p.playbook(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return p.pb, nil
}

type parser struct {
	file string
	pb   *Playbook
	errs []error
}

func (p *parser) fail(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Reason: fmt.Sprintf(format, args...)})
}

// fields checks n is a mapping of known keys, each once, and calls fn for
// each key and value.
func (p *parser) fields(n *yaml.Node, what string, known []string, fn func(key string, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s is not a mapping of keys to values", what)
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !slices.Contains(known, k.Value):
			p.fail(k, "%s has no key %q (it knows %s)", what, k.Value, strings.Join(known, ", "))
		case seen[k.Value]:
			p.fail(k, "%s has the key %q twice", what, k.Value)
		default:
			seen[k.Value] = true
			fn(k.Value, v)
		}
	}
}

func (p *parser) playbook(n *yaml.Node) {
	var hasName, hasSteps bool
	p.fields(n, "a playbook", []string{"name", "description", "trigger", "incident", "steps"}, func(k string, v *yaml.Node) {
		switch k {
		case "name":
			hasName = true
			p.pb.Name = p.str(v, "name")
			if p.pb.Name != "" && !isName(p.pb.Name) {
				p.fail(v, "a name is 1 to 64 lowercase letters, digits and hyphens")
			}
		case "description":
			p.pb.Description = p.str(v, "description")
		case "trigger":
			p.trigger(v)
		case "incident":
			p.incident(v)
		case "steps":
			hasSteps = true
			p.steps(v)
		}
	})
	if n.Kind == yaml.MappingNode {
		if !hasName {
			p.fail(n, "a playbook needs a name")
		}
		if !hasSteps {
			p.fail(n, "a playbook needs steps")
		}
	}
}

func (p *parser) trigger(n *yaml.Node) {
	t := &p.pb.Trigger
	p.fields(n, "trigger", []string{"rules", "min_severity", "min_score", "roles", "staff"}, func(k string, v *yaml.Node) {
		switch k {
		case "rules":
			t.Rules = p.list(v, "rules")
			for i, r := range t.Rules {
				if !isName(r) {
					p.fail(v.Content[i], "a rule name is lowercase letters, digits and hyphens")
				}
			}
		case "min_severity":
			t.MinSeverity = p.severity(v)
		case "min_score":
			t.MinScore = p.integer(v, "min_score", 0, 100)
		case "roles":
			t.Roles = p.list(v, "roles")
		case "staff":
			t.Staff = p.boolean(v, "staff")
		}
	})
}

func (p *parser) incident(n *yaml.Node) {
	s := &p.pb.Incident
	p.fields(n, "incident", []string{"severity", "title"}, func(k string, v *yaml.Node) {
		switch k {
		case "severity":
			s.Severity = p.severity(v)
		case "title":
			s.Title = p.str(v, "title")
			if len(s.Title) > 200 {
				p.fail(v, "a title is at most 200 characters")
			}
		}
	})
}

func (p *parser) steps(n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "steps is a list")
		return
	}
	for _, sn := range n.Content {
		s := Step{Line: sn.Line}
		p.fields(sn, "a step", []string{"action", "approval", "channels", "for"}, func(k string, v *yaml.Node) {
			switch k {
			case "action":
				s.Action = p.str(v, "action")
				if _, ok := actions[s.Action]; !ok && s.Action != "" {
					p.fail(v, "unknown action %q; the actions are %s", s.Action, strings.Join(Actions(), ", "))
				}
			case "approval":
				s.Approval = p.str(v, "approval")
				if s.Approval != ApprovalAuto && s.Approval != ApprovalTwoPerson {
					p.fail(v, "approval is auto or two-person")
				}
			case "channels":
				s.Channels = p.list(v, "channels")
				for i, c := range s.Channels {
					if !slices.Contains(Channels, c) {
						p.fail(v.Content[i], "unknown channel %q; the channels are %s", c, strings.Join(Channels, ", "))
					}
				}
			case "for":
				d, err := time.ParseDuration(p.str(v, "for"))
				if err != nil || d <= 0 || d > 90*24*time.Hour {
					p.fail(v, `for is a duration such as "72h", at most 90 days`)
				}
				s.For = d
			}
		})
		if sn.Kind != yaml.MappingNode {
			continue
		}
		info, known := actions[s.Action]
		switch {
		case s.Action == "":
			p.fail(sn, "a step needs an action")
		case known:
			if s.Approval == "" {
				s.Approval = info.approval
			}
			if len(s.Channels) > 0 && !slices.Contains(info.params, "channels") {
				p.fail(sn, "%s takes no channels", s.Action)
			}
			if s.For > 0 && !slices.Contains(info.params, "for") {
				p.fail(sn, "%s takes no for", s.Action)
			}
			if slices.ContainsFunc(p.pb.Steps, func(o Step) bool { return o.Action == s.Action }) {
				p.fail(sn, "the action %s is in this playbook twice", s.Action)
			}
		}
		p.pb.Steps = append(p.pb.Steps, s)
	}
}

func (p *parser) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, "%s is a single value", what)
		return ""
	}
	return n.Value
}

func (p *parser) list(n *yaml.Node, what string) []string {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "%s is a list, e.g. [a, b]", what)
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		out = append(out, p.str(c, what+" item"))
	}
	return out
}

func (p *parser) severity(n *yaml.Node) detect.Severity {
	s, ok := detect.ParseSeverity(p.str(n, "severity"))
	if !ok {
		p.fail(n, "a severity is low, medium, high or critical")
	}
	return s
}

func (p *parser) integer(n *yaml.Node, what string, lo, hi int) int {
	v, err := strconv.Atoi(p.str(n, what))
	if err != nil || v < lo || v > hi {
		p.fail(n, "%s is a whole number from %d to %d", what, lo, hi)
	}
	return v
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	switch p.str(n, what) {
	case "true":
		return true
	case "false":
		return false
	}
	p.fail(n, "%s is true or false", what)
	return false
}

// isName reports whether s is 1 to 64 lowercase letters, digits and
// hyphens, starting with a letter or digit.
func isName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// yamlLine returns the line a yaml error names ("yaml: line 3: ..."), or 1.
func yamlLine(err error) int {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "line "); ok {
		if n, _, ok := strings.Cut(rest, ":"); ok {
			if v, err := strconv.Atoi(n); err == nil {
				return v
			}
		}
	}
	return 1
}

// yamlReason returns a yaml error's reason without its "yaml: line N:"
// prefix.
func yamlReason(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if _, rest, ok := strings.Cut(msg, ": "); ok {
			return rest
		}
	}
	return msg
}
