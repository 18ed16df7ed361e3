package phivault

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Principal kinds: who is behind a request.
const (
	PrincipalStaff   = "staff"   // a person working for the organisation
	PrincipalPatient = "patient" // a patient using a patient-facing app
	PrincipalSystem  = "system"  // a registered backend client (SMART Backend Services)
)

// Principal is the authenticated caller of a request, as established by a
// session token. It holds the attributes access decisions need and is
// immutable once put in a context: callers must not modify it.
type Principal struct {
	ID                 string   // account id, or client id for PrincipalSystem
	Kind               string   // PrincipalStaff, PrincipalPatient or PrincipalSystem
	Roles              []string // e.g. "physician", "privacy-officer"
	Department         string
	Organization       string
	PractitionerID     string    // linked Practitioner id (staff), or ""
	PatientID          string    // own Patient id (PrincipalPatient), or ""
	Clearances         []string  // sensitivity labels the principal may see
	TrainingValidUntil time.Time // security training expiry (staff)
	AuthTime           time.Time // when the person last authenticated in full (with MFA)
	Methods            []string  // authentication methods (RFC 8176 amr): "pwd", "otp", "hwk", "fed"

	// SMART is set when the token was issued with SMART scopes; Scopes then
	// bound what the request may do, on top of the policy decision.
	SMART  bool
	Scopes []string

	SessionID string // the session the token belongs to
	Client    string // the OAuth client the token was issued to, or ""
}

// HasRole reports whether p has role.
func (p *Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// Roles that oversee the vault: they read the whole audit trail and the
// detectors' alerts.
const (
	RolePrivacyOfficer = "privacy-officer"
	RoleSecurityAdmin  = "security-admin"
)

// OperatorID is the principal id of the bootstrap admin token.
const OperatorID = "admin"

// Operator reports whether p is the bootstrap admin token: the system
// principal with id OperatorID.
func (p *Principal) Operator() bool {
	return p != nil && p.Kind == PrincipalSystem && p.ID == OperatorID
}

// Auditor reports whether p may read the whole audit trail and the
// detectors' alerts: an operator, or a staff member or system client with
// the privacy-officer or security-admin role. A patient never is, whatever
// roles their account claims. A nil p is nobody.
func (p *Principal) Auditor() bool {
	if p == nil {
		return false
	}
	if p.Operator() {
		return true
	}
	return p.Kind != PrincipalPatient && (p.HasRole(RolePrivacyOfficer) || p.HasRole(RoleSecurityAdmin))
}

// LogValue logs the principal's id, kind and session, never credentials;
// a nil principal logs as "none".
func (p *Principal) LogValue() slog.Value {
	if p == nil {
		return slog.StringValue("none")
	}
	return slog.GroupValue(slog.String("id", p.ID), slog.String("kind", p.Kind), slog.String("session", p.SessionID))
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal in ctx, or nil if the request
// is not authenticated as one (such as the bootstrap admin token).
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// SessionRevoker ends sessions at once: every access and refresh token of
// the subject stops working on its next use. Admin and SCIM call it when an
// account or client is suspended, deprovisioned or changed.
type SessionRevoker interface {
	// RevokeSubject ends every session of an account or client id.
	RevokeSubject(ctx context.Context, subject string) error
}

// AuditNote collects, while a request is served, what inner layers decide
// about it, so that the audit entry written for the request records it.
// The api package puts one in each RequestInfo. It is safe for concurrent
// use.
type AuditNote struct {
	mu           sync.Mutex
	decision     string
	breakGlass   bool
	compartments []string
}

// AddCompartment records that the request was about patient compartment
// c even though nothing of it was returned (a refused read, update or
// delete), so that the patient's access report and detection see the
// attempt. The caller is never told.
func (n *AuditNote) AddCompartment(c string) {
	if n == nil || c == "" {
		return
	}
	n.mu.Lock()
	if !slices.Contains(n.compartments, c) {
		n.compartments = append(n.compartments, c)
	}
	n.mu.Unlock()
}

// Compartments returns the compartments recorded by AddCompartment.
func (n *AuditNote) Compartments() []string {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.compartments)
}

// SetDecision records the policy decision and its reason, such as
// "deny: forbid-no-care-relationship".
func (n *AuditNote) SetDecision(d string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.decision = d
	n.mu.Unlock()
}

// MarkBreakGlass records that access rested on a break-the-glass grant.
func (n *AuditNote) MarkBreakGlass() {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.breakGlass = true
	n.mu.Unlock()
}

// Decision returns the recorded decision and whether break-the-glass was used.
func (n *AuditNote) Decision() (decision string, breakGlass bool) {
	if n == nil {
		return "", false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.decision, n.breakGlass
}

// Authentication is a completed login of a person, by whatever method:
// password and TOTP, a passkey, or an external OpenID provider. The OAuth
// server turns it into an authorization code.
type Authentication struct {
	Account *Account
	Time    time.Time // when the login completed
	// Methods lists the RFC 8176 amr values used, such as "pwd" and "otp",
	// "hwk" and "user" for a passkey with user verification, or "fed".
	// A login completes only with more than one factor (MFA).
	Methods []string
}
