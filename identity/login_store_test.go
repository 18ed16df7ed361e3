package identity_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/postgres"
	"github.com/phivault/phivault/sqlite"
)

// hangUpStore passes every call to a real AccountStore, but its caller
// hangs up (cancels the request's context) at one point of a login: just
// after the account is read, before its password is checked (afterRead),
// or else just before the failure is written. The real store, not this
// wrapper, decides what a cancelled context means.
type hangUpStore struct {
	phivault.AccountStore
	hangUp    context.CancelFunc
	afterRead bool
}

func (s hangUpStore) AccountByUsername(ctx context.Context, username string) (*phivault.Account, error) {
	a, err := s.AccountStore.AccountByUsername(ctx, username)
	if s.afterRead {
		s.hangUp()
	}
	return a, err
}

func (s hangUpStore) UpdateAccount(ctx context.Context, a *phivault.Account) error {
	if !s.afterRead {
		s.hangUp()
	}
	return s.AccountStore.UpdateAccount(ctx, a)
}

// accountStores opens each real account store: SQLite always, and
// PostgreSQL when PHIVAULT_TEST_POSTGRES_URL names a test database (e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
func accountStores() []accountStore {
	stores := []accountStore{{"SQLite", openSQLite}}
	if url := os.Getenv("PHIVAULT_TEST_POSTGRES_URL"); url != "" {
		stores = append(stores, accountStore{"PostgreSQL", func(t *testing.T) phivault.AccountStore { return openPostgres(t, url) }})
	}
	return stores
}

// accountStore names a way to open a real account store for a test.
type accountStore struct {
	name string
	open func(t *testing.T) phivault.AccountStore
}

func openSQLite(t *testing.T) phivault.AccountStore {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "phivault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openPostgres opens a store in a schema of its own, dropped at the end.
func openPostgres(t *testing.T, url string) phivault.AccountStore {
	t.Helper()
	db := postgres.New(url)
	db.Schema = fmt.Sprintf("phivault_identity_test_%d_%016x", os.Getpid(), rand.Uint64())
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("connect to drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{db.Schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return db
}

// TestLoginFailureOutlivesCaller checks, on each real account store, that
// a failed login counts even if the caller hangs up once its password was
// checked (else a flood of abandoned attempts would never lock an
// account), and that an attempt whose caller hung up before the check is
// not counted.
func TestLoginFailureOutlivesCaller(t *testing.T) {
	for _, s := range accountStores() {
		t.Run(s.name, func(t *testing.T) {
			store := s.open(t)
			f := newFixture(t)
			if err := store.CreateAccount(t.Context(), f.acc); err != nil {
				t.Fatal(err)
			}
			failedLogins := func() int {
				t.Helper()
				a, err := store.AccountByID(t.Context(), f.acc.ID)
				if err != nil {
					t.Fatal(err)
				}
				return a.FailedLogins
			}

			ctx, hangUp := context.WithCancel(t.Context())
			f.auth.Accounts = hangUpStore{store, hangUp, false}
			_, err := f.auth.Login(ctx, "jdoe", "wrong-"+testPassword, f.code(t))
			if ctx.Err() == nil {
				t.Fatal("the caller did not hang up: Login wrote nothing")
			}
			if !errors.Is(err, identity.ErrInvalidCredentials) {
				t.Errorf("Login after hang-up = %v, want ErrInvalidCredentials", err)
			}
			if n := failedLogins(); n != 1 {
				t.Errorf("%d failed logins stored after a wrong password whose caller hung up, want 1", n)
			}

			ctx, hangUp = context.WithCancel(t.Context())
			f.auth.Accounts = hangUpStore{store, hangUp, true}
			if _, err := f.auth.Login(ctx, "jdoe", "wrong-"+testPassword, f.code(t)); !errors.Is(err, identity.ErrBusy) {
				t.Errorf("Login whose caller hung up before the check = %v, want ErrBusy", err)
			}
			if n := failedLogins(); n != 1 {
				t.Errorf("%d failed logins stored after an attempt abandoned before its check, want still 1", n)
			}
		})
	}
}
