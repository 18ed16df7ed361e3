package fhir

import "strings"

// # One reading of a reference
//
// A literal reference can be written many ways: "Patient/1",
// "Patient/1/_history/2", "https://any.host/fhir/Patient/1", "urn:uuid:…",
// "#contained", "Patient?identifier=…". Every part of phivault that decides
// something from a reference (the blind index, the patient compartment, the
// Bundle resolver, the access layer's patient context) reads it with
// LocalRef, and only LocalRef. The vault rewrites, once, before storing,
// what it can resolve: urn:uuid: and conditional references of a Bundle,
// and absolute references under its own base (LocalizeReferences). What is
// left absolute afterwards names another server and is never one of ours:
// an absolute reference to "…/Patient/X" is not Patient X.

// RewriteReferences calls fn for every Reference.reference string anywhere in
// obj (including contained resources and nested elements, found
// structurally: any object with a string "reference" key), replacing it with
// fn's result.
func RewriteReferences(obj map[string]any, fn func(ref string) string) {
	rewriteRefs(obj, fn)
}

func rewriteRefs(v any, fn func(string) string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "reference" {
				v[k] = fn(s)
				continue
			}
			rewriteRefs(e, fn)
		}
	case []any:
		for _, e := range v {
			rewriteRefs(e, fn)
		}
	}
}

// LocalRef parses a reference to a resource of this server as stored:
// "Type/id" or "Type/id/_history/version". ok is false for anything else:
// absolute URLs, "urn:uuid:…", "#contained", conditional references.
func LocalRef(ref string) (typ, id string, ok bool) {
	s := ref
	if i := strings.Index(s, "/_history/"); i >= 0 {
		if !IsID(s[i+len("/_history/"):]) {
			return "", "", false
		}
		s = s[:i]
	}
	typ, id, found := strings.Cut(s, "/")
	if !found || !isTypeName(typ) || !IsID(id) {
		return "", "", false
	}
	return typ, id, true
}

// LocalizeReferences rewrites every absolute reference under base (the
// server's FHIR base URL, such as "https://vault.example.org/fhir") in obj
// to its relative form "Type/id[/_history/v]". Other references are left as
// they are. With an empty base it does nothing.
func LocalizeReferences(obj map[string]any, base string) {
	base = strings.TrimSuffix(base, "/")
	if base == "" {
		return
	}
	prefix := base + "/"
	RewriteReferences(obj, func(ref string) string {
		rest, ok := strings.CutPrefix(ref, prefix)
		if !ok {
			return ref
		}
		if _, _, ok := LocalRef(rest); !ok {
			return ref
		}
		return rest
	})
}

// namesPatient reports whether ref, which is not a local reference, still
// says it is about a Patient: an absolute URL whose path ends in
// "Patient/<id>", or a conditional "Patient?…".
func namesPatient(ref string) bool {
	if strings.HasPrefix(ref, "Patient?") {
		return true
	}
	path := ref
	if i := strings.Index(path, "?"); i >= 0 {
		path = path[:i]
	}
	if i := strings.Index(path, "/_history/"); i >= 0 {
		path = path[:i]
	}
	parts := strings.Split(path, "/")
	return len(parts) >= 2 && parts[len(parts)-2] == "Patient"
}

// isTypeName reports whether s has the shape of a FHIR resource type name.
func isTypeName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// IsID reports whether s is a valid FHIR logical id: [A-Za-z0-9\-\.]{1,64}.
func IsID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
