// Package access implements phivault's policy enforcement point: a
// [phivault.RecordService] decorator that asks the policy package (Cedar)
// about every interaction, limits it further by the caller's SMART scopes,
// and hides what the caller may not see. It sits between the audit layer
// and the vault (api → auditlog → access → vault), so every decision it
// makes is recorded on the request's [phivault.AuditNote].
//
// # What callers see
//
//   - A read, vread or history of a resource the caller may not see answers
//     ENOTFOUND, exactly like a resource that does not exist, unless the
//     policy says the caller could break the glass for it: then EFORBIDDEN
//     with a message saying how.
//   - Searches, history and $everything ask the vault for every match (up
//     to MaxScan), keep what the caller may see, and page that: totals never
//     count what the caller may not see. _include'd resources are filtered
//     too.
//   - Writes are decided on the resource as stored (update, delete) and on
//     the new body, in the compartment the body puts it in.
//   - Batch and transaction Bundles are authorized entry by entry before
//     any of them runs; see Bundle.
//
// # Inputs of a decision
//
// The principal comes from [phivault.PrincipalFromContext]; without one
// every call is refused. The patient side (care team, department, labels,
// Consent deny provisions) is read from the patient's compartment through
// the wrapped service and cached; see patient.go. Resource labels are the
// sensitivity codes in meta.security.
package access

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/policy"
	"github.com/phivault/phivault/smart"
)

// Defaults for RecordService fields.
const (
	DefaultContextTTL    = time.Minute      // how long a patient's access context is cached
	DefaultMaxScan       = 20_000           // most matches a search may filter (the vault's candidate cap)
	DefaultBreakGlassTTL = 60 * time.Minute // how long a break-the-glass grant lasts
	DefaultFreshAuth     = 5 * time.Minute  // how recent a login must be to break the glass
	DefaultCount         = 50               // page size when _count is absent, as in the vault
	MaxCount             = 1000             // largest page, as in the vault
	defaultCacheEntries  = 10_000
)

// SensitiveLabels are the meta.security codes that need a clearance:
// confidentiality R and V, and the sensitivity codes PSY, SUD (42 CFR Part
// 2), HIV, ETH and VIP. Other codes (such as N, normal) are ignored.
var sensitiveLabels = []string{"R", "V", "PSY", "SUD", "HIV", "ETH", "VIP"}

// SensitiveLabels returns the meta.security codes that need a clearance.
func SensitiveLabels() []string { return slices.Clone(sensitiveLabels) }

// Decider decides one authorization request; *policy.Authorizer is one.
type Decider interface {
	Decide(ctx context.Context, r policy.Request) (policy.Decision, error)
}

// AccountLookup finds accounts; phivault.AccountStore is one.
type AccountLookup interface {
	AccountByID(ctx context.Context, id string) (*phivault.Account, error)
}

// RecordService enforces access policy on the RecordService it wraps. Create
// it with NewRecordService, set fields, then use it; it is safe for
// concurrent use by multiple goroutines.
type RecordService struct {
	next    phivault.RecordService
	decider Decider

	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// ContextTTL bounds how long a patient's access context (care team,
	// labels, consents) is cached; writes through this service invalidate
	// it at once, writes through other nodes within ContextTTL. Default
	// DefaultContextTTL.
	ContextTTL time.Duration
	// MaxScan caps how many matches one search, history or $everything may
	// filter; beyond it the caller is asked to narrow the search. Default
	// DefaultMaxScan.
	MaxScan int
	// BreakGlassTTL is the lifetime of a break-the-glass grant. Default
	// DefaultBreakGlassTTL.
	BreakGlassTTL time.Duration
	// FreshAuth is how recent a login must be to break the glass. Default
	// DefaultFreshAuth.
	FreshAuth time.Duration
	// Log receives the break-the-glass and review entries. Nil refuses
	// break-the-glass (it must always be recorded).
	Log phivault.AuditLog
	// Accounts, if set, is consulted (through a short cache) for the
	// status of the account behind a principal, so that a suspended
	// account gets nothing even with a token still in flight.
	Accounts AccountLookup
	// Logger receives a warning for every break-the-glass grant opened
	// (ids only), for alerting. Nil discards.
	Logger *slog.Logger

	// BuiltInPolicies says the decider runs the built-in policies, whose
	// shape the access layer may then rely on: staff reach a patient's
	// records only through care teams, break-the-glass grants and
	// departments, and a decision depends on a resource's body only
	// through its labels. A staff search is then bounded at the store to
	// the compartments that can hold what the caller may see (see bound),
	// and some counts are made without decrypting (see
	// countByCompartment). Default false: every match is read and decided.
	BuiltInPolicies bool

	cache     contextCache[*patient]
	teams     contextCache[*teamBound]
	grants    grants
	statusMu  sync.Mutex
	status    map[string]statusEntry
	scopeMu   sync.Mutex
	scopeSets map[string][]smart.Scope
}

var _ phivault.RecordService = (*RecordService)(nil)

// NewRecordService returns a RecordService deciding calls of next with d.
func NewRecordService(next phivault.RecordService, d Decider) *RecordService {
	return &RecordService{
		next:          next,
		decider:       d,
		Now:           time.Now,
		ContextTTL:    DefaultContextTTL,
		MaxScan:       DefaultMaxScan,
		BreakGlassTTL: DefaultBreakGlassTTL,
		FreshAuth:     DefaultFreshAuth,
	}
}

var (
	errNoPrincipal = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "This request carries no identity the access policy can decide on."}
	errBadScopes   = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "The token's SMART scopes are not valid; request a new token."}
	errBreakGlass  = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "You have no care relationship with this patient, or the record needs a clearance you lack. " +
		"In an emergency you may break the glass: log in again, then POST /fhir/admin/break-glass with the patient id, " +
		"a purpose of use (ETREAT or BTG) and your reason. The access is time-boxed, recorded and reviewed."}
	errTrainingExpired = &phivault.Error{Code: phivault.EFORBIDDEN, Message: "Your privacy and security training has expired: " +
		"patients' records stay closed to you until it is renewed. " +
		"In an emergency you may break the glass: log in again, then POST /fhir/admin/break-glass with the patient id, " +
		"a purpose of use (ETREAT or BTG) and your reason. The access is time-boxed, recorded and reviewed."}
)

// caller is the principal of one call, with what every decision needs.
type caller struct {
	p       *phivault.Principal
	pol     policy.Principal
	scopes  []smart.Scope
	granule bool // some scope is granular: decisions need the body
	note    *phivault.AuditNote
	purpose string
	source  string
	btgWhy  string // the reason given, when breaking the glass
	now     time.Time
}

// caller builds the caller of ctx, or refuses it.
func (s *RecordService) caller(ctx context.Context) (*caller, error) {
	p := phivault.PrincipalFromContext(ctx)
	if p == nil || p.ID == "" {
		return nil, errNoPrincipal
	}
	c := &caller{p: p, now: s.Now()}
	c.pol = policy.Principal{
		ID: p.ID, Kind: p.Kind, Roles: p.Roles, Department: p.Department, Organization: p.Organization,
		Clearances: p.Clearances, TrainingValidUntil: p.TrainingValidUntil, AuthTime: p.AuthTime, PatientID: p.PatientID,
	}
	if p.SMART {
		sc, err := s.parseScopes(p.Scopes)
		if err != nil {
			return nil, errBadScopes
		}
		c.scopes = sc
		if c.scopes == nil {
			c.scopes = []smart.Scope{}
		}
		for _, x := range sc {
			c.granule = c.granule || len(x.Query) > 0
		}
	}
	if info, ok := phivault.RequestInfoFromContext(ctx); ok {
		c.note, c.purpose, c.source = info.Note, info.Purpose, info.Source
	}
	suspended, err := s.suspended(ctx, p)
	if err != nil {
		return nil, err
	}
	c.pol.Suspended = suspended
	return c, nil
}

// parseScopes parses a token's scopes, remembering the few distinct scope
// sets clients are granted. The result is shared: callers must not modify it.
func (s *RecordService) parseScopes(scopes []string) ([]smart.Scope, error) {
	key := strings.Join(scopes, " ")
	s.scopeMu.Lock()
	sc, ok := s.scopeSets[key]
	s.scopeMu.Unlock()
	if ok {
		return sc, nil
	}
	sc, err := smart.Parse(key)
	if err != nil {
		return nil, err
	}
	s.scopeMu.Lock()
	if s.scopeSets == nil || len(s.scopeSets) >= 1000 {
		s.scopeSets = map[string][]smart.Scope{}
	}
	s.scopeSets[key] = sc
	s.scopeMu.Unlock()
	return sc, nil
}

type statusEntry struct {
	suspended bool
	at        time.Time
}

// statusTTL bounds how long an account's status is trusted: suspension
// also revokes every token at once, this is the second line.
const statusTTL = 5 * time.Second

// suspended reports whether the account behind p is not active.
func (s *RecordService) suspended(ctx context.Context, p *phivault.Principal) (bool, error) {
	if s.Accounts == nil || p.Kind == phivault.PrincipalSystem {
		return false, nil
	}
	now := s.Now()
	s.statusMu.Lock()
	e, ok := s.status[p.ID]
	s.statusMu.Unlock()
	if ok && now.Sub(e.at) < statusTTL && now.Sub(e.at) >= 0 {
		return e.suspended, nil
	}
	a, err := s.Accounts.AccountByID(ctx, p.ID)
	switch {
	case phivault.ErrorCode(err) == phivault.ENOTFOUND:
		e = statusEntry{suspended: true, at: now} // no account: nothing
	case err != nil:
		return false, err
	default:
		e = statusEntry{suspended: a.Status != phivault.AccountActive, at: now}
	}
	s.statusMu.Lock()
	if s.status == nil || len(s.status) > defaultCacheEntries {
		s.status = map[string]statusEntry{}
	}
	s.status[p.ID] = e
	s.statusMu.Unlock()
	return e.suspended, nil
}

// target is a resource as a decision sees it.
type target struct {
	typ, id     string
	compartment string
	labels      []string
	obj         map[string]any  // decoded body, when granular scopes need it
	patient     *policy.Patient // the compartment's patient as a write stores it; nil: as stored now
	btgRecord   bool            // a break-the-glass record (see BreakGlassSystem)
}

// targetOf describes a stored resource version. The body is decoded in
// full only when the caller's scopes are granular.
func targetOf(c *caller, r *phivault.Resource) (*target, error) {
	t := &target{typ: r.Type, id: r.ID, compartment: r.Compartment}
	if r.Body == nil {
		return t, nil
	}
	if c.granule {
		obj, err := fhir.Decode(r.Body)
		if err != nil {
			return nil, err
		}
		t.obj, t.labels, t.btgRecord = obj, Labels(obj), isBreakGlassBody(r.Type, obj)
		return t, nil
	}
	if r.Type == "Basic" || bytes.Contains(r.Body, []byte(`\u`)) {
		// Basic may be a break-the-glass record; escapes could hide a key.
		obj, err := fhir.Decode(r.Body)
		if err != nil {
			return nil, err
		}
		t.labels, t.btgRecord = Labels(obj), isBreakGlassBody(r.Type, obj)
		return t, nil
	}
	labels, err := scanLabels(r.Body)
	if err != nil {
		return nil, err
	}
	t.labels = labels
	return t, nil
}

// scanLabels returns the sensitive codes of every "security" array in a
// stored body without decoding the rest: meta.security, and also that of
// contained resources, which only adds restrictions. A raw `"security":[`
// cannot occur inside a JSON string (its quotes would be escaped), and
// bodies with \u escapes take the full decode instead.
func scanLabels(body []byte) ([]string, error) {
	var out []string
	key := []byte(`"security":`)
	for rest := body; ; {
		i := bytes.Index(rest, key)
		if i < 0 {
			return out, nil
		}
		rest = rest[i+len(key):]
		var codes []struct {
			Code string `json:"code"`
		}
		if err := json.NewDecoder(bytes.NewReader(rest)).Decode(&codes); err != nil {
			return nil, fmt.Errorf("access: read meta.security: %w", err)
		}
		for _, c := range codes {
			if slices.Contains(sensitiveLabels, c.Code) && !slices.Contains(out, c.Code) {
				out = append(out, c.Code)
			}
		}
	}
}

// Labels returns the sensitive meta.security codes of a decoded resource
// (the labels the policies act on; see SensitiveLabels).
func Labels(obj map[string]any) []string {
	meta, _ := obj["meta"].(map[string]any)
	sec, _ := meta["security"].([]any)
	var out []string
	for _, s := range sec {
		m, _ := s.(map[string]any)
		code, _ := m["code"].(string)
		if slices.Contains(sensitiveLabels, code) && !slices.Contains(out, code) {
			out = append(out, code)
		}
	}
	return out
}

// decide asks the policy about action on t, without recording anything.
func (s *RecordService) decide(ctx context.Context, c *caller, action policy.Action, t *target) (policy.Decision, error) {
	req := policy.Request{
		Principal: c.pol,
		Action:    action,
		Resource:  policy.Resource{Type: t.typ, ID: t.id, Labels: t.labels, Object: t.obj},
		Context: policy.Context{
			Time: c.now, Purpose: c.purpose, SourceAddress: c.source,
			SMART: c.p.SMART, Scopes: c.p.Scopes, ParsedScopes: c.scopes,
			BreakGlassWhy: c.btgWhy,
		},
	}
	switch {
	case t.patient != nil:
		req.Resource.Category = policy.CategoryPatient
		req.Patient = *t.patient
	case t.compartment != "":
		req.Resource.Category = policy.CategoryPatient
		info, err := s.patientInfo(ctx, t.compartment)
		if err != nil {
			return policy.Decision{}, err
		}
		req.Patient = info.policyPatient(t.compartment, c.p)
		if g, ok := s.grants.active(c.p.ID, t.compartment, c.now); ok {
			req.Context.BreakGlass = &policy.BreakGlassGrant{PatientID: t.compartment, Reason: "granted", Until: g.until}
		}
	default:
		req.Resource.Category = policy.CategoryShared
	}
	if t.btgRecord {
		// Break-the-glass records are part of the audit trail: only those
		// who may read the audit trail see them, and nobody writes them.
		req.Resource.Category = policy.CategoryAudit
		req.Patient = policy.Patient{}
		req.Context.BreakGlass = nil
		if action == policy.Read || action == policy.Search || action == policy.History {
			req.Action = policy.ReadAudit
		} else {
			return policy.Decision{Policies: []string{"access-break-glass-record-read-only"}}, nil
		}
	}
	return s.decider.Decide(ctx, req)
}

// usedGrant reports whether d permitted only through a break-the-glass grant.
func usedGrant(d policy.Decision) bool {
	return d.Allow && slices.Contains(d.Policies, "break-glass-access")
}

// record notes a decision for the audit entry of the request.
func record(c *caller, d policy.Decision) {
	if c.note == nil {
		return
	}
	c.note.SetDecision(decisionText(d))
	if usedGrant(d) {
		c.note.MarkBreakGlass()
	}
}

// decisionText says what decided d, as the audit entry records it.
func decisionText(d policy.Decision) string {
	verb := "deny"
	if d.Allow {
		verb = "permit"
	}
	if len(d.Policies) == 0 {
		return verb + ": no-permit"
	}
	return verb + ": " + strings.Join(d.Policies, ",")
}

// hidden is the error for a resource the caller may not see.
func hidden(d policy.Decision) error {
	switch {
	case !d.BreakGlassPossible:
		return phivault.ErrNotFound
	case slices.Contains(d.Policies, "forbid-expired-training"):
		return errTrainingExpired
	}
	return errBreakGlass
}

// authorize decides and records action on t; it returns the error to give
// the caller if denied. A refusal records t's compartment on the request's
// audit entry, so the patient's access report shows the attempt.
func (s *RecordService) authorize(ctx context.Context, c *caller, action policy.Action, t *target) (policy.Decision, error) {
	d, err := s.decide(ctx, c, action, t)
	if err != nil {
		return d, err
	}
	record(c, d)
	if !d.Allow {
		c.note.AddCompartment(t.compartment)
		return d, hidden(d)
	}
	return d, nil
}

// pageSize clamps _count like the vault does.
func pageSize(count int) int {
	switch {
	case count <= 0:
		return DefaultCount
	case count > MaxCount:
		return MaxCount
	}
	return count
}

// BootstrapRole is the role of the bootstrap system client.
const BootstrapRole = "bootstrap-admin"

// BootstrapPrincipal returns the principal of the bootstrap admin token
// (the token "phivault init" prints): a system client with SMART scope
// system/*.cruds and every clearance, so that imports and operator tools
// keep working, and the role BootstrapRole, which the default policies let
// read the audit trail and administer the server. It is not a person: it
// cannot break the glass.
func BootstrapPrincipal(id string) *phivault.Principal {
	return &phivault.Principal{ID: id, Kind: phivault.PrincipalSystem, Roles: []string{BootstrapRole},
		Clearances: SensitiveLabels(), SMART: true, Scopes: []string{"system/*.cruds"}}
}
