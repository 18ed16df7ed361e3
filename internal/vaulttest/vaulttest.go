// Package vaulttest builds phivault's real storage stack for tests and
// benchmarks: a file keyring, a SQLite store and the envelope sealer over
// them, in a test's temp folder and closed when the test ends.
package vaulttest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/sqlite"
	"github.com/phivault/phivault/vault"
)

// Passphrase unlocks every keyring this package creates.
const Passphrase = "correct horse battery staple"

// KeyringOptions are the file keyring options of these keyrings: a cheap
// scrypt cost, since tests open keyrings often.
func KeyringOptions() keyring.FileOptions { return keyring.FileOptions{WorkFactor: 10} }

// Keyring creates a file keyring, keyring.age in dir, opens it as a
// reloading keyring (so that it can rotate) and returns it with its path.
func Keyring(tb testing.TB, dir string) (*keyring.Reloading, string) {
	tb.Helper()
	path := filepath.Join(dir, "keyring.age")
	if err := keyring.CreateFile(path, []byte(Passphrase), KeyringOptions()); err != nil {
		tb.Fatal(err)
	}
	keys, err := keyring.OpenReloading(path, []byte(Passphrase), KeyringOptions())
	if err != nil {
		tb.Fatal(err)
	}
	return keys, path
}

// SQLite opens a new SQLite store, phivault.db in dir, closed when the test
// ends, and returns it with its path.
func SQLite(tb testing.TB, dir string) (*sqlite.DB, string) {
	tb.Helper()
	path := filepath.Join(dir, "phivault.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db, path
}

// Sealer returns an envelope sealer over keys with opts, initialized in
// store as phivault serve initializes it.
func Sealer(tb testing.TB, store phivault.Store, keys phivault.Keyring, opts envelope.Options) *envelope.Sealer {
	tb.Helper()
	ctx := context.Background()
	sealer := envelope.New(keys, opts)
	if err := store.Update(ctx, func(tx phivault.StoreTx) error { return sealer.Init(ctx, tx) }); err != nil {
		tb.Fatal(err)
	}
	return sealer
}

// Vault returns a vault over a new SQLite store and file keyring in a temp
// folder, and the store (an account store too).
func Vault(tb testing.TB) (*vault.Service, *sqlite.DB) {
	tb.Helper()
	dir := tb.TempDir()
	keys, _ := Keyring(tb, dir)
	db, _ := SQLite(tb, dir)
	return vault.New(db, Sealer(tb, db, keys, envelope.Options{})), db
}
