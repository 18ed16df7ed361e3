package synth

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/phivault/phivault"
)

// DecoyOptions controls Decoys. Zero values take the documented defaults.
type DecoyOptions struct {
	// Site, if set, is the vault's own site: decoys are treated by its
	// clinicians at its organisations and locations, and look like its
	// patients (see Site). Seed, First and Label are then unused. Nil
	// means the demo hospital's, as below.
	Site *Site
	// Seed is the seed of the hospital (Options.Seed) whose shared
	// resources the decoys reference: the clinicians who saw them, the
	// departments and locations of their encounters. Those must be in the
	// vault already (Hospital's first bundle; Decoys does not yield it).
	Seed uint64
	// Now is the day the decoys' records end, as Options.Now; zero means
	// Hospital's default, so decoys' histories end where the demo
	// hospital's do.
	Now time.Time
	// First sets the decoys' medical record numbers: decoy k gets the MRN
	// Hospital would give patient First+k. Zero means DefaultPatients.
	// Pass the number of patients in the vault, so decoys continue its
	// numbering as newly registered patients would.
	First int
	// Label puts the HTEST security label on every resource, as Hospital
	// does. Set it in a vault of Hospital's patients (the demo), where
	// every record carries it; leave it unset in a vault of other
	// patients. Either way, a decoy looks like its neighbours.
	Label bool
}

// Decoys generates n decoy patients (honeytokens) and calls yield with
// the transaction Bundle of each, as JSON, the Patient its first entry.
// It stops early, returning nil, when yield returns false.
//
// A decoy is made exactly as Hospital makes a patient: a realistic
// synthetic name, address and phone, and years of history (encounters,
// conditions, observations, prescriptions, immunizations, procedures)
// treated by the hospital's clinicians. Nothing in it says it is a decoy:
// no tag, no security label of its own, no special identifier system or
// value, and ids the server assigns at random. Only the caller knows
// which patients are decoys: it reads their ids from the server's
// responses (PatientID) and tells the detector.
//
// Randomness comes from r, which the caller seeds from crypto/rand (for
// instance rand.New(rand.NewChaCha8(seed)) with seed read from
// crypto/rand), so that no one can regenerate the decoys.
//
// With a Site, a decoy's identifiers copy those of a site patient drawn at
// random, with new values: a UUID becomes a new random UUID; otherwise
// the characters the site's values of that system agree on are kept (by
// position among values of the same length, else as a common prefix: an
// "MRN-" or the "999-" of Synthea's SSNs) and the others are drawn anew,
// digit for digit and letter for letter; a value alone in its system
// keeps only its punctuation.
// Values the site's patients share (Synthea repeats its id as the record
// number) stay shared. A value Site.Taken reports as taken is drawn again.
//
// Decoys returns an *phivault.Error with code EINVALID when n or First is
// negative or the Site lacks an organisation, a practitioner or a patient,
// and ECONFLICT when it draws only taken identifiers.
func Decoys(r *rand.Rand, n int, opts DecoyOptions, yield func(bundle []byte) bool) error {
	if n < 0 {
		return phivault.Errorf(phivault.EINVALID, "The number of decoys must not be negative.")
	}
	if opts.First < 0 {
		return phivault.Errorf(phivault.EINVALID, "First must not be negative.")
	}
	if opts.First == 0 {
		opts.First = DefaultPatients
	}
	if opts.Now.IsZero() {
		opts.Now = defaultNow()
	}
	now := opts.Now.UTC().Truncate(time.Second)
	looks, err := decoyLooks(opts)
	if err != nil {
		return err
	}
	for k := range n {
		sh, l, err := looks(r, k)
		if err != nil {
			return err
		}
		b, err := json.Marshal(newPatient(r, sh, now, l))
		if err != nil {
			return fmt.Errorf("synth: encode decoy bundle %d: %w", k, err)
		}
		if !yield(b) {
			return nil
		}
	}
	return nil
}

// decoyLooks returns the departments and look of decoy k: the site's, or
// the demo hospital's.
func decoyLooks(opts DecoyOptions) (func(r *rand.Rand, k int) (*shared, *look, error), error) {
	if opts.Site != nil {
		s, err := newSite(opts.Site)
		if err != nil {
			return nil, err
		}
		return func(r *rand.Rand, _ int) (*shared, *look, error) { return s.look(r) }, nil
	}
	// The shared resources are drawn from the hospital's seed, as Hospital
	// draws them, so the decoys' references resolve to its clinicians.
	sh := newShared(rand.New(rand.NewPCG(opts.Seed, streamShared)))
	return func(_ *rand.Rand, k int) (*shared, *look, error) {
		return sh, hospitalLook(sh, opts.First+k, opts.Label), nil
	}, nil
}

// PatientID returns the id of the Patient a transaction created, read
// from the transaction-response Bundle the server answered with (the Body
// of a phivault.BundleResult): the first entry whose location is
// "Patient/<id>/_history/<n>", relative or under a base URL.
//
// It returns an *phivault.Error with code EINVALID if response is not a
// Bundle or creates no Patient.
func PatientID(response []byte) (string, error) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Response struct {
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(response, &b); err != nil || b.ResourceType != "Bundle" {
		return "", phivault.Errorf(phivault.EINVALID, "The response is not a Bundle.")
	}
	for _, e := range b.Entry {
		loc := e.Response.Location
		if i := strings.Index(loc, "/_history/"); i >= 0 {
			loc = loc[:i]
		}
		parts := strings.Split(loc, "/")
		if n := len(parts); n >= 2 && parts[n-2] == "Patient" && parts[n-1] != "" {
			return parts[n-1], nil
		}
	}
	return "", phivault.Errorf(phivault.EINVALID, "The response creates no Patient.")
}

// HospitalIdentifier returns the identifier of the hospital Organization
// that Hospital makes with seed, as "system|value": a search for it tells
// whether a vault holds that hospital's shared resources, which Decoys
// without a Site references.
func HospitalIdentifier(seed uint64) string {
	sh := newShared(rand.New(rand.NewPCG(seed, streamShared)))
	_, id, _ := strings.Cut(sh.depts[deptHospital].org, "?identifier=")
	return id
}
