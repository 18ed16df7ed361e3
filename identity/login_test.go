package identity_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/identity"
)

const testPassword = "glacier-mint-oboe-47"

var testSecret = []byte("12345678901234567890")

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type fixture struct {
	store *memStore
	auth  *identity.Authenticator
	clock *clock
	acc   *phivault.Account
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: newMemStore(), clock: &clock{time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}}
	f.auth = identity.NewAuthenticator(f.store)
	f.auth.Hasher = testHasher()
	f.auth.Now = f.clock.now
	hash, err := f.auth.Hasher.Hash(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	f.acc = &phivault.Account{
		ID: "acc-1", Username: "jdoe", Roles: []string{"nurse"}, Status: phivault.AccountActive,
		PasswordHash: hash, TOTPSecret: testSecret, Created: f.clock.t,
	}
	if err := f.store.CreateAccount(context.Background(), f.acc); err != nil {
		t.Fatal(err)
	}
	return f
}

// code returns the TOTP code for the fixture's current time, advancing the
// clock one step first so each call yields a fresh, unused code.
func (f *fixture) code(t *testing.T) string {
	t.Helper()
	f.clock.advance(identity.DefaultTOTPPeriod)
	c, err := identity.TOTP{}.Code(testSecret, identity.TOTP{}.Step(f.clock.t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) account(t *testing.T) *phivault.Account {
	t.Helper()
	a, err := f.store.AccountByID(context.Background(), f.acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLoginSuccess(t *testing.T) {
	f := newFixture(t)
	a, err := f.auth.Login(context.Background(), "jdoe", testPassword, f.code(t))
	if err != nil {
		t.Fatalf("Login = %v", err)
	}
	if a.ID != "acc-1" || a.TOTPLastStep != (identity.TOTP{}).Step(f.clock.t) {
		t.Errorf("Login returned id %q, last step %d", a.ID, a.TOTPLastStep)
	}
}

func TestLoginReplayRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	code := f.code(t)
	if _, err := f.auth.Login(ctx, "jdoe", testPassword, code); err != nil {
		t.Fatalf("first Login = %v", err)
	}
	f.clock.advance(10 * time.Second) // same or next step, still within skew
	if _, err := f.auth.Login(ctx, "jdoe", testPassword, code); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("replayed Login = %v; want ErrInvalidCredentials", err)
	}
}

func TestLoginNoEnumeration(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, unknown := f.auth.Login(ctx, "nobody", testPassword, f.code(t))
	_, wrongPass := f.auth.Login(ctx, "jdoe", "wrong-password-here", f.code(t))
	_, wrongCode := f.auth.Login(ctx, "jdoe", testPassword, "000000")
	for name, err := range map[string]error{"unknown user": unknown, "wrong password": wrongPass, "wrong code": wrongCode} {
		if !errors.Is(err, identity.ErrInvalidCredentials) || err.Error() != identity.ErrInvalidCredentials.Error() {
			t.Errorf("%s: err = %v; want ErrInvalidCredentials", name, err)
		}
		if phivault.ErrorCode(err) != phivault.EUNAUTHORIZED || phivault.ErrorMessage(err) != identity.ErrInvalidCredentials.Message {
			t.Errorf("%s: code %s message %q; want ErrInvalidCredentials's", name, phivault.ErrorCode(err), phivault.ErrorMessage(err))
		}
	}
	// Only the audit trail learns which account a failure named.
	for name, tt := range map[string]struct {
		err  error
		want string
	}{"unknown user": {unknown, ""}, "wrong password": {wrongPass, "acc-1"}, "wrong code": {wrongCode, "acc-1"}} {
		if got := accountID(tt.err); got != tt.want {
			t.Errorf("%s: account id %q; want %q", name, got, tt.want)
		}
	}
}

// accountID returns the account id a failed login's error names, or "".
func accountID(err error) string {
	var named interface{ AccountID() string }
	if errors.As(err, &named) {
		return named.AccountID()
	}
	return ""
}

func TestLoginBackoffAndLockout(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	fail := func() {
		t.Helper()
		if _, err := f.auth.Login(ctx, "jdoe", "wrong-password-here", ""); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	// Three failures without delay.
	for range identity.DefaultBackoffAfter {
		fail()
	}
	if n := f.account(t).FailedLogins; n != identity.DefaultBackoffAfter {
		t.Fatalf("FailedLogins = %d; want %d", n, identity.DefaultBackoffAfter)
	}
	// Now backing off: even the right credentials are refused, and the
	// refused attempt is not counted.
	if _, err := f.auth.Login(ctx, "jdoe", testPassword, mustCode(t, f.clock.t)); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("during backoff: %v; want ErrInvalidCredentials", err)
	}
	if n := f.account(t).FailedLogins; n != identity.DefaultBackoffAfter {
		t.Errorf("FailedLogins after a refused attempt = %d; want %d", n, identity.DefaultBackoffAfter)
	}
	// Keep failing, waiting out each delay, until the lock.
	for i := identity.DefaultBackoffAfter; i < identity.DefaultLockAfter; i++ {
		f.clock.advance(identity.DefaultBackoffMax)
		fail()
	}
	a := f.account(t)
	if want := f.clock.t.Add(identity.DefaultLockFor); !a.LockedUntil.Equal(want) {
		t.Fatalf("LockedUntil = %v; want %v", a.LockedUntil, want)
	}
	// Locked: right credentials are refused for 15 minutes, same error.
	f.clock.advance(identity.DefaultLockFor - time.Minute)
	if _, err := f.auth.Login(ctx, "jdoe", testPassword, mustCode(t, f.clock.t)); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("while locked: %v; want ErrInvalidCredentials", err)
	}
	// After the lock and its backoff, the right credentials work and reset the count.
	f.clock.advance(time.Minute + identity.DefaultBackoffMax)
	if _, err := f.auth.Login(ctx, "jdoe", testPassword, mustCode(t, f.clock.t)); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	if a := f.account(t); a.FailedLogins != 0 || !a.LockedUntil.IsZero() {
		t.Errorf("after success FailedLogins = %d, LockedUntil = %v; want 0, zero", a.FailedLogins, a.LockedUntil)
	}
}

func mustCode(t *testing.T, now time.Time) string {
	t.Helper()
	c, err := identity.TOTP{}.Code(testSecret, identity.TOTP{}.Step(now))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoginBackoffDoubles(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for range identity.DefaultBackoffAfter + 2 { // 5 failures: delay 4 s
		f.clock.advance(identity.DefaultBackoffMax)
		f.auth.Login(ctx, "jdoe", "wrong-password-here", "")
	}
	f.clock.advance(4*identity.DefaultBackoffBase - time.Nanosecond)
	if _, err := f.auth.Login(ctx, "jdoe", testPassword, mustCode(t, f.clock.t)); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("just before the delay ends: %v; want ErrInvalidCredentials", err)
	}
	f.clock.advance(time.Nanosecond)
	if _, err := f.auth.Login(ctx, "jdoe", testPassword, mustCode(t, f.clock.t)); err != nil {
		t.Fatalf("when the delay ends: %v", err)
	}
}

func TestLoginInactiveAndMFA(t *testing.T) {
	ctx := context.Background()
	for _, status := range []string{phivault.AccountSuspended, phivault.AccountDeprovisioned} {
		f := newFixture(t)
		a := f.account(t)
		a.Status = status
		a.Version++
		if err := f.store.UpdateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := f.auth.Login(ctx, "jdoe", testPassword, f.code(t)); !errors.Is(err, identity.ErrAccountInactive) || phivault.ErrorCode(err) != phivault.EFORBIDDEN || accountID(err) != "acc-1" {
			t.Errorf("%s: Login = %v; want ErrAccountInactive", status, err)
		}
		// A wrong password still gets the generic answer.
		if _, err := f.auth.Login(ctx, "jdoe", "wrong-password-here", f.code(t)); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Errorf("%s, wrong password: Login = %v; want ErrInvalidCredentials", status, err)
		}
	}

	f := newFixture(t)
	a := f.account(t)
	a.TOTPSecret = nil
	a.Version++
	if err := f.store.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Login(ctx, "jdoe", testPassword, ""); !errors.Is(err, identity.ErrMFARequired) || accountID(err) != "acc-1" {
		t.Errorf("no MFA enrolled: Login = %v; want ErrMFARequired", err)
	}
	f.auth.AllowNoMFA = true
	if _, err := f.auth.Login(ctx, "jdoe", testPassword, ""); err != nil {
		t.Errorf("no MFA enrolled, AllowNoMFA: Login = %v", err)
	}
}

func TestLoginRehash(t *testing.T) {
	f := newFixture(t)
	f.auth.Hasher.Params.Time = 2
	if _, err := f.auth.Login(context.Background(), "jdoe", testPassword, f.code(t)); err != nil {
		t.Fatal(err)
	}
	if h := f.account(t).PasswordHash; !strings.Contains(h, ",t=2,") {
		t.Errorf("hash after login with new params = %q; want t=2", h)
	}
}

func TestAccountLogValueHidesSecrets(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("login", "account", f.acc)
	out := b.String()
	if !strings.Contains(out, "acc-1") {
		t.Errorf("log %q lacks the account id", out)
	}
	for _, secret := range []string{f.acc.PasswordHash, "argon2id", string(testSecret), fmt.Sprint(testSecret), "jdoe", "nurse"} {
		if strings.Contains(out, secret) {
			t.Errorf("log %q contains %q", out, secret)
		}
	}
}

// TestLoginNoPassword checks that an account without a password (new, or
// cleared for re-enrolment) is refused like a wrong password, whatever
// is typed, and not as a server error.
func TestLoginNoPassword(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.account(t)
	a.PasswordHash, a.TOTPSecret = "", nil
	a.Version++
	if err := f.store.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{testPassword, ""} {
		if _, err := f.auth.Login(ctx, "jdoe", pw, f.code(t)); !errors.Is(err, identity.ErrInvalidCredentials) || accountID(err) != "acc-1" {
			t.Errorf("Login(%q) without a stored password = %v; want ErrInvalidCredentials naming acc-1", pw, err)
		}
	}
}
