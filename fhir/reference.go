package fhir

import "strings"

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

// relativeRef returns the relative form "Type/id" of a literal reference:
// "Type/id", "Type/id/_history/n", or an absolute URL ending in one of
// those. ok is false for anything else, e.g. "urn:uuid:..." or "#contained".
func relativeRef(ref string) (typ, id string, ok bool) {
	s := ref
	absolute := false
	if i := strings.Index(s, "://"); i >= 0 {
		s, absolute = s[i+3:], true
	}
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	slash := strings.LastIndexByte(s, '/')
	if slash < 0 {
		return "", "", false
	}
	id = s[slash+1:]
	typ = s[:slash]
	if i := strings.LastIndexByte(typ, '/'); i >= 0 {
		if !absolute { // relative references have exactly one slash
			return "", "", false
		}
		typ = typ[i+1:]
	} else if absolute {
		return "", "", false // a URL without a path
	}
	if !isTypeName(typ) || !IsID(id) {
		return "", "", false
	}
	return typ, id, true
}

// strictRelativeRef is relativeRef for relative references only.
func strictRelativeRef(ref string) (typ, id string, ok bool) {
	if strings.Contains(ref, ":") {
		return "", "", false
	}
	return relativeRef(ref)
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
