package identity_test

import (
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/identity"
)

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		username, password string
		ok                 bool
	}{
		{"jdoe", "correct horse battery staple", true},
		{"jdoe", "Tr0ub4dor&3-Vixen-Kelp", true},
		{"jdoe", "glacier-mint-oboe-47", true},
		{"jdoe", "mZ8#vq2Lr!pW", true},
		{"jdoe", "short1!", false},               // too short
		{"jdoe", "Ab1!Ab1!Ab1", false},           // 11 characters
		{"jdoe", "password1234", false},          // common word + digits
		{"jdoe", "Password2024!", false},         // common word + digits + symbol
		{"jdoe", "P@ssw0rd12345", false},         // leetspeak
		{"jdoe", "!!Summer2025!!", false},        // symbols around a common word
		{"jdoe", "iloveyou1234", false},          // common
		{"jdoe", "123456789012", false},          // only digits
		{"jdoe", "qwertyuiop12", false},          // keyboard walk + digits
		{"jdoe", "1qaz2wsx3edc", false},          // keyboard column walk
		{"jdoe", "asdfghjkl;'!", false},          // home row
		{"jdoe", "abcdefghijkl", false},          // alphabet run
		{"jdoe", "zyxwvutsrqpo", false},          // reversed run
		{"jdoe", "aaaaaaaaaaaa", false},          // one repeated character
		{"jdoe", "abcabcabcabc", false},          // repeated block
		{"jdoe", "xk9xk9xk9xk9", false},          // repeated block
		{"jdoe", "qwerty111111", false},          // walk + repeat
		{"jdoe", "qwertyMonkey!", false},         // walk + common word
		{"marysmith", "Marysmith!2024", false},   // username
		{"marysmith", "xx-htimsyram-xx", false},  // username reversed
		{"jdoe", "JDOE-likes-tea", false},        // username, any case
		{"al", "almond-river-sky", true},         // too short a username to match
		{"jdoe", "hospital2025!!", false},        // domain word
		{"jdoe", strings.Repeat("é", 12), false}, // repeated non-ASCII
		{"jdoe", "séance-à-minuit", true},        // non-ASCII counted in characters
	}
	for _, tt := range tests {
		err := identity.CheckPassword(tt.username, tt.password)
		if (err == nil) != tt.ok {
			t.Errorf("CheckPassword(%q, %q) = %v; want ok=%v", tt.username, tt.password, err, tt.ok)
		}
		if err != nil {
			if phivault.ErrorCode(err) != phivault.EINVALID {
				t.Errorf("CheckPassword(%q) code = %s; want %s", tt.password, phivault.ErrorCode(err), phivault.EINVALID)
			}
			if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.password)) {
				t.Errorf("CheckPassword error %q echoes the password", err)
			}
		}
	}
}
