package scim

import (
	"strings"

	filter "github.com/scim2/filter-parser/v2"

	"github.com/phivault/phivault"
)

// userAttrs are the User attributes a filter may name, each with whether
// it compares case-exactly (RFC 7643 §4.1) and how to read it.
var userAttrs = map[string]struct {
	caseExact bool
	values    func(a *phivault.Account) []string
}{
	"id":                  {true, func(a *phivault.Account) []string { return []string{a.ID} }},
	"username":            {false, func(a *phivault.Account) []string { return []string{a.Username} }},
	"externalid":          {true, func(a *phivault.Account) []string { return nonEmpty(a.ExternalID) }},
	"roles":               {false, func(a *phivault.Account) []string { return a.Roles }},
	"roles.value":         {false, func(a *phivault.Account) []string { return a.Roles }},
	"groups":              {false, func(a *phivault.Account) []string { return a.Roles }},
	"groups.value":        {false, func(a *phivault.Account) []string { return a.Roles }},
	"department":          {false, func(a *phivault.Account) []string { return nonEmpty(a.Department) }},
	"organization":        {false, func(a *phivault.Account) []string { return nonEmpty(a.Organization) }},
	"meta.resourcetype":   {true, func(*phivault.Account) []string { return []string{"User"} }},
	"active":              {true, nil}, // boolean, see match
	"emails":              {false, unstored},
	"emails.value":        {false, unstored},
	"name.familyname":     {false, unstored},
	"name.givenname":      {false, unstored},
	"displayname":         {false, unstored},
	"meta.created":        {true, unstored},
	"meta.lastmodified":   {true, unstored},
	"name.formatted":      {false, unstored},
	"title":               {false, unstored},
	"usertype":            {false, unstored},
	"preferredlanguage":   {false, unstored},
	"locale":              {false, unstored},
	"timezone":            {false, unstored},
	"nickname":            {false, unstored},
	"profileurl":          {false, unstored},
	"employeenumber":      {false, unstored},
	"costcenter":          {false, unstored},
	"division":            {false, unstored},
	"manager.value":       {true, unstored},
	"phonenumbers.value":  {false, unstored},
	"addresses.formatted": {false, unstored},
}

// unstored reads an attribute phivault does not keep: it has no values, so
// a filter on it never matches (and "pr" is false).
func unstored(*phivault.Account) []string { return nil }

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// userFilter parses a SCIM filter (RFC 7644 §3.4.2.2) over Users with
// github.com/scim2/filter-parser and returns a predicate. Attributes
// phivault does not store (emails, name, ...) never match, and "pr" is
// false for them; an unknown attribute or a value filter ("emails[...]")
// is an invalidFilter error. "" matches everything.
func userFilter(raw string) (func(*phivault.Account) bool, error) {
	if raw == "" {
		return func(*phivault.Account) bool { return true }, nil
	}
	expr, err := filter.ParseFilter([]byte(raw))
	if err != nil {
		return nil, invalid("invalidFilter", "The filter is not a valid SCIM filter.")
	}
	if err := checkExpr(expr); err != nil {
		return nil, err
	}
	return func(a *phivault.Account) bool { return match(expr, a) }, nil
}

// attrName returns the lower-case name of an attribute path, without the
// core User or enterprise extension URN.
func attrName(p filter.AttributePath) (string, bool) {
	switch strings.ToLower(p.URI()) {
	case "", strings.ToLower(SchemaUser), strings.ToLower(SchemaEnterprise):
	default:
		return "", false
	}
	name := strings.ToLower(p.AttributeName)
	if p.SubAttribute != nil {
		name += "." + strings.ToLower(p.SubAttributeName())
	}
	return name, true
}

// checkExpr refuses attributes and forms the evaluator does not know.
func checkExpr(e filter.Expression) error {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		name, ok := attrName(e.AttributePath)
		if _, known := userAttrs[name]; !ok || !known {
			return invalid("invalidFilter", "The filter names an attribute this server does not support.")
		}
		if name == "active" {
			if _, isBool := e.CompareValue.(bool); e.Operator != filter.PR && (!isBool || (e.Operator != filter.EQ && e.Operator != filter.NE)) {
				return invalid("invalidFilter", "active compares only with eq or ne and true or false.")
			}
		} else if _, isString := e.CompareValue.(string); e.Operator != filter.PR && !isString {
			return invalid("invalidFilter", "The filter compares a string attribute with a value that is not a string.")
		}
		switch e.Operator {
		case filter.GT, filter.GE, filter.LT, filter.LE:
			return invalid("invalidFilter", "Ordering comparisons (gt, ge, lt, le) are not supported.")
		}
		return nil
	case *filter.LogicalExpression:
		if err := checkExpr(e.Left); err != nil {
			return err
		}
		return checkExpr(e.Right)
	case *filter.NotExpression:
		return checkExpr(e.Expression)
	}
	return invalid("invalidFilter", "Value filters such as emails[type eq \"work\"] are not supported.")
}

// match evaluates a checked expression on a.
func match(e filter.Expression, a *phivault.Account) bool {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		if e.Operator == filter.AND {
			return match(e.Left, a) && match(e.Right, a)
		}
		return match(e.Left, a) || match(e.Right, a)
	case *filter.NotExpression:
		return !match(e.Expression, a)
	case *filter.AttributeExpression:
		name, _ := attrName(e.AttributePath)
		if name == "active" {
			active := a.Status == phivault.AccountActive
			switch e.Operator {
			case filter.PR:
				return true
			case filter.EQ:
				return active == e.CompareValue.(bool)
			default:
				return active != e.CompareValue.(bool)
			}
		}
		attr := userAttrs[name]
		return compare(attr.values(a), e.Operator, e.CompareValue, attr.caseExact)
	}
	return false
}

// compare applies op to a multi-valued attribute: true if any value
// matches (ne: if none equals).
func compare(values []string, op filter.CompareOperator, v any, caseExact bool) bool {
	if op == filter.PR {
		return len(values) > 0
	}
	want, _ := v.(string)
	if !caseExact {
		want = strings.ToLower(want)
	}
	if op == filter.NE {
		return !compare(values, filter.EQ, v, caseExact)
	}
	for _, got := range values {
		if !caseExact {
			got = strings.ToLower(got)
		}
		var ok bool
		switch op {
		case filter.EQ:
			ok = got == want
		case filter.CO:
			ok = strings.Contains(got, want)
		case filter.SW:
			ok = strings.HasPrefix(got, want)
		case filter.EW:
			ok = strings.HasSuffix(got, want)
		}
		if ok {
			return true
		}
	}
	return false
}

// groupFilter parses a filter over Groups: displayName or id with eq, ne,
// co, sw, ew, and and, or, not.
func groupFilter(raw string) (func(role string) bool, error) {
	if raw == "" {
		return func(string) bool { return true }, nil
	}
	expr, err := filter.ParseFilter([]byte(raw))
	if err != nil {
		return nil, invalid("invalidFilter", "The filter is not a valid SCIM filter.")
	}
	var eval func(filter.Expression, string) (bool, error)
	eval = func(e filter.Expression, role string) (bool, error) {
		switch e := e.(type) {
		case *filter.LogicalExpression:
			l, err := eval(e.Left, role)
			if err != nil {
				return false, err
			}
			r, err := eval(e.Right, role)
			if e.Operator == filter.AND {
				return l && r, err
			}
			return l || r, err
		case *filter.NotExpression:
			ok, err := eval(e.Expression, role)
			return !ok, err
		case *filter.AttributeExpression:
			name := strings.ToLower(e.AttributePath.AttributeName)
			if (name != "displayname" && name != "id") || e.AttributePath.SubAttribute != nil {
				return false, invalid("invalidFilter", "Groups filter only on displayName or id.")
			}
			if _, ok := e.CompareValue.(string); !ok && e.Operator != filter.PR {
				return false, invalid("invalidFilter", "displayName compares with a string.")
			}
			switch e.Operator {
			case filter.GT, filter.GE, filter.LT, filter.LE:
				return false, invalid("invalidFilter", "Ordering comparisons (gt, ge, lt, le) are not supported.")
			}
			return compare([]string{role}, e.Operator, e.CompareValue, name == "id"), nil
		}
		return false, invalid("invalidFilter", "Value filters are not supported on Groups.")
	}
	if _, err := eval(expr, ""); err != nil {
		return nil, err
	}
	return func(role string) bool { ok, _ := eval(expr, role); return ok }, nil
}
