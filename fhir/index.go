package fhir

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/phivault/phivault"
	"golang.org/x/text/unicode/norm"
)

// IndexValues returns every equality-searchable value of obj (a resource of
// type typ), normalized, with Param = "Type.name" (e.g. "Patient.family").
// Duplicates are removed; the order is sorted by Param, then Value.
//
// Normalization rules (docs/search.md explains them):
//   - string params: lowercased, accents removed (NFD, then combining marks
//     dropped), whitespace collapsed; each name part (family, each given,
//     prefix, suffix, and for "name" also the whole text) is one value, and
//     a part of several words also yields each word. address-postalcode is
//     uppercased with whitespace removed instead.
//   - token params: "system|code", "system|" and "code" for a coded value
//     with a system, "|code" and "code" without one. Codes and identifiers
//     are case-sensitive and kept as is, except phone (digits only, leading
//     "+" kept) and email (lowercased).
//   - reference params: "Type/id" of local references only (LocalRef: a
//     "_history" suffix is stripped, absolute URLs are another server's
//     and not indexed), only for the param's target types. A reference's
//     identifier (Reference.identifier, whatever the target type) is
//     indexed apart, under Param "Type.name:identifier" for the
//     :identifier modifier, as "system|value" ("|value" without a system)
//     and "value".
//   - date params: the day "1980-01-02", the month "1980-01" and the year
//     "1980" the value falls within entirely, read in the value's own UTC
//     offset; a Period yields the units holding both its ends.
//
// _id and _lastUpdated are not indexed; the store keeps them in clear.
func IndexValues(typ string, obj map[string]any) []phivault.IndexValue {
	var out []phivault.IndexValue
	params := searchParamTable[typ]
	for i := range params {
		p := &params[i]
		if strings.HasPrefix(p.Name, "_") {
			continue
		}
		key := typ + "." + p.Name
		emit := func(s string) {
			if s != "" {
				out = append(out, phivault.IndexValue{Param: key, Value: s})
			}
		}
		switch p.Type {
		case "string":
			eachValue(obj, p, func(v any) {
				stringParts(p.Name, v, func(raw string) {
					n := normalizeString(p.Name, raw)
					emit(n)
					if strings.IndexByte(n, ' ') >= 0 {
						for w := range strings.SplitSeq(n, " ") {
							emit(w)
						}
					}
				})
			})
		case "token":
			eachValue(obj, p, func(v any) {
				tokens(p.Name, v, func(sys, code string, hasSys bool) {
					emitToken(sys, code, hasSys, emit)
				})
			})
		case "reference":
			byIdentifier := func(s string) {
				out = append(out, phivault.IndexValue{Param: key + ":" + modIdentifier, Value: s})
			}
			eachValue(obj, p, func(v any) {
				if r, ok := referenceValue(p, v); ok {
					emit(r)
				}
				if sys, val, ok := referenceIdentifier(v); ok {
					byIdentifier(sys + "|" + val)
					byIdentifier(val)
				}
			})
		case "date":
			eachValue(obj, p, func(v any) {
				sp, ok := spanOf(v)
				if !ok || sp.openLo || sp.openHi {
					return
				}
				last := sp.civHi.Add(-1)
				lo := sp.civLo
				if lo.Year() != last.Year() {
					return
				}
				emit(lo.Format("2006"))
				if lo.Month() != last.Month() {
					return
				}
				emit(lo.Format("2006-01"))
				if lo.Day() != last.Day() {
					return
				}
				emit(lo.Format("2006-01-02"))
			})
		}
	}
	slices.SortFunc(out, func(a, b phivault.IndexValue) int {
		if c := strings.Compare(a.Param, b.Param); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return slices.Compact(out)
}

// emitToken emits the index forms of one coded value.
func emitToken(sys, code string, hasSys bool, emit func(string)) {
	if hasSys && sys != "" {
		emit(sys + "|")
		if code != "" {
			emit(sys + "|" + code)
		}
	} else if code != "" {
		emit("|" + code)
	}
	emit(code)
}

// eachValue calls fn for every element at any of p's paths in obj.
func eachValue(obj map[string]any, p *SearchParam, fn func(any)) {
	for _, path := range p.Paths {
		walkPath(obj, path, fn)
	}
}

// walkPath calls fn for every element of obj at path, a simplified element
// path such as "Patient.name.given" or "Patient.telecom.where(system='phone')".
// Arrays are flattened, and a segment such as "effective" also matches a
// choice element such as "effectiveDateTime".
func walkPath(obj map[string]any, path string, fn func(any)) {
	_, rest, ok := strings.Cut(path, ".") // drop the type
	if !ok {
		return
	}
	var filter string
	if i := strings.Index(rest, ".where(system='"); i >= 0 {
		filter = strings.TrimSuffix(rest[i+len(".where(system='"):], "')")
		rest = rest[:i]
	}
	walkSegments(obj, rest, filter, fn)
}

func walkSegments(v any, rest, filter string, fn func(any)) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			walkSegments(e, rest, filter, fn)
		}
		return
	case map[string]any:
		if rest == "" {
			if filter == "" || v["system"] == filter {
				fn(v)
			}
			return
		}
		seg, next, _ := strings.Cut(rest, ".")
		if e, ok := v[seg]; ok {
			walkSegments(e, next, filter, fn)
			return
		}
		for k, e := range v {
			if len(k) > len(seg) && strings.HasPrefix(k, seg) && isChoiceSuffix(k[len(seg):]) {
				walkSegments(e, next, filter, fn)
			}
		}
	default:
		if rest == "" && filter == "" && v != nil {
			fn(v)
		}
	}
}

// isChoiceSuffix reports whether s names a FHIR data type, as the suffix
// of a choice element such as valueQuantity.
func isChoiceSuffix(s string) bool {
	switch s {
	case "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id",
		"Instant", "Integer", "Markdown", "Oid", "PositiveInt", "String", "Time", "UnsignedInt",
		"Uri", "Url", "Uuid", "Address", "Age", "Annotation", "Attachment", "CodeableConcept",
		"Coding", "ContactPoint", "Count", "Distance", "Duration", "HumanName", "Identifier",
		"Money", "Period", "Quantity", "Range", "Ratio", "Reference", "SampledData", "Signature",
		"Timing", "ContactDetail", "Contributor", "DataRequirement", "Expression",
		"ParameterDefinition", "RelatedArtifact", "TriggerDefinition", "UsageContext", "Dosage", "Meta":
		return true
	}
	return false
}

// stringParts calls fn for each raw string part of a string param's
// element: the string itself, or the parts of a HumanName (family, given,
// prefix, suffix, text) or Address (line, city, district, state,
// postalCode, country, text).
func stringParts(param string, v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case map[string]any:
		for _, k := range [...]string{"family", "given", "prefix", "suffix", "text",
			"line", "city", "district", "state", "postalCode", "country"} {
			switch e := v[k].(type) {
			case string:
				fn(e)
			case []any:
				for _, s := range e {
					if s, ok := s.(string); ok {
						fn(s)
					}
				}
			}
		}
	}
}

// tokens calls fn for each (system, code) of a token param's element: a
// code string, a CodeableConcept's codings, a Coding, an Identifier, or a
// ContactPoint (phone and email, normalized, without a system).
func tokens(param string, v any, fn func(sys, code string, hasSys bool)) {
	switch v := v.(type) {
	case string:
		fn("", normalizeCode(param, v), false)
	case bool:
		if v {
			fn("", "true", false)
		} else {
			fn("", "false", false)
		}
	case map[string]any:
		if codings, ok := v["coding"].([]any); ok {
			for _, c := range codings {
				if c, ok := c.(map[string]any); ok {
					tokens(param, c, fn)
				}
			}
			return
		}
		sys, hasSys := v["system"].(string)
		if param == "phone" || param == "email" {
			if val, ok := v["value"].(string); ok {
				fn("", normalizeCode(param, val), false)
			}
			return
		}
		if code, ok := v["code"].(string); ok {
			fn(sys, code, hasSys)
		} else if val, ok := v["value"].(string); ok {
			fn(sys, val, hasSys)
		} else if hasSys {
			fn(sys, "", true)
		}
	}
}

// referenceValue returns the normalized "Type/id" of a Reference element,
// if it is a literal reference to one of p's target types.
func referenceValue(p *SearchParam, v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	ref, ok := m["reference"].(string)
	if !ok {
		return "", false
	}
	typ, id, ok := LocalRef(ref)
	if !ok || !p.hasTarget(typ) {
		return "", false
	}
	return typ + "/" + id, true
}

// modIdentifier is the modifier that searches a reference param by the
// reference's identifier rather than its literal reference.
const modIdentifier = "identifier"

// referenceIdentifier returns the system and value of a Reference
// element's identifier; ok is false when it has no identifier value.
// "system|" alone is not indexed: which resources refer to anyone in a
// system is an equality pattern no search here needs (docs/search.md).
func referenceIdentifier(v any) (sys, value string, ok bool) {
	m, _ := v.(map[string]any)
	ident, _ := m["identifier"].(map[string]any)
	value, _ = ident["value"].(string)
	sys, _ = ident["system"].(string)
	return sys, value, value != ""
}

// normalizeString normalizes a string param value or part for indexing and
// comparison: postal codes with NormalizePostalCode, everything else with
// NormalizeString.
func normalizeString(param, s string) string {
	if param == "address-postalcode" {
		return NormalizePostalCode(s)
	}
	return NormalizeString(s)
}

// NormalizeString returns s as string search parameters index and compare
// it: lowercased, accents removed (NFD, then combining marks dropped),
// whitespace collapsed to single spaces and trimmed.
func NormalizeString(s string) string {
	if !isASCII(s) {
		s = norm.NFD.String(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// NormalizePostalCode returns postal code s as address-postalcode indexes
// and compares it: uppercased, whitespace removed.
func NormalizePostalCode(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToUpper(r)
	}, s)
}

// NormalizePhone returns phone number s as the phone parameter indexes and
// compares it: digits only, and a leading "+" kept.
func NormalizePhone(s string) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	if strings.HasPrefix(s, "+") {
		b.WriteByte('+')
	}
	for i := 0; i < len(s); i++ {
		if '0' <= s[i] && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// normalizeCode normalizes a token code: phone numbers with NormalizePhone,
// email addresses lowercased, and all other codes kept exactly (FHIR codes
// and identifiers are case-sensitive).
func normalizeCode(param, s string) string {
	switch param {
	case "phone":
		return NormalizePhone(s)
	case "email":
		return strings.ToLower(strings.TrimSpace(s))
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
