package access

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/policy"
)

// PrincipalSystem is the identifier system of references that name a
// phivault principal (account or client id) directly, as in an explicit
// assignment: a CareTeam participant whose member is
// {"identifier": {"system": PrincipalSystem, "value": "<account id>"}}.
// Consent actors may name principals the same way.
const PrincipalSystem = "urn:phivault:principal"

// contextTypes are the resource types a patient's access context is read
// from; a write of one of them invalidates the cached context.
var contextTypes = []string{"Patient", "CareTeam", "Encounter", "EpisodeOfCare", "Consent"}

// patient is what the policy needs to know about one patient, in terms of
// Practitioner ids and principal ids.
type patient struct {
	practitioners   map[string]bool // Practitioner ids with a care relationship
	principals      []string        // principals assigned explicitly
	department      string          // id of Patient.managingOrganization
	labels          []string        // Patient.meta.security sensitive codes
	denyAll         bool            // an active Consent denies everyone
	denyPractitions map[string]bool
	denyPrincipals  []string
	denyOrgs        []string
	denyPurposes    []string
	restricted      bool // a restrict-compartment record is stored (see Restrict)
	loaded          time.Time
}

// policyPatient returns the policy's view of the patient for principal p:
// p is on the care team if its Practitioner is, or it is assigned.
func (pt *patient) policyPatient(id string, p *phivault.Principal) policy.Patient {
	out := policy.Patient{ID: id, Department: pt.department, Labels: pt.labels,
		CareTeam:   pt.principals,
		Consent:    policy.ConsentDeny{Actors: pt.denyPrincipals, Organizations: pt.denyOrgs, Purposes: pt.denyPurposes},
		Restricted: pt.restricted}
	if p.PractitionerID != "" && pt.practitioners[p.PractitionerID] && !slices.Contains(out.CareTeam, p.ID) {
		out.CareTeam = append(slices.Clip(out.CareTeam), p.ID)
	}
	if pt.denyAll || (p.PractitionerID != "" && pt.denyPractitions[p.PractitionerID]) {
		out.Consent.Actors = append(slices.Clip(out.Consent.Actors), p.ID)
	}
	return out
}

// contextCache holds access contexts (patients', principals' care-team
// compartments) by key. A generation counter keeps a load that raced with
// an invalidation from being stored.
type contextCache[V any] struct {
	mu  sync.Mutex
	m   map[string]V
	gen uint64
}

func (c *contextCache[V]) get(key string) (V, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok, c.gen
}

func (c *contextCache[V]) put(key string, v V, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= defaultCacheEntries {
		c.m = map[string]V{}
	}
	c.m[key] = v
}

// invalidate drops the entries of keys; with no keys, every entry.
func (c *contextCache[V]) invalidate(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if len(keys) == 0 {
		c.m = nil
		return
	}
	for _, k := range keys {
		delete(c.m, k)
	}
}

// patientInfo returns the access context of patient id, from the cache or
// read from its compartment.
func (s *RecordService) patientInfo(ctx context.Context, id string) (*patient, error) {
	now := s.Now()
	p, ok, gen := s.cache.get(id)
	if ok && now.Sub(p.loaded) < s.ContextTTL && !now.Before(p.loaded) {
		return p, nil
	}
	p, err := s.loadPatient(ctx, id, now)
	if err != nil {
		return nil, err
	}
	s.cache.put(id, p, gen)
	return p, nil
}

// loadPatient reads the context of patient id through the wrapped service.
func (s *RecordService) loadPatient(ctx context.Context, id string, now time.Time) (*patient, error) {
	p := &patient{practitioners: map[string]bool{}, denyPractitions: map[string]bool{}, loaded: now}
	res, err := s.next.Read(ctx, "Patient", id)
	switch code := phivault.ErrorCode(err); {
	case code == phivault.EGONE:
		// A deleted Patient's compartment keeps the department and labels
		// of its last version: deleting the Patient must not open the
		// rest of the chart to more people.
		if res, err = s.lastLive(ctx, id); err != nil {
			return nil, err
		}
	case code == phivault.ENOTFOUND:
	case err != nil:
		return nil, err
	}
	if res != nil {
		obj, err := fhir.Decode(res.Body)
		if err != nil {
			return nil, err
		}
		p.labels = Labels(obj)
		p.department = refID(obj["managingOrganization"], "Organization")
	}
	teams := map[string]bool{}
	// Only what is stored in the patient's own compartment speaks for the
	// patient: a CareTeam elsewhere that merely mentions it does not.
	each := func(typ string, fn func(obj map[string]any)) error {
		return s.scan(ctx, &phivault.Query{Type: typ, Compartments: []string{id}},
			func(r *phivault.Resource) error {
				obj, err := fhir.Decode(r.Body)
				if err != nil {
					return err
				}
				fn(obj)
				return nil
			})
	}
	careTeam := func(obj map[string]any) {
		id, _ := obj["id"].(string)
		teams[id] = true
		if st, _ := obj["status"].(string); st == "inactive" || st == "entered-in-error" {
			return
		}
		for _, part := range list(obj["participant"]) {
			if ended(part["period"], now) {
				continue
			}
			p.addMember(part["member"])
		}
	}
	if err := each("CareTeam", careTeam); err != nil {
		return nil, err
	}
	err = each("Encounter", func(obj map[string]any) {
		if st, _ := obj["status"].(string); st == "entered-in-error" || st == "cancelled" {
			return
		}
		for _, part := range list(obj["participant"]) {
			p.addMember(part["individual"])
		}
	})
	if err != nil {
		return nil, err
	}
	var moreTeams []string
	err = each("EpisodeOfCare", func(obj map[string]any) {
		if st, _ := obj["status"].(string); st == "entered-in-error" || st == "cancelled" || st == "finished" {
			return
		}
		p.addMember(obj["careManager"])
		for _, t := range asList(obj["team"]) {
			if tid := refID(t, "CareTeam"); tid != "" && !teams[tid] {
				moreTeams = append(moreTeams, tid)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for _, tid := range moreTeams {
		r, err := s.next.Read(ctx, "CareTeam", tid)
		if code := phivault.ErrorCode(err); code == phivault.ENOTFOUND || code == phivault.EGONE {
			continue
		} else if err != nil {
			return nil, err
		}
		if r.Compartment != id {
			continue // another patient's team, named by this one's episode
		}
		obj, err := fhir.Decode(r.Body)
		if err != nil {
			return nil, err
		}
		careTeam(obj)
	}
	err = each("Consent", func(obj map[string]any) {
		if st, _ := obj["status"].(string); st != "active" {
			return
		}
		prov, _ := obj["provision"].(map[string]any)
		p.addDeny(prov, now)
	})
	if err != nil {
		return nil, err
	}
	// An incident's restriction is a record in the compartment, found by
	// its code's token without reading any other Basic.
	err = s.scan(ctx, restrictionQuery(id), func(*phivault.Resource) error {
		p.restricted = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// lastLive returns the last version of Patient id before its deletion, or
// nil if there is none (or the compartment was shredded).
func (s *RecordService) lastLive(ctx context.Context, id string) (*phivault.Resource, error) {
	h, err := s.next.History(ctx, phivault.HistoryQuery{Type: "Patient", ID: id, Count: 2})
	if code := phivault.ErrorCode(err); code == phivault.EGONE || code == phivault.ENOTFOUND {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	for _, v := range h.Versions {
		if !v.Deleted {
			return v, nil
		}
	}
	return nil, nil
}

// addMember adds a reference to a Practitioner (or a principal, by
// identifier) to the care team.
func (p *patient) addMember(ref any) {
	if id := refID(ref, "Practitioner"); id != "" {
		p.practitioners[id] = true
	}
	if id := principalRef(ref); id != "" && !slices.Contains(p.principals, id) {
		p.principals = append(p.principals, id)
	}
}

// addDeny gathers deny provisions, nested ones included. A deny provision
// with neither actor nor purpose denies everyone.
func (p *patient) addDeny(prov map[string]any, now time.Time) {
	if prov == nil || ended(prov["period"], now) {
		return
	}
	if t, _ := prov["type"].(string); t == "deny" {
		actors, purposes := list(prov["actor"]), list(prov["purpose"])
		if len(actors) == 0 && len(purposes) == 0 {
			p.denyAll = true
		}
		for _, a := range actors {
			ref := a["reference"]
			if id := refID(ref, "Practitioner"); id != "" {
				p.denyPractitions[id] = true
			}
			if id := refID(ref, "Organization"); id != "" {
				p.denyOrgs = append(p.denyOrgs, id)
			}
			if id := principalRef(ref); id != "" {
				p.denyPrincipals = append(p.denyPrincipals, id)
			}
		}
		for _, pu := range purposes {
			if code, _ := pu["code"].(string); code != "" {
				p.denyPurposes = append(p.denyPurposes, code)
			}
		}
	}
	for _, sub := range list(prov["provision"]) {
		p.addDeny(sub, now)
	}
}

// scan calls fn with every current match of q, up to MaxScan.
func (s *RecordService) scan(ctx context.Context, q *phivault.Query, fn func(*phivault.Resource) error) error {
	return s.pages(q.Type, s.searchPages(ctx, q), func(rs []*phivault.Resource) error {
		for _, r := range rs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// searchPages fetches the current matches of q, without includes or
// summary, for pages.
func (s *RecordService) searchPages(ctx context.Context, q *phivault.Query) fetchFunc {
	qq := *q
	qq.Count, qq.Include, qq.Summary = MaxCount, nil, ""
	return func(offset int) ([]*phivault.Resource, int, error) {
		qq.Offset = offset
		res, err := s.next.Search(ctx, &qq)
		if err != nil {
			return nil, 0, err
		}
		return res.Matches, res.Total, nil
	}
}

func tooMany(typ string, n int) error {
	return phivault.Errorf(phivault.EINVALID, "This request matches more than %d %s resources; narrow it (for example by patient or date).", n, typ)
}

// refID returns the id of a local reference {"reference": "Type/id"} to
// typ (read by fhir.LocalRef, the one reading of a reference), or "".
func refID(ref any, typ string) string {
	m, _ := ref.(map[string]any)
	s, _ := m["reference"].(string)
	t, id, ok := fhir.LocalRef(s)
	if !ok || t != typ {
		return ""
	}
	return id
}

// CareMember returns whom a care-relationship reference (a CareTeam
// member, an Encounter participant, an EpisodeOfCare care manager) names,
// as the policies read it: "Practitioner/<id>" for a local Practitioner
// reference, the principal id for a reference by identifier in
// PrincipalSystem, or "" for anything else. The detectors read care
// relationships with it.
func CareMember(ref any) string {
	if id := refID(ref, "Practitioner"); id != "" {
		return "Practitioner/" + id
	}
	return principalRef(ref)
}

// principalRef returns the principal id of a reference by identifier in
// the PrincipalSystem, or "".
func principalRef(ref any) string {
	m, _ := ref.(map[string]any)
	ident, _ := m["identifier"].(map[string]any)
	if sys, _ := ident["system"].(string); sys != PrincipalSystem {
		return ""
	}
	v, _ := ident["value"].(string)
	return v
}

// ended reports whether a FHIR Period has an end before now.
func ended(period any, now time.Time) bool {
	m, _ := period.(map[string]any)
	end, _ := m["end"].(string)
	if end == "" {
		return false
	}
	_, _, to, err := fhir.DateRange(end)
	return err == nil && !to.After(now)
}

// list returns a JSON array of objects.
func list(v any) []map[string]any {
	var out []map[string]any
	for _, x := range asList(v) {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func asList(v any) []any {
	a, _ := v.([]any)
	return a
}
