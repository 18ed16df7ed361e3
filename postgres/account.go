package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/phivault/phivault"
)

var (
	_ phivault.AccountStore  = (*DB)(nil)
	_ phivault.AccountLister = (*DB)(nil)
)

const accountCols = `id, username, roles, department, practitioner_id, training_valid_until, status,
	password_hash, totp_secret, totp_last_step, failed_logins, last_failure, locked_until, created, version,
	kind, organization, patient_id, clearances, external_id, federated_subject, webauthn`

// summaryCols is accountCols with each credential replaced by a one-byte
// marker if it is set, for listings that must not read credentials.
var summaryCols = strings.NewReplacer(
	"totp_secret", "CASE WHEN length(totp_secret) > 0 THEN decode('01', 'hex') END",
	"webauthn", "CASE WHEN length(webauthn) > 0 THEN decode('01', 'hex') END",
).Replace(accountCols)

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// optTime is t in UTC at the microsecond precision PostgreSQL keeps, or NULL
// for the zero time.
func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond)
}

// timeOrZero is *t in UTC, or the zero time for NULL.
func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// strs is list for a text[] NOT NULL column: pgx sends a nil slice as NULL.
func strs(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

func accountArgs(a *phivault.Account) []any {
	return []any{a.ID, a.Username, strs(a.Roles), a.Department, a.PractitionerID, optTime(a.TrainingValidUntil), a.Status,
		a.PasswordHash, a.TOTPSecret, a.TOTPLastStep, a.FailedLogins, optTime(a.LastFailure), optTime(a.LockedUntil),
		optTime(a.Created), a.Version,
		a.Kind, a.Organization, a.PatientID, strs(a.Clearances), a.ExternalID, a.FederatedSubject, a.WebAuthn}
}

// scanAccount reads a row of accountCols. Like the sqlite store it returns
// Roles as an empty slice and Clearances and WebAuthn as nil when empty.
func scanAccount(row pgx.Row) (*phivault.Account, error) {
	var (
		a                                      phivault.Account
		training, lastFailure, locked, created *time.Time
	)
	err := row.Scan(&a.ID, &a.Username, &a.Roles, &a.Department, &a.PractitionerID, &training, &a.Status,
		&a.PasswordHash, &a.TOTPSecret, &a.TOTPLastStep, &a.FailedLogins, &lastFailure, &locked, &created, &a.Version,
		&a.Kind, &a.Organization, &a.PatientID, &a.Clearances, &a.ExternalID, &a.FederatedSubject, &a.WebAuthn)
	if err != nil {
		return nil, err
	}
	if a.Roles == nil {
		a.Roles = []string{}
	}
	if len(a.Clearances) == 0 {
		a.Clearances = nil
	}
	if len(a.WebAuthn) == 0 {
		a.WebAuthn = nil
	}
	a.TrainingValidUntil, a.LastFailure = timeOrZero(training), timeOrZero(lastFailure)
	a.LockedUntil, a.Created = timeOrZero(locked), timeOrZero(created)
	return &a, nil
}

// CreateAccount stores a new account and sets a.Version to 1. It returns an
// *phivault.Error with code ECONFLICT if the id, username or federated
// subject is taken.
func (db *DB) CreateAccount(ctx context.Context, a *phivault.Account) error {
	if a.ID == "" || a.Username == "" {
		return phivault.Errorf(phivault.EINVALID, "An account needs an id and a username.")
	}
	c := *a
	c.Version = 1
	_, err := db.pool.Exec(ctx, `INSERT INTO accounts (`+accountCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
		accountArgs(&c)...)
	if isUniqueViolation(err) {
		return phivault.Errorf(phivault.ECONFLICT, "The account id, username or federated login is taken.")
	} else if err != nil {
		return mapErr("create account", ctxErr(ctx, err))
	}
	a.Version = 1
	return nil
}

// AccountByID returns an account, or phivault.ErrNotFound.
func (db *DB) AccountByID(ctx context.Context, id string) (*phivault.Account, error) {
	return db.account(ctx, `id = $1`, id)
}

// AccountByUsername returns an account, or phivault.ErrNotFound.
func (db *DB) AccountByUsername(ctx context.Context, username string) (*phivault.Account, error) {
	return db.account(ctx, `username = $1`, username)
}

// AccountByFederatedSubject returns the account linked to an external
// login, or phivault.ErrNotFound.
func (db *DB) AccountByFederatedSubject(ctx context.Context, subject string) (*phivault.Account, error) {
	if subject == "" {
		return nil, phivault.ErrNotFound
	}
	return db.account(ctx, `federated_subject = $1`, subject)
}

func (db *DB) account(ctx context.Context, where, arg string) (*phivault.Account, error) {
	a, err := scanAccount(db.pool.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, phivault.ErrNotFound
	} else if err != nil {
		return nil, mapErr("account", ctxErr(ctx, err))
	}
	return a, nil
}

// Accounts returns every account, ordered by id.
func (db *DB) Accounts(ctx context.Context) ([]*phivault.Account, error) {
	return db.accounts(ctx, accountCols)
}

// AccountSummaries returns every account, ordered by id, without reading
// its credentials: the query selects only whether each is set.
func (db *DB) AccountSummaries(ctx context.Context) ([]phivault.AccountSummary, error) {
	return phivault.SummarizeAccounts(db.accounts(ctx, summaryCols))
}

// accounts returns every account, ordered by id, read through cols
// (accountCols or summaryCols).
func (db *DB) accounts(ctx context.Context, cols string) ([]*phivault.Account, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+cols+` FROM accounts ORDER BY id`)
	if err != nil {
		return nil, mapErr("accounts", ctxErr(ctx, err))
	}
	defer rows.Close()
	var list []*phivault.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, mapErr("accounts", err)
		}
		list = append(list, a)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("accounts", ctxErr(ctx, err))
	}
	return list, nil
}

// updateAccountQuery replaces the row only at the expected version, and
// reports in the same round trip whether it did and whether the id exists
// (both as of the statement's start).
const updateAccountQuery = `
WITH upd AS (
	UPDATE accounts SET username = $2, roles = $3, department = $4, practitioner_id = $5,
		training_valid_until = $6, status = $7, password_hash = $8, totp_secret = $9, totp_last_step = $10,
		failed_logins = $11, last_failure = $12, locked_until = $13, created = $14, version = $15,
		kind = $16, organization = $17, patient_id = $18, clearances = $19, external_id = $20,
		federated_subject = $21, webauthn = $22
	WHERE id = $1 AND version = $23
	RETURNING 1
)
SELECT EXISTS (SELECT FROM upd), EXISTS (SELECT FROM accounts WHERE id = $1)`

// UpdateAccount replaces account a.ID if its stored version is
// a.Version-1. Otherwise it returns an *phivault.Error with code ECONFLICT
// (also for a username or federated subject that another account has), or
// phivault.ErrNotFound, and writes nothing.
func (db *DB) UpdateAccount(ctx context.Context, a *phivault.Account) error {
	var updated, exists bool
	err := db.pool.QueryRow(ctx, updateAccountQuery, append(accountArgs(a), a.Version-1)...).Scan(&updated, &exists)
	switch {
	case isUniqueViolation(err):
		return phivault.Errorf(phivault.ECONFLICT, "The username or federated login is taken.")
	case err != nil:
		return mapErr("update account", ctxErr(ctx, err))
	case updated:
		return nil
	case !exists:
		return phivault.ErrNotFound
	}
	return phivault.Errorf(phivault.ECONFLICT, "The account changed since it was read.")
}
