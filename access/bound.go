package access

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/policy"
)

// noCompartment bounds a search to nothing: it is not a valid id, so no
// compartment has it.
const noCompartment = "#none"

// maxBound is the most compartments a staff search is bounded to; a
// clinician on more care teams than that searches unbounded, every match
// still decided one by one.
const maxBound = 1000

// CompartmentCounter counts, without decrypting anything, how many current
// resources matching a query's indexed parameters each patient
// compartment holds; vault.Service is one. The access layer bounds staff
// searches with it and counts what they may see (see
// RecordService.BuiltInPolicies).
type CompartmentCounter interface {
	CountCompartments(ctx context.Context, q *phivault.Query) (map[string]int, error)
}

// careTeamRefs are the search parameters, by type, through which a
// principal joins a patient's care team (see loadPatient): each names the
// principal's Practitioner, or the principal itself by identifier.
var careTeamRefs = []struct{ typ, param string }{
	{"CareTeam", "participant"},
	{"Encounter", "participant"},
	{"EpisodeOfCare", "care-manager"},
}

// bound returns the compartments a search of typ by c may reach, or nil
// when the store should search them all (the matches are then decided one
// by one, as they always are). A patient sees, whatever the policies say,
// resources of compartment types in their own compartment only. Staff are
// bounded when BuiltInPolicies is set and the policies would not let them
// search a patient of their own department who is not theirs (see
// reachesStrangers): then only the compartments of their care teams and
// break-the-glass grants, and resources in no compartment, can hold
// anything they may see. Either way the store searches those compartments
// alone, so nothing outside them is decrypted or decided on, and a
// patient's search costs the same whatever other patients hold.
func (s *RecordService) bound(ctx context.Context, c *caller, typ string) ([]string, error) {
	if !fhir.IsCompartmentType(typ) {
		return nil, nil
	}
	switch c.p.Kind {
	case phivault.PrincipalPatient:
		if c.p.PatientID == "" {
			return []string{noCompartment}, nil
		}
		return []string{c.p.PatientID}, nil
	case phivault.PrincipalStaff:
		if !s.BuiltInPolicies || c.granule {
			return nil, nil
		}
		counter, ok := s.next.(CompartmentCounter)
		if !ok {
			return nil, nil
		}
		reach, err := s.reachesStrangers(ctx, c, typ)
		if err != nil || reach {
			return nil, err
		}
		teams, err := s.teamCompartments(ctx, counter, c.p)
		if err != nil {
			return nil, err
		}
		out := teams // "" first, then the care teams' compartments; shared, not modified
		if grants := s.grants.patients(c.p.ID, c.now); len(grants) > 0 {
			out = slices.Clone(teams)
			for _, id := range grants {
				if _, found := slices.BinarySearch(teams, id); !found {
					out = append(out, id)
				}
			}
		}
		if len(out) > maxBound {
			return nil, nil
		}
		return out, nil
	}
	return nil, nil
}

// reachesStrangers asks the policies whether c may search resources of
// typ of a patient in c's own department who has c on no care team, with
// no labels, no Consent and no break-the-glass grant: the most a patient
// can offer who is not c's. Under the built-in policies a denial means c
// reaches patients only through care teams and grants.
func (s *RecordService) reachesStrangers(ctx context.Context, c *caller, typ string) (bool, error) {
	stranger := &policy.Patient{ID: noCompartment, Department: c.p.Department}
	d, err := s.decide(ctx, c, policy.Search, &target{typ: typ, compartment: noCompartment, patient: stranger})
	if err != nil {
		return false, err
	}
	return d.Allow, nil
}

// teamCompartments returns, sorted, "" (no compartment) and the
// compartments holding a CareTeam, Encounter or EpisodeOfCare that names p (by its Practitioner, or by principal
// identifier): a superset of the patients whose care team p is on, since
// loadPatient also weighs status and periods. It is cached like patients'
// contexts and dropped on every write of a context type.
func (s *RecordService) teamCompartments(ctx context.Context, counter CompartmentCounter, p *phivault.Principal) ([]string, error) {
	now := s.Now()
	key := p.ID + "\x00" + p.PractitionerID
	t, ok, gen := s.teams.get(key)
	if ok && now.Sub(t.loaded) < s.ContextTTL && !now.Before(t.loaded) {
		return t.compartments, nil
	}
	set := map[string]bool{"": true} // resources in no compartment are reachable too
	for _, r := range careTeamRefs {
		var params []phivault.QueryParam
		if p.PractitionerID != "" {
			params = append(params, phivault.QueryParam{Name: r.param, Values: []string{"Practitioner/" + p.PractitionerID}})
		}
		params = append(params, phivault.QueryParam{Name: r.param, Modifier: "identifier", Values: []string{PrincipalSystem + "|" + p.ID}})
		for _, qp := range params {
			counts, err := counter.CountCompartments(ctx, &phivault.Query{Type: r.typ, Params: []phivault.QueryParam{qp}})
			if err != nil {
				return nil, err
			}
			for id := range counts {
				set[id] = true
			}
		}
	}
	out := slices.Sorted(maps.Keys(set))
	s.teams.put(key, &teamBound{compartments: out, loaded: now}, gen)
	return out, nil
}

// teamBound is one principal's cached care-team compartments. Any write
// of a context type drops them all: which principals it concerns is not
// known without reading it.
type teamBound struct {
	compartments []string
	loaded       time.Time
}

// countByCompartment counts what c may see of the matches of q, deciding
// once per compartment instead of once per resource: nothing is decrypted.
// That holds only where the decision cannot depend on a resource's body:
// under the built-in policies, without granular scopes, not for Basic
// (break-the-glass records are told by their body), and for a caller whom
// no resource label can stop (a patient in their own compartment, or staff
// and clients holding every clearance). ok is false where it does not
// hold, or where q has a parameter the index cannot answer alone.
func (s *RecordService) countByCompartment(ctx context.Context, c *caller, q *phivault.Query, tl *tally) (n int, ok bool, err error) {
	counter, isCounter := s.next.(CompartmentCounter)
	if !isCounter || !s.BuiltInPolicies || c.granule || q.Type == "Basic" ||
		(c.p.Kind != phivault.PrincipalPatient && !hasAll(c.p.Clearances, sensitiveLabels)) {
		return 0, false, nil
	}
	counts, err := counter.CountCompartments(ctx, q)
	if phivault.ErrorCode(err) == phivault.EUNSUPPORTED {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	ids := slices.Sorted(maps.Keys(counts))
	for _, id := range ids {
		d, err := s.decide(ctx, c, policy.Search, &target{typ: q.Type, compartment: id})
		if err != nil {
			return 0, false, err
		}
		tl.addN(d, counts[id])
		if d.Allow {
			n += counts[id]
		}
	}
	return n, true, nil
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
