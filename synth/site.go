package synth

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"

	"github.com/phivault/phivault"
)

// Site describes a vault's own care providers and patients, for Decoys: a
// decoy of a site is treated by the site's clinicians at its departments
// and looks like the site's patients, not like the demo hospital's.
// References are literal ("Organization/<id>").
type Site struct {
	// Organizations are the site's active organisations, each with the
	// locations it manages and the practitioners who work for it, where
	// known. At least one is required.
	Organizations []SiteOrganization
	// Locations and Practitioners are the site's active locations and
	// practitioners that no organisation lists; a department of the
	// decoy's history whose organisation lists none draws from these.
	// The site needs one practitioner at least, here or in an
	// organisation.
	Locations, Practitioners []string
	// UnlocatedEncounters is the share of the site's encounters that name
	// no location, from 0 (the default: all do) to 1: a department of a
	// decoy's history names none with that probability, so that decoys'
	// encounters are not alone in pointing at Locations where the site's
	// do not (Synthea's never do).
	UnlocatedEncounters float64
	// Patients are some of the site's Patient resources, as JSON. Each
	// decoy follows one of them, drawn at random, in what differs from
	// site to site: its identifiers (the same uses, types, systems and
	// assigners, with new values shaped like the site's: see Decoys), its
	// managing organisation, whether it names a general practitioner,
	// whether it has active, telecom, address, maritalStatus and
	// communication elements (not their values), and those of its meta
	// tags and security labels that at least half the given patients
	// carry, which every resource of the decoy then carries. A rarer tag
	// or label (VIP, R, PSY, a consent or a study) is a fact about that
	// patient: copied, it would mislead access policies and worklists. A
	// decoy's address is in a place (city, state, postal code and country
	// together) that at least five of them share, where there is one: a
	// fact about the site, not about a patient. Nothing else of them is
	// copied. At least one is required.
	Patients []json.RawMessage
	// Taken reports whether some patient already has the identifier
	// system|value; a decoy then draws another value. Nil means none is.
	Taken func(system, value string) (bool, error)
}

// SiteOrganization is an organisation of a Site, with its locations and
// practitioners: literal references.
type SiteOrganization struct {
	Reference     string
	Locations     []string
	Practitioners []string
}

// maxDraws bounds the draws of a decoy's identifiers before Decoys gives
// up: all taken means the site's identifiers have few free values.
const maxDraws = 16

// sitePatient is what a decoy copies of one of the site's patients.
type sitePatient struct {
	Identifier           []map[string]any `json:"identifier"`
	ManagingOrganization *reference       `json:"managingOrganization"`
	GeneralPractitioner  []reference      `json:"generalPractitioner"`
	Meta                 *struct {
		Tag      []coding `json:"tag"`
		Security []coding `json:"security"`
	} `json:"meta"`
	Address  []place                    `json:"address"`
	elements map[string]json.RawMessage // every element, to tell which it has
}

// place is where an address is, without its street.
type place struct {
	City       string `json:"city"`
	State      string `json:"state"`
	PostalCode string `json:"postalCode"`
	Country    string `json:"country"`
}

// minPlaceCarriers is how many of a Site's patients must share a place
// for decoys to live there: few enough to find places in a sample of a
// hundred, enough that the place says nothing of any one of them.
const minPlaceCarriers = 5

// site is a Site ready for Decoys: its patients decoded, and the values
// seen for each identifier system.
type site struct {
	*Site
	patients []sitePatient
	values   map[string][]string // by identifier system
	carriers map[coding]int      // patients carrying each meta tag or label, by system and code
	places   []place             // the shared places, each once per patient living there
}

// newSite checks s and decodes its patients.
func newSite(s *Site) (*site, error) {
	if len(s.Organizations) == 0 {
		return nil, phivault.Errorf(phivault.EINVALID, "The site has no organization.")
	}
	hasPractitioner := len(s.Practitioners) > 0
	for _, o := range s.Organizations {
		if o.Reference == "" {
			return nil, phivault.Errorf(phivault.EINVALID, "A site organization has no reference.")
		}
		hasPractitioner = hasPractitioner || len(o.Practitioners) > 0
	}
	if !hasPractitioner {
		return nil, phivault.Errorf(phivault.EINVALID, "The site has no practitioner.")
	}
	if len(s.Patients) == 0 {
		return nil, phivault.Errorf(phivault.EINVALID, "The site has no patient to follow.")
	}
	st := &site{Site: s, values: map[string][]string{}, carriers: map[coding]int{}}
	for i, raw := range s.Patients {
		var p sitePatient
		if json.Unmarshal(raw, &p) != nil || json.Unmarshal(raw, &p.elements) != nil {
			return nil, phivault.Errorf(phivault.EINVALID, "Site patient %d is not a Patient resource.", i)
		}
		for _, id := range p.Identifier {
			sys, _ := id["system"].(string)
			if v, ok := id["value"].(string); ok && v != "" {
				st.values[sys] = append(st.values[sys], v)
			}
		}
		st.patients = append(st.patients, p)
		st.countCarriers(p)
	}
	st.places = sharedPlaces(st.patients)
	return st, nil
}

// sharedPlaces returns the places at least minPlaceCarriers of patients
// live in (their first address), each once per patient, in a fixed
// order so that decoys depend only on the generator.
func sharedPlaces(patients []sitePatient) []place {
	count := map[place]int{}
	for _, p := range patients {
		if len(p.Address) > 0 && p.Address[0].City != "" {
			count[p.Address[0]]++
		}
	}
	var out []place
	for pl, n := range count {
		if n >= minPlaceCarriers {
			out = append(out, slices.Repeat([]place{pl}, n)...)
		}
	}
	slices.SortFunc(out, func(a, b place) int {
		return cmp.Or(cmp.Compare(a.Country, b.Country), cmp.Compare(a.State, b.State),
			cmp.Compare(a.City, b.City), cmp.Compare(a.PostalCode, b.PostalCode))
	})
	return out
}

// countCarriers counts p among the carriers of each of its meta tags and
// labels, once per system and code.
func (s *site) countCarriers(p sitePatient) {
	if p.Meta == nil {
		return
	}
	seen := map[coding]bool{}
	for _, c := range slices.Concat(p.Meta.Tag, p.Meta.Security) {
		k := coding{System: c.System, Code: c.Code}
		if !seen[k] {
			seen[k] = true
			s.carriers[k]++
		}
	}
}

// siteWide returns the codings of cs that at least half the site's
// patients carry: marks of the site or its source (Synthea's tag, the
// demo's HTEST), not facts about one patient.
func (s *site) siteWide(cs []coding) []coding {
	var out []coding
	for _, c := range cs {
		if 2*s.carriers[coding{System: c.System, Code: c.Code}] >= len(s.patients) {
			out = append(out, c)
		}
	}
	return out
}

// look draws the site's departments and the look of one decoy from r.
func (s *site) look(r *rand.Rand) (*shared, *look, error) {
	sh := s.departments(r)
	p := pick(r, s.patients)
	l := &look{generalPractitioner: len(p.GeneralPractitioner) > 0, lacks: map[string]bool{}}
	for _, name := range optionalElements {
		if _, ok := p.elements[name]; !ok {
			l.lacks[name] = true
		}
	}
	if p.ManagingOrganization != nil && p.ManagingOrganization.Reference != "" {
		l.managingOrganization = p.ManagingOrganization.Reference
	}
	if p.Meta != nil {
		tag, sec := s.siteWide(p.Meta.Tag), s.siteWide(p.Meta.Security)
		if len(tag) > 0 || len(sec) > 0 {
			l.meta = &meta{Security: sec, Tag: tag}
		}
	}
	if len(s.places) > 0 {
		l.place = new(pick(r, s.places))
	}
	ids, err := s.identifiers(r, p.Identifier)
	if err != nil {
		return nil, nil, err
	}
	l.identifiers = ids
	return sh, l, nil
}

// departments maps the generator's departments onto the site's
// organisations at random: a shuffled organisation each (one may serve
// several), with one of its locations and its practitioners, or the
// site's unattached ones where it lists none.
func (s *site) departments(r *rand.Rand) *shared {
	orgs := slices.Clone(s.Organizations)
	r.Shuffle(len(orgs), func(i, j int) { orgs[i], orgs[j] = orgs[j], orgs[i] })
	// Organisations with practitioners first, so that each department
	// is treated by its own organisation's clinicians where it can be.
	slices.SortStableFunc(orgs, func(a, b SiteOrganization) int {
		return boolOrder(len(b.Practitioners) > 0) - boolOrder(len(a.Practitioners) > 0)
	})
	sh := &shared{}
	for i := range sh.depts {
		o := orgs[i%len(orgs)]
		d := dept{org: o.Reference, practitioners: o.Practitioners}
		if len(d.practitioners) == 0 {
			d.practitioners = s.Practitioners
		}
		if len(d.practitioners) == 0 {
			d.practitioners = orgs[0].Practitioners // some organisation has some
		}
		if locs := orElse(o.Locations, s.Locations); len(locs) > 0 && !s.unlocated(r) {
			d.location = pick(r, locs)
		}
		sh.depts[i] = d
	}
	return sh
}

// unlocated reports whether a department's encounters name no location,
// drawn from r as UnlocatedEncounters says.
func (s *site) unlocated(r *rand.Rand) bool {
	return s.UnlocatedEncounters > 0 && r.Float64() < s.UnlocatedEncounters
}

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

func orElse[T any](a, b []T) []T {
	if len(a) > 0 {
		return a
	}
	return b
}

// identifierShape are the elements of a site patient's identifier a
// decoy copies: what the site's identifiers of that kind share. Its
// period (when that patient was registered), extensions and id are the
// patient's own, and are left out.
var identifierShape = []string{"use", "type", "system", "assigner"}

// identifiers returns copies of template, a site patient's identifiers,
// with new values: those the site's patients share are redrawn together
// (Synthea's record number repeats its id), and a draw any patient
// already has is drawn again.
func (s *site) identifiers(r *rand.Rand, template []map[string]any) ([]map[string]any, error) {
	for range maxDraws {
		fresh := map[string]string{}
		out := make([]map[string]any, len(template))
		free := true
		for i, id := range template {
			c := make(map[string]any, len(id))
			for _, k := range identifierShape {
				if v, ok := id[k]; ok {
					c[k] = v
				}
			}
			sys, _ := id["system"].(string)
			if v, ok := id["value"].(string); ok && v != "" {
				if _, ok := fresh[v]; !ok {
					fresh[v] = reshape(r, v, s.values[sys])
				}
				c["value"] = fresh[v]
				if s.Taken != nil && free {
					taken, err := s.Taken(sys, fresh[v])
					if err != nil {
						return nil, fmt.Errorf("synth: check a decoy identifier: %w", err)
					}
					free = !taken
				}
			}
			out[i] = c
		}
		if free {
			return out, nil
		}
	}
	return nil, phivault.Errorf(phivault.ECONFLICT, "Every identifier drawn for a decoy is taken; the site's identifiers leave too few free values.")
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// reshape returns a new value shaped like v, one of seen (the values the
// site's patients have in v's system): a UUID becomes a new random UUID
// of the same version; otherwise each character kept is one the site's
// values agree on (the characters all values of v's length share where
// there are two such values at least, else the prefix all of seen
// share: "999-" of an SSN, "MRN-"), and each other digit or letter is
// drawn anew in its class. A value with nothing to learn from keeps only
// its punctuation: the letters of a lone value may be its holder's
// (driver's licences spell the surname in some states).
func reshape(r *rand.Rand, v string, seen []string) string {
	if uuidPattern.MatchString(v) {
		u := []byte(newUUID(r))
		u[14] = v[14] // the version: random (4) or name-based (3, 5), as the site's
		return string(u)
	}
	kept := agreed(v, seen)
	out := []byte(v)
	for i, c := range out {
		if !kept[i] {
			out[i] = drawLike(r, c)
		}
	}
	return string(out)
}

// agreed returns which characters of v the values of seen (v among
// them) agree on: by position among those of v's length, if two at
// least, else as their common prefix, if seen holds two values at least.
func agreed(v string, seen []string) []bool {
	kept := make([]bool, len(v))
	peers := slices.DeleteFunc(slices.Clone(seen), func(s string) bool { return len(s) != len(v) })
	if len(peers) >= 2 {
		for i := range kept {
			kept[i] = !slices.ContainsFunc(peers, func(p string) bool { return p[i] != v[i] })
		}
		return kept
	}
	if len(seen) < 2 {
		return kept
	}
	for i := range kept {
		if slices.ContainsFunc(seen, func(p string) bool { return i >= len(p) || p[i] != v[i] }) {
			break
		}
		kept[i] = true
	}
	return kept
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// drawLike returns a random character of c's class: digit, upper- or
// lower-case ASCII letter; any other character is kept.
func drawLike(r *rand.Rand, c byte) byte {
	switch {
	case isDigit(c):
		return '0' + byte(r.IntN(10))
	case 'A' <= c && c <= 'Z':
		return 'A' + byte(r.IntN(26))
	case 'a' <= c && c <= 'z':
		return 'a' + byte(r.IntN(26))
	}
	return c
}
