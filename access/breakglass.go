package access

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/policy"
)

// BreakGlassSystem is the code system of the Basic resources that record
// break-the-glass accesses: code "unreviewed" until a privacy officer
// reviews it, then "reviewed". The record lives in the patient's
// compartment, so it is sealed under the patient's key (the free-text
// reason may hold PHI) and crypto-shredded with the patient. Only those
// who may read the audit trail see these records; nobody writes them
// through the FHIR API.
const BreakGlassSystem = "urn:phivault:break-glass"

// Extension URLs of a break-the-glass record.
const (
	extPrincipal = BreakGlassSystem + ":principal"
	extPurpose   = BreakGlassSystem + ":purpose"
	extReason    = BreakGlassSystem + ":reason"
	extOpened    = BreakGlassSystem + ":opened"
	extUntil     = BreakGlassSystem + ":until"
	extReviewer  = BreakGlassSystem + ":reviewer"
	extVerdict   = BreakGlassSystem + ":verdict"
	extReviewed  = BreakGlassSystem + ":reviewed"
	extComment   = BreakGlassSystem + ":comment"
)

// MaxReason is the longest break-the-glass reason or review comment, in
// characters.
const MaxReason = 2000

// Purposes of use that may open a break-the-glass grant.
var breakGlassPurposes = []string{"ETREAT", "BTG"}

// Review verdicts.
var verdicts = []string{"appropriate", "inappropriate", "follow-up"}

// isBreakGlassBody reports whether a resource is one of the access
// layer's own records: a break-the-glass record, or a containment record
// (see ContainmentSystem), which are treated alike.
func isBreakGlassBody(typ string, obj map[string]any) bool {
	return hasCodeSystem(typ, obj, BreakGlassSystem) || hasCodeSystem(typ, obj, ContainmentSystem)
}

// hasCodeSystem reports whether obj is a Basic coded in system.
func hasCodeSystem(typ string, obj map[string]any, system string) bool {
	if typ != "Basic" {
		return false
	}
	code, _ := obj["code"].(map[string]any)
	for _, c := range list(code["coding"]) {
		if sys, _ := c["system"].(string); sys == system {
			return true
		}
	}
	return false
}

type grant struct {
	until  time.Time
	record string
}

// grants holds the open break-the-glass grants, in memory: a restart ends
// them (the clinician breaks the glass again; the records stay).
type grants struct {
	mu sync.Mutex
	m  map[string]grant
}

func grantKey(principal, patient string) string { return principal + "\x00" + patient }

func (g *grants) active(principal, patient string, now time.Time) (grant, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gr, ok := g.m[grantKey(principal, patient)]
	if !ok {
		return grant{}, false
	}
	if !now.Before(gr.until) {
		delete(g.m, grantKey(principal, patient))
		return grant{}, false
	}
	return gr, true
}

// patients returns the patients principal holds an open grant for.
func (g *grants) patients(principal string, now time.Time) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for k, v := range g.m {
		p, id, _ := strings.Cut(k, "\x00")
		if p == principal && now.Before(v.until) {
			out = append(out, id)
		}
	}
	return out
}

func (g *grants) open(principal, patient string, gr grant, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]grant{}
	}
	for k, v := range g.m { // drop expired grants as new ones come
		if !now.Before(v.until) {
			delete(g.m, k)
		}
	}
	g.m[grantKey(principal, patient)] = gr
}

// BreakGlassRequest asks for emergency access to one patient.
type BreakGlassRequest struct {
	PatientID string `json:"patient"`
	Purpose   string `json:"purpose"` // ETREAT or BTG
	Reason    string `json:"reason"`  // free text; may hold PHI, so it is sealed
}

// Grant is an open break-the-glass grant.
type Grant struct {
	Record    string    `json:"record"` // "Basic/<id>", the record in review
	PatientID string    `json:"patient"`
	Purpose   string    `json:"purpose"`
	Until     time.Time `json:"until"`
}

var errNotStaff = &phivault.Error{Code: phivault.EFORBIDDEN,
	Message: "Only staff members can break the glass, after logging in themselves; this token (a system client's, such as the bootstrap token, or a patient's) never can."}

var errStaleAuth = &phivault.Error{Code: phivault.EUNAUTHORIZED,
	Message: "Breaking the glass needs a fresh login: log in again (with your second factor) and retry within 5 minutes."}

// BreakGlass opens a time-boxed grant for the caller to read one patient's
// records. It needs a login within FreshAuth, a purpose of use (ETREAT or
// BTG) and a reason, and the policy's breakGlass permission (which expired
// training does not take away and suspension does). Every attempt is
// recorded in the audit trail (the reason only by its length); a granted
// one also as an unreviewed record in the patient's compartment, holding
// the reason sealed, which the review queue lists.
func (s *RecordService) BreakGlass(ctx context.Context, r BreakGlassRequest) (*Grant, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	r.Reason = strings.TrimSpace(r.Reason)
	switch {
	case !fhir.IsID(r.PatientID):
		return nil, phivault.Errorf(phivault.EINVALID, "patient must be a Patient id.")
	case !slices.Contains(breakGlassPurposes, r.Purpose):
		return nil, phivault.Errorf(phivault.EINVALID, "purpose must be ETREAT (emergency treatment) or BTG (break the glass).")
	case r.Reason == "":
		return nil, phivault.Errorf(phivault.EINVALID, "reason is required: say why you need emergency access.")
	case utf8.RuneCountInString(r.Reason) > MaxReason || !utf8.ValidString(r.Reason):
		return nil, phivault.Errorf(phivault.EINVALID, "reason must be valid text of at most %d characters.", MaxReason)
	}
	if s.Log == nil {
		return nil, phivault.Errorf(phivault.EUNAVAILABLE, "Break-the-glass is unavailable: it cannot be recorded.")
	}
	fresh := s.FreshAuth
	if fresh <= 0 {
		fresh = DefaultFreshAuth
	}
	entry := s.entry(ctx, c, phivault.ActionBreakGlass, "Patient", r.PatientID)
	entry.Purpose = r.Purpose
	entry.Compartments = []string{r.PatientID}
	fail := func(err error) (*Grant, error) {
		entry.Outcome = phivault.ErrorCode(err)
		if aerr := s.Log.Append(context.WithoutCancel(ctx), entry); aerr != nil {
			return nil, phivault.Errorf(phivault.EUNAVAILABLE, "The audit log cannot be written.")
		}
		return nil, err
	}
	if c.p.Kind != phivault.PrincipalStaff {
		entry.Decision = "deny: not-a-person"
		return fail(errNotStaff)
	}
	if c.p.AuthTime.IsZero() || c.now.Sub(c.p.AuthTime) > fresh || c.p.AuthTime.After(c.now.Add(time.Minute)) {
		entry.Decision = "deny: stale-authentication"
		return fail(errStaleAuth)
	}
	if _, err := s.next.Read(ctx, "Patient", r.PatientID); err != nil {
		if code := phivault.ErrorCode(err); code == phivault.ENOTFOUND || code == phivault.EGONE {
			return fail(phivault.ErrNotFound)
		}
		return nil, err
	}
	c.purpose, c.btgWhy = r.Purpose, r.Reason
	d, err := s.decide(ctx, c, policy.BreakGlass, &target{typ: "Patient", id: r.PatientID, compartment: r.PatientID})
	if err != nil {
		return nil, err
	}
	entry.Decision = decisionText(d) + "; reason " + strconv.Itoa(utf8.RuneCountInString(r.Reason)) + " characters, sealed in the record"
	if !d.Allow {
		return fail(phivault.Errorf(phivault.EFORBIDDEN, "You may not break the glass for this patient."))
	}
	now := c.now.UTC()
	ttl := s.BreakGlassTTL
	if ttl <= 0 {
		ttl = DefaultBreakGlassTTL
	}
	until := now.Add(ttl)
	rec := map[string]any{
		"resourceType": "Basic",
		"code":         map[string]any{"coding": []any{map[string]any{"system": BreakGlassSystem, "code": "unreviewed"}}},
		"subject":      map[string]any{"reference": "Patient/" + r.PatientID},
		"created":      now.Format("2006-01-02"),
		"extension": []any{
			ext(extPrincipal, "valueString", c.p.ID),
			ext(extPurpose, "valueCode", r.Purpose),
			ext(extReason, "valueString", r.Reason),
			ext(extOpened, "valueDateTime", now.Format(time.RFC3339)),
			ext(extUntil, "valueDateTime", until.Format(time.RFC3339)),
		},
	}
	if c.p.PractitionerID != "" {
		rec["author"] = map[string]any{"reference": "Practitioner/" + c.p.PractitionerID}
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	res, _, err := s.next.Create(ownWrite(ctx), "Basic", body, phivault.CreateOptions{})
	if err != nil {
		return nil, err
	}
	entry.Outcome = "ok"
	entry.Decision = "break-glass " + entry.Decision + "; record " + res.Ref()
	if err := s.Log.Append(context.WithoutCancel(ctx), entry); err != nil {
		return nil, phivault.Errorf(phivault.EUNAVAILABLE, "The audit log cannot be written; no access was granted.")
	}
	s.grants.open(c.p.ID, r.PatientID, grant{until: until, record: res.Ref()}, now)
	if s.Logger != nil {
		s.Logger.Warn("access: break-the-glass opened", "principal", c.p.ID, "patient", r.PatientID, "record", res.Ref(), "until", until)
	}
	return &Grant{Record: res.Ref(), PatientID: r.PatientID, Purpose: r.Purpose, Until: until}, nil
}

func ext(url, key string, v any) map[string]any { return map[string]any{"url": url, key: v} }

// BreakGlassAccess is one break-the-glass access as the review queue shows
// it. Reason and Comment may hold PHI: they are shown to reviewers only.
type BreakGlassAccess struct {
	Record    string    `json:"record"`
	PatientID string    `json:"patient"`
	Principal string    `json:"principal"`
	Purpose   string    `json:"purpose"`
	Reason    string    `json:"reason"`
	Opened    time.Time `json:"opened"`
	Until     time.Time `json:"until"`
	Reviewed  bool      `json:"reviewed"`
	Reviewer  string    `json:"reviewer,omitempty"`
	Verdict   string    `json:"verdict,omitempty"`
	Comment   string    `json:"comment,omitempty"`
}

// authorizeReview lets through those who may read the audit trail
// (privacy officers, by the default policies).
func (s *RecordService) authorizeReview(ctx context.Context, c *caller) error {
	d, err := s.decider.Decide(ctx, policy.Request{
		Principal: c.pol, Action: policy.ReadAudit,
		Resource: policy.Resource{Type: "AuditEvent", ID: "break-glass", Category: policy.CategoryAudit},
		Context:  policy.Context{Time: c.now, Purpose: c.purpose, SourceAddress: c.source},
	})
	if err != nil {
		return err
	}
	record(c, d)
	if !d.Allow {
		return phivault.Errorf(phivault.EFORBIDDEN, "Only those who may read the audit trail (privacy officers) review break-the-glass accesses.")
	}
	return nil
}

// BreakGlassQueue returns the break-the-glass accesses not yet reviewed,
// oldest first. Reading the queue is recorded in the audit trail.
func (s *RecordService) BreakGlassQueue(ctx context.Context) ([]BreakGlassAccess, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeReview(ctx, c); err != nil {
		return nil, err
	}
	var out []BreakGlassAccess
	var refs []string
	q := &phivault.Query{Type: "Basic", SortAsc: true, Sorted: true,
		Params: []phivault.QueryParam{{Name: "code", Values: []string{BreakGlassSystem + "|unreviewed"}}}}
	err = s.scan(ctx, q, func(r *phivault.Resource) error {
		a, err := accessOf(r)
		if err != nil {
			return err
		}
		out = append(out, a)
		refs = append(refs, r.Ref()+"/_history/"+strconv.Itoa(int(r.Version)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.Log != nil {
		e := s.entry(ctx, c, phivault.ActionExport, "Basic", "")
		e.SearchParams = []string{"code"}
		e.Returned = refs
		for _, a := range out {
			if !slices.Contains(e.Compartments, a.PatientID) {
				e.Compartments = append(e.Compartments, a.PatientID)
			}
		}
		e.Outcome, e.Decision = "ok", "permit: break-glass review queue"
		if err := s.Log.Append(context.WithoutCancel(ctx), e); err != nil {
			return nil, phivault.Errorf(phivault.EUNAVAILABLE, "The audit log cannot be written; no data was returned.")
		}
	}
	return out, nil
}

// ReviewRequest is a privacy officer's review of one access.
type ReviewRequest struct {
	Record  string `json:"record"`  // "Basic/<id>" or "<id>"
	Verdict string `json:"verdict"` // appropriate, inappropriate or follow-up
	Comment string `json:"comment"` // optional; sealed like the reason
}

// Review records a review of a break-the-glass access and takes it off the
// queue. The review is an audit entry (action review) with the verdict;
// the comment is sealed in the record.
func (s *RecordService) Review(ctx context.Context, r ReviewRequest) (*BreakGlassAccess, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeReview(ctx, c); err != nil {
		return nil, err
	}
	id := strings.TrimPrefix(r.Record, "Basic/")
	switch {
	case !fhir.IsID(id):
		return nil, phivault.Errorf(phivault.EINVALID, "record must be a break-the-glass record id such as Basic/<id>.")
	case !slices.Contains(verdicts, r.Verdict):
		return nil, phivault.Errorf(phivault.EINVALID, "verdict must be appropriate, inappropriate or follow-up.")
	case utf8.RuneCountInString(r.Comment) > MaxReason || !utf8.ValidString(r.Comment):
		return nil, phivault.Errorf(phivault.EINVALID, "comment must be valid text of at most %d characters.", MaxReason)
	}
	if s.Log == nil {
		return nil, phivault.Errorf(phivault.EUNAVAILABLE, "Reviews are unavailable: they cannot be recorded.")
	}
	res, err := s.next.Read(ctx, "Basic", id)
	if err != nil {
		return nil, err
	}
	obj, err := fhir.Decode(res.Body)
	if err != nil {
		return nil, err
	}
	if !hasCodeSystem("Basic", obj, BreakGlassSystem) {
		return nil, phivault.ErrNotFound
	}
	a, err := accessOf(res)
	if err != nil {
		return nil, err
	}
	if a.Reviewed {
		return nil, phivault.Errorf(phivault.ECONFLICT, "This access was reviewed already.")
	}
	now := c.now.UTC()
	obj["code"] = map[string]any{"coding": []any{map[string]any{"system": BreakGlassSystem, "code": "reviewed"}}}
	exts := asList(obj["extension"])
	exts = append(exts, ext(extReviewer, "valueString", c.p.ID), ext(extVerdict, "valueCode", r.Verdict),
		ext(extReviewed, "valueDateTime", now.Format(time.RFC3339)))
	if strings.TrimSpace(r.Comment) != "" {
		exts = append(exts, ext(extComment, "valueString", strings.TrimSpace(r.Comment)))
	}
	obj["extension"] = exts
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	upd, _, err := s.next.Update(ownWrite(ctx), "Basic", id, body, phivault.UpdateOptions{IfMatch: res.Version})
	if err != nil {
		return nil, err
	}
	e := s.entry(ctx, c, phivault.ActionReview, "Basic", id)
	e.TargetVersion = upd.Version
	e.Compartments = []string{a.PatientID}
	e.Outcome = "ok"
	e.Decision = "review " + r.Verdict + " of break-glass by " + a.Principal
	if err := s.Log.Append(context.WithoutCancel(ctx), e); err != nil {
		return nil, phivault.Errorf(phivault.EUNAVAILABLE, "The audit log cannot be written.")
	}
	out, err := accessOf(upd)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// accessOf reads a break-the-glass record.
func accessOf(r *phivault.Resource) (BreakGlassAccess, error) {
	obj, err := fhir.Decode(r.Body)
	if err != nil {
		return BreakGlassAccess{}, err
	}
	a := BreakGlassAccess{Record: r.Ref(), PatientID: refID(obj["subject"], "Patient")}
	code, _ := obj["code"].(map[string]any)
	for _, cd := range list(code["coding"]) {
		if v, _ := cd["code"].(string); v == "reviewed" {
			a.Reviewed = true
		}
	}
	for _, x := range list(obj["extension"]) {
		url, _ := x["url"].(string)
		str := func(k string) string { v, _ := x[k].(string); return v }
		tm := func() time.Time { t, _ := time.Parse(time.RFC3339, str("valueDateTime")); return t }
		switch url {
		case extPrincipal:
			a.Principal = str("valueString")
		case extPurpose:
			a.Purpose = str("valueCode")
		case extReason:
			a.Reason = str("valueString")
		case extOpened:
			a.Opened = tm()
		case extUntil:
			a.Until = tm()
		case extReviewer:
			a.Reviewer = str("valueString")
		case extVerdict:
			a.Verdict = str("valueCode")
		case extComment:
			a.Comment = str("valueString")
		}
	}
	return a, nil
}

// entry starts an audit entry for the request in ctx.
func (s *RecordService) entry(ctx context.Context, c *caller, action, typ, id string) *phivault.AuditEntry {
	e := &phivault.AuditEntry{Time: c.now.UTC(), Action: action, TargetType: typ, TargetID: id, Actor: c.p.ID, Roles: c.p.Roles, Client: c.p.Client}
	if info, ok := phivault.RequestInfoFromContext(ctx); ok {
		e.RequestID, e.Source, e.Purpose = info.ID, info.Source, info.Purpose
		if info.Client != "" {
			e.Client = info.Client
		}
	}
	return e
}
