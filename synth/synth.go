// Package synth generates a deterministic synthetic hospital: FHIR R4
// transaction Bundles for `phivault demo`, tests and benchmarks. No real
// person's data: names, addresses and identifiers are drawn at random from
// small embedded word lists, phone numbers are in the 555-01xx range reserved
// for fiction, e-mail addresses are under example.com, practitioner NPIs start
// with 9 (real NPIs start with 1 or 2), and every resource carries the HL7
// security label HTEST (test health data).
//
// The same [Options] always give byte-identical output. Randomness comes from
// a PCG generator seeded from Options.Seed and owned by the call; patient n
// has its own stream, so a hospital of ten patients is a prefix of a hospital
// of two hundred with the same seed.
//
// # Bundles
//
// The first bundle holds the shared resources: the hospital and its
// departments (Organization), their Locations, and the Practitioners. Each is
// created with ifNoneExist on its identifier, so importing the shared bundle
// again creates nothing new (patient bundles are plain creates: importing
// them twice makes two copies). Every further bundle holds one patient: the
// Patient, Encounters, Observations (vital signs and laboratory results),
// Conditions, MedicationRequests, AllergyIntolerances, Immunizations and
// Procedures. References inside a bundle use urn:uuid fullUrls; references
// to the shared resources are conditional references on their identifiers,
// e.g. "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9012345678",
// which the server resolves.
//
// # Decoys
//
// [Decoys] makes decoy patients (honeytokens) the same way, from a
// generator the caller seeds at random, treated by the clinicians of a
// hospital already loaded, or of a [Site]: the vault's own organisations,
// locations and practitioners, with identifiers and tags shaped like its
// patients'. Nothing in them says they are decoys, and only the caller,
// who reads their ids from the server's answers ([PatientID]), knows
// which they are. The HTEST label, or a site's tags, are theirs only as
// the patients around them have them.
package synth

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"iter"
	"math/rand/v2"
	"time"

	"github.com/phivault/phivault"
)

// DefaultPatients is the number of patients when Options.Patients is zero.
const DefaultPatients = 200

// Identifier systems used by the generated hospital.
const (
	// MRNSystem is the system of the patients' medical record numbers.
	MRNSystem = "urn:oid:2.16.840.1.113883.3.1234.1"
	// LocationSystem is the system of the Locations' identifiers.
	LocationSystem = "urn:oid:2.16.840.1.113883.3.1234.2"
	// NPISystem is the system of the Practitioners' and Organizations'
	// National Provider Identifiers.
	NPISystem = "http://hl7.org/fhir/sid/us-npi"
)

// Options controls the generated hospital. Zero values take the documented
// defaults.
type Options struct {
	Seed     uint64    // same seed, same output, byte for byte
	Patients int       // number of patient bundles; zero means DefaultPatients
	Now      time.Time // the day the records end, for ages and dates; zero means 2026-01-01T00:00:00Z
}

// defaultNow is the reference day when Options.Now is zero, fixed so that
// output does not depend on the clock.
func defaultNow() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// PCG stream selectors: the shared bundle and the per-patient seeds draw from
// separate streams of the same seed.
const (
	streamShared   = 0x5348415245440001 // "SHARED"
	streamPatients = 0x504154494e540002 // "PATINT"
)

// Hospital generates the hospital's FHIR R4 transaction Bundles as JSON and
// calls yield with each, the shared bundle first and then one bundle per
// patient. It stops early, returning nil, when yield returns false. yield
// owns each slice it is given.
//
// Hospital returns an *phivault.Error with code EINVALID when Patients is
// negative.
func Hospital(opts Options, yield func(bundle []byte) bool) error {
	if opts.Patients < 0 {
		return phivault.Errorf(phivault.EINVALID, "Patients must not be negative.")
	}
	if opts.Patients == 0 {
		opts.Patients = DefaultPatients
	}
	if opts.Now.IsZero() {
		opts.Now = defaultNow()
	}
	now := opts.Now.UTC().Truncate(time.Second)

	sh := newShared(rand.New(rand.NewPCG(opts.Seed, streamShared)))
	b, err := json.Marshal(sh.bundle)
	if err != nil {
		return fmt.Errorf("synth: encode shared bundle: %w", err)
	}
	if !yield(b) {
		return nil
	}
	seeder := rand.New(rand.NewPCG(opts.Seed, streamPatients))
	for i := range opts.Patients {
		r := rand.New(rand.NewPCG(seeder.Uint64(), seeder.Uint64()))
		b, err := json.Marshal(newPatient(r, sh, now, hospitalLook(sh, i, true)))
		if err != nil {
			return fmt.Errorf("synth: encode patient bundle %d: %w", i, err)
		}
		if !yield(b) {
			return nil
		}
	}
	return nil
}

// Bundles is Hospital as an iterator:
//
//	for bundle, err := range synth.Bundles(opts) { ... }
//
// An error, if any, is the last value yielded.
func Bundles(opts Options) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if err := Hospital(opts, func(b []byte) bool { return yield(b, nil) }); err != nil {
			yield(nil, err)
		}
	}
}

// newUUID returns an RFC 4122 version 4 UUID drawn from r.
func newUUID(r *rand.Rand) string {
	var b [16]byte
	for i := range 2 {
		v := r.Uint64()
		for j := range 8 {
			b[i*8+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// pick returns a random element of s.
func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// chance reports true with probability p.
func chance(r *rand.Rand, p float64) bool { return r.Float64() < p }

// between returns a uniform value in [lo, hi].
func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }

// phone returns a fictional number in the 555-0100..555-0199 block.
func phone(r *rand.Rand) string {
	areas := []string{"413", "508", "617", "774", "781", "857", "978"}
	return fmt.Sprintf("%s-555-01%02d", pick(r, areas), r.IntN(100))
}

// npi returns a ten-digit NPI with a valid check digit (Luhn over the
// prefix 80840, as CMS specifies) whose first digit is 9, which CMS has
// never issued.
func npi(r *rand.Rand) string {
	var d [10]byte
	d[0] = 9
	for i := 1; i < 9; i++ {
		d[i] = byte(r.IntN(10))
	}
	sum := 24 // the Luhn contribution of the prefix 80840
	for i := 0; i < 9; i++ {
		v := int(d[8-i])
		if i%2 == 0 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	d[9] = byte((10 - sum%10) % 10)
	for i := range d {
		d[i] += '0'
	}
	return string(d[:])
}

func newMeta() *meta { return &meta{Security: []coding{testData.coding()}} }

func urn(id string) string { return "urn:uuid:" + id }

// conditional returns a conditional reference to typ by identifier.
func conditional(typ, system, value string) string {
	return typ + "?identifier=" + system + "|" + value
}

const (
	dateFormat     = "2006-01-02"
	dateTimeFormat = time.RFC3339
)
