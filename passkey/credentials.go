package passkey

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/phivault/phivault"
)

// encodingVersion is the version written by EncodeCredentials.
const encodingVersion = 1

// stored is the versioned JSON form of an account's credentials.
type stored struct {
	Version     int                   `json:"v"`
	Credentials []webauthn.Credential `json:"credentials"`
}

// EncodeCredentials returns the form of creds stored in
// [phivault.Account.WebAuthn]: JSON {"v":1,"credentials":[...]}, each
// credential in go-webauthn's JSON form. It returns nil for no credentials.
func EncodeCredentials(creds []webauthn.Credential) ([]byte, error) {
	if len(creds) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(stored{Version: encodingVersion, Credentials: creds})
	if err != nil {
		return nil, fmt.Errorf("encode webauthn credentials: %w", err)
	}
	return b, nil
}

// DecodeCredentials reads what EncodeCredentials wrote. nil or empty data
// means no credentials; an unknown version is an error.
func DecodeCredentials(data []byte) ([]webauthn.Credential, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var s stored
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode webauthn credentials: %w", err)
	}
	if s.Version != encodingVersion {
		return nil, fmt.Errorf("decode webauthn credentials: unknown version %d", s.Version)
	}
	return s.Credentials, nil
}

// user adapts an account to webauthn.User. Its user handle is the account
// id, which is random and carries no personal data.
type user struct {
	account *phivault.Account
	creds   []webauthn.Credential
}

func newUser(a *phivault.Account) (*user, error) {
	creds, err := DecodeCredentials(a.WebAuthn)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", a.ID, err)
	}
	return &user{account: a, creds: creds}, nil
}

func (u *user) WebAuthnID() []byte                         { return []byte(u.account.ID) }
func (u *user) WebAuthnName() string                       { return u.account.Username }
func (u *user) WebAuthnDisplayName() string                { return u.account.Username }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// credential returns the index of the credential with id, or -1.
func (u *user) credential(id []byte) int {
	for i := range u.creds {
		if bytes.Equal(u.creds[i].ID, id) {
			return i
		}
	}
	return -1
}
