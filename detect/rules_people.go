package detect

import (
	"slices"
	"strconv"
	"time"

	"github.com/phivault/phivault"
)

// Rules about people: who looked at whom. Each compares the actor of an
// event with every patient it touched, through the Directory, and reports
// one finding per patient that matches. They keep no state.
//
// These rules run on every event: on the path where nothing is found they
// only look things up in maps and compare tokens, and allocate nothing
// (TestPeopleRulesQuietPathAllocs holds them to it). The sentence and key of a finding are
// built only when it is reported.

// Names of the rules about people.
const (
	RuleHoneytoken      = "honeytoken"
	RuleSelfAccess      = "self-access"
	RuleFamilyAccess    = "family-access"
	RuleNeighbourAccess = "neighbour-access"
	RuleCoworkerAccess  = "coworker-access"
	RuleVIPAccess       = "vip-access"
	RuleDeceasedAccess  = "deceased-access"
	RuleNoRelationship  = "no-relationship"
)

// Defaults of the rules about people.
const (
	// DefaultPlantPurpose is the purpose of use with which
	// `phivault honeytoken create` writes decoy patients, so their
	// planting is not taken for a touch.
	DefaultPlantPurpose = "honeytoken-plant"
	// DefaultPeopleSearchHits is how many patients a search may return
	// and still count as looking at each of them. A search that lists
	// more is a list of candidates, not a look at one (the name-search
	// browsing and large-result rules judge those); opening one of them
	// afterwards is a read, which counts.
	DefaultPeopleSearchHits = 1
	// DefaultLabelSlack is how long before a care relationship starts
	// and after it ends an access to a VIP, restricted or employee
	// patient still counts as related: a day, for the chart review
	// before a visit and the notes and results after it.
	DefaultLabelSlack = 24 * time.Hour
	// DefaultDeceasedSlack is the same for a deceased patient's record:
	// 30 days, for coding, billing, the death certificate and late
	// results after the last encounter.
	DefaultDeceasedSlack = 30 * 24 * time.Hour
	// DefaultNeighbourSlack is the same for neighbours: a day.
	DefaultNeighbourSlack = 24 * time.Hour
	// DefaultRelationshipSlack is the window around a care relationship,
	// encounter, appointment or order within which a clinician's read is
	// related: 7 days either side. Before: preparing an admission or an
	// appointment booked days ahead; after: results, discharge letters and
	// follow-up calls that arrive in the week after a visit. Longer
	// windows hide the curious look a week after a discharge; shorter ones
	// flag ordinary follow-up.
	DefaultRelationshipSlack = 7 * 24 * time.Hour
)

// DefaultRelationshipRoles are the roles whose reads the no-relationship
// rule checks: people who treat patients and so have care relationships
// to compare with. Front desk and billing staff see patients without one
// as a matter of course.
var DefaultRelationshipRoles = []string{"physician", "nurse", "resident", "clinician", "doctor", "pharmacist", "therapist"}

// Roles with a meaning to these rules.
const (
	// PatientRole marks a patient's own account: patients reading their
	// own (or, as proxies, their family's) records are not snooping.
	PatientRole = "patient"
	// roleBootstrap is access.BootstrapRole, the operator's token: a
	// system client, not a person.
	roleBootstrap = "bootstrap-admin"
)

// peopleRules returns the rules about people with default settings.
func peopleRules() []Rule {
	return []Rule{
		NewHoneytoken(), NewSelfAccess(), NewFamilyAccess(), NewNeighbourAccess(),
		NewCoworkerAccess(), NewVIPAccess(), NewDeceasedAccess(), NewNoRelationship(),
	}
}

// peopleAccess reports whether action looks at or changes patients'
// records (and not, say, a sign-in or a key rotation).
func peopleAccess(action string) bool {
	return action == phivault.ActionShred || dataAction(action)
}

// peopleLooks reports whether ev is a successful access of a person that
// counts as looking at each patient it touched: searches only when they
// returned at most searchHits patients.
func peopleLooks(ev *Event, searchHits int) bool {
	return peopleLooksAtAll(ev) && peopleFewHits(ev, searchHits)
}

// peopleLooksAtAll is peopleLooks but for the number of hits.
func peopleLooksAtAll(ev *Event) bool {
	return ev.OK && ev.User != "" && len(ev.Patients) > 0 && peopleAccess(ev.Action) && ev.OnRecords() &&
		!peopleSystem(ev) && !peopleIsPatient(ev, nil)
}

// peopleFewHits reports whether ev is not a search, or one that returned
// at most searchHits patients.
func peopleFewHits(ev *Event, searchHits int) bool {
	return ev.Action != phivault.ActionSearch || len(ev.Patients) <= searchHits
}

// peopleSystem reports whether the actor of ev is a system client rather
// than a person: a backend client (its actor is its client id) or the
// operator's token.
func peopleSystem(ev *Event) bool {
	return (ev.Client != "" && ev.User == ev.Client) || ev.User == phivault.OperatorID ||
		slices.Contains(ev.Roles, roleBootstrap)
}

// peopleIsPatient reports whether the actor of ev (u, if known) is a
// patient using their own account: one with the role PatientRole, or
// one linked to a Patient with no roles at all (staff always have one).
func peopleIsPatient(ev *Event, u *User) bool {
	if slices.Contains(ev.Roles, PatientRole) {
		return true
	}
	return u != nil && (slices.Contains(u.Roles, PatientRole) || (u.Patient != "" && len(u.Roles) == 0 && len(ev.Roles) == 0))
}

// peopleVerbs are the phrases of the sentences: what was done to "the
// record of patient X" (and what follows it), and what was tried.
var peopleVerbs = map[string]struct{ done, tried, after string }{
	phivault.ActionRead:       {"opened", "tried to open", ""},
	phivault.ActionVRead:      {"opened", "tried to open", ""},
	phivault.ActionHistory:    {"opened the history of", "tried to open the history of", ""},
	phivault.ActionEverything: {"opened everything in", "tried to open everything in", ""},
	phivault.ActionSearch:     {"found", "searched for", " in a search"},
	phivault.ActionBundle:     {"touched", "tried to touch", " in a batch"},
	phivault.ActionCreate:     {"wrote to", "tried to write to", ""},
	phivault.ActionUpdate:     {"changed", "tried to change", ""},
	phivault.ActionDelete:     {"deleted from", "tried to delete from", ""},
	phivault.ActionShred:      {"shredded", "tried to shred", ""},
	phivault.ActionExport:     {"exported", "tried to export", ""},
	ActionPrint:               {"printed", "tried to print", ""},
}

// peopleSubject returns the start of a finding's sentence: "User u1
// opened the record of patient p9".
func peopleSubject(ev *Event, patient string) string {
	who := "An unauthenticated caller"
	if ev.User != "" {
		who = "User " + ev.User
	}
	v, ok := peopleVerbs[ev.Action]
	if !ok {
		v.done, v.tried = "touched", "tried to touch"
	}
	verb := v.done
	if !ev.OK {
		verb = v.tried
	}
	return who + " " + verb + " the record of patient " + patient + v.after
}

// peopleKey returns the key "user|patient".
func peopleKey(user, patient string) string { return user + "|" + patient }

// peopleWindow says a slack in words: "24 hours", "7 days".
func peopleWindow(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d > 0 {
		n := int(d / (24 * time.Hour))
		if n == 1 {
			return "a day"
		}
		return strconv.Itoa(n) + " days"
	}
	if d%time.Hour == 0 {
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	}
	return d.String()
}

// Honeytoken reports any touch of a decoy patient (Directory.Honeytoken),
// by anyone, admins included, whatever the action: read, search hit,
// $everything, Bundle, history, export, print, write. Refused attempts
// count too: probing a decoy is what an intruder does. No one has a
// reason to touch a decoy, so each touch is critical.
//
// Key: "user|patient" (the user is "" for an unauthenticated caller).
type Honeytoken struct {
	Severity Severity // default SeverityCritical
	Score    int      // default 100
	// PlantPurpose is the purpose of use of the writes that plant a decoy
	// (phivault honeytoken create, as a system client): creates and
	// Bundles by a system client with this purpose are not touches. ""
	// makes every write a touch. Default DefaultPlantPurpose. Only
	// phivault's own trail plants: an ingested event (whose purpose and
	// roles the other system states) is always a touch.
	PlantPurpose string
}

// NewHoneytoken returns the honeytoken rule with default settings.
func NewHoneytoken() *Honeytoken {
	return &Honeytoken{Severity: SeverityCritical, Score: 100, PlantPurpose: DefaultPlantPurpose}
}

// Name implements Rule.
func (r *Honeytoken) Name() string { return RuleHoneytoken }

// Observe implements Rule.
func (r *Honeytoken) Observe(x *Context, ev *Event) {
	if !ev.OnRecords() {
		return
	}
	if r.PlantPurpose != "" && ev.Purpose == r.PlantPurpose && ev.Stream != StreamIngest && peopleSystem(ev) &&
		(ev.Action == phivault.ActionCreate || ev.Action == phivault.ActionBundle) {
		return
	}
	for _, p := range ev.Patients {
		if x.Dir.Honeytoken(p) {
			r.report(x, ev, p)
		}
	}
	// A refused read of a Patient may name it only as its target.
	if ev.ResourceType == "Patient" && ev.ResourceID != "" && !slices.Contains(ev.Patients, ev.ResourceID) &&
		x.Dir.Honeytoken(ev.ResourceID) {
		r.report(x, ev, ev.ResourceID)
	}
}

func (r *Honeytoken) report(x *Context, ev *Event, p string) {
	x.Report(Finding{
		Rule: RuleHoneytoken, Key: peopleKey(ev.User, p), Severity: r.Severity, Score: r.Score,
		User: ev.User, Patients: []string{p},
		Why: peopleSubject(ev, p) + ", a decoy that no one has a reason to touch.",
	})
}

// SelfAccess reports staff opening their own record: the user's linked
// Patient (User.Patient), or a patient recorded as that user
// (Patient.Employee). Patients using their own accounts are not
// reported. A care relationship does not excuse it: staff see their own
// records through the patient portal, like other patients.
//
// Key: "user|patient".
type SelfAccess struct {
	Severity Severity // default SeverityMedium
	Score    int      // default 50
	// SearchHits: a search counts only if it returned at most this many
	// patients. Default DefaultPeopleSearchHits.
	SearchHits int
}

// NewSelfAccess returns the self-access rule with default settings.
func NewSelfAccess() *SelfAccess {
	return &SelfAccess{Severity: SeverityMedium, Score: 50, SearchHits: DefaultPeopleSearchHits}
}

// Name implements Rule.
func (r *SelfAccess) Name() string { return RuleSelfAccess }

// Observe implements Rule.
func (r *SelfAccess) Observe(x *Context, ev *Event) {
	if !x.looks(ev, r.SearchHits) {
		return
	}
	u := x.user(ev)
	if peopleIsPatient(ev, u) {
		return
	}
	for i, p := range ev.Patients {
		if u != nil && u.Patient == p {
			r.report(x, ev, p)
			continue
		}
		if pt := x.patient(ev, i); pt != nil && pt.Employee == ev.User {
			r.report(x, ev, p)
		}
	}
}

func (r *SelfAccess) report(x *Context, ev *Event, p string) {
	x.Report(Finding{
		Rule: RuleSelfAccess, Key: peopleKey(ev.User, p), Severity: r.Severity, Score: r.Score,
		User: ev.User, Patients: []string{p},
		Why: peopleSubject(ev, p) + ", which is their own.",
	})
}

// FamilyAccess reports staff opening the record of someone who shares
// their address, or their phone number: their household (a shared
// family name, with the address, is said in the sentence but is not
// needed; a shared family name alone is not reported, as common names
// are common). The comparison is of blind-index tokens (Person). A care
// relationship does not excuse it: treating one's own family is itself
// what privacy officers want to see.
//
// Key: "user|patient".
type FamilyAccess struct {
	Severity Severity // default SeverityHigh
	Score    int      // default 80
	// SearchHits: a search counts only if it returned at most this many
	// patients. Default DefaultPeopleSearchHits.
	SearchHits int
}

// NewFamilyAccess returns the family-access rule with default settings.
func NewFamilyAccess() *FamilyAccess {
	return &FamilyAccess{Severity: SeverityHigh, Score: 80, SearchHits: DefaultPeopleSearchHits}
}

// Name implements Rule.
func (r *FamilyAccess) Name() string { return RuleFamilyAccess }

// Observe implements Rule.
func (r *FamilyAccess) Observe(x *Context, ev *Event) {
	if !x.looks(ev, r.SearchHits) {
		return
	}
	u := x.user(ev)
	if u == nil || peopleIsPatient(ev, u) || (len(u.Person.Address) == 0 && len(u.Person.Phone) == 0) {
		return
	}
	for i, p := range ev.Patients {
		pt := x.patient(ev, i)
		if pt == nil || p == u.Patient || pt.Employee == ev.User {
			continue // their own record: self-access
		}
		address := Shares(u.Person.Address, pt.Person.Address)
		phone := Shares(u.Person.Phone, pt.Person.Phone)
		if !address && !phone {
			continue
		}
		family := Shares(u.Person.Family, pt.Person.Family)
		x.Report(Finding{
			Rule: RuleFamilyAccess, Key: peopleKey(ev.User, p), Severity: r.Severity, Score: r.Score,
			User: ev.User, Patients: []string{p},
			Why: peopleSubject(ev, p) + ", who shares " + familyShared(family, address, phone) + " with them.",
		})
	}
}

// familyShared lists what two people share, in words.
func familyShared(family, address, phone bool) string {
	var parts []string
	if family {
		parts = append(parts, "a family name")
	}
	if address {
		parts = append(parts, "an address")
	}
	if phone {
		parts = append(parts, "a phone number")
	}
	switch len(parts) {
	case 1:
		return parts[0]
	case 2:
		return parts[0] + " and " + parts[1]
	}
	return parts[0] + ", " + parts[1] + " and " + parts[2]
}

// NeighbourAccess reports staff opening the record of someone who lives
// on their street (same street and postal code) but not at their
// address, with no care relationship within Slack: neighbours are
// treated every day in small towns, so only the unexplained look counts.
// Those who share an address or phone are the family rule's.
//
// Key: "user|patient".
type NeighbourAccess struct {
	Severity Severity      // default SeverityMedium
	Score    int           // default 60
	Slack    time.Duration // window around a relationship; default DefaultNeighbourSlack
	// SearchHits: a search counts only if it returned at most this many
	// patients. Default DefaultPeopleSearchHits.
	SearchHits int
}

// NewNeighbourAccess returns the neighbour-access rule with default
// settings.
func NewNeighbourAccess() *NeighbourAccess {
	return &NeighbourAccess{Severity: SeverityMedium, Score: 60, Slack: DefaultNeighbourSlack, SearchHits: DefaultPeopleSearchHits}
}

// Name implements Rule.
func (r *NeighbourAccess) Name() string { return RuleNeighbourAccess }

// Observe implements Rule.
func (r *NeighbourAccess) Observe(x *Context, ev *Event) {
	if !x.looks(ev, r.SearchHits) {
		return
	}
	u := x.user(ev)
	if u == nil || len(u.Person.Street) == 0 || peopleIsPatient(ev, u) {
		return
	}
	for i, p := range ev.Patients {
		pt := x.patient(ev, i)
		if pt == nil || p == u.Patient || pt.Employee == ev.User ||
			!Shares(u.Person.Street, pt.Person.Street) ||
			Shares(u.Person.Address, pt.Person.Address) || Shares(u.Person.Phone, pt.Person.Phone) ||
			x.Dir.Related(ev.User, p, ev.Time, r.Slack) != nil {
			continue
		}
		x.Report(Finding{
			Rule: RuleNeighbourAccess, Key: peopleKey(ev.User, p), Severity: r.Severity, Score: r.Score,
			User: ev.User, Patients: []string{p},
			Why: peopleSubject(ev, p) + ", who lives on their street, with no care relationship within " + peopleWindow(r.Slack) + ".",
		})
	}
}

// CoworkerAccess reports staff opening the record of a fellow employee
// (Patient.Employee names another user, or the patient carries the EMP
// label) with no care relationship within Slack.
//
// Key: "user|patient".
type CoworkerAccess struct {
	Severity Severity      // default SeverityMedium
	Score    int           // default 60
	Slack    time.Duration // window around a relationship; default DefaultLabelSlack
	// SearchHits: a search counts only if it returned at most this many
	// patients. Default DefaultPeopleSearchHits.
	SearchHits int
}

// NewCoworkerAccess returns the coworker-access rule with default
// settings.
func NewCoworkerAccess() *CoworkerAccess {
	return &CoworkerAccess{Severity: SeverityMedium, Score: 60, Slack: DefaultLabelSlack, SearchHits: DefaultPeopleSearchHits}
}

// Name implements Rule.
func (r *CoworkerAccess) Name() string { return RuleCoworkerAccess }

// Observe implements Rule.
func (r *CoworkerAccess) Observe(x *Context, ev *Event) {
	if !x.looks(ev, r.SearchHits) {
		return
	}
	for i, p := range ev.Patients {
		pt := x.patient(ev, i)
		if pt == nil || (pt.Employee == "" && !pt.HasLabel(LabelEmployee)) || pt.Employee == ev.User {
			continue
		}
		if u := x.user(ev); (u != nil && u.Patient == p) || peopleIsPatient(ev, u) ||
			x.Dir.Related(ev.User, p, ev.Time, r.Slack) != nil {
			continue
		}
		who := "an employee"
		if pt.Employee != "" {
			who = "employee " + pt.Employee
		}
		x.Report(Finding{
			Rule: RuleCoworkerAccess, Key: peopleKey(ev.User, p), Severity: r.Severity, Score: r.Score,
			User: ev.User, Patients: []string{p},
			Why: peopleSubject(ev, p) + ", who is " + who + ", with no care relationship within " + peopleWindow(r.Slack) + ".",
		})
	}
}

// VIPAccess reports staff opening the record of a patient labelled VIP
// or restricted (R) with no care relationship within Slack.
//
// Key: "user|patient".
type VIPAccess struct {
	Severity Severity      // default SeverityHigh
	Score    int           // default 80
	Slack    time.Duration // window around a relationship; default DefaultLabelSlack
	// SearchHits: a search counts only if it returned at most this many
	// patients. Default DefaultPeopleSearchHits.
	SearchHits int
}

// NewVIPAccess returns the vip-access rule with default settings.
func NewVIPAccess() *VIPAccess {
	return &VIPAccess{Severity: SeverityHigh, Score: 80, Slack: DefaultLabelSlack, SearchHits: DefaultPeopleSearchHits}
}

// Name implements Rule.
func (r *VIPAccess) Name() string { return RuleVIPAccess }

// Observe implements Rule.
func (r *VIPAccess) Observe(x *Context, ev *Event) {
	if !x.looks(ev, r.SearchHits) {
		return
	}
	for i, p := range ev.Patients {
		pt := x.patient(ev, i)
		if pt == nil {
			continue
		}
		vip, restricted := pt.HasLabel(LabelVIP), pt.HasLabel(LabelRestricted)
		if (!vip && !restricted) || peopleIsPatient(ev, x.user(ev)) ||
			x.Dir.Related(ev.User, p, ev.Time, r.Slack) != nil {
			continue
		}
		label := "restricted"
		if vip {
			label = "VIP"
		}
		x.Report(Finding{
			Rule: RuleVIPAccess, Key: peopleKey(ev.User, p), Severity: r.Severity, Score: r.Score,
			User: ev.User, Patients: []string{p},
			Why: peopleSubject(ev, p) + ", who is labelled " + label + ", with no care relationship within " + peopleWindow(r.Slack) + ".",
		})
	}
}

// DeceasedAccess reports staff opening a deceased patient's record with
// no care relationship within Slack (default 30 days, for the paperwork
// that follows a death).
//
// Key: "user|patient".
type DeceasedAccess struct {
	Severity Severity      // default SeverityMedium
	Score    int           // default 50
	Slack    time.Duration // window around a relationship; default DefaultDeceasedSlack
	// SearchHits: a search counts only if it returned at most this many
	// patients. Default DefaultPeopleSearchHits.
	SearchHits int
}

// NewDeceasedAccess returns the deceased-access rule with default
// settings.
func NewDeceasedAccess() *DeceasedAccess {
	return &DeceasedAccess{Severity: SeverityMedium, Score: 50, Slack: DefaultDeceasedSlack, SearchHits: DefaultPeopleSearchHits}
}

// Name implements Rule.
func (r *DeceasedAccess) Name() string { return RuleDeceasedAccess }

// Observe implements Rule.
func (r *DeceasedAccess) Observe(x *Context, ev *Event) {
	if !x.looks(ev, r.SearchHits) {
		return
	}
	for i, p := range ev.Patients {
		pt := x.patient(ev, i)
		if pt == nil || !pt.Deceased || peopleIsPatient(ev, x.user(ev)) ||
			x.Dir.Related(ev.User, p, ev.Time, r.Slack) != nil {
			continue
		}
		x.Report(Finding{
			Rule: RuleDeceasedAccess, Key: peopleKey(ev.User, p), Severity: r.Severity, Score: r.Score,
			User: ev.User, Patients: []string{p},
			Why: peopleSubject(ev, p) + ", who is deceased, with no care relationship within " + peopleWindow(r.Slack) + ".",
		})
	}
}

// NoRelationship reports a clinician's look at a patient with no care
// relationship, encounter, appointment or order within Slack of the
// access. It checks only users the directory knows with one of Roles
// (clinicians have relationships to compare with), and only reads:
// read, vread, history, $everything, print, and searches that returned
// at most SearchHits patients. Writes, Bundles and exports are left to
// the volume rules. It is noisy by nature, so its alerts are low and
// one a user, patient and day (UTC).
//
// Key: "user|patient|2006-01-02".
type NoRelationship struct {
	Severity Severity      // default SeverityLow
	Score    int           // default 30
	Slack    time.Duration // window around a relationship; default DefaultRelationshipSlack
	// Roles are the roles checked. Default DefaultRelationshipRoles.
	Roles []string
	// SearchHits: a search counts only if it returned at most this many
	// patients. Default DefaultPeopleSearchHits.
	SearchHits int
}

// NewNoRelationship returns the no-relationship rule with default
// settings.
func NewNoRelationship() *NoRelationship {
	return &NoRelationship{Severity: SeverityLow, Score: 30, Slack: DefaultRelationshipSlack,
		Roles: slices.Clone(DefaultRelationshipRoles), SearchHits: DefaultPeopleSearchHits}
}

// Name implements Rule.
func (r *NoRelationship) Name() string { return RuleNoRelationship }

// Observe implements Rule.
func (r *NoRelationship) Observe(x *Context, ev *Event) {
	switch ev.Action {
	case phivault.ActionRead, phivault.ActionVRead, phivault.ActionHistory, phivault.ActionEverything,
		phivault.ActionSearch, ActionPrint:
	default:
		return
	}
	if !x.looks(ev, r.SearchHits) {
		return
	}
	u := x.user(ev)
	if u == nil || peopleIsPatient(ev, u) || !r.clinical(u) {
		return
	}
	for i, p := range ev.Patients {
		if p == u.Patient || x.Dir.Related(ev.User, p, ev.Time, r.Slack) != nil {
			continue
		}
		if pt := x.patient(ev, i); pt != nil && pt.Employee == ev.User {
			continue
		}
		x.Report(Finding{
			Rule: RuleNoRelationship, Key: peopleKey(ev.User, p) + "|" + ev.Time.UTC().Format(time.DateOnly),
			Severity: r.Severity, Score: r.Score, User: ev.User, Patients: []string{p},
			Why: peopleSubject(ev, p) + " with no care relationship, encounter, appointment or order within " + peopleWindow(r.Slack) + ".",
		})
	}
}

func (r *NoRelationship) clinical(u *User) bool {
	for _, role := range u.Roles {
		if slices.Contains(r.Roles, role) {
			return true
		}
	}
	return false
}
