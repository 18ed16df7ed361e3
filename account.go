package phivault

import (
	"context"
	"log/slog"
	"time"
)

// Account statuses. Only an active account may log in.
const (
	AccountActive        = "active"
	AccountSuspended     = "suspended"
	AccountDeprovisioned = "deprovisioned"
)

// Account is a person who logs in with a password and a second factor.
//
// PasswordHash and TOTPSecret are credentials: they are never logged (see
// LogValue) and never shown to callers.
type Account struct {
	ID                 string   // random, immutable
	Username           string   // unique; used to log in
	Kind               string   // PrincipalStaff (the default when "") or PrincipalPatient
	Roles              []string // e.g. "physician", "nurse", "security-admin"
	Department         string
	Organization       string
	PractitionerID     string    // id of the linked Practitioner, or ""
	PatientID          string    // own Patient id for PrincipalPatient accounts, or ""
	Clearances         []string  // sensitivity labels the account may see: R, V, PSY, SUD, HIV, ETH, VIP
	TrainingValidUntil time.Time // security training expiry; zero means never trained
	Status             string    // AccountActive, AccountSuspended or AccountDeprovisioned
	ExternalID         string    // the provisioning system's id (SCIM externalId), or ""
	// FederatedSubject links the account to an external OpenID provider
	// login, as "issuer sub"; "" if none.
	FederatedSubject string

	PasswordHash string // PHC-encoded argon2id hash
	TOTPSecret   []byte // raw TOTP key; nil until MFA is enrolled
	TOTPLastStep int64  // last accepted TOTP time step; codes at or before it are refused
	// WebAuthn holds the registered WebAuthn credentials, encoded by the
	// webauthn package; nil if none. Like TOTPSecret it is sealed at rest.
	WebAuthn []byte

	FailedLogins int       // consecutive failed logins since the last success
	LastFailure  time.Time // time of the last failed login, for backoff
	LockedUntil  time.Time // zero, or logins are refused until then

	Created time.Time
	Version int64 // optimistic concurrency: 1 on create, one more on each update
}

// LogValue logs ids and status only, never credentials or the username.
func (a *Account) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", a.ID), slog.String("status", a.Status), slog.Int64("version", a.Version))
}

// AccountStore keeps accounts.
//
// Implementations are safe for concurrent use by multiple goroutines.
type AccountStore interface {
	// CreateAccount stores a new account with a.Version 1. It returns an
	// *Error with code ECONFLICT if the id or username is taken.
	CreateAccount(ctx context.Context, a *Account) error
	// AccountByID returns an account. Returns ErrNotFound if there is none.
	AccountByID(ctx context.Context, id string) (*Account, error)
	// AccountByUsername returns an account. Returns ErrNotFound if there is none.
	AccountByUsername(ctx context.Context, username string) (*Account, error)
	// UpdateAccount replaces the stored account a.ID, whose version must be
	// a.Version-1; otherwise it returns an *Error with code ECONFLICT (or
	// ErrNotFound if there is no such account) and writes nothing.
	UpdateAccount(ctx context.Context, a *Account) error
	// Accounts returns every account, ordered by id, with its credentials.
	// A listing that only shows accounts should use ListAccounts instead.
	Accounts(ctx context.Context) ([]*Account, error)
	// AccountByFederatedSubject returns the account linked to an external
	// login ("issuer sub"), or ErrNotFound.
	AccountByFederatedSubject(ctx context.Context, subject string) (*Account, error)
}

// AccountSummary is an account as a listing returns it: every field but
// its credentials, which it only says are set.
type AccountSummary struct {
	// Account has TOTPSecret and WebAuthn nil, whatever the store holds.
	// Never pass it to UpdateAccount: that would remove its credentials.
	Account  *Account
	TOTP     bool // a TOTP secret is enrolled
	WebAuthn bool // WebAuthn credentials are registered
}

// AccountLister is implemented by an AccountStore that can list accounts
// more cheaply than Accounts when their credentials are not needed, such
// as one that seals them (envelope.AccountStore).
type AccountLister interface {
	// AccountSummaries returns every account, ordered by id, WITHOUT its
	// TOTP secret or WebAuthn credentials, sealed or open: it MUST NOT
	// open (decrypt) them.
	AccountSummaries(ctx context.Context) ([]AccountSummary, error)
}

// ListAccounts returns every account in s, ordered by id, without its TOTP
// secret or WebAuthn credentials, for listings that show accounts but do
// not log anyone in. It uses s.AccountSummaries if s is an AccountLister;
// otherwise it reads s.Accounts and drops the credentials.
func ListAccounts(ctx context.Context, s AccountStore) ([]AccountSummary, error) {
	if l, ok := s.(AccountLister); ok {
		return l.AccountSummaries(ctx)
	}
	return SummarizeAccounts(s.Accounts(ctx))
}

// SummarizeAccounts summarizes every account of list (see
// SummarizeAccount), or returns err if it is not nil; it takes a listing's
// results as they come.
func SummarizeAccounts(list []*Account, err error) ([]AccountSummary, error) {
	if err != nil {
		return nil, err
	}
	out := make([]AccountSummary, len(list))
	for i, a := range list {
		out[i] = SummarizeAccount(a)
	}
	return out, nil
}

// SummarizeAccount returns the summary of a, whose TOTPSecret and WebAuthn
// it sets to nil (a's credentials may be sealed or open).
func SummarizeAccount(a *Account) AccountSummary {
	s := AccountSummary{Account: a, TOTP: len(a.TOTPSecret) > 0, WebAuthn: len(a.WebAuthn) > 0}
	a.TOTPSecret, a.WebAuthn = nil, nil
	return s
}
