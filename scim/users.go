package scim

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/identity"
)

// User is the SCIM User resource of an account. Password is write-only:
// it is never filled in an answer.
type User struct {
	Schemas    []string    `json:"schemas"`
	ID         string      `json:"id,omitempty"`
	ExternalID string      `json:"externalId,omitempty"`
	UserName   string      `json:"userName"`
	Active     *bool       `json:"active,omitempty"`
	Password   string      `json:"password,omitempty"`
	Roles      []MultiVal  `json:"roles,omitempty"`
	Groups     []MultiVal  `json:"groups,omitempty"` // read-only: the roles again, as groups
	Enterprise *Enterprise `json:"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,omitempty"`
	Meta       *Meta       `json:"meta,omitempty"`
}

// MultiVal is a value of a multi-valued attribute such as roles or members.
type MultiVal struct {
	Value   string `json:"value"`
	Display string `json:"display,omitempty"`
	Ref     string `json:"$ref,omitempty"`
	Primary bool   `json:"primary,omitempty"`
	Type    string `json:"type,omitempty"`
}

// Enterprise holds the enterprise extension attributes phivault stores.
type Enterprise struct {
	Department   string `json:"department,omitempty"`
	Organization string `json:"organization,omitempty"`
}

// Meta is a resource's meta attribute.
type Meta struct {
	ResourceType string `json:"resourceType"`
	Created      string `json:"created,omitempty"`
	Location     string `json:"location,omitempty"`
	Version      string `json:"version,omitempty"`
}

// userOf returns the SCIM view of a.
func (h *Handler) userOf(a *phivault.Account) User {
	active := a.Status == phivault.AccountActive
	u := User{
		Schemas: []string{SchemaUser, SchemaEnterprise}, ID: a.ID, ExternalID: a.ExternalID, UserName: a.Username,
		Active: &active,
		Meta: &Meta{ResourceType: "User", Created: a.Created.UTC().Format(time.RFC3339), Location: h.location("Users", a.ID),
			Version: fmt.Sprintf(`W/"%d"`, a.Version)},
	}
	for _, r := range a.Roles {
		u.Roles = append(u.Roles, MultiVal{Value: r})
		u.Groups = append(u.Groups, MultiVal{Value: r, Display: r, Ref: h.location("Groups", r)})
	}
	if a.Department != "" || a.Organization != "" {
		u.Enterprise = &Enterprise{Department: a.Department, Organization: a.Organization}
	}
	return u
}

// visible reports whether SCIM shows a: staff accounts not deprovisioned.
func visible(a *phivault.Account) bool {
	return a.Status != phivault.AccountDeprovisioned && (a.Kind == "" || a.Kind == phivault.PrincipalStaff)
}

// account returns the visible account id, or ErrNotFound.
func (h *Handler) account(ctx context.Context, id string) (*phivault.Account, error) {
	a, err := h.opts.Accounts.AccountByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !visible(a) {
		return nil, phivault.ErrNotFound
	}
	return a, nil
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) {
	start, count, err := page(r)
	var match func(*phivault.Account) bool
	if err == nil {
		match, err = userFilter(r.URL.Query().Get("filter"))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	accs, err := phivault.ListAccounts(r.Context(), h.opts.Accounts)
	if err != nil {
		writeError(w, err)
		return
	}
	var users []User
	for _, s := range accs {
		if a := s.Account; visible(a) && match(a) {
			users = append(users, h.userOf(a))
		}
	}
	writeJSON(w, http.StatusOK, pageOf(users, start, count))
}

func (h *Handler) getUser(w http.ResponseWriter, r *http.Request) {
	a, err := h.account(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.userOf(a))
}

// apply sets the attributes of u on a: the whole resource (PUT, POST).
// pw hashes u's password, once for every try of the change.
func apply(a *phivault.Account, u *User, pw *passwordHashes) error {
	a.Username, a.ExternalID = u.UserName, u.ExternalID
	a.Roles = nil
	for _, r := range u.Roles {
		a.Roles = append(a.Roles, r.Value)
	}
	a.Department, a.Organization = "", ""
	if u.Enterprise != nil {
		a.Department, a.Organization = u.Enterprise.Department, u.Enterprise.Organization
	}
	if u.Active != nil {
		a.Status = statusOf(*u.Active)
	}
	if u.Password != "" {
		if err := pw.set(a, u.Password); err != nil {
			return err
		}
	}
	return nil
}

func statusOf(active bool) string {
	if active {
		return phivault.AccountActive
	}
	return phivault.AccountSuspended
}

// passwordHashes sets the new password of one request's change, hashing it
// once however often the change is retried on a concurrent update: argon2
// is slow by design, and a retry must not pay for it again.
type passwordHashes struct {
	hasher                   *identity.Hasher
	username, password, hash string
}

func (h *Handler) passwordHashes() *passwordHashes {
	return &passwordHashes{hasher: h.opts.Hasher}
}

// set checks password against a's username, hashes it (or reuses the hash
// of the same password and username) and stores it on a, clearing the
// failed-login lockout.
func (p *passwordHashes) set(a *phivault.Account, password string) error {
	if p.hash == "" || p.username != a.Username || p.password != password {
		hash, err := admin.HashPassword(p.hasher, a.Username, password)
		if phivault.ErrorCode(err) == phivault.EINVALID {
			return invalid("invalidValue", "%s", phivault.ErrorMessage(err))
		} else if err != nil {
			return err
		}
		p.username, p.password, p.hash = a.Username, password, hash
	}
	a.PasswordHash = p.hash
	a.FailedLogins, a.LastFailure, a.LockedUntil = 0, time.Time{}, time.Time{}
	return nil
}

// check validates the attributes SCIM sets.
func check(a *phivault.Account) error {
	if err := admin.CheckUsername(a.Username); err != nil {
		return err
	}
	if err := admin.CheckText(a); err != nil {
		return err
	}
	return admin.CheckRoles(a.Roles, admin.DefaultRoles)
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request) {
	var u User
	err := decode(w, r, &u)
	a := &phivault.Account{Kind: phivault.PrincipalStaff, Status: phivault.AccountActive, Created: h.now().UTC()}
	if err == nil {
		err = apply(a, &u, h.passwordHashes())
	}
	if err == nil {
		err = check(a)
	}
	if err == nil {
		a.ID, err = h.newID()
	}
	if err == nil {
		err = h.opts.Accounts.CreateAccount(r.Context(), a)
		if phivault.ErrorCode(err) == phivault.ECONFLICT {
			err = &typedError{"uniqueness", phivault.Errorf(phivault.ECONFLICT, "The userName is taken.")}
		}
	}
	if err != nil {
		h.finish(w, r, a.ID, err, 0, nil)
		return
	}
	h.log.Info("scim: account created", "account", a)
	h.finish(w, r, a.ID, nil, http.StatusCreated, h.userOf(a))
}

// modify applies change to account id, retrying on a concurrent change,
// and revokes its sessions if what they rest on changed.
func (h *Handler) modify(ctx context.Context, id string, change func(*phivault.Account) error) (*phivault.Account, error) {
	old, a, err := admin.ChangeAccount(ctx, h.opts.Accounts, h.account, id, retries, change, check)
	if phivault.ErrorCode(err) == phivault.ECONFLICT {
		return nil, &typedError{"uniqueness", phivault.Errorf(phivault.ECONFLICT, "The userName is taken, or the account changed meanwhile.")}
	} else if err != nil {
		return nil, err
	}
	if admin.SessionsChanged(old, a) {
		return a, h.revoke(ctx, a.ID)
	}
	return a, nil
}

func (h *Handler) replaceUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var u User
	err := decode(w, r, &u)
	var a *phivault.Account
	if err == nil {
		pw := h.passwordHashes()
		a, err = h.modify(r.Context(), id, func(a *phivault.Account) error { return apply(a, &u, pw) })
	}
	if err != nil {
		h.finish(w, r, id, err, 0, nil)
		return
	}
	h.finish(w, r, id, nil, http.StatusOK, h.userOf(a))
}

// deleteUser deprovisions the account: it stays, disabled, so the audit
// trail keeps meaning, and every session ends.
func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, err := h.modify(r.Context(), id, func(a *phivault.Account) error {
		a.Status = phivault.AccountDeprovisioned
		return nil
	})
	if err == nil {
		h.log.Info("scim: account deprovisioned", "id", id)
	}
	h.finish(w, r, id, err, http.StatusNoContent, nil)
}
