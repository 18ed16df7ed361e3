package access

import (
	"context"
	"slices"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/policy"
)

// ExplainRequest asks how the policy decides an action of a user on a
// resource.
type ExplainRequest struct {
	User     string `json:"user"`     // account id, or username
	Action   string `json:"action"`   // read, search, history, create, update, delete, breakGlass
	Resource string `json:"resource"` // "Type/id" of a stored resource
	Purpose  string `json:"purpose"`  // purpose of use, optional
}

// Explanation is a decision with what it rested on. It holds ids only.
type Explanation struct {
	Decision           string   `json:"decision"` // "permit" or "deny"
	Policies           []string `json:"policies"` // the determining policies
	Errors             []string `json:"errors,omitempty"`
	BreakGlassPossible bool     `json:"breakGlassPossible,omitempty"`
	Category           string   `json:"category"`          // patient, shared or audit
	Patient            string   `json:"patient,omitempty"` // the compartment
	CareRelationship   bool     `json:"careRelationship"`
	Labels             []string `json:"labels,omitempty"`
	ActiveGrant        bool     `json:"activeGrant"`
}

var explainActions = []policy.Action{policy.Read, policy.Search, policy.History, policy.Create, policy.Update, policy.Delete, policy.BreakGlass}

// Explain decides, without acting, what the user's account could do to a
// stored resource now, as if the user had just logged in (fresh
// authentication) without SMART limits, and says which policies decided.
// Only those allowed to manage policies or read the audit trail may ask.
func (s *RecordService) Explain(ctx context.Context, r ExplainRequest) (*Explanation, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeExplain(ctx, c); err != nil {
		return nil, err
	}
	action := policy.Action(r.Action)
	if !slices.Contains(explainActions, action) {
		return nil, phivault.Errorf(phivault.EINVALID, "action must be one of read, search, history, create, update, delete or breakGlass.")
	}
	typ, id, ok := strings.Cut(r.Resource, "/")
	if !ok || !fhir.IsID(id) || typ == "" {
		return nil, phivault.Errorf(phivault.EINVALID, "resource must be Type/id, such as Observation/123.")
	}
	if s.Accounts == nil {
		return nil, phivault.Errorf(phivault.EUNSUPPORTED, "This server has no account store to explain decisions for.")
	}
	a, err := s.Accounts.AccountByID(ctx, r.User)
	if byName, ok := s.Accounts.(interface {
		AccountByUsername(ctx context.Context, username string) (*phivault.Account, error)
	}); ok && phivault.ErrorCode(err) == phivault.ENOTFOUND {
		a, err = byName.AccountByUsername(ctx, r.User)
	}
	if err != nil {
		if phivault.ErrorCode(err) == phivault.ENOTFOUND {
			return nil, phivault.Errorf(phivault.ENOTFOUND, "No such user (give the account id or username).")
		}
		return nil, err
	}
	res, err := s.next.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	kind := a.Kind
	if kind == "" {
		kind = phivault.PrincipalStaff
	}
	p := &phivault.Principal{ID: a.ID, Kind: kind, Roles: a.Roles, Department: a.Department, Organization: a.Organization,
		PractitionerID: a.PractitionerID, PatientID: a.PatientID, Clearances: a.Clearances,
		TrainingValidUntil: a.TrainingValidUntil, AuthTime: c.now}
	u := &caller{p: p, now: c.now, purpose: r.Purpose, btgWhy: "explain"}
	u.pol = policy.Principal{ID: p.ID, Kind: p.Kind, Roles: p.Roles, Department: p.Department, Organization: p.Organization,
		Clearances: p.Clearances, TrainingValidUntil: p.TrainingValidUntil, AuthTime: p.AuthTime, PatientID: p.PatientID,
		Suspended: a.Status != phivault.AccountActive}
	t, err := targetOf(u, res)
	if err != nil {
		return nil, err
	}
	d, err := s.decide(ctx, u, action, t)
	if err != nil {
		return nil, err
	}
	out := &Explanation{Decision: "deny", Policies: d.Policies, Errors: d.Errors, BreakGlassPossible: d.BreakGlassPossible,
		Category: policy.CategoryShared, Patient: t.compartment, Labels: t.labels}
	if d.Allow {
		out.Decision = "permit"
	}
	if len(out.Policies) == 0 {
		out.Policies = []string{"no-permit"}
	}
	if t.compartment != "" {
		out.Category = policy.CategoryPatient
		info, err := s.patientInfo(ctx, t.compartment)
		if err != nil {
			return nil, err
		}
		out.CareRelationship = slices.Contains(info.policyPatient(t.compartment, p).CareTeam, p.ID)
		_, out.ActiveGrant = s.grants.active(p.ID, t.compartment, c.now)
	}
	if t.btgRecord {
		out.Category = policy.CategoryAudit
	}
	return out, nil
}

// authorizeExplain lets through those who may manage policies or read the
// audit trail.
func (s *RecordService) authorizeExplain(ctx context.Context, c *caller) error {
	for _, act := range []policy.Action{policy.ManagePolicies, policy.ReadAudit} {
		cat := policy.CategoryAdmin
		if act == policy.ReadAudit {
			cat = policy.CategoryAudit
		}
		d, err := s.decider.Decide(ctx, policy.Request{Principal: c.pol, Action: act,
			Resource: policy.Resource{Type: "Policy", ID: "explain", Category: cat},
			Context:  policy.Context{Time: c.now, Purpose: c.purpose, SourceAddress: c.source}})
		if err != nil {
			return err
		}
		if d.Allow {
			record(c, d)
			return nil
		}
	}
	return phivault.Errorf(phivault.EFORBIDDEN, "Only security admins and privacy officers may ask for explanations.")
}
