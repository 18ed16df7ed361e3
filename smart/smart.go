// Package smart parses and matches SMART on FHIR scopes, in the v1 forms
// (patient/Observation.read, user/*.write, system/*.*) and the v2 forms
// (patient/Observation.rs, user/*.cruds, system/Encounter.r), including v2
// granular scopes with token search parameters such as
// patient/Observation.rs?category=laboratory. Non-resource scopes (openid,
// fhirUser, profile, launch, launch/patient, launch/encounter,
// offline_access, online_access) are kept as they are.
//
// Parse is strict: a scope it cannot understand is an error, never
// silently dropped, so an authorization server can refuse it with
// invalid_scope. Grants answers "do these scopes allow interaction X on a
// resource of type T, with this body".
package smart

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Scope contexts: whose data a resource scope reaches.
const (
	ContextPatient = "patient" // the patient in context (a patient-facing app or a launch)
	ContextUser    = "user"    // whatever the user may see
	ContextSystem  = "system"  // a backend client, by its own rights
)

// Interactions is a set of SMART v2 interactions.
type Interactions uint8

// SMART v2 interactions. The v1 "read" means Read|Search, "write"
// Create|Update|Delete, and "*" all five.
const (
	Create Interactions = 1 << iota
	Read
	Update
	Delete
	Search

	All = Create | Read | Update | Delete | Search
)

const letters = "cruds"

// String returns the v2 letters of the set in canonical order, e.g. "rs".
func (in Interactions) String() string {
	var b strings.Builder
	for i := range len(letters) {
		if in&(1<<i) != 0 {
			b.WriteByte(letters[i])
		}
	}
	return b.String()
}

// NonResource lists the non-resource scopes Parse accepts.
var nonResource = []string{
	"openid", "fhirUser", "profile",
	"launch", "launch/patient", "launch/encounter",
	"offline_access", "online_access",
}

// Scope is one parsed scope. For a non-resource scope only Name is set; for
// a resource scope Name is "" and Context, Type and Interactions are set.
type Scope struct {
	Name         string       // a non-resource scope such as "openid", else ""
	Context      string       // ContextPatient, ContextUser or ContextSystem
	Type         string       // "*" or a FHIR resource type
	Interactions Interactions // never empty for a resource scope
	// Query holds the token search parameters of a granular scope, ANDed;
	// values within one parameter are ORed. Nil for a plain scope.
	Query []phivault.QueryParam
	// V1 records that the scope was written in v1 syntax (read, write, *),
	// so that String gives it back the same way.
	V1 bool
}

// IsResource reports whether s is a resource scope.
func (s Scope) IsResource() bool { return s.Name == "" }

// String returns the scope in its scope-string form. Parse(s.String())
// gives s back.
func (s Scope) String() string {
	if s.Name != "" {
		return s.Name
	}
	var perm string
	switch {
	case s.V1 && s.Interactions == All:
		perm = "*"
	case s.V1 && s.Interactions == Read|Search:
		perm = "read"
	case s.V1 && s.Interactions == Create|Update|Delete:
		perm = "write"
	default:
		perm = s.Interactions.String()
	}
	out := s.Context + "/" + s.Type + "." + perm
	for i, p := range s.Query {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		vals := make([]string, len(p.Values))
		for j, v := range p.Values {
			vals[j] = escape(v)
		}
		out += sep + p.Name + "=" + strings.Join(vals, ",")
	}
	return out
}

// escape query-escapes v but keeps "|", which is common in token values
// and allowed in a scope token.
func escape(v string) string {
	return strings.ReplaceAll(url.QueryEscape(v), "%7C", "|")
}

// Parse parses a space-separated scope string (RFC 6749 section 3.3). An
// empty string gives no scopes. Any scope it does not understand is an
// EINVALID error naming it.
func Parse(scope string) ([]Scope, error) {
	var out []Scope
	for _, tok := range strings.Fields(scope) {
		s, err := ParseScope(tok)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// MustParse is Parse for scopes known to be valid; it panics on error.
func MustParse(scope string) []Scope {
	s, err := Parse(scope)
	if err != nil {
		panic("smart: " + err.Error())
	}
	return s
}

// ParseList parses scopes given one per element, as a token carries them.
func ParseList(scopes []string) ([]Scope, error) {
	return Parse(strings.Join(scopes, " "))
}

// ParseScope parses one scope token.
func ParseScope(tok string) (Scope, error) {
	bad := func(why string) (Scope, error) {
		return Scope{}, phivault.Errorf(phivault.EINVALID, "scope %q: %s", clip(tok), why)
	}
	if tok == "" {
		return bad("empty scope")
	}
	for i := 0; i < len(tok); i++ {
		// RFC 6749 NQCHAR: %x21 / %x23-5B / %x5D-7E.
		if c := tok[i]; c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return Scope{}, phivault.Errorf(phivault.EINVALID, "scope holds a character not allowed in scopes (RFC 6749 section 3.3)")
		}
	}
	if slices.Contains(nonResource, tok) {
		return Scope{Name: tok}, nil
	}
	ctx, rest, ok := strings.Cut(tok, "/")
	if !ok {
		return bad("unknown scope; resource scopes look like patient/Observation.rs")
	}
	switch ctx {
	case ContextPatient, ContextUser, ContextSystem:
	default:
		return bad("context must be patient, user or system")
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok {
		return bad("missing .permissions after the resource type")
	}
	if typ != "*" && !fhir.IsResourceType(typ) {
		return bad("unknown resource type")
	}
	s := Scope{Context: ctx, Type: typ}
	switch perm {
	case "*":
		s.Interactions, s.V1 = All, true
	case "read":
		s.Interactions, s.V1 = Read|Search, true
	case "write":
		s.Interactions, s.V1 = Create|Update|Delete, true
	default:
		in, ok := parseLetters(perm)
		if !ok {
			return bad("permissions must be read, write, * or an ordered subset of cruds")
		}
		s.Interactions = in
	}
	if hasQuery {
		if s.V1 {
			return bad("granular scopes need v2 permissions (cruds)")
		}
		if typ == "*" {
			return bad("granular scopes need a resource type, not *")
		}
		q, err := parseQuery(typ, query)
		if err != nil {
			return bad(err.Error())
		}
		s.Query = q
	}
	return s, nil
}

// parseLetters parses a non-empty ordered subset of "cruds".
func parseLetters(s string) (Interactions, bool) {
	if s == "" {
		return 0, false
	}
	var in Interactions
	next := 0
	for i := 0; i < len(s); i++ {
		k := strings.IndexByte(letters[next:], s[i])
		if k < 0 {
			return 0, false
		}
		next += k
		in |= 1 << next
		next++
	}
	return in, true
}

// parseQuery parses the query of a granular scope: name=value pairs joined
// by &, each name a token search parameter of typ without modifier.
func parseQuery(typ, query string) ([]phivault.QueryParam, error) {
	if query == "" {
		return nil, fmt.Errorf("empty query after ?")
	}
	var q []phivault.QueryParam
	for part := range strings.SplitSeq(query, "&") {
		name, value, ok := strings.Cut(part, "=")
		if !ok || name == "" || value == "" {
			return nil, fmt.Errorf("query parts must be name=value")
		}
		n, err := url.QueryUnescape(name)
		if err != nil {
			return nil, fmt.Errorf("bad escape in parameter name")
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			return nil, fmt.Errorf("bad escape in parameter value")
		}
		sp, ok := fhir.LookupParam(typ, n)
		if !ok || sp.Type != "token" {
			return nil, fmt.Errorf("granular scopes allow only token search parameters of the resource type")
		}
		var vals []string
		for val := range strings.SplitSeq(v, ",") {
			if val == "" {
				return nil, fmt.Errorf("empty value in parameter %s", n)
			}
			vals = append(vals, val)
		}
		q = append(q, phivault.QueryParam{Name: n, Values: vals})
	}
	return q, nil
}

// clip shortens a scope quoted in an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
