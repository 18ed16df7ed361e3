package phivault

// MaxCodeLen is the length of the longest code IsCode accepts.
const MaxCodeLen = 64

// IsCode reports whether s is a code the audit trail may hold as it was
// typed: 1 to MaxCodeLen lowercase ASCII letters, digits and hyphens,
// starting with a letter or digit, such as the reason "covering-shift" of
// an alert's triage or "left-organisation" of a suspension. The trail
// holds ids and codes only, never free text: PHI could hide in free text
// ("covering for Jane Doe's ward"), but not in a short code of this
// alphabet alone.
func IsCode(s string) bool {
	if s == "" || len(s) > MaxCodeLen || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
