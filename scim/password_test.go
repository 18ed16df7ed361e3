package scim

import (
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/identity"
)

// TestPasswordHashes_oncePerChange shows that retrying a change does not
// hash its password again (the salt is random, so a second hash would
// differ), and that a different username or password is hashed anew.
func TestPasswordHashes_oncePerChange(t *testing.T) {
	h := &Handler{opts: Options{Hasher: &identity.Hasher{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}}}
	pw := h.passwordHashes()
	set := func(username, password string) string {
		t.Helper()
		a := &phivault.Account{Username: username, FailedLogins: 3}
		if err := pw.set(a, password); err != nil {
			t.Fatal(err)
		}
		if a.FailedLogins != 0 {
			t.Errorf("set kept %d failed logins", a.FailedLogins)
		}
		return a.PasswordHash
	}
	first := set("ada", "correct horse battery")
	if again := set("ada", "correct horse battery"); again != first {
		t.Error("a retry hashed the same password again")
	}
	if other := set("grace", "correct horse battery"); other == first {
		t.Error("another username kept the old hash")
	}
	if other := set("grace", "staple battery horse"); other == first {
		t.Error("another password kept the old hash")
	}
	if err := pw.set(&phivault.Account{Username: "ada"}, "short"); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Errorf("a weak password was accepted: %v", err)
	}
}
