package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/identity"
)

// DefaultRoles are the staff roles an account may hold (DESIGN.md §5 and
// the default Cedar policy set).
var DefaultRoles = []string{"physician", "nurse", "front-desk", "billing", "privacy-officer", "security-admin"}

// Clearances are the sensitivity labels an account may be cleared for.
var Clearances = []string{"R", "V", "PSY", "SUD", "HIV", "ETH", "VIP"}

// AdminRole is the role that may use the user, client and training routes
// besides the bootstrap admin token. It mirrors the "security-admin" policy
// of the default Cedar set (action manageUsers).
const AdminRole = "security-admin"

// BootstrapRole is the role of the bootstrap admin token's principal
// (access.BootstrapRole, a system principal); it may manage users and
// clients. No account can hold it: account roles come from DefaultRoles.
const BootstrapRole = "bootstrap-admin"

// MayManage reports whether p may use the user, client, training, key and
// seal routes: the bootstrap principal (access.BootstrapPrincipal), or a
// staff principal with AdminRole. No principal may not: a caller the
// authenticator did not identify manages nothing. Changes that grant
// access wait for a second admin on top of this (see approval.go).
func MayManage(p *phivault.Principal) bool {
	return p != nil && ((p.Kind == phivault.PrincipalSystem && p.HasRole(BootstrapRole)) ||
		(p.Kind == phivault.PrincipalStaff && p.HasRole(AdminRole)))
}

// Defaults of the user routes.
const (
	DefaultTOTPIssuer    = "phivault"       // issuer shown in authenticator apps
	DefaultTOTPEnrollTTL = 10 * time.Minute // how long an unconfirmed TOTP enrollment waits
	maxTOTPConfirmTries  = 5                // wrong codes before a pending enrollment is dropped
	maxJSONBody          = 64 << 10
	maxUsernameLen       = 128
	updateRetries        = 3 // optimistic-concurrency retries of one change
)

// User is an account as the admin API shows it: never its password hash,
// TOTP secret or WebAuthn credentials, only whether they are set.
type User struct {
	ID                 string   `json:"id"`
	Username           string   `json:"username"`
	Kind               string   `json:"kind"`
	Roles              []string `json:"roles"`
	Department         string   `json:"department,omitempty"`
	Organization       string   `json:"organization,omitempty"`
	PractitionerID     string   `json:"practitioner_id,omitempty"`
	PatientID          string   `json:"patient_id,omitempty"`
	Clearances         []string `json:"clearances"`
	TrainingValidUntil string   `json:"training_valid_until,omitempty"` // YYYY-MM-DD, or "" if never trained
	Status             string   `json:"status"`
	ExternalID         string   `json:"external_id,omitempty"`
	Password           bool     `json:"password"` // a password is set
	TOTP               bool     `json:"totp"`     // a TOTP second factor is enrolled
	WebAuthn           bool     `json:"webauthn"` // WebAuthn credentials are registered
	Federated          bool     `json:"federated"`
	LockedUntil        string   `json:"locked_until,omitempty"`
	Created            string   `json:"created"`
	Version            int64    `json:"version"`
}

// NewUser returns the public view of a.
func NewUser(a *phivault.Account) User {
	u := User{
		ID: a.ID, Username: a.Username, Kind: a.Kind, Roles: nonNil(a.Roles), Department: a.Department,
		Organization: a.Organization, PractitionerID: a.PractitionerID, PatientID: a.PatientID,
		Clearances: nonNil(a.Clearances), Status: a.Status, ExternalID: a.ExternalID,
		Password: a.PasswordHash != "", TOTP: len(a.TOTPSecret) > 0, WebAuthn: len(a.WebAuthn) > 0,
		Federated: a.FederatedSubject != "", Created: a.Created.UTC().Format(time.RFC3339), Version: a.Version,
	}
	if u.Kind == "" {
		u.Kind = phivault.PrincipalStaff
	}
	if !a.TrainingValidUntil.IsZero() {
		u.TrainingValidUntil = a.TrainingValidUntil.UTC().Format(time.DateOnly)
	}
	if !a.LockedUntil.IsZero() {
		u.LockedUntil = a.LockedUntil.UTC().Format(time.RFC3339)
	}
	return u
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// UserCreate is the body of POST /admin/users.
type UserCreate struct {
	Username           string   `json:"username"`
	Kind               string   `json:"kind"` // staff (default) or patient
	Roles              []string `json:"roles"`
	Department         string   `json:"department"`
	Organization       string   `json:"organization"`
	PractitionerID     string   `json:"practitioner_id"`
	PatientID          string   `json:"patient_id"`
	Clearances         []string `json:"clearances"`
	TrainingValidUntil string   `json:"training_valid_until"`
	ExternalID         string   `json:"external_id"`
	Password           string   `json:"password"` // optional; "" leaves the account without one
}

// UserUpdate is the body of PATCH /admin/users/{id}; absent fields are
// left as they are.
type UserUpdate struct {
	Roles              *[]string `json:"roles,omitempty"`
	Department         *string   `json:"department,omitempty"`
	Organization       *string   `json:"organization,omitempty"`
	PractitionerID     *string   `json:"practitioner_id,omitempty"`
	Clearances         *[]string `json:"clearances,omitempty"`
	Status             *string   `json:"status,omitempty"`
	TrainingValidUntil *string   `json:"training_valid_until,omitempty"`
	ExternalID         *string   `json:"external_id,omitempty"`
	// Reason says why Status is set: a code (phivault.IsCode), e.g.
	// "left-organisation", which goes into the Decision of the change's audit
	// entries; it is not stored with the account. Optional, and only with
	// Status: anything else is refused (400).
	Reason *string `json:"reason,omitempty"`
}

// userStore holds what the user routes need from the handler.
type userRoutes struct {
	h *Handler

	mu      sync.Mutex
	pending map[string]*pendingTOTP // by account id

	// createMu serializes account creation, so that the bootstrap
	// token's count of security admins holds until its account is stored.
	createMu sync.Mutex
}

// pendingTOTP is a TOTP secret issued but not yet confirmed. It lives in
// memory only: a restart drops it, and enrollment starts again.
type pendingTOTP struct {
	secret  []byte
	expires time.Time
	tries   int
}

// registerUsers adds the user and training routes to h.
func registerUsers(h *Handler) {
	u := &userRoutes{h: h, pending: map[string]*pendingTOTP{}}
	h.mux.Handle("GET /admin/users", h.manage(u.list))
	h.mux.Handle("POST /admin/users", h.manage(u.create))
	h.mux.Handle("GET /admin/users/{id}", h.manage(u.get))
	h.mux.Handle("PATCH /admin/users/{id}", h.manage(u.update))
	h.mux.Handle("POST /admin/users/{id}/password", h.manage(u.password))
	h.mux.Handle("POST /admin/users/{id}/totp", h.manage(u.totpStart))
	h.mux.Handle("POST /admin/users/{id}/totp/confirm", h.manage(u.totpConfirm))
	h.mux.Handle("DELETE /admin/users/{id}/totp", h.manage(u.totpRemove))
	h.mux.Handle("PUT /admin/users/{id}/training", h.manage(u.setTraining))
	h.mux.Handle("POST /admin/training", h.manage(u.importTraining))
}

// manage authorizes a user, client or training route (see MayManage).
func (h *Handler) manage(next func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if h.opts.Accounts == nil {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNSUPPORTED, "This server manages no accounts."))
			return
		}
		if p := phivault.PrincipalFromContext(r.Context()); !MayManage(p) {
			h.log.Warn("admin: account management refused", "principal", p, "path", r.URL.Path)
			h.record(r.Context(), targetType(r), r.PathValue("id"), errForbidden)
			fhir.WriteOutcome(w, errForbidden)
			return
		}
		next(w, r)
	})
}

var errForbidden = phivault.Errorf(phivault.EFORBIDDEN, "Managing users and clients needs the security-admin role.")

// targetType names what a refused request was aimed at, for its audit entry.
func targetType(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/admin/clients") {
		return "Client"
	}
	return "Account"
}

// record appends the audit entry of a change to an account or client (see
// RecordChange).
func (h *Handler) record(ctx context.Context, typ, id string, err error) error {
	return RecordChange(ctx, h.opts.Audit, h.log, h.now(), typ, id, err)
}

// RecordChange appends to audit an ActionAccountChange entry at now for a
// change to the account or client typ/id by the caller in ctx, with ids
// only: never a username or other personal data. A nil err records outcome
// "ok". It returns EUNAVAILABLE if audit is nil or the entry could not be
// written (logged to log), else nil.
func RecordChange(ctx context.Context, audit phivault.AuditLog, log *slog.Logger, now time.Time, typ, id string, err error) error {
	return recordChange(ctx, audit, log, now, typ, id, err, "")
}

// recordChange is RecordChange with the entry's Decision set to decision.
func recordChange(ctx context.Context, audit phivault.AuditLog, log *slog.Logger, now time.Time, typ, id string, err error, decision string) error {
	e := &phivault.AuditEntry{Time: now.UTC(), Action: phivault.ActionAccountChange, TargetType: typ, TargetID: id, Outcome: "ok", Decision: decision}
	if err != nil {
		e.Outcome = phivault.ErrorCode(err)
	}
	setCaller(ctx, e)
	if audit == nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The audit log is not available; the change was not recorded.")
	}
	// Written even if the caller went away: the change is done.
	if aerr := audit.Append(context.WithoutCancel(ctx), e); aerr != nil {
		log.Error("account change not recorded", "error", aerr.Error())
		return phivault.Errorf(phivault.EUNAVAILABLE, "The audit log is not available; the change was not recorded.")
	}
	return nil
}

// setCaller fills in who made the request in ctx: request id, actor, roles,
// client, source and purpose from its RequestInfo, the actor from
// api.ActorFromContext if RequestInfo has none, and actor and roles from
// its Principal, which wins.
func setCaller(ctx context.Context, e *phivault.AuditEntry) {
	if info, ok := phivault.RequestInfoFromContext(ctx); ok {
		e.RequestID, e.Actor, e.Roles, e.Client, e.Source, e.Purpose = info.ID, info.Actor, info.Roles, info.Client, info.Source, info.Purpose
	}
	if e.Actor == "" {
		e.Actor = api.ActorFromContext(ctx)
	}
	if p := phivault.PrincipalFromContext(ctx); p != nil {
		e.Actor, e.Roles = p.ID, p.Roles
		if e.Client == "" {
			e.Client = p.Client
		}
	}
}

// finish records a change and answers: the error, or status and v.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, typ, id string, err error, status int, v any) {
	h.finishDecided(w, r, typ, id, "", err, status, v)
}

// finishDecided is finish with the entry's Decision set to decision,
// which holds codes and ids only (see statusDecision).
func (h *Handler) finishDecided(w http.ResponseWriter, r *http.Request, typ, id, decision string, err error, status int, v any) {
	if aerr := recordChange(r.Context(), h.opts.Audit, h.log, h.now(), typ, id, err, decision); aerr != nil && err == nil {
		err = aerr
	}
	if err != nil {
		if phivault.ErrorCode(err) == phivault.EINTERNAL {
			h.log.Error("admin: account change", "type", typ, "id", id, "error", err.Error())
		}
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, status, v)
}

// revoke ends every session of subject. A failure is EUNAVAILABLE: the
// change was stored, but its sessions may live on until they expire.
func (h *Handler) revoke(ctx context.Context, subject string) error {
	if h.opts.Revoker == nil {
		return nil
	}
	if err := h.opts.Revoker.RevokeSubject(context.WithoutCancel(ctx), subject); err != nil {
		h.log.Error("admin: revoke sessions", "subject", subject, "error", err.Error())
		return phivault.Errorf(phivault.EUNAVAILABLE, "The change was saved but the sessions could not be revoked; retry the request.")
	}
	return nil
}

func (h *Handler) now() time.Time {
	if h.opts.Now != nil {
		return h.opts.Now()
	}
	return time.Now()
}

// newID returns a new account or client id from Options.Rand.
func (h *Handler) newID() (string, error) {
	return NewID(h.opts.Rand)
}

// NewID returns a new account or client id: 16 bytes from r in hex. A nil
// r means crypto/rand.
func NewID(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("admin: new id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// decodeJSON reads a JSON body of at most maxJSONBody bytes into v and
// refuses unknown fields and trailing data. The message never echoes input.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return phivault.Errorf(phivault.ETOOLARGE, "The request body is over %d bytes.", maxJSONBody)
	}
	defer clear(body) // it may hold a password
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return phivault.Errorf(phivault.EINVALID, "The field %q has the wrong type.", ute.Field)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return phivault.Errorf(phivault.EINVALID, "Unknown field %s.", f)
		}
		return phivault.Errorf(phivault.EINVALID, "The request body must be one JSON object.")
	}
	if dec.More() {
		return phivault.Errorf(phivault.EINVALID, "The request body must be one JSON object.")
	}
	return nil
}

// CheckUsername returns an EINVALID error unless name is 1 to 128
// printable characters without spaces.
func CheckUsername(name string) error {
	if name == "" || len(name) > maxUsernameLen {
		return phivault.Errorf(phivault.EINVALID, "A username must have 1 to %d characters.", maxUsernameLen)
	}
	for _, c := range name {
		if !unicode.IsPrint(c) || unicode.IsSpace(c) {
			return phivault.Errorf(phivault.EINVALID, "A username must not contain spaces or control characters.")
		}
	}
	return nil
}

// CheckRoles returns an EINVALID error unless every role is one of allowed,
// once.
func CheckRoles(roles, allowed []string) error {
	return checkSet("role", roles, allowed)
}

// CheckClearances returns an EINVALID error unless every clearance is one
// of Clearances, once.
func CheckClearances(c []string) error { return checkSet("clearance", c, Clearances) }

func checkSet(what string, got, allowed []string) error {
	for i, g := range got {
		if !slices.Contains(allowed, g) {
			return phivault.Errorf(phivault.EINVALID, "Unknown %s %q; known: %s.", what, clip(g), strings.Join(allowed, ", "))
		}
		if slices.Contains(got[:i], g) {
			return phivault.Errorf(phivault.EINVALID, "The %s %q is listed twice.", what, clip(g))
		}
	}
	return nil
}

// clip shortens a value quoted back in an error; roles and labels are not
// personal data, but nothing long is echoed.
func clip(s string) string {
	if len(s) > 32 || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "(value)"
	}
	return s
}

// CheckID returns an EINVALID error unless s is "" or a FHIR logical id
// (1-64 of A-Z a-z 0-9 - .).
func CheckID(field, s string) error {
	if s == "" {
		return nil
	}
	if !fhir.IsID(s) {
		return phivault.Errorf(phivault.EINVALID, "%s must be a FHIR id: 1 to 64 letters, digits, '-' or '.'.", field)
	}
	return nil
}

// ParseTrainingDate parses a training valid-until date, YYYY-MM-DD, as the
// end of that day in UTC: training is valid through the whole day. "" is
// the zero time (never trained).
func ParseTrainingDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, phivault.Errorf(phivault.EINVALID, "A training date must be YYYY-MM-DD.")
	}
	return d.Add(24*time.Hour - time.Second), nil
}

// checkAccount validates the attributes of a, whatever route set them.
func checkAccount(a *phivault.Account) error {
	if err := CheckUsername(a.Username); err != nil {
		return err
	}
	switch a.Kind {
	case phivault.PrincipalStaff, "": // "" is staff: accounts stored before kinds existed
		if a.PatientID != "" {
			return phivault.Errorf(phivault.EINVALID, "Only patient accounts have a patient_id.")
		}
	case phivault.PrincipalPatient:
		if a.PatientID == "" {
			return phivault.Errorf(phivault.EINVALID, "A patient account needs patient_id: the id of its own Patient.")
		}
		if len(a.Roles) > 0 || len(a.Clearances) > 0 || a.PractitionerID != "" {
			return phivault.Errorf(phivault.EINVALID, "A patient account has no roles, clearances or practitioner_id.")
		}
	default:
		return phivault.Errorf(phivault.EINVALID, "kind must be %q or %q.", phivault.PrincipalStaff, phivault.PrincipalPatient)
	}
	if err := CheckRoles(a.Roles, DefaultRoles); err != nil {
		return err
	}
	if err := CheckClearances(a.Clearances); err != nil {
		return err
	}
	if err := CheckID("practitioner_id", a.PractitionerID); err != nil {
		return err
	}
	if err := CheckID("patient_id", a.PatientID); err != nil {
		return err
	}
	switch a.Status {
	case phivault.AccountActive, phivault.AccountSuspended, phivault.AccountDeprovisioned:
	default:
		return phivault.Errorf(phivault.EINVALID, "status must be active, suspended or deprovisioned.")
	}
	return CheckText(a)
}

// CheckText returns an EINVALID error unless a's department, organization
// and external id are each at most 256 printable characters.
func CheckText(a *phivault.Account) error {
	for _, f := range []struct{ name, v string }{
		{"department", a.Department}, {"organization", a.Organization}, {"external_id", a.ExternalID},
	} {
		if len(f.v) > 256 || strings.ContainsFunc(f.v, func(r rune) bool { return !unicode.IsPrint(r) }) {
			return phivault.Errorf(phivault.EINVALID, "%s must be at most 256 printable characters.", f.name)
		}
	}
	return nil
}

// list answers every account, or with ?username= the one account of that
// name (looked up by name, not by reading every account). It never opens
// the listed accounts' credentials (phivault.ListAccounts).
func (u *userRoutes) list(w http.ResponseWriter, r *http.Request) {
	var accs []phivault.AccountSummary
	var err error
	if name := r.URL.Query().Get("username"); name != "" {
		var a *phivault.Account
		if a, err = u.h.opts.Accounts.AccountByUsername(r.Context(), name); err == nil {
			accs = append(accs, phivault.SummarizeAccount(a))
		} else if errors.Is(err, phivault.ErrNotFound) {
			err = nil
		}
	} else {
		accs, err = phivault.ListAccounts(r.Context(), u.h.opts.Accounts)
	}
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	out := []User{}
	for _, s := range accs {
		v := NewUser(s.Account)
		v.TOTP, v.WebAuthn = s.TOTP, s.WebAuthn
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (u *userRoutes) get(w http.ResponseWriter, r *http.Request) {
	a, err := u.h.opts.Accounts.AccountByID(r.Context(), r.PathValue("id"))
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NewUser(a))
}

// create stores a new account, or, if it holds a grant (see gate), a
// pending change that creates it once another admin approves: until then
// the account does not exist.
func (u *userRoutes) create(w http.ResponseWriter, r *http.Request) {
	var req UserCreate
	err := decodeJSON(w, r, &req)
	defer func() { req.Password = "" }()
	var a *phivault.Account
	if err == nil {
		a, err = u.h.newAccount(&req)
	}
	u.createMu.Lock()
	defer u.createMu.Unlock()
	var reason string
	if err == nil {
		reason, err = u.gate(r, nil, a)
	}
	if errors.Is(err, errAwaitsApproval) {
		if err = u.h.usernameFree(r.Context(), a.Username); err == nil {
			view := NewUser(a)
			u.h.requestChange(w, r, &pendingChange{PendingChange: PendingChange{AccountID: a.ID, Kind: ChangeCreate, Reason: reason, Create: &view},
				apply: userView(func(ctx context.Context) (*phivault.Account, error) {
					a.Created = u.h.now().UTC()
					return a, u.h.storeAccount(ctx, a)
				})})
			return
		}
	}
	if err == nil {
		err = u.h.storeAccount(r.Context(), a)
	}
	id := ""
	if a != nil {
		id = a.ID
	}
	if err != nil {
		u.h.finish(w, r, "Account", id, err, 0, nil)
		return
	}
	u.h.log.Info("admin: account created", "account", a)
	u.h.finish(w, r, "Account", a.ID, nil, http.StatusCreated, NewUser(a))
}

// NewAccount validates req and stores a new active account. The password,
// if any, must pass identity.CheckPassword and is stored as an argon2id
// hash. It does not write the audit log, and it does not ask for a second
// admin: it is the Go API of setup code that runs with the data folder in
// hand (the demo); POST /admin/users applies the four-eyes rule.
func (h *Handler) NewAccount(ctx context.Context, req *UserCreate) (*phivault.Account, error) {
	a, err := h.newAccount(req)
	if err != nil {
		return nil, err
	}
	return a, h.storeAccount(ctx, a)
}

// newAccount validates req and returns the active account it describes,
// with a new id and its password hashed, without storing it.
func (h *Handler) newAccount(req *UserCreate) (*phivault.Account, error) {
	a := &phivault.Account{
		Username: req.Username, Kind: req.Kind, Roles: req.Roles, Department: req.Department,
		Organization: req.Organization, PractitionerID: req.PractitionerID, PatientID: req.PatientID,
		Clearances: req.Clearances, Status: phivault.AccountActive, ExternalID: req.ExternalID,
		Created: h.now().UTC(),
	}
	if a.Kind == "" {
		a.Kind = phivault.PrincipalStaff
	}
	var err error
	if a.TrainingValidUntil, err = ParseTrainingDate(req.TrainingValidUntil); err != nil {
		return nil, err
	}
	if err := checkAccount(a); err != nil {
		return nil, err
	}
	if req.Password != "" {
		if a.PasswordHash, err = h.hashPassword(a.Username, req.Password); err != nil {
			return nil, err
		}
	}
	if a.ID, err = h.newID(); err != nil {
		return nil, err
	}
	return a, nil
}

var errUsernameTaken = phivault.Errorf(phivault.ECONFLICT, "The username is taken.")

// storeAccount stores the new account a.
func (h *Handler) storeAccount(ctx context.Context, a *phivault.Account) error {
	if err := h.opts.Accounts.CreateAccount(ctx, a); err != nil {
		if phivault.ErrorCode(err) == phivault.ECONFLICT {
			return errUsernameTaken
		}
		return fmt.Errorf("admin: create account: %w", err)
	}
	return nil
}

// usernameFree returns errUsernameTaken if an account has name, so that a
// creation that waits for approval is refused now rather than then.
func (h *Handler) usernameFree(ctx context.Context, name string) error {
	_, err := h.opts.Accounts.AccountByUsername(ctx, name)
	switch {
	case err == nil:
		return errUsernameTaken
	case errors.Is(err, phivault.ErrNotFound):
		return nil
	}
	return err
}

func (h *Handler) hashPassword(username, password string) (string, error) {
	return HashPassword(h.opts.Hasher, username, password)
}

// HashPassword checks password against the password policy
// (identity.CheckPassword; EINVALID if it fails) and hashes it with hasher,
// nil meaning identity.NewHasher().
func HashPassword(hasher *identity.Hasher, username, password string) (string, error) {
	if err := identity.CheckPassword(username, password); err != nil {
		return "", err
	}
	if hasher == nil {
		hasher = identity.NewHasher()
	}
	hash, err := hasher.Hash(password)
	if err != nil {
		return "", fmt.Errorf("admin: hash password: %w", err)
	}
	return hash, nil
}

// ModifyAccount reads account id, applies change and stores it, retrying
// on a concurrent change (such as a login counting a failure). If change
// altered what sessions carry (roles, department, organization,
// clearances, practitioner, status, training, credentials), every session
// of the account is revoked once it is stored. It does not write the audit
// log, and it does not ask for a second admin: the HTTP routes decide that
// (see approval.go) before they call it.
func (h *Handler) ModifyAccount(ctx context.Context, id string, change func(*phivault.Account) error) (*phivault.Account, error) {
	old, a, err := ChangeAccount(ctx, h.opts.Accounts, h.opts.Accounts.AccountByID, id, updateRetries, change, checkAccount)
	if err != nil {
		return nil, err
	}
	if SessionsChanged(old, a) {
		return a, h.revoke(ctx, a.ID)
	}
	return a, nil
}

// ChangeAccount is the read, change and store loop of an account update:
// it reads account id with read, applies change to a copy, vets the result
// with check and stores it at the next version in s, trying again, up to
// retries times, when a concurrent change got there first. It returns the
// account as read and as stored; a conflict on the last try is returned
// as is.
func ChangeAccount(ctx context.Context, s phivault.AccountStore, read func(context.Context, string) (*phivault.Account, error),
	id string, retries int, change, check func(*phivault.Account) error) (*phivault.Account, *phivault.Account, error) {
	for try := 0; ; try++ {
		old, err := read(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		a := *old
		a.Roles, a.Clearances = slices.Clone(old.Roles), slices.Clone(old.Clearances)
		if err := change(&a); err != nil {
			return nil, nil, err
		}
		if err := check(&a); err != nil {
			return nil, nil, err
		}
		a.Version = old.Version + 1
		err = s.UpdateAccount(ctx, &a)
		if phivault.ErrorCode(err) == phivault.ECONFLICT && try < retries {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		return old, &a, nil
	}
}

// SessionsChanged reports whether the change from old to a must end the
// account's sessions: anything a token or policy decision rests on.
func SessionsChanged(old, a *phivault.Account) bool {
	return old.Status != a.Status || !slices.Equal(old.Roles, a.Roles) || !slices.Equal(old.Clearances, a.Clearances) ||
		old.Department != a.Department || old.Organization != a.Organization || old.PractitionerID != a.PractitionerID ||
		!old.TrainingValidUntil.Equal(a.TrainingValidUntil) || old.PasswordHash != a.PasswordHash ||
		!bytes.Equal(old.TOTPSecret, a.TOTPSecret) || a.Status != phivault.AccountActive
}

func (u *userRoutes) update(w http.ResponseWriter, r *http.Request) {
	var req UserUpdate
	id := r.PathValue("id")
	err := decodeJSON(w, r, &req)
	if err == nil {
		err = checkStatusReason(req.Status, req.Reason)
	}
	if err != nil {
		u.h.finish(w, r, "Account", id, err, 0, nil)
		return
	}
	u.change(w, r, id, &req)
}

var (
	errReasonCode = phivault.Errorf(phivault.EINVALID,
		"reason must be a short code: 1 to %d lowercase letters, digits and hyphens, starting with a letter or digit, e.g. left-organisation. "+
			"The audit trail keeps codes only, never free text; write anything more where the change is tracked.", phivault.MaxCodeLen)
	errReasonWithoutStatus = phivault.Errorf(phivault.EINVALID, "reason says why status changes: send it with status, or leave it out.")
)

// checkStatusReason returns an EINVALID error, which states the rule,
// unless reason is nil, or a code (phivault.IsCode) given with status: a
// status change's reason goes into the audit trail, which holds ids and
// codes only, never free text, in which PHI could hide.
func checkStatusReason(status, reason *string) error {
	switch {
	case reason == nil:
		return nil
	case !phivault.IsCode(*reason):
		return errReasonCode
	case status == nil:
		return errReasonWithoutStatus
	}
	return nil
}

// statusDecision returns the Decision of the audit entry of an update that
// sets status with reason: "status suspended (reason left-organisation)".
// It returns "" without a reason, and if either is not a code
// (phivault.IsCode), so that nothing typed as free text reaches the trail.
func statusDecision(status, reason *string) string {
	if status == nil || reason == nil || !phivault.IsCode(*status) || !phivault.IsCode(*reason) {
		return ""
	}
	return "status " + *status + " (reason " + *reason + ")"
}

// change applies req to account id, or, if gate says so, stores it as a
// pending change (202) or refuses it. The decision is made on the account
// as it is stored, inside the read-modify-write, so that a concurrent
// change cannot turn an update that granted nothing into a grant.
func (u *userRoutes) change(w http.ResponseWriter, r *http.Request, id string, req *UserUpdate) {
	var reason string
	a, err := u.h.ModifyAccount(r.Context(), id, func(a *phivault.Account) error {
		old := *a
		if err := req.apply(a); err != nil {
			return err
		}
		if err := checkAccount(a); err != nil { // refuse bad input now, not at approval
			return err
		}
		var err error
		reason, err = u.gate(r, &old, a)
		return err
	})
	if errors.Is(err, errAwaitsApproval) {
		u.h.requestChange(w, r, &pendingChange{PendingChange: PendingChange{AccountID: id, Kind: ChangeUpdate, Reason: reason, Update: req},
			apply: userView(func(ctx context.Context) (*phivault.Account, error) { return u.h.ModifyAccount(ctx, id, req.apply) })})
		return
	}
	if err != nil {
		u.h.finish(w, r, "Account", id, err, 0, nil)
		return
	}
	u.h.log.Info("admin: account updated", "account", a)
	u.h.finishDecided(w, r, "Account", id, statusDecision(req.Status, req.Reason), nil, http.StatusOK, NewUser(a))
}

func (req *UserUpdate) apply(a *phivault.Account) error {
	if req.Roles != nil {
		a.Roles = *req.Roles
	}
	if req.Department != nil {
		a.Department = *req.Department
	}
	if req.Organization != nil {
		a.Organization = *req.Organization
	}
	if req.PractitionerID != nil {
		a.PractitionerID = *req.PractitionerID
	}
	if req.Clearances != nil {
		a.Clearances = *req.Clearances
	}
	if req.Status != nil {
		a.Status = *req.Status
	}
	if req.ExternalID != nil {
		a.ExternalID = *req.ExternalID
	}
	if req.TrainingValidUntil != nil {
		t, err := ParseTrainingDate(*req.TrainingValidUntil)
		if err != nil {
			return err
		}
		a.TrainingValidUntil = t
	}
	return nil
}

// passwordRequest is the body of POST /admin/users/{id}/password.
type passwordRequest struct {
	Password string `json:"password"`
}

var errResetNeedsPerson = phivault.Errorf(phivault.EFORBIDDEN,
	"Resetting another person's credentials needs a security admin who signed in to ask for it, and another to approve it.")

// password sets a new password, clears the failed-login count and lock,
// and revokes every session. One's own password is set at once; another
// person's waits for a second admin (the password is checked and hashed
// now, and only its hash waits).
func (u *userRoutes) password(w http.ResponseWriter, r *http.Request) {
	var req passwordRequest
	id := r.PathValue("id")
	err := decodeJSON(w, r, &req)
	defer func() { req.Password = "" }()
	if err == nil && req.Password == "" {
		err = phivault.Errorf(phivault.EINVALID, `The body must be {"password": "..."}.`)
	}
	if err == nil && !isSelf(r, id) {
		if person(r) == nil {
			err = errResetNeedsPerson
		} else {
			var hash string
			if hash, err = u.newPasswordHash(r.Context(), id, req.Password); err == nil {
				u.h.requestChange(w, r, &pendingChange{PendingChange: PendingChange{AccountID: id, Kind: ChangePassword, Reason: ReasonCredentials},
					apply: userView(func(ctx context.Context) (*phivault.Account, error) {
						return u.h.ModifyAccount(ctx, id, func(a *phivault.Account) error { return setPasswordHash(a, hash) })
					})})
				return
			}
		}
	}
	if err == nil {
		_, err = u.h.ModifyAccount(r.Context(), id, func(a *phivault.Account) error {
			hash, err := u.h.hashPassword(a.Username, req.Password)
			if err != nil {
				return err
			}
			return setPasswordHash(a, hash)
		})
	}
	u.h.finish(w, r, "Account", id, err, http.StatusOK, fhir.NewOutcome("information", "informational",
		"The password was set; the account's sessions were revoked."))
}

// newPasswordHash checks password against the policy for account id and
// returns its hash.
func (u *userRoutes) newPasswordHash(ctx context.Context, id, password string) (string, error) {
	a, err := u.h.opts.Accounts.AccountByID(ctx, id)
	if err != nil {
		return "", err
	}
	return u.h.hashPassword(a.Username, password)
}

// setPasswordHash sets a's password hash and clears its failed-login count
// and lock.
func setPasswordHash(a *phivault.Account, hash string) error {
	a.PasswordHash = hash
	a.FailedLogins, a.LastFailure, a.LockedUntil = 0, time.Time{}, time.Time{}
	return nil
}

// TOTPEnrollment is the answer to POST /admin/users/{id}/totp. URI holds
// the secret: it is shown once, to be scanned into an authenticator app.
type TOTPEnrollment struct {
	URI     string `json:"otpauth_uri"`
	Expires string `json:"expires"` // confirm before then
}

// totpStart issues a fresh TOTP secret, held in memory until confirmed.
// Only an account without a second factor enrolls one: replacing an
// enrolled secret is removing it, which waits for a second admin.
func (u *userRoutes) totpStart(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a, err := u.h.opts.Accounts.AccountByID(r.Context(), id)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	if a.Status != phivault.AccountActive {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.ECONFLICT, "Only an active account can enroll a second factor."))
		return
	}
	if len(a.TOTPSecret) > 0 {
		// Replacing a second factor is removing it: a second admin
		// approves that (DELETE users/{id}/totp) first.
		u.h.finish(w, r, "Account", id, phivault.Errorf(phivault.EFORBIDDEN,
			"The account has a second factor; replacing it needs another admin: remove it with DELETE users/{id}/totp, which another admin approves, then enroll again."), 0, nil)
		return
	}
	secret, err := identity.NewTOTPSecret(u.h.opts.Rand)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	issuer := u.h.opts.TOTPIssuer
	if issuer == "" {
		issuer = DefaultTOTPIssuer
	}
	uri, err := identity.TOTPURI(issuer, a.Username, secret)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	exp := u.h.now().Add(DefaultTOTPEnrollTTL)
	u.mu.Lock()
	u.expire()
	if old := u.pending[id]; old != nil {
		clear(old.secret)
	}
	u.pending[id] = &pendingTOTP{secret: secret, expires: exp}
	u.mu.Unlock()
	u.h.log.Info("admin: totp enrollment started", "account", a)
	writeJSON(w, http.StatusOK, TOTPEnrollment{URI: uri, Expires: exp.UTC().Format(time.RFC3339)})
}

// expire drops lapsed enrollments; u.mu must be held.
func (u *userRoutes) expire() {
	now := u.h.now()
	for id, p := range u.pending {
		if !now.Before(p.expires) {
			clear(p.secret)
			delete(u.pending, id)
		}
	}
}

// totpConfirmRequest is the body of POST /admin/users/{id}/totp/confirm.
type totpConfirmRequest struct {
	Code string `json:"code"`
}

// totpConfirm checks a code from the pending secret and, if it is right,
// makes the secret the account's second factor. The confirming code's step
// is recorded, so that code cannot also be used to log in.
func (u *userRoutes) totpConfirm(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req totpConfirmRequest
	if err := decodeJSON(w, r, &req); err != nil {
		u.h.finish(w, r, "Account", id, err, 0, nil)
		return
	}
	u.mu.Lock()
	u.expire()
	p := u.pending[id]
	var secret []byte
	var step int64
	var err error
	if p == nil {
		err = phivault.Errorf(phivault.ECONFLICT, "No TOTP enrollment is waiting for this account; start one with POST users/{id}/totp.")
	} else if s, ok := identity.VerifyTOTP(p.secret, req.Code, u.h.now(), 0); !ok {
		if p.tries++; p.tries >= maxTOTPConfirmTries {
			clear(p.secret)
			delete(u.pending, id)
			err = phivault.Errorf(phivault.EINVALID, "The code is wrong; too many wrong codes, so the enrollment was dropped: start again.")
		} else {
			err = phivault.Errorf(phivault.EINVALID, "The code is wrong; enter the current code from the authenticator app.")
		}
	} else {
		secret, step = p.secret, s
		delete(u.pending, id)
	}
	u.mu.Unlock()
	if err == nil {
		_, err = u.h.ModifyAccount(r.Context(), id, func(a *phivault.Account) error {
			a.TOTPSecret, a.TOTPLastStep = secret, step
			return nil
		})
	}
	u.h.finish(w, r, "Account", id, err, http.StatusOK, fhir.NewOutcome("information", "informational",
		"The TOTP second factor is enrolled."))
}

// totpRemove asks for the removal of the TOTP second factor: it waits for
// a second admin, whoever's account it is. Once approved, every session
// of the account ends and the person must enroll again before logging in.
func (u *userRoutes) totpRemove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	reason := ReasonCredentials
	if isSelf(r, id) {
		reason = ReasonSelf
	}
	a, err := u.h.opts.Accounts.AccountByID(r.Context(), id)
	switch {
	case err != nil:
	case person(r) == nil:
		err = errResetNeedsPerson
	case len(a.TOTPSecret) == 0:
		err = phivault.Errorf(phivault.ECONFLICT, "The account has no TOTP second factor to remove.")
	}
	if err != nil {
		u.h.finish(w, r, "Account", id, err, 0, nil)
		return
	}
	u.h.requestChange(w, r, &pendingChange{PendingChange: PendingChange{AccountID: id, Kind: ChangeTOTPRemove, Reason: reason},
		apply: userView(func(ctx context.Context) (*phivault.Account, error) {
			return u.h.ModifyAccount(ctx, id, func(a *phivault.Account) error {
				a.TOTPSecret, a.TOTPLastStep = nil, 0
				return nil
			})
		})})
}
