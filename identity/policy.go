package identity

import (
	"bufio"
	_ "embed"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/phivault/phivault"
)

// MinPasswordLength is the minimum password length in characters.
const MinPasswordLength = 12

//go:embed common.txt
var commonText string

// commonWords is built once from the embedded list and never changed.
var commonWords = func() map[string]bool {
	m := make(map[string]bool)
	sc := bufio.NewScanner(strings.NewReader(commonText))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" && !strings.HasPrefix(w, "#") {
			m[w] = true
		}
	}
	return m
}()

// walks are keyboard rows and columns and alphabet and digit runs; any run
// of three or more characters along one, either way, is predictable.
var walks = []string{
	"`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./",
	"~!@#$%^&*()_+", "qwertzuiop", "azertyuiop", "qsdfghjklm", "wxcvbn", "yxcvbnm",
	"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/", "zaq1xsw2cde3vfr4bgt5nhy6mju7,ki8.lo9/;p0",
	"qazwsxedcrfvtgbyhnujmikolp", "abcdefghijklmnopqrstuvwxyz", "01234567890",
	"147258369", "159357", "7894561230",
}

// leet maps common leetspeak substitutions back to letters.
var leet = strings.NewReplacer("@", "a", "4", "a", "8", "b", "(", "c", "3", "e", "6", "g", "1", "i", "!", "i",
	"|", "l", "0", "o", "$", "s", "5", "s", "7", "t", "+", "t", "2", "z")

// CheckPassword returns nil if password may be used by the account with
// the given username, or an *phivault.Error with code EINVALID whose
// message says which rule it breaks. The message never echoes the password.
// See the package documentation for what the rules refuse.
func CheckPassword(username, password string) error {
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return phivault.Errorf(phivault.EINVALID, "The password must have at least %d characters.", MinPasswordLength)
	}
	if !utf8.ValidString(password) {
		return phivault.Errorf(phivault.EINVALID, "The password must be valid UTF-8.")
	}
	p := strings.ToLower(password)
	if u := strings.ToLower(strings.TrimSpace(username)); utf8.RuneCountInString(u) >= 3 &&
		(strings.Contains(p, u) || strings.Contains(p, reverse(u))) {
		return phivault.Errorf(phivault.EINVALID, "The password must not contain the username.")
	}
	if strings.IndexFunc(p, func(r rune) bool { return !unicode.IsDigit(r) }) < 0 {
		return phivault.Errorf(phivault.EINVALID, "The password must not be only digits.")
	}
	if isCommon(p) {
		return phivault.Errorf(phivault.EINVALID, "The password is too common.")
	}
	rest := stripPatterns(p)
	if utf8.RuneCountInString(rest) < 4 || isRepeatedBlock(p) {
		return phivault.Errorf(phivault.EINVALID, "The password is made of predictable patterns such as keyboard walks or repeats.")
	}
	if isCommon(rest) {
		return phivault.Errorf(phivault.EINVALID, "The password is too common.")
	}
	return nil
}

// isCommon reports whether p, with leetspeak undone and with digits and
// symbols around it trimmed, is a common password or a common base word.
func isCommon(p string) bool {
	if commonWords[p] {
		return true
	}
	core := strings.TrimFunc(p, func(r rune) bool { return !unicode.IsLetter(r) })
	if len(core) >= 3 && (commonWords[core] || commonWords[strings.ReplaceAll(core, " ", "")]) {
		return true
	}
	de := leet.Replace(p)
	if commonWords[de] {
		return true
	}
	// Undo leetspeak inside the word only, then trim what is left around it.
	if i, j := strings.IndexFunc(p, unicode.IsLetter), strings.LastIndexFunc(p, unicode.IsLetter); i >= 0 {
		inner := leet.Replace(p[i : j+1])
		if commonWords[inner] {
			return true
		}
	}
	return false
}

// stripPatterns removes keyboard walks and runs of one repeated character
// (three or more long) from p and returns what remains.
func stripPatterns(p string) string {
	rs := []rune(p)
	drop := make([]bool, len(rs))
	for i := 0; i+2 < len(rs); i++ {
		if rs[i] == rs[i+1] && rs[i] == rs[i+2] {
			drop[i], drop[i+1], drop[i+2] = true, true, true
		}
	}
	for i := 0; i+2 < len(rs); i++ {
		// Longest walk starting at i.
		n := 0
		for j := i + 3; j <= len(rs); j++ {
			if onWalk(string(rs[i:j])) {
				n = j - i
			} else {
				break
			}
		}
		for k := i; k < i+n; k++ {
			drop[k] = true
		}
	}
	var b strings.Builder
	for i, r := range rs {
		if !drop[i] {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func onWalk(s string) bool {
	for _, w := range walks {
		if strings.Contains(w, s) || strings.Contains(w, reverse(s)) {
			return true
		}
	}
	return false
}

// isRepeatedBlock reports whether p is one block of up to 6 characters
// repeated, such as "abcabcabcabc".
func isRepeatedBlock(p string) bool {
	rs := []rune(p)
	for n := 1; n <= 6 && n < len(rs); n++ {
		if len(rs)%n != 0 && len(rs)-len(rs)%n < 2*n {
			continue
		}
		ok := true
		for i := n; i < len(rs); i++ {
			if rs[i] != rs[i%n] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func reverse(s string) string {
	rs := []rune(s)
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	return string(rs)
}
