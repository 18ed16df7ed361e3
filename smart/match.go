package smart

import (
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// ContextOf returns the scope context that applies to a principal of the
// given phivault kind: "patient" for patients, "system" for system
// clients, "user" for staff (and anything else).
func ContextOf(principalKind string) string {
	switch principalKind {
	case phivault.PrincipalPatient:
		return ContextPatient
	case phivault.PrincipalSystem:
		return ContextSystem
	}
	return ContextUser
}

// Covers reports whether s, ignoring any granular query, reaches
// interaction in on resources of type typ in context ctx.
func (s Scope) Covers(ctx string, in Interactions, typ string) bool {
	return s.Name == "" && s.Context == ctx && (s.Type == "*" || s.Type == typ) &&
		in != 0 && s.Interactions&in == in
}

// Grants reports whether s allows interaction in on obj, a resource of
// type typ, in context ctx. A granular scope grants only when obj, the
// resource's decoded JSON, matches every query parameter; with obj nil it
// grants nothing.
func (s Scope) Grants(ctx string, in Interactions, typ string, obj map[string]any) bool {
	if !s.Covers(ctx, in, typ) {
		return false
	}
	if len(s.Query) == 0 {
		return true
	}
	if obj == nil {
		return false
	}
	for _, p := range s.Query {
		if !fhir.Match(typ, p, obj) {
			return false
		}
	}
	return true
}

// Grants reports whether any of scopes allows interaction in on obj, a
// resource of type typ, in context ctx. obj may be nil when the body is
// not known (or does not matter); granular scopes then grant nothing.
func Grants(scopes []Scope, ctx string, in Interactions, typ string, obj map[string]any) bool {
	for _, s := range scopes {
		if s.Grants(ctx, in, typ, obj) {
			return true
		}
	}
	return false
}

// MayGrant reports whether any of scopes, granular ones included, could
// allow interaction in on some resource of type typ in context ctx. A
// search may go ahead when MayGrant holds; each result must then pass
// Grants with its body.
func MayGrant(scopes []Scope, ctx string, in Interactions, typ string) bool {
	for _, s := range scopes {
		if s.Covers(ctx, in, typ) {
			return true
		}
	}
	return false
}

// Unconditional reports whether any of scopes allows interaction in on
// every resource of type typ in context ctx, without a granular query.
func Unconditional(scopes []Scope, ctx string, in Interactions, typ string) bool {
	return Grants(scopes, ctx, in, typ, nil)
}

// ReadsAuditTrail reports whether p's SMART scopes, if its token has any,
// let it read and search AuditEvent: what the audit trail's views and the
// security API (alerts, detectors) ask of a scoped token. A principal
// without SMART scopes is decided by its roles alone.
func ReadsAuditTrail(p *phivault.Principal) bool {
	if p == nil || !p.SMART {
		return true
	}
	scopes, err := ParseList(p.Scopes)
	if err != nil {
		return false
	}
	return Grants(scopes, ContextOf(p.Kind), Read|Search, "AuditEvent", nil)
}
