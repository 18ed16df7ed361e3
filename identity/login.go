package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/phivault/phivault"
)

// Login defaults.
const (
	DefaultBackoffAfter = 3                // failures before attempts are delayed
	DefaultBackoffBase  = time.Second      // first delay; doubles with each further failure
	DefaultBackoffMax   = time.Minute      // longest delay
	DefaultLockAfter    = 10               // failures before the account is locked
	DefaultLockFor      = 15 * time.Minute // how long a lock lasts
)

// ErrInvalidCredentials is returned for every failed login, whatever the
// reason, so that the answer does not reveal whether an account exists,
// whether the password was right, or whether the account is locked.
var ErrInvalidCredentials = &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "Invalid credentials."}

// ErrAccountInactive is returned when the credentials are right but the
// account is suspended or deprovisioned.
var ErrAccountInactive = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "The account is not active."}

// ErrMFARequired is returned when the password is right but the account has
// no second factor enrolled and the Authenticator requires one.
var ErrMFARequired = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "A second factor must be enrolled first."}

// Authenticator logs people in with a password and a TOTP code.
//
// Create it with NewAuthenticator and set fields before first use; it is
// then safe for concurrent use.
type Authenticator struct {
	Accounts phivault.AccountStore
	Hasher   *Hasher
	TOTP     TOTP
	Now      func() time.Time // default time.Now

	BackoffAfter int           // default DefaultBackoffAfter
	BackoffBase  time.Duration // default DefaultBackoffBase
	BackoffMax   time.Duration // default DefaultBackoffMax
	LockAfter    int           // default DefaultLockAfter
	LockFor      time.Duration // default DefaultLockFor

	// AllowNoMFA lets accounts without a TOTP secret log in with a password
	// alone. By default they get ErrMFARequired.
	AllowNoMFA bool
}

// NewAuthenticator returns an Authenticator on accounts with the default
// settings and a Hasher with the default parameters.
func NewAuthenticator(accounts phivault.AccountStore) *Authenticator {
	return &Authenticator{
		Accounts:     accounts,
		Hasher:       NewHasher(),
		Now:          time.Now,
		BackoffAfter: DefaultBackoffAfter,
		BackoffBase:  DefaultBackoffBase,
		BackoffMax:   DefaultBackoffMax,
		LockAfter:    DefaultLockAfter,
		LockFor:      DefaultLockFor,
	}
}

// Login returns the account if username, password and totpCode are right
// and the account is active. It returns ErrInvalidCredentials for any wrong
// or unknown credential and while the account is locked or backing off,
// ErrMFARequired or ErrAccountInactive (code EFORBIDDEN) only after the
// credentials were checked, ErrBusy (code EUNAVAILABLE) when the Hasher's
// Pool had no memory free in time, and other errors if the store fails.
//
// When username names an account, these errors wrap the sentinel (test
// with errors.Is) in an error with an AccountID() string method, reached
// with errors.As, that names the account for the audit trail. Its message
// is the sentinel's, so the answer still does not tell whether the
// account exists.
//
// Each failure counts toward backoff and lockout; a success resets the
// count, records the TOTP step so the code cannot be used again, and
// rehashes the password if the Hasher's parameters changed.
//
// The password is hashed in the reserved part of the Hasher's Pool only
// for an account with no failure within LockFor, one attempt per account
// at a time; unknown usernames, locked or backing-off accounts, accounts
// that failed recently and further concurrent attempts use the shared
// part (see Pool, "Fairness").
func (a *Authenticator) Login(ctx context.Context, username, password, totpCode string) (*phivault.Account, error) {
	now := a.now()
	acc, err := a.Accounts.AccountByUsername(ctx, username)
	if errors.Is(err, phivault.ErrNotFound) {
		if err := a.Hasher.burn(ctx, password); err != nil {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	} else if err != nil {
		return nil, fmt.Errorf("identity: login: %w", err)
	}
	if a.refused(acc, now) {
		// Spend the same time as a real check, and do not count it.
		if err := a.Hasher.burn(ctx, password); err != nil {
			return nil, err
		}
		return nil, named(acc, ErrInvalidCredentials)
	}
	if acc.PasswordHash == "" {
		// No password is set (a new account, or one whose credentials
		// incident response cleared for re-enrolment): no password signs
		// in. Spend the time of a check, and do not count it.
		if err := a.Hasher.burn(ctx, password); err != nil {
			return nil, err
		}
		return nil, named(acc, ErrInvalidCredentials)
	}
	// An account with no recent failure vouches for one attempt at a time
	// in the reserved part of the hashing pool; a flood of failed logins
	// stays in the shared part (see Pool).
	c := claim{account: acc.ID}
	if a.failedRecently(acc, now) {
		c = claimShared
	}
	ok, rehash, err := a.Hasher.verify(ctx, acc.PasswordHash, password, c)
	if errors.Is(err, ErrBusy) {
		return nil, err // not counted: the password was not checked
	} else if err != nil {
		// A malformed stored hash is the store's problem, not the caller's.
		return nil, fmt.Errorf("identity: login: account %s: %w", acc.ID, err)
	}
	if !ok {
		return nil, a.fail(ctx, acc, now)
	}
	var step int64
	if len(acc.TOTPSecret) > 0 {
		s, ok := a.TOTP.Verify(acc.TOTPSecret, totpCode, now, acc.TOTPLastStep)
		if !ok {
			return nil, a.fail(ctx, acc, now)
		}
		step = s
	} else if !a.AllowNoMFA {
		return nil, named(acc, ErrMFARequired)
	}

	next := *acc
	next.Version++
	next.FailedLogins, next.LastFailure, next.LockedUntil = 0, time.Time{}, time.Time{}
	if step > 0 {
		next.TOTPLastStep = step
	}
	if rehash {
		if h, err := a.Hasher.HashContext(ctx, password); err == nil {
			next.PasswordHash = h
		}
	}
	if err := a.Accounts.UpdateAccount(ctx, &next); phivault.ErrorCode(err) == phivault.ECONFLICT {
		// Another login changed the account meanwhile, perhaps with the
		// same code: refuse rather than accept a code twice.
		return nil, named(acc, ErrInvalidCredentials)
	} else if err != nil {
		return nil, fmt.Errorf("identity: login: %w", err)
	}
	if next.Status != phivault.AccountActive {
		return nil, named(acc, ErrAccountInactive)
	}
	return &next, nil
}

// refused reports whether acc is locked or backing off at now.
func (a *Authenticator) refused(acc *phivault.Account, now time.Time) bool {
	if now.Before(acc.LockedUntil) {
		return true
	}
	return now.Before(acc.LastFailure.Add(a.backoff(acc.FailedLogins)))
}

// failedRecently reports whether acc has a failed login within its lockout
// period (LockFor) before now.
func (a *Authenticator) failedRecently(acc *phivault.Account, now time.Time) bool {
	lockFor := a.LockFor
	if lockFor <= 0 {
		lockFor = DefaultLockFor
	}
	return acc.FailedLogins > 0 && now.Before(acc.LastFailure.Add(lockFor))
}

// backoff returns how long to refuse attempts after n consecutive failures.
func (a *Authenticator) backoff(n int) time.Duration {
	after := a.BackoffAfter
	if after <= 0 {
		after = DefaultBackoffAfter
	}
	if n < after {
		return 0
	}
	base, limit := a.BackoffBase, a.BackoffMax
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if limit <= 0 {
		limit = DefaultBackoffMax
	}
	d := base
	for i := after; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// failureWriteTimeout bounds the write of a failed login whose caller has
// gone.
const failureWriteTimeout = 5 * time.Second

// fail records a failed login and returns ErrInvalidCredentials naming
// acc, or a store error. A concurrent update is retried on the fresh
// account so that no failure goes uncounted.
func (a *Authenticator) fail(ctx context.Context, acc *phivault.Account, now time.Time) error {
	// The password was checked: the failure counts even if the caller
	// went away meanwhile, or a flood of abandoned attempts would never
	// lock an account nor lose its place in the hashing pool.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureWriteTimeout)
	defer cancel()
	lockAfter, lockFor := a.LockAfter, a.LockFor
	if lockAfter <= 0 {
		lockAfter = DefaultLockAfter
	}
	if lockFor <= 0 {
		lockFor = DefaultLockFor
	}
	for range 3 {
		next := *acc
		next.Version++
		next.FailedLogins++
		next.LastFailure = now
		if next.FailedLogins >= lockAfter {
			next.LockedUntil = now.Add(lockFor)
		}
		err := a.Accounts.UpdateAccount(ctx, &next)
		if err == nil {
			return named(acc, ErrInvalidCredentials)
		} else if phivault.ErrorCode(err) != phivault.ECONFLICT {
			return fmt.Errorf("identity: record failed login: %w", err)
		}
		if acc, err = a.Accounts.AccountByID(ctx, acc.ID); err != nil {
			return fmt.Errorf("identity: record failed login: %w", err)
		}
	}
	return named(acc, ErrInvalidCredentials)
}

// accountError is a failed login's error when the username names an
// account: err, whose message it shows, and the account's id, which it
// does not.
type accountError struct {
	id  string
	err error
}

// named returns err carrying the id of acc.
func named(acc *phivault.Account, err error) error { return &accountError{id: acc.ID, err: err} }

func (e *accountError) Error() string { return e.err.Error() }
func (e *accountError) Unwrap() error { return e.err }

// AccountID returns the id of the account the failed login named.
func (e *accountError) AccountID() string { return e.id }

func (a *Authenticator) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}
