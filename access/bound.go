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

// noCompartment bounds a search to nothing: it is not a valid id, so no
// compartment has it.
const noCompartment = "#none"

// maxBound is the most compartments a staff search is bounded to; a
// clinician on more care teams than that searches unbounded, every match
// still decided one by one.
const maxBound = 1000

// CompartmentFinder lists, without decrypting anything, the patient
// compartments holding the current resources that match a query's indexed
// parameters; vault.Service is one. The access layer bounds staff searches
// with it (see RecordService.CareTeamBound).
type CompartmentFinder interface {
	MatchCompartments(ctx context.Context, q *phivault.Query) ([]string, error)
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
// bounded when CareTeamBound is set and the policies would not let them
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
		if !s.CareTeamBound || c.granule {
			return nil, nil
		}
		finder, ok := s.next.(CompartmentFinder)
		if !ok {
			return nil, nil
		}
		reach, err := s.reachesStrangers(ctx, c, typ)
		if err != nil || reach {
			return nil, err
		}
		teams, err := s.teamCompartments(ctx, finder, c.p)
		if err != nil {
			return nil, err
		}
		out := append([]string{""}, teams...)
		for _, id := range s.grants.patients(c.p.ID, c.now) {
			if !slices.Contains(out, id) {
				out = append(out, id)
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

// teamCompartments returns the compartments holding a CareTeam, Encounter
// or EpisodeOfCare that names p (by its Practitioner, or by principal
// identifier): a superset of the patients whose care team p is on, since
// loadPatient also weighs status and periods. It is cached like patients'
// contexts and dropped on every write of a context type.
func (s *RecordService) teamCompartments(ctx context.Context, finder CompartmentFinder, p *phivault.Principal) ([]string, error) {
	now := s.Now()
	key := p.ID + "\x00" + p.PractitionerID
	t, gen := s.teams.get(key)
	if t != nil && now.Sub(t.loaded) < s.ContextTTL && !now.Before(t.loaded) {
		return t.compartments, nil
	}
	var out []string
	for _, r := range careTeamRefs {
		var params []phivault.QueryParam
		if p.PractitionerID != "" {
			params = append(params, phivault.QueryParam{Name: r.param, Values: []string{"Practitioner/" + p.PractitionerID}})
		}
		params = append(params, phivault.QueryParam{Name: r.param, Modifier: "identifier", Values: []string{PrincipalSystem + "|" + p.ID}})
		for _, qp := range params {
			ids, err := finder.MatchCompartments(ctx, &phivault.Query{Type: r.typ, Params: []phivault.QueryParam{qp}})
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				if id != "" && !slices.Contains(out, id) {
					out = append(out, id)
				}
			}
		}
	}
	s.teams.put(key, &teamBound{compartments: out, loaded: now}, gen)
	return out, nil
}

// teamBound is one principal's cached care-team compartments.
type teamBound struct {
	compartments []string
	loaded       time.Time
}

// teamCache holds principals' care-team compartments. Any write of a
// context type drops them all: which principals it concerns is not known
// without reading it.
type teamCache struct {
	mu  sync.Mutex
	m   map[string]*teamBound
	gen uint64
}

func (c *teamCache) get(key string) (*teamBound, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key], c.gen
}

func (c *teamCache) put(key string, t *teamBound, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= defaultCacheEntries {
		c.m = map[string]*teamBound{}
	}
	c.m[key] = t
}

func (c *teamCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}
