package fhir

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/phivault/phivault"
)

// Limits on a search request.
const (
	MaxCount       = 1000    // largest _count accepted
	maxValueLength = 1024    // longest single search value accepted, in bytes
	maxOffset      = 1 << 30 // largest _offset accepted
)

// ParseQuery parses URL search parameters for a search on typ.
//
// Result and control parameters: _count (1..MaxCount; absent means the
// server default), _offset (>= 0, our paging parameter), _sort (only
// _lastUpdated or -_lastUpdated), _include (Source:param[:Target], where
// Source is typ and param a supported reference param), _summary (only
// "count"), _total (none or accurate, ignored) and _format (JSON forms only).
//
// Unknown parameters, unknown modifiers, bad prefixes or bad values yield a
// *phivault.Error with code EINVALID naming the parameter and never echoing
// its value. With lenient set (Prefer: handling=lenient), unknown parameters
// and modifiers are dropped and listed in Query.Ignored instead; bad values
// of known parameters are still errors.
//
// Values are split on unescaped commas ("\," "\$" "\|" and "\\" are
// escapes) and ORed; a repeated parameter yields separate QueryParams that
// are ANDed. Empty values are ignored. Params are ordered by name.
func ParseQuery(typ string, v url.Values, lenient bool) (*phivault.Query, error) {
	if len(searchParamTable[typ]) == 0 {
		name := "this resource type"
		if isTypeName(typ) {
			name = typ
		}
		return nil, &phivault.Error{Code: phivault.EINVALID, Message: fmt.Sprintf("Search is not supported on %s.", name),
			Issues: []phivault.Issue{{Severity: "error", Code: "not-supported", Diagnostics: "Search is not supported on " + name + "."}}}
	}
	q := &phivault.Query{Type: typ}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		vals := v[key]
		var err error
		switch key {
		case "_count", "_offset", "_sort", "_summary", "_total", "_format":
			if len(vals) != 1 {
				return nil, paramError(key, "invalid", "may appear only once")
			}
			err = parseControl(q, key, vals[0])
		case "_include":
			for _, val := range vals {
				inc, err := parseInclude(typ, val)
				if err != nil {
					return nil, paramError(key, "invalid", err.Error())
				}
				q.Include = append(q.Include, inc)
			}
		default:
			var known bool
			known, err = parseParam(q, key, vals)
			if !known {
				if lenient {
					q.Ignored = append(q.Ignored, key)
					err = nil
				} else {
					err = paramError(key, "not-supported", "is not supported on "+typ)
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return q, nil
}

// parseControl sets a result or control parameter of q.
func parseControl(q *phivault.Query, key, val string) error {
	switch key {
	case "_count":
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 || n > MaxCount {
			return paramError(key, "invalid", fmt.Sprintf("must be an integer from 1 to %d", MaxCount))
		}
		q.Count = n
	case "_offset":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 || n > maxOffset {
			return paramError(key, "invalid", "must be a non-negative integer")
		}
		q.Offset = n
	case "_sort":
		switch val {
		case "_lastUpdated":
			q.SortAsc = true
		case "-_lastUpdated":
			q.SortAsc = false
		default:
			return paramError(key, "not-supported", "supports only _lastUpdated and -_lastUpdated")
		}
		q.Sorted = true
	case "_summary":
		if val != "count" {
			return paramError(key, "not-supported", "supports only count")
		}
		q.Summary = "count"
	case "_total":
		if val != "none" && val != "accurate" {
			return paramError(key, "not-supported", "supports only none and accurate")
		}
	case "_format":
		// A "+" in a query string arrives as a space.
		switch strings.ReplaceAll(val, " ", "+") {
		case "json", "application/json", "application/fhir+json", "application/json+fhir":
		default:
			return paramError(key, "not-supported", "supports only JSON")
		}
	}
	return nil
}

// parseInclude parses one _include value, Source:param[:Target].
func parseInclude(typ, val string) (phivault.Include, error) {
	parts := strings.Split(val, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return phivault.Include{}, fmt.Errorf("must be Source:param[:Target]")
	}
	inc := phivault.Include{Source: parts[0], Param: parts[1]}
	if inc.Source != typ {
		return inc, fmt.Errorf("source must be %s", typ)
	}
	sp, ok := LookupParam(typ, inc.Param)
	if !ok || sp.Type != "reference" {
		return inc, fmt.Errorf("must name a supported reference parameter of %s", typ)
	}
	if len(parts) == 3 {
		inc.Target = parts[2]
		if !isTypeName(inc.Target) || !sp.hasTarget(inc.Target) {
			return inc, fmt.Errorf("target is not a target type of the parameter")
		}
	}
	return inc, nil
}

// modifiers lists the modifiers accepted for each param type; reference
// params also accept a target type.
var modifiers = map[string][]string{
	"string":    {"exact", "contains", "missing"},
	"token":     {"not", "missing"},
	"reference": {"missing", modIdentifier},
	"date":      {"missing"},
}

// parseParam appends the QueryParams of one search param key to q. known is
// false when the param or its modifier is not supported.
func parseParam(q *phivault.Query, key string, vals []string) (known bool, err error) {
	name, modifier, _ := strings.Cut(key, ":")
	sp, ok := LookupParam(q.Type, name)
	if !ok {
		return false, nil
	}
	if modifier != "" {
		switch {
		case strings.HasPrefix(name, "_"):
			return false, nil
		case slices.Contains(modifiers[sp.Type], modifier):
		case sp.Type == "reference" && isTypeName(modifier) && sp.hasTarget(modifier):
		default:
			return false, nil
		}
	}
	for _, raw := range vals {
		p := phivault.QueryParam{Name: name, Modifier: modifier}
		for _, val := range splitValues(raw) {
			if val == "" {
				continue
			}
			if err := checkValue(sp, modifier, val); err != nil {
				return true, paramError(key, "invalid", err.Error())
			}
			p.Values = append(p.Values, val)
		}
		if len(p.Values) > 0 {
			q.Params = append(q.Params, p)
		}
	}
	return true, nil
}

// checkValue validates one search value. Its errors never hold the value.
func checkValue(sp *SearchParam, modifier, val string) error {
	if len(val) > maxValueLength {
		return fmt.Errorf("value is longer than %d bytes", maxValueLength)
	}
	switch {
	case modifier == "missing":
		if val != "true" && val != "false" {
			return fmt.Errorf("value must be true or false")
		}
	case sp.Name == "_id":
		if !IsID(val) {
			return fmt.Errorf("value is not a valid id")
		}
	case sp.Type == "date":
		if _, _, _, err := DateRange(val); err != nil {
			return fmt.Errorf("value is not a valid date with an optional prefix (eq, ne, gt, lt, ge, le, sa, eb, ap)")
		}
	case modifier == modIdentifier:
		if val == "|" {
			return fmt.Errorf("value has neither a system nor a value")
		}
	case sp.Type == "reference":
		if _, _, ok := LocalRef(val); !ok && !IsID(val) {
			return fmt.Errorf("value is not an id or a Type/id reference")
		}
	case sp.Type == "token":
		if val == "|" {
			return fmt.Errorf("value has neither a system nor a code")
		}
	}
	return nil
}

// splitValues splits a search value on unescaped commas and removes the
// escapes "\," "\$" "\|" and "\\".
func splitValues(s string) []string {
	if !strings.ContainsAny(s, `,\`) {
		return []string{s}
	}
	var out []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && strings.IndexByte(`,$|\`, s[i+1]) >= 0:
			i++
			b.WriteByte(s[i])
		case c == ',':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(out, b.String())
}

// paramError returns an EINVALID error about the search parameter key.
func paramError(key, issueCode, problem string) *phivault.Error {
	msg := fmt.Sprintf("Search parameter %s %s.", safeName(key), problem)
	return &phivault.Error{Code: phivault.EINVALID, Message: msg,
		Issues: []phivault.Issue{{Severity: "error", Code: issueCode, Diagnostics: msg}}}
}

// safeName quotes a parameter name for an error message, or describes it
// when it is not a plausible name (it could then hold anything).
func safeName(key string) string {
	if len(key) == 0 || len(key) > 64 {
		return "(unnamed)"
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_:.-", c) >= 0) {
			return "(unnamed)"
		}
	}
	return strconv.Quote(key)
}
