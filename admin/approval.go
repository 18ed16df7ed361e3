package admin

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/smart"
)

// No one person gives an account access to patients' records, or a vote
// on such changes, alone (four-eyes rule, HIPAA 164.308(a)(3)-(4)). These
// changes are not applied when asked for: they are stored as a pending
// change that a second security admin approves or rejects.
//
//   - A change to one's own account that alters what access rests on:
//     roles, clearances, practitioner link, department, organization,
//     status, training date, or removing one's TOTP.
//   - A grant to any account: creating an account, or changing one, so
//     that it holds a role of GrantRoles, a clearance, a practitioner link
//     or a patient link it did not hold before. A new account that holds
//     one is created only when the change is approved: until then it does
//     not exist.
//   - A reset of another person's credentials: setting their password or
//     removing their TOTP. Replacing an enrolled TOTP is refused to
//     everyone: it is removed first, which waits for approval.
//   - A client that reaches patients' records (see reachesRecords):
//     registering one, raising a client's scopes so that they reach
//     records they did not, or trusting a new key or redirect URI of such
//     a client (see gateClient). Whoever holds the key, or receives at the
//     URI, gets the client's access: a backend client with system/*.rs
//     reads every unlabelled record. A new client exists only once
//     approved.
//
//   - Where the site asks for it (Options.ApproveKeyActions), an action
//     that cannot be undone: crypto-shredding a patient, or marking a
//     key-encryption key version compromised. No one alone destroys
//     records for good, or forces every stored key to be rewrapped; and
//     no system client does it at all.
//
// Only an identified person asks and approves: a staff principal with
// AdminRole. The approver is neither the one who asked nor the account
// changed. A system principal (the bootstrap token) or no principal can
// neither ask for such a change nor approve one; the bootstrap token may
// only create the first security admins (see mayBootstrap) and, in the
// same setup window, clients (see gateClient). Everything else
// (suspending, removing roles, department or training of others, a first
// TOTP, suspending a client, lowering its scopes, removing its keys)
// applies at once, as before. Every step is an audit entry.

// Defaults of change approval.
const (
	// DefaultApprovalTTL is how long a pending change waits for a second
	// admin before it lapses.
	DefaultApprovalTTL = 24 * time.Hour
	// maxPendingChanges bounds the pending changes; only admins create
	// them.
	maxPendingChanges = 1000
	// minAdmins is how many active security admins it takes to close the
	// bootstrap token's window for creating them: two, one to ask and one
	// to approve.
	minAdmins = 2
)

// GrantRoles are the roles whose grant waits for a second admin: the
// roles the default policies let reach patients' records (physician,
// nurse, front desk, billing) and AdminRole, which approves such grants.
// A site whose own policies let another role read records should not
// rely on granting it at once being harmless.
var GrantRoles = []string{"physician", "nurse", "front-desk", "billing", AdminRole}

// Change kinds of a PendingChange.
const (
	ChangeCreate     = "create"      // POST users of an account that holds a grant
	ChangeUpdate     = "update"      // a UserUpdate (PATCH, or PUT training)
	ChangePassword   = "password"    // POST users/{id}/password of another person
	ChangeTOTPRemove = "totp-remove" // DELETE users/{id}/totp

	ChangeClientCreate = "client-create" // POST clients of a client that reaches records
	ChangeClientUpdate = "client-update" // PATCH clients/{id} that widens its reach or trusts a new key or redirect URI

	ChangeShred          = "shred"           // POST patients/{id}/$shred, with Options.ApproveKeyActions
	ChangeKeyCompromised = "key-compromised" // POST keys/{kek}/$compromised, with Options.ApproveKeyActions
)

// Why a change waits, as PendingChange.Reason says.
const (
	ReasonSelf        = "self"        // a change to the requester's own account
	ReasonGrant       = "grant"       // it gives access to records (to an account or a client) or the admin role
	ReasonCredentials = "credentials" // it resets another person's credentials, or a client's that reaches records
	ReasonDestructive = "destructive" // it cannot be undone (Options.ApproveKeyActions)
)

// PendingChange is a change waiting for a second admin, as GET
// /admin/changes shows it.
type PendingChange struct {
	ID string `json:"id"`
	// AccountID is the account an account change is for (for ChangeCreate,
	// the id it will have); ClientID the client a client change is for
	// (for ChangeClientCreate, the client_id it will have); PatientID the
	// patient a ChangeShred shreds; KeyID the key-encryption key version a
	// ChangeKeyCompromised marks. One is set.
	AccountID   string `json:"account_id,omitempty"`
	ClientID    string `json:"client_id,omitempty"`
	PatientID   string `json:"patient_id,omitempty"`
	KeyID       string `json:"key_id,omitempty"`
	RequestedBy string `json:"requested_by"` // the principal (account) that asked
	Requested   string `json:"requested"`
	Expires     string `json:"expires"`
	Kind        string `json:"kind"`   // one of the Change kinds
	Reason      string `json:"reason"` // ReasonSelf, ReasonGrant or ReasonCredentials
	// Update is the change of a ChangeUpdate; Create the account a
	// ChangeCreate makes, as GET users would show it. Neither holds a
	// password or its hash.
	Update *UserUpdate `json:"update,omitempty"`
	Create *User       `json:"create,omitempty"`
	// ClientUpdate is the change of a ChangeClientUpdate (its jwks public
	// keys only); Client the client a ChangeClientCreate registers, as GET
	// clients would show it.
	ClientUpdate *ClientUpdate `json:"client_update,omitempty"`
	Client       *ClientView   `json:"client,omitempty"`
}

// target names what c changes, for its audit entries: "Account",
// "Client", "Patient" or "Key", and its id.
func (c *PendingChange) target() (typ, id string) {
	switch {
	case c.ClientID != "":
		return "Client", c.ClientID
	case c.PatientID != "":
		return "Patient", c.PatientID
	case c.KeyID != "":
		return "Key", c.KeyID
	}
	return "Account", c.AccountID
}

// detail is what the audit entries of c's request and approval add to
// the step: "; " and the status and reason of an update that gives a
// reason (statusDecision), or "".
func (c *PendingChange) detail() string {
	var d string
	switch {
	case c.Update != nil:
		d = statusDecision(c.Update.Status, c.Update.Reason)
	case c.ClientUpdate != nil:
		d = statusDecision(c.ClientUpdate.Status, c.ClientUpdate.Reason)
	}
	if d == "" {
		return ""
	}
	return "; " + d
}

// pendingChange is a stored PendingChange.
type pendingChange struct {
	PendingChange
	expires time.Time
	// apply makes the change once approved and returns the answer to the
	// approval: what was changed, as stored, in its public view.
	apply func(ctx context.Context) (any, error)
}

// userView makes the apply func of an account change from change, which
// returns the account as stored: the approval answers it as GET users
// shows it.
func userView(change func(context.Context) (*phivault.Account, error)) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		a, err := change(ctx)
		if err != nil {
			return nil, err
		}
		return NewUser(a), nil
	}
}

// approvals holds the pending changes, in memory: a restart drops them,
// and the admin asks again (nothing is applied without approval).
type approvals struct {
	mu sync.Mutex
	m  map[string]*pendingChange
}

// registerApprovals adds the approval routes to h.
func registerApprovals(h *Handler) {
	h.approvals.m = map[string]*pendingChange{}
	h.mux.Handle("GET /admin/changes", h.manage(h.listChanges))
	h.mux.Handle("POST /admin/changes/{change}/approve", h.manage(h.approveChange))
	h.mux.Handle("POST /admin/changes/{change}/reject", h.manage(h.rejectChange))
}

// person returns the caller of r if it is an identified person who may
// ask for and approve changes: a staff principal with AdminRole and an id.
// It returns nil for the bootstrap token, any other system principal, and
// no principal.
func person(r *http.Request) *phivault.Principal {
	p := phivault.PrincipalFromContext(r.Context())
	if p == nil || p.Kind != phivault.PrincipalStaff || p.ID == "" || !p.HasRole(AdminRole) {
		return nil
	}
	return p
}

// isSelf reports whether the caller of r is the account id itself: a
// staff principal (a person) changing their own account.
func isSelf(r *http.Request, id string) bool {
	p := phivault.PrincipalFromContext(r.Context())
	return p != nil && p.Kind == phivault.PrincipalStaff && p.ID != "" && p.ID == id
}

// grants reports whether a holds a role of GrantRoles, a clearance, a
// practitioner link or a patient link that old does not; old nil is an
// account being created.
func grants(old, a *phivault.Account) bool {
	if old == nil {
		old = &phivault.Account{}
	}
	for _, r := range a.Roles {
		if slices.Contains(GrantRoles, r) && !slices.Contains(old.Roles, r) {
			return true
		}
	}
	for _, c := range a.Clearances {
		if !slices.Contains(old.Clearances, c) {
			return true
		}
	}
	return a.PractitionerID != "" && a.PractitionerID != old.PractitionerID ||
		a.PatientID != "" && a.PatientID != old.PatientID
}

// accessChanged reports whether anything access decisions rest on differs
// between old and a: everything but the username, external id and
// credentials.
func accessChanged(old, a *phivault.Account) bool {
	return !slices.Equal(old.Roles, a.Roles) || !slices.Equal(old.Clearances, a.Clearances) ||
		old.PractitionerID != a.PractitionerID || old.Department != a.Department || old.Organization != a.Organization ||
		old.Status != a.Status || !old.TrainingValidUntil.Equal(a.TrainingValidUntil)
}

// errAwaitsApproval is returned by gate for a change that waits for a
// second admin; the handler then stores it as a pending change.
var errAwaitsApproval = errors.New("admin: change awaits a second admin")

var errDestructiveNeedsPerson = phivault.Errorf(phivault.EFORBIDDEN,
	"On this server, crypto-shredding a patient and marking a key compromised need two security admins: one signs in and asks, another approves. "+
		"The bootstrap token and other system clients cannot ask.")

// awaitsSecondAdmin reports whether an admin route of audit action
// action stores a pending change rather than acting (see
// Options.ApproveKeyActions).
func (h *Handler) awaitsSecondAdmin(action string) bool {
	return h.opts.ApproveKeyActions && (action == phivault.ActionShred || action == phivault.ActionKeyCompromised)
}

var errNeedsPerson = phivault.Errorf(phivault.EFORBIDDEN,
	"This change gives access to patients' records or to approving such changes: a security admin signs in and asks for it, and another approves it. "+
		"The bootstrap token only creates the first two security admins.")

// gate decides a change, asked for in r, of the account old into a (old
// nil for an account being created): nil applies it at once,
// errAwaitsApproval makes it wait for a second admin, and errNeedsPerson
// refuses it to a caller who may not ask. It returns the reason a waiting
// change waits.
func (u *userRoutes) gate(r *http.Request, old, a *phivault.Account) (string, error) {
	reason := ""
	switch {
	case old != nil && isSelf(r, a.ID) && accessChanged(old, a):
		reason = ReasonSelf
	case grants(old, a):
		reason = ReasonGrant
	default:
		return "", nil
	}
	if person(r) != nil {
		return reason, errAwaitsApproval
	}
	if old == nil {
		ok, err := u.mayBootstrap(r, a)
		if err != nil || ok {
			return "", err
		}
	}
	return "", errNeedsPerson
}

// mayBootstrap reports whether the bootstrap token may create a at once:
// a staff account with AdminRole and no clinical role, clearance or
// practitioner link, while fewer than two active security admins exist
// (see bootstrapping). That lets "phivault init"'s token make the first
// admins, one to ask and one to approve, and make a new one when fewer
// than two remain (after an admin left, or was suspended when locked
// out). It never lets the token make a third: from then on admins are made
// by one admin and approved by another. The caller holds u.createMu until
// the account is stored, so that two requests at once cannot both pass.
func (u *userRoutes) mayBootstrap(r *http.Request, a *phivault.Account) (bool, error) {
	if a.Kind != phivault.PrincipalStaff || !slices.Contains(a.Roles, AdminRole) ||
		grants(&phivault.Account{Roles: []string{AdminRole}}, a) {
		return false, nil
	}
	return u.h.bootstrapping(r)
}

// bootstrapping reports whether the caller of r is the bootstrap token
// while fewer than two active security admins exist: the setup window, in
// which the token, root of trust until then, makes the first admins.
func (h *Handler) bootstrapping(r *http.Request) (bool, error) {
	p := phivault.PrincipalFromContext(r.Context())
	if p == nil || p.Kind != phivault.PrincipalSystem || !p.HasRole(BootstrapRole) {
		return false, nil
	}
	n, err := h.activeAdmins(r.Context())
	return n < minAdmins, err
}

var errClientNeedsPerson = phivault.Errorf(phivault.EFORBIDDEN,
	"This client reaches patients' records: a security admin signs in and asks for it, and another approves it. "+
		"The bootstrap token registers such clients only until two security admins exist.")

// gateClient decides a change, asked for in r, of the client old into c
// (old nil for a client being registered), as gate does for accounts: nil
// applies it at once, errAwaitsApproval makes it wait for a second admin,
// and errClientNeedsPerson refuses it to a caller who may not ask. A
// change waits if c holds a scope that reaches patients' records and that
// old did not allow (ReasonGrant; every such scope of a new client), or if
// c reaches records and trusts a key or redirect URI old did not
// (ReasonCredentials). It returns the reason a waiting change waits.
//
// The bootstrap token applies such changes at once while it is
// bootstrapping: until two security admins exist it is the only admin,
// and it holds system/*.cruds itself, so a client it registers adds no
// access. Once they exist it is refused, not let ask: whoever holds it
// may be one of the admins, and would then hold two votes.
func (h *Handler) gateClient(r *http.Request, old, c *phivault.Client) (string, error) {
	var reason string
	switch {
	case widensReach(old, c):
		reason = ReasonGrant
	case old != nil && slices.ContainsFunc(c.Scopes, reachesRecords) && newCredentials(old, c):
		reason = ReasonCredentials
	default:
		return "", nil
	}
	if person(r) != nil {
		return reason, errAwaitsApproval
	}
	if ok, err := h.bootstrapping(r); err != nil || ok {
		return "", err
	}
	return "", errClientNeedsPerson
}

// reachesRecords reports whether the scope s could let a token reach a
// patient's records: a resource scope, of any context (patient, user or
// system), on a resource type of the Patient compartment or on *. It reads
// s as the token endpoint does (smart.ParseScope). A scope that does not
// parse grants nothing there, but counts as reaching records here: the
// rule fails closed.
func reachesRecords(s string) bool {
	sc, err := smart.ParseScope(s)
	return err != nil || sc.IsResource() && (sc.Type == "*" || fhir.IsCompartmentType(sc.Type))
}

// widensReach reports whether c holds a scope that reaches patients'
// records (reachesRecords) and that no scope of old allows all of (see
// allows); old nil is a client being registered, which allowed nothing.
func widensReach(old, c *phivault.Client) bool {
	var was []smart.Scope
	if old != nil {
		for _, s := range old.Scopes {
			if sc, err := smart.ParseScope(s); err == nil { // one that does not parse allowed nothing
				was = append(was, sc)
			}
		}
	}
	for _, s := range c.Scopes {
		if !reachesRecords(s) {
			continue
		}
		sc, err := smart.ParseScope(s)
		if err != nil || !slices.ContainsFunc(was, func(o smart.Scope) bool { return allows(o, sc) }) {
			return true
		}
	}
	return false
}

// allows reports whether the resource scope o allows everything the
// resource scope s does: the same context, s's type (or o is on *), every
// interaction of s, and no granular query, or the same one as s.
func allows(o, s smart.Scope) bool {
	return o.Covers(s.Context, s.Interactions, s.Type) &&
		(len(o.Query) == 0 || slices.EqualFunc(o.Query, s.Query, func(a, b phivault.QueryParam) bool {
			return a.Name == b.Name && slices.Equal(a.Values, b.Values)
		}))
}

// newCredentials reports whether c trusts a redirect URI, or a public key
// (by its RFC 7638 thumbprint, whatever its kid), that old does not. A
// JWKS that does not parse counts as new. Removing keys or URIs is not
// new.
func newCredentials(old, c *phivault.Client) bool {
	for _, u := range c.RedirectURIs {
		if !slices.Contains(old.RedirectURIs, u) {
			return true
		}
	}
	if bytes.Equal(old.JWKS, c.JWKS) {
		return false
	}
	was, _ := thumbprints(old.JWKS) // one that does not parse trusted no key
	now, err := thumbprints(c.JWKS)
	if err != nil {
		return true
	}
	for _, t := range now {
		if !slices.Contains(was, t) {
			return true
		}
	}
	return false
}

// thumbprints returns the RFC 7638 SHA-256 thumbprints of the keys of the
// JSON Web Key Set set; none for an empty set.
func thumbprints(set []byte) ([]string, error) {
	if len(set) == 0 {
		return nil, nil
	}
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal(set, &ks); err != nil {
		return nil, err
	}
	var out []string
	for _, k := range ks.Keys {
		t, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, err
		}
		out = append(out, string(t))
	}
	return out, nil
}

// activeAdmins counts the active staff accounts with AdminRole.
func (h *Handler) activeAdmins(ctx context.Context) (int, error) {
	accs, err := phivault.ListAccounts(ctx, h.opts.Accounts)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range accs {
		a := s.Account
		if (a.Kind == "" || a.Kind == phivault.PrincipalStaff) && a.Status == phivault.AccountActive && slices.Contains(a.Roles, AdminRole) {
			n++
		}
	}
	return n, nil
}

// requestChange stores c as a pending change asked for by the caller of
// r, records it, and answers 202 with the change and how to approve it.
// c needs AccountID or ClientID, Kind, Reason and apply.
func (h *Handler) requestChange(w http.ResponseWriter, r *http.Request, c *pendingChange) {
	ctx := r.Context()
	typ, target := c.target()
	p := person(r)
	if p == nil { // callers check; never store a change no person asked for
		h.finish(w, r, typ, target, errNeedsPerson, 0, nil)
		return
	}
	cid, err := h.newID()
	if err != nil {
		h.finish(w, r, typ, target, err, 0, nil)
		return
	}
	now := h.now()
	c.ID, c.RequestedBy = cid, p.ID
	c.Requested, c.Expires = now.UTC().Format(time.RFC3339), now.Add(DefaultApprovalTTL).UTC().Format(time.RFC3339)
	c.expires = now.Add(DefaultApprovalTTL)
	h.approvals.mu.Lock()
	h.expireChangesLocked(now)
	full := len(h.approvals.m) >= maxPendingChanges
	if !full {
		h.approvals.m[cid] = c
	}
	h.approvals.mu.Unlock()
	if full {
		h.finish(w, r, typ, target, phivault.Errorf(phivault.EUNAVAILABLE, "Too many changes await approval; approve or reject some first."), 0, nil)
		return
	}
	if err := h.recordStep(ctx, typ, target, nil, "change "+cid+" ("+c.Kind+", "+c.Reason+") requested; awaiting a second admin"+c.detail()); err != nil {
		h.approvals.mu.Lock()
		delete(h.approvals.m, cid)
		h.approvals.mu.Unlock()
		fhir.WriteOutcome(w, err)
		return
	}
	h.log.Info("admin: change awaits approval", "change", cid, "kind", c.Kind, "reason", c.Reason, "type", typ, "id", target)
	writeJSON(w, http.StatusAccepted, map[string]any{
		"change": c.PendingChange,
		"message": pendingMessage(&c.PendingChange) + ": it was not applied. Another security admin approves it with POST /admin/changes/" + cid +
			"/approve (phivault users approve -change " + cid + ") before " + c.Expires + ".",
	})
}

// pendingMessage says why c waits.
func pendingMessage(c *PendingChange) string {
	switch {
	case c.Kind == ChangeShred:
		return "Crypto-shredding a patient cannot be undone, and on this server needs a second admin"
	case c.Kind == ChangeKeyCompromised:
		return "Marking a key-encryption key compromised cannot be undone, and on this server needs a second admin"
	case c.ClientID != "" && c.Reason == ReasonCredentials:
		return "Trusting a new key or redirect URI of a client that reaches patients' records needs a second admin"
	case c.ClientID != "":
		return "A client that reaches patients' records, or more of them than before, needs a second admin"
	case c.Reason == ReasonSelf:
		return "A change to your own account needs a second admin"
	case c.Reason == ReasonCredentials:
		return "Resetting another person's credentials needs a second admin"
	}
	return "A change that gives access to patients' records or the security-admin role needs a second admin"
}

// expireChangesLocked drops lapsed changes; approvals.mu must be held.
func (h *Handler) expireChangesLocked(now time.Time) {
	for id, c := range h.approvals.m {
		if !now.Before(c.expires) {
			delete(h.approvals.m, id)
		}
	}
}

// listChanges answers the pending changes, oldest first.
func (h *Handler) listChanges(w http.ResponseWriter, r *http.Request) {
	h.approvals.mu.Lock()
	h.expireChangesLocked(h.now())
	out := []PendingChange{}
	for _, c := range h.approvals.m {
		out = append(out, c.PendingChange)
	}
	h.approvals.mu.Unlock()
	slices.SortFunc(out, func(a, b PendingChange) int {
		return cmp.Or(cmp.Compare(a.Requested, b.Requested), cmp.Compare(a.ID, b.ID))
	})
	writeJSON(w, http.StatusOK, map[string]any{"changes": out})
}

var (
	errSameAdmin = phivault.Errorf(phivault.EFORBIDDEN,
		"A change must be approved by another security admin than the one who asked for it, and than the account it changes.")
	errApproverNotPerson = phivault.Errorf(phivault.EFORBIDDEN,
		"Only a security admin who signed in approves changes; the bootstrap token and other system clients cannot.")
)

// approveChange applies a pending change if the caller is a security
// admin (a person, see person) other than the one who asked and than the
// account it changes.
func (h *Handler) approveChange(w http.ResponseWriter, r *http.Request) {
	cid := r.PathValue("change")
	p := person(r)
	h.approvals.mu.Lock()
	h.expireChangesLocked(h.now())
	c := h.approvals.m[cid]
	var err error
	switch {
	case c == nil:
		err = phivault.Errorf(phivault.ENOTFOUND, "No such change awaits approval; it may have lapsed after %v.", DefaultApprovalTTL)
	case p == nil:
		err = errApproverNotPerson
	case p.ID == c.RequestedBy || p.ID == c.AccountID:
		err = errSameAdmin
	default:
		delete(h.approvals.m, cid) // taken: approved once, whatever happens next
	}
	h.approvals.mu.Unlock()
	if err != nil {
		typ, target := "Account", ""
		if c != nil {
			typ, target = c.target()
		}
		if aerr := h.recordStep(r.Context(), typ, target, err, "change "+clipID(cid)+" approval refused"); aerr != nil {
			err = aerr
		}
		fhir.WriteOutcome(w, err)
		return
	}
	typ, target := c.target()
	v, err := c.apply(r.Context())
	if aerr := h.recordStep(r.Context(), typ, target, err, "change "+cid+" ("+c.Kind+") requested by "+c.RequestedBy+" approved"+c.detail()); aerr != nil && err == nil {
		err = aerr
	}
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	h.log.Info("admin: change approved", "change", cid, "kind", c.Kind, "type", typ, "id", target)
	writeJSON(w, http.StatusOK, v)
}

// rejectChange drops a pending change: another admin rejects it, or the
// one who asked withdraws it. Anyone who may manage users may reject:
// nothing is applied.
func (h *Handler) rejectChange(w http.ResponseWriter, r *http.Request) {
	cid := r.PathValue("change")
	h.approvals.mu.Lock()
	h.expireChangesLocked(h.now())
	c := h.approvals.m[cid]
	delete(h.approvals.m, cid)
	h.approvals.mu.Unlock()
	if c == nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.ENOTFOUND, "No such change awaits approval."))
		return
	}
	typ, target := c.target()
	if err := h.recordStep(r.Context(), typ, target, nil, "change "+cid+" ("+c.Kind+") rejected"); err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusOK, fhir.NewOutcome("information", "informational", "The change was rejected; nothing was applied."))
}

// clipID returns id if it looks like one of ours (32 hex digits), else a
// placeholder, so that nothing a caller typed reaches the audit trail.
func clipID(id string) string {
	if len(id) != 32 || !isHex(id) {
		return "(unknown)"
	}
	return id
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// recordStep appends the audit entry of one step of a pending change to
// typ/id (an account or a client): outcome from err, and decision saying
// which step.
func (h *Handler) recordStep(ctx context.Context, typ, id string, err error, decision string) error {
	return recordChange(ctx, h.opts.Audit, h.log, h.now(), typ, id, err, decision)
}
