// Package policy provides authorization decisions for phivault with Cedar
// policies: an embedded schema and default policy set, overridable from a
// directory, validated against the schema before use.
package policy

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go"
	cedarast "github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/smart"
)

//go:embed schema.cedarschema
var schemaText []byte

//go:embed default.cedar
var defaultPolicies []byte

// containmentPolicies are compiled into every set, the default one and
// those of a policy directory alike: an incident's containment holds
// whatever policies an operator writes.
//
//go:embed containment.cedar
var containmentPolicies []byte

// containmentFile is the name containmentPolicies compile under.
const containmentFile = "phivault-containment.cedar"

// Schema returns the embedded Cedar schema text.
func Schema() []byte { return slices.Clone(schemaText) }

// DefaultPolicies returns the embedded default policy set text.
func DefaultPolicies() []byte { return slices.Clone(defaultPolicies) }

// Action is what a principal asks to do.
type Action string

// Actions known to the schema.
const (
	Read           Action = "read"
	Search         Action = "search"
	History        Action = "history"
	Create         Action = "create"
	Update         Action = "update"
	Delete         Action = "delete"
	BreakGlass     Action = "breakGlass"
	ReadAudit      Action = "readAudit"
	ManageUsers    Action = "manageUsers"
	ManageKeys     Action = "manageKeys"
	ManagePolicies Action = "managePolicies"
)

// Principal kinds.
const (
	KindStaff   = "staff"
	KindPatient = "patient"
	KindSystem  = "system"
)

// Resource categories.
const (
	CategoryPatient = "patient" // a FHIR resource in a patient compartment
	CategoryAudit   = "audit"   // audit log and reports
	CategoryAdmin   = "admin"   // users, keys, policies
	// CategoryShared is a FHIR resource outside every patient compartment,
	// such as Practitioner, Organization, Location or Medication.
	CategoryShared = "shared"
)

// Principal is who asks.
type Principal struct {
	ID           string
	Kind         string   // KindStaff, KindPatient or KindSystem
	Roles        []string // physician, nurse, front-desk, billing, privacy-officer, security-admin
	Department   string
	Organization string
	Clearances   []string // sensitivity labels the principal may see (R, V, PSY, SUD, HIV, ETH, VIP)
	// TrainingValidUntil is when the security training expires (staff).
	TrainingValidUntil time.Time
	// AuthTime is when the principal last authenticated (with MFA).
	AuthTime  time.Time
	Suspended bool
	PatientID string // the principal's own Patient id (KindPatient)
}

// Resource is what is acted on.
type Resource struct {
	Type     string // FHIR resource type, such as "Observation"
	ID       string
	Category string   // CategoryPatient, CategoryAudit or CategoryAdmin
	Labels   []string // meta.security codes: R, V, PSY, SUD, HIV, ETH, VIP
	// Object is the resource's decoded JSON, if known. Granular SMART
	// scopes (?category=...) grant only on an Object that matches them.
	Object map[string]any
}

// Patient is the patient whose compartment holds the resource.
type Patient struct {
	ID string
	// CareTeam holds the ids of principals with a care relationship:
	// CareTeam members, Encounter participants, EpisodeOfCare team and
	// explicit assignments.
	CareTeam   []string
	Department string
	Labels     []string // patient-wide labels such as VIP
	Consent    ConsentDeny
	// Restricted says an incident responder put the compartment behind
	// break-the-glass (restrict-compartment): only an active grant opens
	// it to staff and clients; the patient still reads it.
	Restricted bool
}

// ConsentDeny gathers the deny provisions of a patient's active Consents.
type ConsentDeny struct {
	Actors        []string // principal ids
	Organizations []string
	Purposes      []string // purpose-of-use codes
}

// BreakGlassGrant is an active break-the-glass grant for one patient.
type BreakGlassGrant struct {
	PatientID string
	Reason    string
	Until     time.Time
}

// Context is the circumstance of the request.
type Context struct {
	Time          time.Time
	Purpose       string // purpose of use, such as TREAT, ETREAT, BTG, HPAYMT
	BreakGlass    *BreakGlassGrant
	BreakGlassWhy string // the reason given when Action is BreakGlass
	SourceAddress string
	// SMART is true when the request comes through a SMART token; Scopes
	// then limit what it may do.
	SMART  bool
	Scopes []string
	// ParsedScopes, if not nil, are Scopes already parsed with
	// smart.ParseList; callers deciding many requests set it once.
	ParsedScopes []smart.Scope
}

// Request is one authorization question.
type Request struct {
	Principal Principal
	Action    Action
	Resource  Resource
	Patient   Patient // zero for resources outside patient compartments
	Context   Context
}

// Decision is the answer.
type Decision struct {
	Allow bool
	// Policies lists the ids (@id annotations) of the determining policies:
	// the permits that allowed, or the forbids that denied.
	Policies []string
	// Errors lists evaluation errors; any error denies.
	Errors []string
	// BreakGlassPossible reports, for a denied read, search or history of a
	// patient's data, that the principal could break the glass for it and
	// that a grant would then let the request through.
	BreakGlassPossible bool
}

// Options configures New.
type Options struct {
	// Dir, if set, holds *.cedar files replacing the default policy set.
	Dir string
	// CacheSize bounds the decision memo: DefaultCacheSize if zero, no
	// memo if negative. Decisions are a pure function of the request
	// (times count in whole seconds), so the memo never changes an answer.
	CacheSize int
}

// Authorizer decides requests against a validated policy set. It is safe
// for concurrent use; Reload swaps the set atomically.
type Authorizer struct {
	validator *validate.Validator
	set       atomic.Pointer[policySet]
	cacheSize int
}

// policySet is a compiled set with its decision memo.
type policySet struct {
	ps *cedar.PolicySet
	// memo caches decisions by their inputs (times in seconds, as the
	// policies see them), or is nil when a policy names a resource
	// entity: decisions then depend on resource ids, which keys omit.
	memo *memo
}

// DefaultCacheSize is the number of decisions an Authorizer remembers per
// policy set when Options.CacheSize is zero.
const DefaultCacheSize = 50_000

// New returns an Authorizer with the default policies, or those in opts.Dir.
func New(opts Options) (*Authorizer, error) {
	var s schema.Schema
	s.SetFilename("schema.cedarschema")
	if err := s.UnmarshalCedar(schemaText); err != nil {
		return nil, fmt.Errorf("policy: parse schema: %w", err)
	}
	rs, err := s.Resolve()
	if err != nil {
		return nil, fmt.Errorf("policy: resolve schema: %w", err)
	}
	a := &Authorizer{validator: validate.New(rs), cacheSize: opts.CacheSize}
	if a.cacheSize == 0 {
		a.cacheSize = DefaultCacheSize
	}
	if opts.Dir != "" {
		if err := a.Reload(opts.Dir); err != nil {
			return nil, err
		}
		return a, nil
	}
	files := map[string][]byte{"default.cedar": defaultPolicies, containmentFile: containmentPolicies}
	ps, err := a.compile(files)
	if err != nil {
		return nil, fmt.Errorf("policy: default set: %w", err)
	}
	a.set.Store(a.newSet(ps, files))
	return a, nil
}

// Reload replaces the policy set with the *.cedar files in dir. The new set
// is validated first; on any error the current set stays in force and the
// error says which file and policy were wrong.
func (a *Authorizer) Reload(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "*.cedar"))
	if err != nil {
		return fmt.Errorf("policy: list %s: %w", dir, err)
	}
	if len(names) == 0 {
		return phivault.Errorf(phivault.EINVALID, "policy directory %s holds no .cedar files; the current policies stay in force", dir)
	}
	files := map[string][]byte{containmentFile: containmentPolicies}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return fmt.Errorf("policy: read %s: %w", n, err)
		}
		if filepath.Base(n) == containmentFile {
			return phivault.Errorf(phivault.EINVALID, "policy directory %s holds %s, the name of phivault's own containment policies; rename it", dir, containmentFile)
		}
		files[filepath.Base(n)] = b
	}
	ps, err := a.compile(files)
	if err != nil {
		return phivault.Errorf(phivault.EINVALID, "policies in %s rejected, the current policies stay in force: %v", dir, err)
	}
	a.set.Store(a.newSet(ps, files))
	return nil
}

// Validate checks policy text against the schema without loading it.
func (a *Authorizer) Validate(name string, text []byte) error {
	_, err := a.compile(map[string][]byte{name: text})
	return err
}

// newSet wraps a compiled set with a memo, unless a policy names a
// resource entity or the memo is off.
func (a *Authorizer) newSet(ps *cedar.PolicySet, files map[string][]byte) *policySet {
	out := &policySet{ps: ps}
	if a.cacheSize < 0 {
		return out
	}
	for _, text := range files {
		if bytes.Contains(text, []byte("Resource::")) {
			return out
		}
	}
	out.memo = &memo{max: a.cacheSize}
	return out
}

func (a *Authorizer) compile(files map[string][]byte) (*cedar.PolicySet, error) {
	ps := cedar.NewPolicySet()
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, name := range keys {
		list, err := cedar.NewPolicyListFromBytes(name, files[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		for _, p := range list {
			id, ok := p.Annotations()["id"]
			pos := p.Position()
			where := fmt.Sprintf("%s:%d", name, pos.Line)
			if !ok || id == "" {
				errs = append(errs, fmt.Errorf("%s: policy has no @id annotation", where))
				continue
			}
			if err := a.validator.Policy(string(id), (*xast.Policy)((*cedarast.Policy)(p.AST()))); err != nil {
				errs = append(errs, fmt.Errorf("%s: policy %q: %w", where, id, err))
				continue
			}
			if !ps.Add(cedar.PolicyID(id), p) {
				errs = append(errs, fmt.Errorf("%s: duplicate policy id %q", where, id))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ps, nil
}

func unix(t time.Time) types.Long {
	if t.IsZero() {
		return types.Long(-1 << 62)
	}
	return types.Long(t.Unix())
}

func stringSet(s []string) types.Set {
	vs := make([]types.Value, len(s))
	for i, v := range s {
		vs[i] = types.String(v)
	}
	return types.NewSet(vs...)
}

func userSet(s []string) types.Set {
	vs := make([]types.Value, len(s))
	for i, v := range s {
		vs[i] = types.NewEntityUID("User", types.String(v))
	}
	return types.NewSet(vs...)
}

// noPatient stands for "no patient"; entity ids from callers are never empty
// for patient-compartment resources (Decide checks).
const noPatient = ""

func patientUID(id string) types.EntityUID {
	return types.NewEntityUID("Patient", types.String(id))
}

// scopeOK reports whether SMART v2 (or v1) scopes grant the action on the
// resource for a principal of the given kind: user/ scopes for staff,
// patient/ scopes for patients, system/ scopes for system clients. Granular
// scopes grant only when the resource's Object matches them. Scopes that do
// not parse grant nothing.
func scopeOK(kind string, action Action, res *Resource, c *Context) bool {
	var in smart.Interactions
	switch action {
	case Create:
		in = smart.Create
	case Read, History:
		in = smart.Read
	case Update:
		in = smart.Update
	case Delete:
		in = smart.Delete
	case Search:
		in = smart.Search
	default:
		return false
	}
	scopes := c.ParsedScopes
	if scopes == nil {
		for _, raw := range c.Scopes {
			if s, err := smart.ParseScope(raw); err == nil {
				scopes = append(scopes, s)
			}
		}
	}
	return smart.Grants(scopes, smart.ContextOf(kind), in, res.Type, res.Object)
}

type built struct {
	entities types.EntityMap
	req      cedar.Request
}

// build makes the Cedar request of r; scope is scopeOK of r.
func build(r *Request, scope bool) (built, error) {
	p := r.Principal
	if p.ID == "" {
		return built{}, phivault.Errorf(phivault.EINVALID, "authorization request without a principal id")
	}
	switch p.Kind {
	case KindStaff, KindSystem:
	case KindPatient:
		if p.PatientID == "" {
			return built{}, phivault.Errorf(phivault.EINVALID, "patient principal without a patient id")
		}
	default:
		return built{}, phivault.Errorf(phivault.EINVALID, "unknown principal kind %q", p.Kind)
	}
	switch r.Resource.Category {
	case CategoryPatient:
		if r.Patient.ID == "" {
			return built{}, phivault.Errorf(phivault.EINVALID, "patient-compartment resource without a patient id")
		}
	case CategoryAudit, CategoryAdmin, CategoryShared:
	default:
		return built{}, phivault.Errorf(phivault.EINVALID, "unknown resource category %q", r.Resource.Category)
	}
	principalUID := types.NewEntityUID("User", types.String(p.ID))
	ownPatient := noPatient
	if p.Kind == KindPatient {
		ownPatient = p.PatientID
	}
	pat := r.Patient
	patUID := patientUID(pat.ID)
	resUID := types.NewEntityUID("Resource", types.String(r.Resource.Type+"/"+r.Resource.ID))
	em := types.EntityMap{
		principalUID: {UID: principalUID, Attributes: types.NewRecord(types.RecordMap{
			"kind":          types.String(p.Kind),
			"roles":         stringSet(p.Roles),
			"department":    types.String(p.Department),
			"organization":  types.String(p.Organization),
			"clearances":    stringSet(p.Clearances),
			"trainingUntil": unix(p.TrainingValidUntil),
			"authTime":      unix(p.AuthTime),
			"suspended":     types.Boolean(p.Suspended),
			"patient":       patientUID(ownPatient),
		})},
		patUID: {UID: patUID, Attributes: types.NewRecord(types.RecordMap{
			"careTeam":          userSet(pat.CareTeam),
			"department":        types.String(pat.Department),
			"labels":            stringSet(pat.Labels),
			"denyActors":        userSet(pat.Consent.Actors),
			"denyOrganizations": stringSet(pat.Consent.Organizations),
			"denyPurposes":      stringSet(pat.Consent.Purposes),
			"restricted":        types.Boolean(pat.Restricted),
		})},
		resUID: {UID: resUID, Attributes: types.NewRecord(types.RecordMap{
			"kind":     types.String(r.Resource.Type),
			"category": types.String(r.Resource.Category),
			"labels":   stringSet(r.Resource.Labels),
			"patient":  patUID,
		})},
	}
	c := r.Context
	btgPatient, btgReason, btgUntil := noPatient, "", types.Long(0)
	if g := c.BreakGlass; g != nil && g.PatientID != "" {
		btgPatient, btgReason, btgUntil = g.PatientID, g.Reason, unix(g.Until)
	}
	if r.Action == BreakGlass {
		btgReason = c.BreakGlassWhy
	}
	ctx := types.NewRecord(types.RecordMap{
		"now":        unix(c.Time),
		"purpose":    types.String(c.Purpose),
		"btgReason":  types.String(btgReason),
		"btgPatient": patientUID(btgPatient),
		"btgUntil":   btgUntil,
		"source":     types.String(c.SourceAddress),
		"viaSmart":   types.Boolean(c.SMART),
		"scopeOK":    types.Boolean(scope),
	})
	return built{entities: em, req: cedar.Request{
		Principal: principalUID,
		Action:    types.NewEntityUID("Action", types.String(r.Action)),
		Resource:  resUID,
		Context:   ctx,
	}}, nil
}

// Decide answers one request. An error means the request was malformed;
// evaluation errors deny and are listed in the Decision.
func (a *Authorizer) Decide(ctx context.Context, r Request) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	set := a.set.Load()
	scope := scopeOK(r.Principal.Kind, r.Action, &r.Resource, &r.Context)
	var key []byte
	if set.memo != nil {
		key = memoKey(&r, scope)
		if d, ok := set.memo.get(key); ok {
			return d, nil
		}
	}
	d, err := a.decideUncached(set.ps, r, scope)
	if err == nil && key != nil {
		set.memo.put(key, d)
	}
	return d, err
}

func (a *Authorizer) decideUncached(ps *cedar.PolicySet, r Request, scope bool) (Decision, error) {
	d, err := decide(ps, &r, scope)
	if err != nil || d.Allow {
		return d, err
	}
	if (r.Action == Read || r.Action == Search || r.Action == History) &&
		r.Resource.Category == CategoryPatient && r.Principal.Kind == KindStaff {
		probe := r
		probe.Action = BreakGlass
		probe.Principal.AuthTime = r.Context.Time
		probe.Context.Purpose = "BTG"
		probe.Context.BreakGlassWhy = "probe"
		pd, err := decide(ps, &probe, scopeOK(probe.Principal.Kind, probe.Action, &probe.Resource, &probe.Context))
		if err == nil && pd.Allow {
			// ... and a grant would let this request through (SMART
			// scopes, for one, still bound it).
			granted := r
			granted.Context.BreakGlass = &BreakGlassGrant{PatientID: r.Patient.ID, Reason: "probe", Until: r.Context.Time.Add(time.Hour)}
			gd, err := decide(ps, &granted, scope) // same action and resource as r
			d.BreakGlassPossible = err == nil && gd.Allow
		}
	}
	return d, nil
}

func decide(ps *cedar.PolicySet, r *Request, scope bool) (Decision, error) {
	b, err := build(r, scope)
	if err != nil {
		return Decision{}, err
	}
	dec, diag := cedar.Authorize(ps, b.entities, b.req)
	d := Decision{Allow: dec == cedar.Allow && len(diag.Errors) == 0}
	for _, reason := range diag.Reasons {
		d.Policies = append(d.Policies, string(reason.PolicyID))
	}
	for _, e := range diag.Errors {
		d.Errors = append(d.Errors, e.String())
	}
	sort.Strings(d.Policies)
	return d, nil
}
