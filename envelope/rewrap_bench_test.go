package envelope_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/sqlite"
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
	ctx := context.Background()
	dir := b.TempDir()
	keyPath, pass := filepath.Join(dir, "keyring.age"), []byte("correct horse battery staple")
	opts := keyring.FileOptions{WorkFactor: 10}
	if err := keyring.CreateFile(keyPath, pass, opts); err != nil {
		b.Fatal(err)
	}
	keys, err := keyring.OpenReloading(keyPath, pass, opts)
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "phivault.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	dek := make([]byte, envelope.KeySize)
	const seedBatch = 10_000
	for lo := 0; lo < n; lo += seedBatch {
		err := db.Update(ctx, func(tx phivault.StoreTx) error {
			for i := lo; i < min(lo+seedBatch, n); i++ {
				dek[0], dek[1], dek[2] = byte(i), byte(i>>8), byte(i>>16)
				kek, wrapped, err := keys.WrapKey(ctx, dek)
				if err != nil {
					return err
				}
				if _, err := tx.PutKey(ctx, &phivault.WrappedKey{ID: fmt.Sprintf("patient/%08d", i), KEKID: kek, Wrapped: wrapped, Created: t0}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	total := 0
	for range b.N {
		b.StopTimer()
		if _, err := keys.Rotate(pass); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		done, err := envelope.Rewrap(ctx, db, keys, envelope.RewrapOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if done != n {
			b.Fatalf("rewrapped %d keys, want %d", done, n)
		}
		total += done
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "keys/s")
}
