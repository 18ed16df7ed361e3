package e2e_test

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"filippo.io/age/armor"

	"github.com/phivault/phivault/keyring"
)

// TestInit_keyFileWorkFactor checks that the binary's "phivault init"
// protects the key file with scrypt at keyring.DefaultWorkFactor: the
// Go tests of cmd/phivault lower it to run fast, so only here is the
// production value seen.
func TestInit_keyFileWorkFactor(t *testing.T) {
	requireE2E(t)
	v := newVault(t)
	f, err := os.Open(filepath.Join(v.dir, "keyring.age"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(armor.NewReader(f)) // the age file, its header in the clear
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^-> scrypt \S+ (\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the key file has no age scrypt stanza")
	}
	if n, _ := strconv.Atoi(string(m[1])); n != keyring.DefaultWorkFactor {
		t.Errorf("the key file's scrypt work factor is %d, want %d", n, keyring.DefaultWorkFactor)
	}
}
