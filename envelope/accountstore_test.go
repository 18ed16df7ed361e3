package envelope_test

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/internal/vaulttest"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/postgres"
	"github.com/phivault/phivault/sqlite"
)

// accountFixture is an envelope.AccountStore over a SQLite store, its
// keys wrapped by a reloading file keyring.
type accountFixture struct {
	dir      string
	db       *sqlite.DB
	keys     *keyring.Reloading
	pass     []byte
	keyPath  string
	sealer   *envelope.Sealer
	accounts *envelope.AccountStore
}

func newAccountFixture(tb testing.TB) *accountFixture {
	tb.Helper()
	dir := tb.TempDir()
	f := &accountFixture{dir: dir, pass: []byte(vaulttest.Passphrase)}
	f.keys, f.keyPath = vaulttest.Keyring(tb, dir)
	f.db, _ = vaulttest.SQLite(tb, dir)
	f.sealer = envelope.New(f.keys, envelope.Options{})
	f.accounts = envelope.NewAccountStore(f.db, f.db, f.sealer)
	return f
}

// secretAccount returns an account with a random TOTP secret and a WebAuthn
// credential list that both contain marker bytes.
func secretAccount(n int) *phivault.Account {
	a := storetest.Account(n)
	a.TOTPSecret = make([]byte, 20)
	for i := range a.TOTPSecret {
		a.TOTPSecret[i] = byte(rand.IntN(256))
	}
	a.WebAuthn = fmt.Appendf(nil, `[{"id":"Y3JlZA","publicKey":"webauthn-public-key-marker-%d"}]`, n)
	return a
}

// forms returns the encodings of b that a leak could take.
func forms(b []byte) map[string][]byte {
	return map[string][]byte{
		"raw":       b,
		"base32":    []byte(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)),
		"hex":       []byte(hex.EncodeToString(b)),
		"base64":    []byte(base64.RawStdEncoding.EncodeToString(b)),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(b)),
	}
}

func TestAccountStore_Conformance(t *testing.T) {
	storetest.RunAccountStore(t, func(t *testing.T) phivault.AccountStore { return newAccountFixture(t).accounts })
}

// TestAccountStore_NoPlaintextAtRest greps the database files for every
// form of the credentials. The positive control is an account stored
// without the AccountStore: its secret must be found, or the grep proves
// nothing.
func TestAccountStore_NoPlaintextAtRest(t *testing.T) {
	f := newAccountFixture(t)
	sealed := secretAccount(1)
	if err := f.accounts.CreateAccount(ctx, sealed); err != nil {
		t.Fatalf("CreateAccount() = %v", err)
	}
	// An update that changes the secret seals the new one.
	updated := *sealed
	updated.Version++
	updated.TOTPSecret = secretAccount(1).TOTPSecret
	if err := f.accounts.UpdateAccount(ctx, &updated); err != nil {
		t.Fatalf("UpdateAccount() = %v", err)
	}
	control := secretAccount(2)
	if err := f.db.CreateAccount(ctx, control); err != nil { // bypasses sealing
		t.Fatalf("CreateAccount(control) = %v", err)
	}
	for _, a := range []*phivault.Account{sealed, &updated} {
		got, err := f.accounts.AccountByID(ctx, a.ID)
		if err != nil {
			t.Fatalf("AccountByID() = %v", err)
		}
		if a == &updated && (!bytes.Equal(got.TOTPSecret, updated.TOTPSecret) || !bytes.Equal(got.WebAuthn, updated.WebAuthn)) {
			t.Errorf("AccountByID() credentials = %x, %q; want %x, %q", got.TOTPSecret, got.WebAuthn, updated.TOTPSecret, updated.WebAuthn)
		}
	}

	// The raw columns, as the store returns them.
	raw, err := f.db.AccountByID(ctx, sealed.ID)
	if err != nil {
		t.Fatalf("raw AccountByID() = %v", err)
	}
	if len(raw.TOTPSecret) == 0 || len(raw.WebAuthn) == 0 {
		t.Fatalf("raw credentials are empty: %d, %d bytes", len(raw.TOTPSecret), len(raw.WebAuthn))
	}
	rawCols := append(append([]byte{}, raw.TOTPSecret...), raw.WebAuthn...)

	if err := f.db.Close(); err != nil { // flush the WAL into the file
		t.Fatalf("Close() = %v", err)
	}
	var files []byte
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "keyring.age" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(f.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b...)
	}
	for where, hay := range map[string][]byte{"database files": files, "raw columns": rawCols} {
		for _, a := range []*phivault.Account{sealed, &updated} {
			for name, needle := range forms(a.TOTPSecret) {
				if bytes.Contains(hay, needle) {
					t.Errorf("%s hold the TOTP secret (%s)", where, name)
				}
			}
		}
		if bytes.Contains(hay, []byte("webauthn-public-key-marker-1")) {
			t.Errorf("%s hold the WebAuthn credentials", where)
		}
	}
	// Positive controls: the grep finds what is stored in the clear.
	if !bytes.Contains(files, control.TOTPSecret) || !bytes.Contains(files, []byte("webauthn-public-key-marker-2")) {
		t.Error("database files do not hold the control account's plaintext credentials: the grep is broken")
	}
	if !bytes.Contains(files, []byte(sealed.Username)) {
		t.Error("database files do not hold the username: the grep is broken")
	}
}

// TestAccountStore_NoPlaintextAtRest_Postgres checks the raw PostgreSQL
// columns.
func TestAccountStore_NoPlaintextAtRest_Postgres(t *testing.T) {
	url := os.Getenv("PHIVAULT_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("PostgreSQL tests skipped: set PHIVAULT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run them")
	}
	db := postgres.New(url)
	db.Schema = fmt.Sprintf("phivault_test_%d_%016x", os.Getpid(), rand.Uint64())
	if err := db.Open(ctx); err != nil {
		t.Fatalf("Open() = %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		db.Close()
		conn.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{db.Schema}.Sanitize()+` CASCADE`)
		conn.Close(context.Background())
	}()
	f := newAccountFixture(t)
	accounts := envelope.NewAccountStore(db, db, f.sealer)
	sealed, control := secretAccount(1), secretAccount(2)
	if err := accounts.CreateAccount(ctx, sealed); err != nil {
		t.Fatalf("CreateAccount() = %v", err)
	}
	if err := db.CreateAccount(ctx, control); err != nil {
		t.Fatalf("CreateAccount(control) = %v", err)
	}
	got, err := accounts.AccountByUsername(ctx, sealed.Username)
	if err != nil || !bytes.Equal(got.TOTPSecret, sealed.TOTPSecret) || !bytes.Equal(got.WebAuthn, sealed.WebAuthn) {
		t.Fatalf("AccountByUsername() = %v; credentials differ from those stored", err)
	}
	col := func(id string) []byte {
		var totp, webauthn []byte
		err := conn.QueryRow(ctx, `SELECT totp_secret, webauthn FROM `+pgx.Identifier{db.Schema, "accounts"}.Sanitize()+` WHERE id = $1`, id).Scan(&totp, &webauthn)
		if err != nil {
			t.Fatalf("raw SELECT = %v", err)
		}
		// Text forms too: what a dump with bytea_output = 'hex' shows.
		return bytes.Join([][]byte{totp, webauthn, []byte(hex.EncodeToString(totp)), []byte(hex.EncodeToString(webauthn))}, nil)
	}
	hay := col(sealed.ID)
	for name, needle := range forms(sealed.TOTPSecret) {
		if bytes.Contains(hay, needle) {
			t.Errorf("raw columns hold the TOTP secret (%s)", name)
		}
	}
	if bytes.Contains(hay, []byte("webauthn-public-key-marker")) {
		t.Error("raw columns hold the WebAuthn credentials")
	}
	if ctl := col(control.ID); !bytes.Contains(ctl, control.TOTPSecret) || !bytes.Contains(ctl, []byte("webauthn-public-key-marker-2")) {
		t.Error("raw columns do not hold the control account's plaintext: the check is broken")
	}
}

// wantIntegrityErr fails unless err is phivault.ErrIntegrity with code
// EINTEGRITY.
func wantIntegrityErr(tb testing.TB, what string, err error) {
	tb.Helper()
	if !errors.Is(err, phivault.ErrIntegrity) || phivault.ErrorCode(err) != phivault.EINTEGRITY {
		tb.Errorf("%s = %v, want ErrIntegrity", what, err)
	}
}

// TestAccountStore_Moved moves and alters sealed credentials in the store
// behind the AccountStore's back: none may open.
func TestAccountStore_Moved(t *testing.T) {
	f := newAccountFixture(t)
	a, b := secretAccount(1), secretAccount(2)
	for _, acc := range []*phivault.Account{a, b} {
		if err := f.accounts.CreateAccount(ctx, acc); err != nil {
			t.Fatalf("CreateAccount() = %v", err)
		}
	}
	rawA, err := f.db.AccountByID(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	rawB, err := f.db.AccountByID(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(v []byte, i int) []byte {
		c := bytes.Clone(v)
		c[i] ^= 1
		return c
	}
	tests := []struct {
		name string
		edit func(r *phivault.Account)
	}{
		{"other account's TOTP secret", func(r *phivault.Account) { r.TOTPSecret = rawA.TOTPSecret }},
		{"other account's WebAuthn", func(r *phivault.Account) { r.WebAuthn = rawA.WebAuthn }},
		{"own TOTP secret as WebAuthn", func(r *phivault.Account) { r.WebAuthn = r.TOTPSecret }},
		{"own WebAuthn as TOTP secret", func(r *phivault.Account) { r.TOTPSecret = r.WebAuthn }},
		{"flipped nonce bit", func(r *phivault.Account) { r.TOTPSecret = flip(r.TOTPSecret, 2+len(envelope.AccountsKeyID)) }},
		{"flipped tag bit", func(r *phivault.Account) { r.TOTPSecret = flip(r.TOTPSecret, len(r.TOTPSecret)-1) }},
		{"other key id", func(r *phivault.Account) { r.TOTPSecret = flip(r.TOTPSecret, 2) }},
		{"truncated", func(r *phivault.Account) { r.TOTPSecret = r.TOTPSecret[:len(r.TOTPSecret)-1] }},
		{"plaintext", func(r *phivault.Account) { r.TOTPSecret = []byte("JBSWY3DPEHPK3PXP") }},
		{"plaintext starting like a sealed value", func(r *phivault.Account) { r.TOTPSecret = append([]byte{1, 0}, make([]byte, 40)...) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur, err := f.db.AccountByID(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			r := *cur
			r.TOTPSecret, r.WebAuthn = rawB.TOTPSecret, rawB.WebAuthn
			tt.edit(&r)
			r.Version++
			if err := f.db.UpdateAccount(ctx, &r); err != nil { // behind the AccountStore's back
				t.Fatal(err)
			}
			got, err := f.accounts.AccountByID(ctx, b.ID)
			if got != nil {
				t.Errorf("AccountByID() returned an account")
			}
			wantIntegrityErr(t, "AccountByID()", err)
			_, err = f.accounts.AccountByUsername(ctx, b.Username)
			wantIntegrityErr(t, "AccountByUsername()", err)
			_, err = f.accounts.Accounts(ctx)
			wantIntegrityErr(t, "Accounts()", err)
		})
	}
	// The untouched account still opens, and b's own values open again.
	if got, err := f.accounts.AccountByID(ctx, a.ID); err != nil || !bytes.Equal(got.TOTPSecret, a.TOTPSecret) {
		t.Errorf("AccountByID(untouched) = %v", err)
	}
	cur, _ := f.db.AccountByID(ctx, b.ID)
	cur.TOTPSecret, cur.WebAuthn = rawB.TOTPSecret, rawB.WebAuthn
	cur.Version++
	if err := f.db.UpdateAccount(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if got, err := f.accounts.AccountByID(ctx, b.ID); err != nil || !bytes.Equal(got.TOTPSecret, b.TOTPSecret) || !bytes.Equal(got.WebAuthn, b.WebAuthn) {
		t.Errorf("AccountByID(restored) = %v; credentials differ", err)
	}
}

// TestAccountStore_ReusesUnchanged checks that an update that leaves a
// credential alone keeps its ciphertext, and one that changes it seals
// anew.
func TestAccountStore_ReusesUnchanged(t *testing.T) {
	f := newAccountFixture(t)
	a := secretAccount(1)
	if err := f.accounts.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	before, _ := f.db.AccountByID(ctx, a.ID)
	a.Version++
	a.FailedLogins++
	if err := f.accounts.UpdateAccount(ctx, a); err != nil {
		t.Fatalf("UpdateAccount(failed login) = %v", err)
	}
	after, _ := f.db.AccountByID(ctx, a.ID)
	if !bytes.Equal(before.TOTPSecret, after.TOTPSecret) || !bytes.Equal(before.WebAuthn, after.WebAuthn) {
		t.Error("an update that kept the credentials sealed them again")
	}
	a.Version++
	a.TOTPSecret = secretAccount(1).TOTPSecret
	a.WebAuthn = nil
	if err := f.accounts.UpdateAccount(ctx, a); err != nil {
		t.Fatalf("UpdateAccount(new secret) = %v", err)
	}
	changed, _ := f.db.AccountByID(ctx, a.ID)
	if bytes.Equal(changed.TOTPSecret, after.TOTPSecret) || changed.WebAuthn != nil {
		t.Errorf("after changing the credentials the store holds %x, %x", changed.TOTPSecret, changed.WebAuthn)
	}
	got, err := f.accounts.AccountByID(ctx, a.ID)
	if err != nil || !bytes.Equal(got.TOTPSecret, a.TOTPSecret) || got.WebAuthn != nil {
		t.Errorf("AccountByID() = %v; credentials differ from those stored", err)
	}
	// A stale update fails before anything is sealed or written.
	stale := *a
	if err := f.accounts.UpdateAccount(ctx, &stale); phivault.ErrorCode(err) != phivault.ECONFLICT {
		t.Errorf("UpdateAccount(stale) = %v, want ECONFLICT", err)
	}
}

// TestAccountStore_Rewrap rotates the KEK and rewraps: the accounts DEK is
// rewrapped with the others, and once the old KEK is retired a Sealer with
// nothing cached still opens the credentials.
func TestAccountStore_Rewrap(t *testing.T) {
	f := newAccountFixture(t)
	a := secretAccount(1)
	if err := f.accounts.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	oldKEK := f.keys.Current()
	newKEK, err := f.keys.Rotate(f.pass)
	if err != nil {
		t.Fatalf("Rotate() = %v", err)
	}
	n, err := envelope.Rewrap(ctx, f.db, f.keys, envelope.RewrapOptions{})
	if err != nil || n != 1 {
		t.Fatalf("Rewrap() = %d, %v; want the accounts key rewrapped", n, err)
	}
	err = f.db.View(ctx, func(tx phivault.StoreTx) error {
		k, err := tx.Key(ctx, envelope.AccountsKeyID)
		if err == nil && k.KEKID != newKEK {
			err = fmt.Errorf("accounts key under %s, want %s", k.KEKID, newKEK)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Retire(f.pass, []phivault.KeyID{oldKEK}); err != nil {
		t.Fatalf("Retire(%s) = %v", oldKEK, err)
	}
	fresh := envelope.NewAccountStore(f.db, f.db, envelope.New(f.keys, envelope.Options{CacheSize: -1}))
	got, err := fresh.AccountByID(ctx, a.ID)
	if err != nil || !bytes.Equal(got.TOTPSecret, a.TOTPSecret) || !bytes.Equal(got.WebAuthn, a.WebAuthn) {
		t.Fatalf("AccountByID() after rewrap = %v; credentials differ", err)
	}
}

// TestAccountStore_WrongKeyring opens with a keyring that never wrapped the
// accounts key: no credential is returned.
func TestAccountStore_WrongKeyring(t *testing.T) {
	f := newAccountFixture(t)
	a := secretAccount(1)
	if err := f.accounts.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	other := newAccountFixture(t)
	s := envelope.NewAccountStore(f.db, f.db, envelope.New(other.keys, envelope.Options{}))
	if got, err := s.AccountByID(ctx, a.ID); err == nil || got != nil {
		t.Errorf("AccountByID() with another keyring = %v, %v; want an error", got, err)
	}
	// An account without credentials needs no key.
	plain := &phivault.Account{ID: "acc-plain", Username: "plain"}
	if err := f.accounts.CreateAccount(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccountByID(ctx, plain.ID); err != nil {
		t.Errorf("AccountByID(no credentials) = %v", err)
	}
}

// TestAccountStore_SummariesOpenNothing lists accounts through a store
// whose keyring cannot open their credentials: the listing must succeed,
// say which credentials are set and return none of them, while
// AccountByID on the right keyring still opens them.
func TestAccountStore_SummariesOpenNothing(t *testing.T) {
	f := newAccountFixture(t)
	a := secretAccount(1)
	plain := &phivault.Account{ID: "acc-plain", Username: "plain"}
	for _, acc := range []*phivault.Account{a, plain} {
		if err := f.accounts.CreateAccount(ctx, acc); err != nil {
			t.Fatal(err)
		}
	}
	s := envelope.NewAccountStore(f.db, f.db, envelope.New(newAccountFixture(t).keys, envelope.Options{}))
	// The control: opening fails with this keyring.
	if _, err := s.Accounts(ctx); err == nil {
		t.Fatal("Accounts() with another keyring = nil error; the listing below would prove nothing")
	}
	list, err := phivault.ListAccounts(ctx, s)
	if err != nil {
		t.Fatalf("ListAccounts() = %v; want no credential opened", err)
	}
	want := map[string]bool{a.ID: true, plain.ID: false}
	if len(list) != len(want) {
		t.Fatalf("ListAccounts() = %d accounts, want %d", len(list), len(want))
	}
	for _, got := range list {
		set, ok := want[got.Account.ID]
		if !ok || got.TOTP != set || got.WebAuthn != set {
			t.Errorf("ListAccounts() %s: TOTP %v, WebAuthn %v; want %v", got.Account.ID, got.TOTP, got.WebAuthn, set)
		}
		if got.Account.TOTPSecret != nil || got.Account.WebAuthn != nil {
			t.Errorf("ListAccounts() %s returned credentials", got.Account.ID)
		}
	}
	got, err := f.accounts.AccountByID(ctx, a.ID)
	if err != nil || !bytes.Equal(got.TOTPSecret, a.TOTPSecret) || !bytes.Equal(got.WebAuthn, a.WebAuthn) {
		t.Errorf("AccountByID() = %v; credentials differ", err)
	}
}

// BenchmarkAccountStore compares reads and login-style updates (counters
// change, credentials do not) through the AccountStore with the bare
// SQLite store.
func BenchmarkAccountStore(b *testing.B) {
	f := newAccountFixture(b)
	for name, s := range map[string]phivault.AccountStore{"raw": f.db, "sealed": f.accounts} {
		a := secretAccount(1)
		a.ID, a.Username, a.FederatedSubject = "acc-"+name, name, ""
		if err := s.CreateAccount(ctx, a); err != nil {
			b.Fatal(err)
		}
		b.Run("AccountByID/"+name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.AccountByID(ctx, a.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("UpdateAccount/"+name, func(b *testing.B) {
			for b.Loop() {
				got, err := s.AccountByID(ctx, a.ID)
				if err != nil {
					b.Fatal(err)
				}
				got.Version++
				got.FailedLogins++
				if err := s.UpdateAccount(ctx, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
