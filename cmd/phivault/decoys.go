package main

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/synth"
)

// demoSeed is the seed of the demo hospital (phivault demo).
const demoSeed = 1

// Bounds on what MakeDecoys reads of the site: enough to spread decoys
// over a large hospital, little enough to stay quick.
const (
	maxSiteShared   = 10_000 // Organizations, Locations, Practitioners, PractitionerRoles each
	sitePatientPage = 100    // patients a request follows, and encounters it looks at
)

// decoyMaker makes honeytokens through the whole request path (audit and
// access), as a system client planting them: the entries say so
// (purpose detect.DefaultPlantPurpose), and the honeytoken rule does not
// count the planting as a touch.
//
// In the demo vault (the demo hospital's Organization is there) decoys
// are made as the demo makes its patients: its departments and
// clinicians, its HTEST label if its patients carry it, and record
// numbers that continue its numbering. Any other vault is a site
// (readSite): decoys are treated by its clinicians at its organisations,
// and follow its patients' identifiers, tags and managing organisation.
type decoyMaker struct {
	// mu serialises MakeDecoys: two requests at once would read the same
	// vault, continue the demo's numbering from the same count, and check
	// their identifiers free before either plants.
	mu      sync.Mutex
	records phivault.RecordService // through access and audit
	// vault is the vault below access and audit, for what planting must
	// not touch through the audited path: the patients decoys follow and
	// the encounters whose locations they count (earlier decoys among
	// them would be touches by the planter, each a false critical alert),
	// and whether an identifier is taken (a count, no patient's data). As
	// detectContext does, it reads what it keeps (identifier shapes,
	// site-wide tags, shared places, which elements are present) in
	// memory only.
	vault phivault.RecordService
}

// MakeDecoys implements detect.Decoys with synth.Decoys: over the demo
// hospital's shared resources in the demo vault, over the site's own
// (readSite) elsewhere. A vault without organisations, practitioners or
// patients refuses with EPRECONDITION: a decoy alone in a vault, or
// treated by clinicians no real patient sees, would be a tell.
func (m *decoyMaker) MakeDecoys(ctx context.Context, n int) ([]string, error) {
	ctx = phivault.WithPrincipal(ctx, access.BootstrapPrincipal("honeytoken"))
	ctx = phivault.WithRequestInfo(ctx, phivault.RequestInfo{Actor: "honeytoken", Roles: []string{access.BootstrapRole}, Purpose: detect.DefaultPlantPurpose})
	m.mu.Lock()
	defer m.mu.Unlock()
	var seed [32]byte
	if _, err := cryptorand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("seed decoys: %w", err)
	}
	r := mathrand.New(mathrand.NewChaCha8(seed))
	opts, err := m.options(ctx, r)
	if err != nil {
		return nil, err
	}
	var (
		ids  []string
		fail error
	)
	err = synth.Decoys(r, n, opts, func(b []byte) bool {
		id, err := m.plant(ctx, b)
		if err != nil {
			fail = err
			return false
		}
		ids = append(ids, id)
		return true
	})
	if err == nil {
		err = fail
	}
	return ids, err
}

// plant stores one decoy's transaction Bundle and returns its Patient's id.
func (m *decoyMaker) plant(ctx context.Context, bundle []byte) (string, error) {
	res, err := m.records.Bundle(ctx, bundle, "")
	if err != nil {
		return "", fmt.Errorf("plant decoy: %w", err)
	}
	id, err := synth.PatientID(res.Body)
	if err != nil {
		return "", fmt.Errorf("plant decoy: %w", err)
	}
	return id, nil
}

// options returns the demo hospital's options in the demo vault, the
// site's elsewhere, drawn from r.
func (m *decoyMaker) options(ctx context.Context, r *mathrand.Rand) (synth.DecoyOptions, error) {
	demo, err := m.count(ctx, m.records, "Organization", phivault.QueryParam{Name: "identifier", Values: []string{synth.HospitalIdentifier(demoSeed)}})
	if err != nil {
		return synth.DecoyOptions{}, err
	}
	if demo > 0 {
		return m.demoOptions(ctx, r)
	}
	site, err := m.readSite(ctx, r)
	if err != nil {
		return synth.DecoyOptions{}, err
	}
	return synth.DecoyOptions{Site: site}, nil
}

// demoOptions returns the options of demo decoys: record numbers after
// the vault's patients', and the HTEST label if they carry it (read on a
// sample: the store cannot count by label over encrypted records).
func (m *decoyMaker) demoOptions(ctx context.Context, r *mathrand.Rand) (synth.DecoyOptions, error) {
	total, err := m.count(ctx, m.records, "Patient")
	if err != nil {
		return synth.DecoyOptions{}, err
	}
	opts := synth.DecoyOptions{Seed: demoSeed, First: total}
	if total == 0 {
		return opts, nil
	}
	sample, err := m.samplePatients(ctx, r)
	if err != nil {
		return synth.DecoyOptions{}, err
	}
	opts.Label = slices.ContainsFunc(sample, hasTestLabel)
	return opts, nil
}

// hasTestLabel reports whether a Patient carries the HTEST security label.
func hasTestLabel(patient json.RawMessage) bool {
	var p struct {
		Meta struct {
			Security []struct{ System, Code string }
		}
	}
	if json.Unmarshal(patient, &p) != nil {
		return false
	}
	return slices.ContainsFunc(p.Meta.Security, func(c struct{ System, Code string }) bool {
		return c.System == synth.TestDataSystem && c.Code == synth.TestDataCode
	})
}

// count returns how many resources of typ match params in records.
func (m *decoyMaker) count(ctx context.Context, records phivault.RecordService, typ string, params ...phivault.QueryParam) (int, error) {
	res, err := records.Search(ctx, &phivault.Query{Type: typ, Summary: "count", Params: params})
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", typ, err)
	}
	return res.Total, nil
}

// errEmptySite is the refusal of a vault that has no clinicians,
// organisations or patients for decoys to join.
var errEmptySite = phivault.Errorf(phivault.EPRECONDITION,
	"Load the site's Organizations, Practitioners (with PractitionerRoles, where they exist) and patients first: decoys are treated by the site's own clinicians and look like its patients.")

// readSite reads the site's active Organizations, Locations,
// Practitioners and PractitionerRoles (siteOf groups them), and a page of
// its patients at an offset drawn from r, for decoys to follow, and of
// its encounters, for how many name a location.
func (m *decoyMaker) readSite(ctx context.Context, r *mathrand.Rand) (*synth.Site, error) {
	var shared [4][]siteResource
	for i, typ := range []string{"Organization", "Location", "Practitioner", "PractitionerRole"} {
		res, err := m.readShared(ctx, typ)
		if err != nil {
			return nil, err
		}
		shared[i] = res
	}
	site := siteOf(shared[0], shared[1], shared[2], shared[3])
	if len(site.Organizations) == 0 || !hasPractitioner(site) {
		return nil, errEmptySite
	}
	patients, err := m.samplePatients(ctx, r)
	if err != nil {
		return nil, err
	}
	site.Patients = patients
	if site.UnlocatedEncounters, err = m.unlocatedShare(ctx, r); err != nil {
		return nil, err
	}
	site.Taken = func(system, value string) (bool, error) {
		n, err := m.count(ctx, m.vault, "Patient", phivault.QueryParam{Name: "identifier", Values: []string{system + "|" + value}})
		return n > 0, err
	}
	return site, nil
}

// siteOf groups a site's active shared resources by organisation: the
// organisations that give care, each with the locations it manages
// (Location.managingOrganization) or its PractitionerRoles name, and the
// practitioners those roles link to it. Locations and practitioners no
// organisation lists are the site's own, but for practitioners whose
// roles are all at payers or organisations no longer active: a claims
// reviewer or a departed doctor treating a decoy would be a tell.
func siteOf(orgs, locs, pracs, roles []siteResource) *synth.Site {
	site := &synth.Site{}
	for _, o := range orgs {
		if providesCare(o) {
			site.Organizations = append(site.Organizations, synth.SiteOrganization{Reference: o.ref})
		}
	}
	byRef := map[string]*synth.SiteOrganization{}
	for i := range site.Organizations {
		byRef[site.Organizations[i].Reference] = &site.Organizations[i]
	}
	activeLocs := map[string]bool{}
	for _, l := range locs {
		activeLocs[l.ref] = true
		if o := byRef[l.reference("managingOrganization")]; o != nil {
			o.Locations = append(o.Locations, l.ref)
		} else {
			site.Locations = append(site.Locations, l.ref)
		}
	}
	worksFor := map[string][]string{} // practitioner → organisations
	elsewhere := map[string]bool{}    // practitioners with a role at a payer or closed organisation
	for _, role := range roles {
		p, o := role.reference("practitioner"), byRef[role.reference("organization")]
		if p != "" && o == nil && role.reference("organization") != "" {
			elsewhere[p] = true
		}
		if p == "" || o == nil || slices.Contains(worksFor[p], o.Reference) {
			continue
		}
		worksFor[p] = append(worksFor[p], o.Reference)
		for _, l := range role.references("location") {
			if activeLocs[l] && !slices.Contains(o.Locations, l) {
				o.Locations = append(o.Locations, l)
			}
		}
	}
	for _, p := range pracs {
		for _, o := range worksFor[p.ref] {
			byRef[o].Practitioners = append(byRef[o].Practitioners, p.ref)
		}
		if len(worksFor[p.ref]) == 0 && !elsewhere[p.ref] {
			site.Practitioners = append(site.Practitioners, p.ref)
		}
	}
	return site
}

// hasPractitioner reports whether some practitioner may treat a decoy of
// site.
func hasPractitioner(site *synth.Site) bool {
	return len(site.Practitioners) > 0 || slices.ContainsFunc(site.Organizations, func(o synth.SiteOrganization) bool { return len(o.Practitioners) > 0 })
}

// samplePatients returns a page of the vault's patients at an offset
// drawn from r, or errEmptySite if it has none.
func (m *decoyMaker) samplePatients(ctx context.Context, r *mathrand.Rand) ([]json.RawMessage, error) {
	out, err := m.samplePage(ctx, r, "Patient")
	if err == nil && len(out) == 0 {
		err = errEmptySite
	}
	return out, err
}

// unlocatedShare returns the share of a page of the vault's encounters,
// at an offset drawn from r, that name no location (0 if it has none):
// only whether each names one is kept.
func (m *decoyMaker) unlocatedShare(ctx context.Context, r *mathrand.Rand) (float64, error) {
	page, err := m.samplePage(ctx, r, "Encounter")
	if err != nil || len(page) == 0 {
		return 0, err
	}
	unlocated := 0
	for _, b := range page {
		var e struct{ Location []json.RawMessage }
		if json.Unmarshal(b, &e) == nil && len(e.Location) == 0 {
			unlocated++
		}
	}
	return float64(unlocated) / float64(len(page)), nil
}

// samplePage returns a page of the vault's resources of typ at an offset
// drawn from r, read below access and audit (see decoyMaker.vault).
func (m *decoyMaker) samplePage(ctx context.Context, r *mathrand.Rand, typ string) ([]json.RawMessage, error) {
	total, err := m.count(ctx, m.vault, typ)
	if err != nil || total == 0 {
		return nil, err
	}
	offset := r.IntN(max(total-sitePatientPage, 0) + 1)
	res, err := m.vault.Search(ctx, &phivault.Query{Type: typ, Count: sitePatientPage, Offset: offset, Sorted: true, SortAsc: true})
	if err != nil {
		return nil, fmt.Errorf("sample %s: %w", typ, err)
	}
	out := make([]json.RawMessage, 0, len(res.Matches))
	for _, r := range res.Matches {
		out = append(out, r.Body)
	}
	return out, nil
}

// siteResource is a shared resource of the site: its reference and the
// elements readSite looks at.
type siteResource struct {
	ref string
	obj map[string]any
}

// reference returns the literal reference in element name, or "".
func (r siteResource) reference(name string) string {
	refs := r.references(name)
	if len(refs) == 0 {
		return ""
	}
	return refs[0]
}

// references returns the literal references ("Type/id") in element name,
// a Reference or a list of them.
func (r siteResource) references(name string) []string {
	v := r.obj[name]
	if m, ok := v.(map[string]any); ok {
		v = []any{m}
	}
	var out []string
	for _, x := range maps(v) {
		if s, _ := x["reference"].(string); strings.Count(s, "/") == 1 {
			out = append(out, s)
		}
	}
	return out
}

// readShared returns the active resources of typ (shared resources: no
// patient's data), through the audited path, maxSiteShared at most.
func (m *decoyMaker) readShared(ctx context.Context, typ string) ([]siteResource, error) {
	var out []siteResource
	for offset := 0; offset < maxSiteShared; offset += access.MaxCount {
		res, err := m.records.Search(ctx, &phivault.Query{Type: typ, Count: access.MaxCount, Offset: offset, Sorted: true, SortAsc: true})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", typ, err)
		}
		for _, r := range res.Matches {
			var obj map[string]any
			if err := json.Unmarshal(r.Body, &obj); err != nil {
				return nil, fmt.Errorf("read %s: %w", typ, err)
			}
			if active(obj) {
				out = append(out, siteResource{ref: r.Ref(), obj: obj})
			}
		}
		if len(res.Matches) < access.MaxCount {
			break
		}
	}
	return out, nil
}

// active reports whether a resource is in use: its active element is not
// false, and its status (a Location's) neither inactive nor suspended.
func active(obj map[string]any) bool {
	if a, ok := obj["active"].(bool); ok && !a {
		return false
	}
	s, _ := obj["status"].(string)
	return s != "inactive" && s != "suspended"
}

// payerTypes are the Organization.type codes of organisations that pay
// for care rather than give it: a decoy treated there would be a tell.
var payerTypes = []string{"pay", "ins"}

// providesCare reports whether an Organization may serve a decoy's
// encounters: it is not typed as a payer only.
func providesCare(r siteResource) bool {
	var codes []string
	for _, t := range maps(r.obj["type"]) {
		for _, c := range maps(t["coding"]) {
			if s, _ := c["code"].(string); s != "" {
				codes = append(codes, s)
			}
		}
	}
	if len(codes) == 0 {
		return true
	}
	return slices.ContainsFunc(codes, func(c string) bool { return !slices.Contains(payerTypes, c) })
}
