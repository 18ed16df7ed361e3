package detect

import (
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
)

// Person is what detectors compare between people: blind-index tokens of
// names, addresses and phones, computed with the vault's index key (see
// PersonValues), never the values themselves.
type Person struct {
	Family  []phivault.Token `json:"family,omitempty"`  // each family name
	Address []phivault.Token `json:"address,omitempty"` // each address: lines + postal code
	Street  []phivault.Token `json:"street,omitempty"`  // each street (lines without house number) + postal code
	Phone   []phivault.Token `json:"phone,omitempty"`   // each phone number, digits only
}

// User is an account (or another system's staff member) as detectors see
// it.
type User struct {
	ID           string   `json:"id"`
	Roles        []string `json:"roles,omitempty"`
	Department   string   `json:"department,omitempty"`
	Practitioner string   `json:"practitioner,omitempty"` // linked Practitioner id, or ""
	// Patient is the user's own Patient id, for staff who are also
	// patients, or "".
	Patient string `json:"patient,omitempty"`
	Status  string `json:"status,omitempty"` // phivault.Account… status; "" is active
	Person  Person `json:"person"`

	practKey string // "Practitioner/<Practitioner>", set by PutUser
}

// Active reports whether the user may sign in.
func (u *User) Active() bool {
	return u.Status == "" || u.Status == phivault.AccountActive
}

// Patient labels detectors act on (HL7 v3 confidentiality and
// sensitivity codes, as the access layer reads them).
const (
	LabelVIP        = "VIP"
	LabelRestricted = "R"
	LabelEmployee   = "EMP"
)

// Patient is a patient as detectors see it.
type Patient struct {
	ID         string   `json:"id"`
	Labels     []string `json:"labels,omitempty"`
	Deceased   bool     `json:"deceased,omitempty"`
	Department string   `json:"department,omitempty"` // managing organization, or ""
	// Employee is the user id of the staff member this patient is, or "".
	Employee string `json:"employee,omitempty"`
	Person   Person `json:"person"`
}

// HasLabel reports whether p carries label.
func (p *Patient) HasLabel(label string) bool { return slices.Contains(p.Labels, label) }

// Relationship kinds phivault derives from its own records; ingested
// relationships may name others.
const (
	KindCareTeam    = "care-team"
	KindEncounter   = "encounter"
	KindEpisode     = "episode"
	KindAppointment = "appointment"
	KindOrder       = "order"
)

// Relationship is a reason for a user to look at a patient: a care team,
// an encounter, an appointment, an order.
type Relationship struct {
	// User is a user id, or "Practitioner/<id>" for a practitioner named
	// by a record (a user reaches it through User.Practitioner).
	User    string    `json:"user"`
	Patient string    `json:"patient"`
	Kind    string    `json:"kind"`
	Start   time.Time `json:"start,omitzero"` // zero: since ever
	End     time.Time `json:"end,omitzero"`   // zero: still open
	// Origin is the record it comes from ("Encounter/<id>") or
	// "ingest:<system>"; SetRelationships replaces all of one origin.
	Origin string `json:"origin"`
}

// Directory is the context detectors read: users, patients, care
// relationships and honeytokens. It is kept current by the pipeline, in
// event order, and is not safe for concurrent use.
type Directory struct {
	users       map[string]*User
	practUsers  map[string]string // Practitioner id → user id
	patients    map[string]*Patient
	rels        map[string]*relUser // by user key
	byOrigin    map[string]*relSpan
	honeytokens map[string]bool
	// added is where AddRelationship puts relationships, a chunk at a
	// time: they are many (every ingested one) and only grow, so one
	// allocation serves relChunk of them.
	added []relNode
	// lastOrigin is the origin a relationship was last added to:
	// relationships come by origin, one after the other.
	lastOrigin *relSpan
	// last is the pair Related looked up last: the rules and the scorer
	// ask about the same user and patient several times per event. Any
	// change to users or relationships forgets it.
	last relLookup
}

// relNode is a relationship in two lists: its user and patient's, and
// its origin's, each in the order added. The lists cost no allocation
// beyond the nodes, which come a chunk at a time.
type relNode struct {
	Relationship
	nextOfPair, nextOfOrigin *relNode
}

// relUser is the relationships of one user key (a user id, or
// "Practitioner/<id>"), by patient. It remembers the patient looked up
// last, as a user reads a chart in bursts: lastFirst is always
// byPatient[lastPatient].
type relUser struct {
	byPatient   map[string]*relNode // patient → first relationship
	lastPatient string
	lastFirst   *relNode
}

// first returns the first relationship with patient, or nil. A nil
// *relUser has none.
func (ru *relUser) first(patient string) *relNode {
	if ru == nil {
		return nil
	}
	if patient != ru.lastPatient {
		ru.lastPatient, ru.lastFirst = patient, ru.byPatient[patient]
	}
	return ru.lastFirst
}

// setFirst makes n (or, if nil, none) the first relationship with
// patient.
func (ru *relUser) setFirst(patient string, n *relNode) {
	if n == nil {
		delete(ru.byPatient, patient)
	} else {
		ru.byPatient[patient] = n
	}
	if patient == ru.lastPatient {
		ru.lastFirst = n
	}
}

// relSpan is an origin's list of relationships.
type relSpan struct {
	origin      string
	first, last *relNode
}

// relLookup is what Related found for user and patient: the
// relationships of the user's id, and of its linked Practitioner.
type relLookup struct {
	user, patient string
	own, pract    *relNode
	ok            bool
}

// relChunk is how many relationships AddRelationship allocates at once.
const relChunk = 256

// NewDirectory returns an empty Directory.
func NewDirectory() *Directory {
	return &Directory{
		users:       map[string]*User{},
		practUsers:  map[string]string{},
		patients:    map[string]*Patient{},
		rels:        map[string]*relUser{},
		byOrigin:    map[string]*relSpan{},
		honeytokens: map[string]bool{},
	}
}

// User returns the user id, or nil.
func (d *Directory) User(id string) *User { return d.users[id] }

// Patient returns the patient id, or nil.
func (d *Directory) Patient(id string) *Patient { return d.patients[id] }

// Honeytoken reports whether patient is a decoy.
func (d *Directory) Honeytoken(patient string) bool { return d.honeytokens[patient] }

// Users calls fn for every user, in no particular order.
func (d *Directory) Users(fn func(*User)) {
	for _, u := range d.users {
		fn(u)
	}
}

// PutUser adds or replaces u. The directory keeps its own copy.
func (d *Directory) PutUser(u *User) {
	if old := d.users[u.ID]; old != nil && old.Practitioner != "" && d.practUsers[old.Practitioner] == u.ID {
		delete(d.practUsers, old.Practitioner)
	}
	cp := *u
	if cp.Practitioner != "" {
		d.practUsers[cp.Practitioner] = cp.ID
		cp.practKey = "Practitioner/" + cp.Practitioner // made once, not per lookup
	}
	d.users[cp.ID] = &cp
	d.last = relLookup{}
}

// UserOfPractitioner returns the user linked to Practitioner id, or "".
func (d *Directory) UserOfPractitioner(id string) string { return d.practUsers[id] }

// PutPatient adds or replaces p. The directory keeps its own copy.
func (d *Directory) PutPatient(p *Patient) {
	cp := *p
	d.patients[cp.ID] = &cp
}

// SetHoneytoken marks patient as a decoy, or not.
func (d *Directory) SetHoneytoken(patient string, on bool) {
	if on {
		d.honeytokens[patient] = true
	} else {
		delete(d.honeytokens, patient)
	}
}

// SetRelationships replaces every relationship of origin with rels
// (whose Origin is set to origin).
func (d *Directory) SetRelationships(origin string, rels []Relationship) {
	if span := d.byOrigin[origin]; span != nil {
		for n := span.first; n != nil; n = n.nextOfOrigin {
			d.unlink(n)
		}
		delete(d.byOrigin, origin)
		if d.lastOrigin == span {
			d.lastOrigin = nil
		}
	}
	// One allocation for the origin, which is replaced whole: it does not
	// keep a chunk of AddRelationship's alive.
	nodes := make([]relNode, len(rels))
	for i := range rels {
		nodes[i].Relationship = rels[i]
		nodes[i].Origin = origin
		d.link(&nodes[i])
	}
	d.last = relLookup{}
}

// AddRelationship adds one relationship to those of r.Origin. It costs
// the same however many relationships the origin has (ingested ones all
// share one origin per system).
func (d *Directory) AddRelationship(r Relationship) {
	if len(d.added) == cap(d.added) {
		d.added = make([]relNode, 0, relChunk)
	}
	d.added = append(d.added, relNode{Relationship: r})
	d.link(&d.added[len(d.added)-1])
	d.last = relLookup{}
}

// link appends n to its pair's and its origin's lists.
func (d *Directory) link(n *relNode) {
	span := d.lastOrigin
	if span == nil || span.origin != n.Origin {
		span = d.byOrigin[n.Origin]
		if span == nil {
			span = &relSpan{origin: n.Origin}
			d.byOrigin[n.Origin] = span
		}
		d.lastOrigin = span
	}
	if span.last == nil {
		span.first = n
	} else {
		span.last.nextOfOrigin = n
	}
	span.last = n
	ru := d.rels[n.User]
	if ru == nil {
		ru = &relUser{byPatient: map[string]*relNode{}}
		d.rels[n.User] = ru
	}
	first := ru.byPatient[n.Patient]
	if first == nil {
		ru.setFirst(n.Patient, n)
		return
	}
	for first.nextOfPair != nil {
		first = first.nextOfPair
	}
	first.nextOfPair = n
}

// unlink takes n out of its pair's list (not its origin's).
func (d *Directory) unlink(n *relNode) {
	ru := d.rels[n.User]
	first := ru.byPatient[n.Patient]
	if first == n {
		first = n.nextOfPair
	} else {
		for prev := first; prev != nil; prev = prev.nextOfPair {
			if prev.nextOfPair == n {
				prev.nextOfPair = n.nextOfPair
				break
			}
		}
	}
	n.nextOfPair = nil
	if first == nil && len(ru.byPatient) == 1 {
		delete(d.rels, n.User)
		return
	}
	ru.setFirst(n.Patient, first)
}

// Related returns the relationship that gives user a reason to look at
// patient at time at, allowing slack before its start and after its
// end, or nil. The user's own id and linked Practitioner both count.
func (d *Directory) Related(user, patient string, at time.Time, slack time.Duration) *Relationship {
	l := d.lookup(user, patient)
	if r := related(l.own, at, slack); r != nil {
		return r
	}
	return related(l.pract, at, slack)
}

// lookup returns the relationships of user (and its linked Practitioner)
// with patient, remembering them for the next call.
func (d *Directory) lookup(user, patient string) *relLookup {
	if d.last.ok && d.last.user == user && d.last.patient == patient {
		return &d.last
	}
	d.last = relLookup{user: user, patient: patient, own: d.rels[user].first(patient), ok: true}
	if u := d.users[user]; u != nil && u.practKey != "" {
		d.last.pract = d.rels[u.practKey].first(patient)
	}
	return &d.last
}

func related(n *relNode, at time.Time, slack time.Duration) *Relationship {
	for ; n != nil; n = n.nextOfPair {
		r := &n.Relationship
		if !r.Start.IsZero() && at.Before(r.Start.Add(-slack)) {
			continue
		}
		if !r.End.IsZero() && at.After(r.End.Add(slack)) {
			continue
		}
		return r
	}
	return nil
}

// Accessors returns the users (ids, or "Practitioner/<id>" keys mapped
// to their users where linked) with any relationship to patient. It
// scans every user: for scoring, not the per-event path.
func (d *Directory) Accessors(patient string) []string {
	var out []string
	for key, ru := range d.rels {
		if ru.byPatient[patient] == nil {
			continue
		}
		if id, ok := strings.CutPrefix(key, "Practitioner/"); ok {
			if u := d.practUsers[id]; u != "" {
				key = u
			}
		}
		out = append(out, key)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Shares reports whether a and b have a token in common.
func Shares(a, b []phivault.Token) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}
