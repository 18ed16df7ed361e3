package envelope

import (
	"context"
	"crypto/subtle"

	"github.com/phivault/phivault"
)

// AccountsKeyID names the DEK that seals account credentials. It is stored
// in the keys table like every DEK, so Rewrap rewraps it under a new KEK.
const AccountsKeyID = "system/accounts"

// Credential field names, bound into the additional data of their sealed
// values.
const (
	fieldTOTP     = "totp_secret"
	fieldWebAuthn = "webauthn"
)

// credentialAD prefixes the additional data of a sealed credential, so it
// can never be confused with a resource version's.
const credentialAD = "phivault account credential"

// AccountStore is a phivault.AccountStore that seals each account's
// TOTPSecret and WebAuthn credentials before they reach the store it wraps,
// and opens them on the way back: its callers see plaintext, the store
// sees only ciphertext.
//
// A credential is sealed with AES-256-GCM under the DEK AccountsKeyID, with
// the account id and the field name as additional data, so a sealed value
// copied to another account or field fails to open (phivault.ErrIntegrity).
// A nil or empty credential is stored as nil. The other fields, the
// PasswordHash included (a slow hash, not a secret key), are stored as they
// are.
//
// AccountStore is safe for concurrent use by multiple goroutines.
type AccountStore struct {
	accounts phivault.AccountStore
	store    phivault.Store
	sealer   *Sealer
	box      secretBox // seals under AccountsKeyID
}

var (
	_ phivault.AccountStore  = (*AccountStore)(nil)
	_ phivault.AccountLister = (*AccountStore)(nil)
)

// NewAccountStore returns an AccountStore that keeps accounts in accounts
// and its DEK in store (usually the same database), sealed by sealer: the
// DEK is wrapped by the sealer's keyring, and dropped from memory with the
// sealer's other keys (Sealer.ForgetAll).
func NewAccountStore(accounts phivault.AccountStore, store phivault.Store, sealer *Sealer) *AccountStore {
	return &AccountStore{accounts: accounts, store: store, sealer: sealer,
		box: secretBox{store: store, sealer: sealer, keyID: AccountsKeyID, ad: credentialAD, what: "credential"}}
}

// CreateAccount seals a's credentials and stores it; a itself keeps its
// plaintext. See phivault.AccountStore.
func (s *AccountStore) CreateAccount(ctx context.Context, a *phivault.Account) error {
	c := *a
	if err := s.sealCredentials(ctx, &c, nil); err != nil {
		return err
	}
	if err := s.accounts.CreateAccount(ctx, &c); err != nil {
		return err
	}
	a.Version = c.Version
	return nil
}

// UpdateAccount seals a's credentials and replaces the stored account. See
// phivault.AccountStore.
//
// A credential that did not change keeps its stored ciphertext instead of
// being sealed again: every login updates the account, and a fresh random
// nonce per login would spend the one accounts DEK's AES-GCM budget (2^32
// random nonces) on nothing.
func (s *AccountStore) UpdateAccount(ctx context.Context, a *phivault.Account) error {
	stored, err := s.accounts.AccountByID(ctx, a.ID)
	if err != nil {
		return err
	}
	if stored.Version != a.Version-1 {
		return phivault.Errorf(phivault.ECONFLICT, "The account changed since it was read.")
	}
	c := *a
	if err := s.sealCredentials(ctx, &c, stored); err != nil {
		return err
	}
	return s.accounts.UpdateAccount(ctx, &c)
}

// AccountByID returns an account with its credentials opened.
func (s *AccountStore) AccountByID(ctx context.Context, id string) (*phivault.Account, error) {
	a, err := s.accounts.AccountByID(ctx, id)
	return s.opened(ctx, a, err)
}

// AccountByUsername returns an account with its credentials opened.
func (s *AccountStore) AccountByUsername(ctx context.Context, username string) (*phivault.Account, error) {
	a, err := s.accounts.AccountByUsername(ctx, username)
	return s.opened(ctx, a, err)
}

// AccountByFederatedSubject returns an account with its credentials opened.
func (s *AccountStore) AccountByFederatedSubject(ctx context.Context, subject string) (*phivault.Account, error) {
	a, err := s.accounts.AccountByFederatedSubject(ctx, subject)
	return s.opened(ctx, a, err)
}

// Accounts returns every account, ordered by id, with credentials opened.
// It fails as a whole if any credential does not open.
func (s *AccountStore) Accounts(ctx context.Context) ([]*phivault.Account, error) {
	list, err := s.accounts.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range list {
		if err := s.openCredentials(ctx, a); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// AccountSummaries returns every account, ordered by id, WITHOUT its TOTP
// secret or WebAuthn credentials, sealed or open: it says only whether
// they are set, and opens nothing, so a listing neither unwraps a key nor
// holds every account's secrets. See phivault.AccountLister.
func (s *AccountStore) AccountSummaries(ctx context.Context) ([]phivault.AccountSummary, error) {
	return phivault.ListAccounts(ctx, s.accounts)
}

// opened returns a with its credentials opened, or err.
func (s *AccountStore) opened(ctx context.Context, a *phivault.Account, err error) (*phivault.Account, error) {
	if err != nil {
		return nil, err
	}
	if err := s.openCredentials(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// credentials returns pointers to a's sealed fields, with their names.
func credentials(a *phivault.Account) []struct {
	name string
	v    *[]byte
} {
	return []struct {
		name string
		v    *[]byte
	}{{fieldTOTP, &a.TOTPSecret}, {fieldWebAuthn, &a.WebAuthn}}
}

// sealCredentials replaces a's credentials with their sealed form. If
// stored (the stored account a replaces) holds a sealed credential that
// opens to the same plaintext, it is reused.
func (s *AccountStore) sealCredentials(ctx context.Context, a, stored *phivault.Account) error {
	var dek *keyEntry
	for i, f := range credentials(a) {
		pt := *f.v
		if len(pt) == 0 {
			*f.v = nil
			continue
		}
		if stored != nil {
			old := *credentials(stored)[i].v
			if prev, err := s.box.open(ctx, a.ID, f.name, old); err == nil && prev != nil {
				same := subtle.ConstantTimeCompare(prev, pt) == 1
				clear(prev)
				if same {
					*f.v = old
					continue
				}
			}
		}
		if dek == nil {
			var err error
			if dek, err = s.box.currentDEK(ctx); err != nil {
				return err
			}
		}
		sealed, err := s.box.seal(dek, a.ID, f.name, pt)
		if err != nil {
			return err
		}
		*f.v = sealed
	}
	return nil
}

// openCredentials replaces a's sealed credentials with their plaintext.
func (s *AccountStore) openCredentials(ctx context.Context, a *phivault.Account) error {
	for _, f := range credentials(a) {
		pt, err := s.box.open(ctx, a.ID, f.name, *f.v)
		if err != nil {
			return err
		}
		*f.v = pt
	}
	return nil
}
