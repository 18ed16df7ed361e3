package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

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
	"totp_secret", "CASE WHEN length(totp_secret) > 0 THEN x'01' END",
	"webauthn", "CASE WHEN length(webauthn) > 0 THEN x'01' END",
).Replace(accountCols)

// micros is t in Unix microseconds, or 0 for the zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicrosOrZero(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return fromMicros(us)
}

// jsonStrings encodes a string list as a JSON array, [] for nil.
func jsonStrings(list []string) string {
	if list == nil {
		list = []string{}
	}
	b, _ := json.Marshal(list) // a []string always encodes
	return string(b)
}

func accountArgs(a *phivault.Account) []any {
	return []any{a.ID, a.Username, jsonStrings(a.Roles), a.Department, a.PractitionerID, micros(a.TrainingValidUntil), a.Status,
		a.PasswordHash, a.TOTPSecret, a.TOTPLastStep, a.FailedLogins, micros(a.LastFailure), micros(a.LockedUntil),
		micros(a.Created), a.Version,
		a.Kind, a.Organization, a.PatientID, jsonStrings(a.Clearances), a.ExternalID, a.FederatedSubject, a.WebAuthn}
}

func scanAccount(row interface{ Scan(...any) error }) (*phivault.Account, error) {
	var (
		a                                      phivault.Account
		roles, clearances                      string
		training, lastFailure, locked, created int64
	)
	err := row.Scan(&a.ID, &a.Username, &roles, &a.Department, &a.PractitionerID, &training, &a.Status,
		&a.PasswordHash, &a.TOTPSecret, &a.TOTPLastStep, &a.FailedLogins, &lastFailure, &locked, &created, &a.Version,
		&a.Kind, &a.Organization, &a.PatientID, &clearances, &a.ExternalID, &a.FederatedSubject, &a.WebAuthn)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(roles), &a.Roles); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(clearances), &a.Clearances); err != nil {
		return nil, err
	}
	if len(a.Clearances) == 0 {
		a.Clearances = nil
	}
	if len(a.WebAuthn) == 0 {
		a.WebAuthn = nil
	}
	a.TrainingValidUntil, a.LastFailure = fromMicrosOrZero(training), fromMicrosOrZero(lastFailure)
	a.LockedUntil, a.Created = fromMicrosOrZero(locked), fromMicrosOrZero(created)
	return &a, nil
}

// CreateAccount stores a new account and sets a.Version to 1. It returns an
// *phivault.Error with code ECONFLICT if the id or username is taken.
func (db *DB) CreateAccount(ctx context.Context, a *phivault.Account) error {
	if a.ID == "" || a.Username == "" {
		return phivault.Errorf(phivault.EINVALID, "An account needs an id and a username.")
	}
	c := *a
	c.Version = 1
	args := accountArgs(&c)
	err := db.Update(ctx, func(stx phivault.StoreTx) error {
		t := stx.(*Tx)
		qctx, err := t.begin(ctx)
		if err != nil {
			return err
		}
		_, err = t.conn.ExecContext(qctx, `INSERT INTO accounts (`+accountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		if isUniqueViolation(err) {
			return phivault.Errorf(phivault.ECONFLICT, "The account id or username is taken.")
		} else if err != nil {
			return t.fail(ctx, "create account", err)
		}
		return nil
	})
	if err == nil {
		a.Version = 1
	}
	return err
}

// AccountByID returns an account, or phivault.ErrNotFound.
func (db *DB) AccountByID(ctx context.Context, id string) (*phivault.Account, error) {
	return db.account(ctx, `id = ?`, id)
}

// AccountByFederatedSubject returns the account linked to an external
// login, or phivault.ErrNotFound.
func (db *DB) AccountByFederatedSubject(ctx context.Context, subject string) (*phivault.Account, error) {
	if subject == "" {
		return nil, phivault.ErrNotFound
	}
	return db.account(ctx, `federated_subject = ?`, subject)
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
	var list []*phivault.Account
	err := db.View(ctx, func(stx phivault.StoreTx) error {
		t := stx.(*Tx)
		rows, err := t.conn.QueryContext(ctx, `SELECT `+cols+` FROM accounts ORDER BY id`)
		if err != nil {
			return t.fail(ctx, "accounts", err)
		}
		defer rows.Close()
		list = list[:0]
		for rows.Next() {
			a, err := scanAccount(rows)
			if err != nil {
				return t.fail(ctx, "accounts", err)
			}
			list = append(list, a)
		}
		if err := rows.Err(); err != nil {
			return t.fail(ctx, "accounts", err)
		}
		return nil
	})
	return list, err
}

// AccountByUsername returns an account, or phivault.ErrNotFound.
func (db *DB) AccountByUsername(ctx context.Context, username string) (*phivault.Account, error) {
	return db.account(ctx, `username = ?`, username)
}

func (db *DB) account(ctx context.Context, where string, arg string) (*phivault.Account, error) {
	var a *phivault.Account
	err := db.View(ctx, func(stx phivault.StoreTx) error {
		t := stx.(*Tx)
		var err error
		a, err = scanAccount(t.conn.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE `+where, arg))
		if errors.Is(err, sql.ErrNoRows) {
			return phivault.ErrNotFound
		} else if err != nil {
			return t.fail(ctx, "account", err)
		}
		return nil
	})
	return a, err
}

// UpdateAccount replaces account a.ID if its stored version is
// a.Version-1. Otherwise it returns an *phivault.Error with code ECONFLICT,
// or phivault.ErrNotFound, and writes nothing.
func (db *DB) UpdateAccount(ctx context.Context, a *phivault.Account) error {
	args := accountArgs(a)
	return db.Update(ctx, func(stx phivault.StoreTx) error {
		t := stx.(*Tx)
		qctx, err := t.begin(ctx)
		if err != nil {
			return err
		}
		// args[1:] are the columns after id, ending with version.
		res, err := t.conn.ExecContext(qctx, `UPDATE accounts SET username = ?, roles = ?, department = ?,
			practitioner_id = ?, training_valid_until = ?, status = ?, password_hash = ?, totp_secret = ?,
			totp_last_step = ?, failed_logins = ?, last_failure = ?, locked_until = ?, created = ?, version = ?,
			kind = ?, organization = ?, patient_id = ?, clearances = ?, external_id = ?, federated_subject = ?, webauthn = ?
			WHERE id = ? AND version = ?`, append(args[1:], a.ID, a.Version-1)...)
		if isUniqueViolation(err) {
			return phivault.Errorf(phivault.ECONFLICT, "The username or federated login is taken.")
		} else if err != nil {
			return t.fail(ctx, "update account", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return t.fail(ctx, "update account", err)
		} else if n == 1 {
			return nil
		}
		var exists bool
		if err := t.conn.QueryRowContext(qctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?)`, a.ID).Scan(&exists); err != nil {
			return t.fail(ctx, "update account", err)
		}
		if !exists {
			return phivault.ErrNotFound
		}
		return phivault.Errorf(phivault.ECONFLICT, "The account changed since it was read.")
	})
}
