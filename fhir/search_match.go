package fhir

import (
	"slices"
	"strings"

	"github.com/phivault/phivault"
)

// EqualityValues returns the index values that a query param matches by
// equality (ORed), and ok=false when the param cannot be answered by tokens
// (date ranges with prefixes other than eq or with a time, :contains,
// :exact, :missing, :not, :identifier with a value "system|", number and
// quantity, ...), so the caller must evaluate it with Match on a bounded
// candidate set. _id and _lastUpdated are handled by the caller:
// EqualityValues returns ok=false for them.
//
// A string value matches a whole normalized name part by equality: blind
// indexes cannot answer the FHIR default starts-with search (see
// docs/search.md). Match does implement starts-with.
func EqualityValues(typ string, p phivault.QueryParam) (values []phivault.IndexValue, ok bool) {
	sp, found := LookupParam(typ, p.Name)
	if !found || strings.HasPrefix(p.Name, "_") || len(p.Values) == 0 {
		return nil, false
	}
	if sp.Type == "reference" && p.Modifier == modIdentifier {
		return identifierValues(typ+"."+p.Name+":"+modIdentifier, p.Values)
	}
	if p.Modifier != "" && (sp.Type != "reference" || !isTypeName(p.Modifier)) {
		return nil, false
	}
	key := typ + "." + p.Name
	add := func(s string) { values = append(values, phivault.IndexValue{Param: key, Value: s}) }
	for _, v := range p.Values {
		switch sp.Type {
		case "string":
			n := normalizeString(p.Name, v)
			if n == "" {
				return nil, false
			}
			add(n)
		case "token":
			add(queryToken(p.Name, v))
		case "reference":
			refs, ok := queryRefs(sp, p.Modifier, v)
			if !ok {
				return nil, false
			}
			for _, r := range refs {
				add(r)
			}
		case "date":
			prefix, from, to, hasTime, err := parseDateQuery(v)
			if err != nil || prefix != "eq" || hasTime {
				return nil, false
			}
			switch {
			case to.Equal(from.AddDate(1, 0, 0)):
				add(from.Format("2006"))
			case to.Equal(from.AddDate(0, 1, 0)):
				add(from.Format("2006-01"))
			default:
				add(from.Format("2006-01-02"))
			}
		default:
			return nil, false
		}
	}
	slices.SortFunc(values, func(a, b phivault.IndexValue) int { return strings.Compare(a.Value, b.Value) })
	return slices.Compact(values), true
}

// queryToken normalizes a token search value to its index form: "code",
// "system|code", "|code" or "system|". The value is split at its first "|".
func queryToken(param, v string) string {
	sys, code, hasSys := strings.Cut(v, "|")
	if !hasSys {
		return normalizeCode(param, v)
	}
	if code == "" {
		return sys + "|"
	}
	return sys + "|" + normalizeCode(param, code)
}

// identifierValues returns the index values of :identifier search values
// under key: "system|value", "|value" and "value" as they are. A value
// "system|" (any identifier in that system) is not indexed, so ok is false.
func identifierValues(key string, vs []string) (values []phivault.IndexValue, ok bool) {
	for _, v := range vs {
		if _, val, hasSys := strings.Cut(v, "|"); hasSys && val == "" {
			return nil, false
		}
		values = append(values, phivault.IndexValue{Param: key, Value: v})
	}
	slices.SortFunc(values, func(a, b phivault.IndexValue) int { return strings.Compare(a.Value, b.Value) })
	return slices.Compact(values), true
}

// queryRefs returns the index forms of a reference search value: "Type/id"
// as is, and a bare id once for each target type (or the type modifier).
// ok is false when the value is malformed or the param has no target
// restriction to expand a bare id with.
func queryRefs(sp *SearchParam, modifier, v string) ([]string, bool) {
	if typ, id, ok := LocalRef(v); ok {
		if (modifier != "" && typ != modifier) || !sp.hasTarget(typ) {
			return nil, true // matches nothing
		}
		return []string{typ + "/" + id}, true
	}
	if !IsID(v) {
		return nil, false
	}
	if modifier != "" {
		if !sp.hasTarget(modifier) {
			return nil, true
		}
		return []string{modifier + "/" + v}, true
	}
	if len(sp.Targets) == 0 {
		return nil, false
	}
	out := make([]string, len(sp.Targets))
	for i, t := range sp.Targets {
		out[i] = t + "/" + v
	}
	return out, true
}

// Match reports whether obj, a resource of type typ, satisfies p per FHIR
// search semantics: date prefixes eq, ne, gt, lt, ge, le, sa, eb and ap
// over the ranges the precisions imply (date-only values compare calendar
// dates, values with a time compare instants); strings by default match when
// a normalized part starts with the normalized value, with :exact (exact
// raw part) and :contains; tokens in the forms code, system|code, |code and
// system|, with :not; references by id or Type/id, with a type modifier,
// or by identifier with :identifier (value, system|value, |value and
// system|, as tokens); :missing for all. An unknown param matches nothing.
//
// Match agrees with EqualityValues: if obj's IndexValues hold any of the
// values EqualityValues(typ, p) returns, Match(typ, p, obj) is true.
func Match(typ string, p phivault.QueryParam, obj map[string]any) bool {
	sp, ok := LookupParam(typ, p.Name)
	if !ok {
		return false
	}
	if p.Modifier == "missing" {
		present := false
		eachValue(obj, sp, func(any) { present = true })
		for _, v := range p.Values {
			if (v == "true") == !present {
				return true
			}
		}
		return false
	}
	switch p.Name {
	case "_id":
		id, _ := obj["id"].(string)
		return slices.Contains(p.Values, id)
	}
	for _, v := range p.Values {
		if matchValue(sp, p.Modifier, v, obj) {
			return true
		}
	}
	return false
}

// matchValue reports whether obj matches one value of a param.
func matchValue(sp *SearchParam, modifier, v string, obj map[string]any) bool {
	found := false
	switch sp.Type {
	case "string":
		q := normalizeString(sp.Name, v)
		eachValue(obj, sp, func(e any) {
			stringParts(sp.Name, e, func(raw string) {
				if found {
					return
				}
				switch modifier {
				case "exact":
					found = raw == v
				case "contains":
					found = strings.Contains(normalizeString(sp.Name, raw), q)
				default:
					n := normalizeString(sp.Name, raw)
					found = strings.HasPrefix(n, q)
					for w := range strings.SplitSeq(n, " ") {
						found = found || strings.HasPrefix(w, q)
					}
				}
			})
		})
		return found
	case "token":
		q := queryToken(sp.Name, v)
		eachValue(obj, sp, func(e any) {
			tokens(sp.Name, e, func(sys, code string, hasSys bool) {
				emitToken(sys, code, hasSys, func(s string) { found = found || s == q })
			})
		})
		if modifier == "not" {
			return !found
		}
		return found
	case "reference":
		if modifier == modIdentifier {
			eachValue(obj, sp, func(e any) {
				if sys, val, ok := referenceIdentifier(e); ok && !found {
					found = v == val || v == sys+"|"+val || (sys != "" && v == sys+"|")
				}
			})
			return found
		}
		refs, ok := queryRefs(sp, modifier, v)
		bareID := !ok && IsID(v) && modifier == "" // unrestricted param
		eachValue(obj, sp, func(e any) {
			r, ok := referenceValue(sp, e)
			if !ok || found {
				return
			}
			if bareID {
				_, id, _ := strings.Cut(r, "/")
				found = id == v
				return
			}
			found = slices.Contains(refs, r)
		})
		return found
	case "date":
		prefix, from, to, hasTime, err := parseDateQuery(v)
		if err != nil {
			return false
		}
		eachValue(obj, sp, func(e any) {
			s, ok := spanOf(e)
			if !ok || found {
				return
			}
			lo, hi := s.civLo, s.civHi
			if hasTime {
				lo, hi = s.lo, s.hi
			}
			found = matchDate(prefix, from, to, lo, hi)
		})
		return found
	}
	return false
}
