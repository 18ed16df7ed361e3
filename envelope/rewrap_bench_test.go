package envelope_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/phivault/phivault/internal/vaulttest"
)

// BenchmarkRewrap rewraps every DEK of a SQLite store seeded directly with
// PHIVAULT_REWRAP_KEYS wrapped keys (default 100,000) after a rotation of
// the file keyring. Each iteration rotates once and rewraps every key; it
// reports keys/s.
//
//	PHIVAULT_REWRAP_KEYS=1000000 go test ./envelope -run '^$' -bench Rewrap -benchtime 1x
func BenchmarkRewrap(b *testing.B) {
	n := 100_000
	if v := os.Getenv("PHIVAULT_REWRAP_KEYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	keys, _ := vaulttest.Keyring(b, b.TempDir())
	pass := []byte(vaulttest.Passphrase)
	benchRewrap(b, n, keys, keys, func() {
		if _, err := keys.Rotate(pass); err != nil {
			b.Fatal(err)
		}
	})
}
