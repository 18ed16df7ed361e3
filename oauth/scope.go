package oauth

import (
	"slices"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/smart"
)

// grantable lists the non-resource scopes this server grants. openid,
// fhirUser and profile need an id_token, and launch an EHR launch, which
// this server does not offer; they are accepted in a request and left out
// of the grant.
var grantable = []string{"launch/patient", "offline_access", "online_access"}

// contexts returns the scope contexts a principal kind may be granted:
// patients their own compartment, systems system/ scopes, staff user/ and
// patient/ scopes.
func contexts(kind string) []string {
	switch kind {
	case phivault.PrincipalPatient:
		return []string{smart.ContextPatient}
	case phivault.PrincipalSystem:
		return []string{smart.ContextSystem}
	}
	return []string{smart.ContextUser, smart.ContextPatient}
}

// grant returns the scopes granted for a request: each requested scope
// intersected with each of the client's registered scopes, kept if the
// principal kind may hold it, in canonical v2 form, without duplicates.
// Registered scopes that do not parse grant nothing. The request's own
// syntax is checked by the caller (smart.Parse).
func grant(requested []smart.Scope, registered []string, kind string) []string {
	var reg []smart.Scope
	for _, r := range registered {
		if s, err := smart.ParseScope(r); err == nil {
			reg = append(reg, s)
		}
	}
	allowed := contexts(kind)
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, q := range requested {
		for _, c := range reg {
			x, ok := intersect(q, c)
			if !ok {
				continue
			}
			if x.IsResource() {
				if slices.Contains(allowed, x.Context) {
					add(x.String())
				}
				continue
			}
			if !slices.Contains(grantable, x.Name) {
				continue
			}
			if x.Name == "launch/patient" && kind != phivault.PrincipalPatient {
				continue // no patient picker: only a patient's own record is a launch context
			}
			add(x.Name)
		}
	}
	return out
}

// intersect returns the scope allowing what both a and b allow, if any:
// same context, the narrower resource type (* is wider than any type), the
// common interactions, and the granular query of either (both must agree if
// both have one).
func intersect(a, b smart.Scope) (smart.Scope, bool) {
	if !a.IsResource() || !b.IsResource() {
		return a, a.Name != "" && a.Name == b.Name
	}
	if a.Context != b.Context {
		return smart.Scope{}, false
	}
	x := smart.Scope{Context: a.Context, Interactions: a.Interactions & b.Interactions}
	switch {
	case a.Type == b.Type || b.Type == "*":
		x.Type = a.Type
	case a.Type == "*":
		x.Type = b.Type
	default:
		return smart.Scope{}, false
	}
	if x.Interactions == 0 {
		return smart.Scope{}, false
	}
	switch {
	case len(a.Query) == 0:
		x.Query = b.Query
	case len(b.Query) == 0 || queryString(a) == queryString(b):
		x.Query = a.Query
	default:
		return smart.Scope{}, false
	}
	return x, true
}

// queryString returns the granular query part of a resource scope.
func queryString(s smart.Scope) string {
	_, q, _ := strings.Cut(s.String(), "?")
	return q
}
