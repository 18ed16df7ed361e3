package simulate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// Staff roles, as phivault's accounts name them.
const (
	rolePhysician     = "physician"
	roleNurse         = "nurse"
	roleFrontDesk     = "front-desk"
	roleBilling       = "billing"
	rolePrivacy       = "privacy-officer"
	roleSecurityAdmin = "security-admin"
)

// Department kinds.
const (
	kindWard   = iota // open day and night, admits patients
	kindClinic        // weekdays, appointments
	kindOffice        // weekdays, no patients of its own
)

type dept struct {
	id     string
	kind   int
	weight float64 // share of staff and admissions
	los    float64 // mean length of stay, days
	subnet int     // workstations are 10.<subnet>.x.y
	stays  []*stay // by start time

	nurses, physicians, desk []*staffer
}

// Shifts.
const (
	shiftDay     = iota // 07–15, any day
	shiftEvening        // 15–23
	shiftNight          // 23–07
	shiftOffice         // 08–17 weekdays
	shiftResident
)

type staffer struct {
	id           string
	idx          int
	role         string
	dept         *dept // home department; nil for float nurses and residents
	shift        int
	offset       int // rota: works day d if (d+offset)%7 < 5
	resident     bool
	float        bool
	weekendCall  bool       // a ward physician who also covers weekends
	rate         float64    // accesses per hour on shift
	ws           string     // usual workstation address
	vpn          string     // address of the staffer's home over the VPN, or ""
	household    *household // where the staffer lives, if among the patients' streets
	practitioner string
	person       *person
	patient      *pat // the staffer's own patient record, or nil
	roles        []string
	status       string
}

type household struct {
	street *street
	number int
	family string
	phone  string // landline, or ""
	people []*pat
	staff  []*staffer
}

type street struct {
	name, postal string
	households   []*household
}

type pat struct {
	id       string
	person   *person
	home     *household
	labels   []string
	deceased bool
	employee *staffer
	honey    bool
	busy     time.Time // admitted until
}

type stay struct {
	id         string
	p          *pat
	dept       *dept
	start, end time.Time
	teamFrom   time.Time // when the care team's relationships start (later than start after break-the-glass)
	dies       bool
}

type gen struct {
	cfg   Config
	r     *rand.Rand
	tk    *Tokenizer
	ctx   context.Context
	items []item
	truth *Truth
	err   error

	depts    []*dept
	wards    []*dept // kindWard, ED first
	clinics  []*dept
	byID     map[string]*dept
	staff    []*staffer
	patients []*pat // real ones
	honey    []*pat
	streets  []*street
	admins   []*staffer
	billing  []*staffer
	floats   []*staffer
	resident []*staffer

	floatDept map[[2]int]*dept // (staff idx, day) → ward
	used      map[string]bool  // scenario actors
	pids      map[string]bool  // patient ids given
	nStay     int
	nGhost    int

	nBackground int       // items made by the ordinary activity: g.items[:nBackground]
	offWork     []offWork // when people are off work, from the scenarios
}

var familyNames = []string{
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
	"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
	"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
	"Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
	"Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
	"Okafor", "Kowalski", "Novak", "Schmidt", "Rossi", "Dubois", "Tanaka", "Haddad", "Oyelaran", "Lindqvist",
}

var streetNames = []string{
	"Oak", "Maple", "Cedar", "Pine", "Elm", "Willow", "Birch", "Aspen", "Chestnut", "Walnut", "Hawthorn",
	"Lakeview", "Hillside", "Riverside", "Meadow", "Orchard", "Sunset", "Highland", "Park", "Church", "Mill",
	"Station", "Victoria", "King", "Queen", "Bridge", "Harbor", "Spring", "Forest", "Valley",
}

var streetKinds = []string{"Street", "Avenue", "Road", "Lane", "Drive", "Court"}

// hospital builds departments, patients, households and staff, and emits
// the rosters and honeytokens an hour before the first day.
func (g *gen) hospital() error {
	g.byID = map[string]*dept{}
	g.floatDept = map[[2]int]*dept{}
	add := func(id string, kind int, weight, los float64) *dept {
		d := &dept{id: id, kind: kind, weight: weight, los: los, subnet: 10 + len(g.depts)}
		g.depts = append(g.depts, d)
		g.byID[id] = d
		switch kind {
		case kindWard:
			g.wards = append(g.wards, d)
		case kindClinic:
			g.clinics = append(g.clinics, d)
		}
		return d
	}
	add("emergency", kindWard, 2, 0.2)
	add("icu", kindWard, 1.4, 5)
	add("medicine", kindWard, 2, 4)
	add("surgery", kindWard, 1.6, 3.5)
	add("pediatrics", kindWard, 1, 2.5)
	add("obstetrics", kindWard, 1, 2.5)
	add("oncology", kindWard, 1, 5)
	add("cardiology", kindWard, 1, 4)
	add("clinic-cardiology", kindClinic, 0.7, 0)
	add("clinic-family", kindClinic, 0.9, 0)
	add("clinic-dermatology", kindClinic, 0.5, 0)
	add("billing", kindOffice, 0, 0)
	add("it", kindOffice, 0, 0)
	add("privacy", kindOffice, 0, 0)

	g.population()
	g.hire()
	g.rosters()
	return g.err
}

// zipf picks an index in [0, n) with a heavy head, so common family names
// are shared by many unrelated households.
func (g *gen) zipf(n int) int {
	return min(n-1, int(float64(n)*g.r.Float64()*g.r.Float64()))
}

// population makes streets, households and patients.
func (g *gen) population() {
	nStreets := max(20, g.cfg.Patients/14)
	postals := max(8, nStreets/5)
	for i := range nStreets {
		// Street names repeat across postal codes: the same name in
		// another postal code is another street.
		s := &street{
			name:   streetNames[i%len(streetNames)] + " " + streetKinds[(i/len(streetNames))%len(streetKinds)],
			postal: fmt.Sprintf("%05d", 10000+(i*7919)%postals*37),
		}
		if i >= len(streetNames)*len(streetKinds) {
			s.name = fmt.Sprintf("%s %d", s.name, i)
		}
		g.streets = append(g.streets, s)
	}
	var all []*pat
	for len(all) < g.cfg.Patients {
		h := g.household()
		n := min(1+poisson(g.r, 1.4), 6, g.cfg.Patients-len(all))
		for range n {
			p := &pat{home: h}
			fam := h.family
			if g.r.Float64() < 0.15 {
				fam = familyNames[g.zipf(len(familyNames))]
			}
			p.person = g.personAt(h, fam)
			h.people = append(h.people, p)
			all = append(all, p)
		}
	}
	// Honeytokens look like anyone else: a household of their own on a
	// real street, a common name, a phone.
	nHoney := max(5, g.cfg.Patients/100)
	for range nHoney {
		h := g.household()
		p := &pat{home: h, honey: true}
		p.person = g.personAt(h, h.family)
		h.people = append(h.people, p)
		g.honey = append(g.honey, p)
	}
	// Ids are random, so decoys cannot be told apart by their ids.
	for _, p := range all {
		p.id = g.pid()
	}
	for _, p := range g.honey {
		p.id = g.pid()
	}
	for i, p := range all {
		switch {
		case i%200 == 7:
			p.labels = append(p.labels, detect.LabelVIP)
		case i%200 == 61:
			p.labels = append(p.labels, detect.LabelRestricted)
		case i%100 == 33:
			p.deceased = true
		}
	}
	g.patients = all
}

func (g *gen) household() *household {
	s := g.streets[g.r.IntN(len(g.streets))]
	h := &household{street: s, number: 1 + len(s.households)*2 + g.r.IntN(2), family: familyNames[g.zipf(len(familyNames))]}
	if g.r.Float64() < 0.5 {
		h.phone = fmt.Sprintf("555%07d", g.r.IntN(10000000))
	}
	s.households = append(s.households, h)
	return h
}

func (g *gen) personAt(h *household, family string) *person {
	p := &person{
		family: family, address: true,
		line:   fmt.Sprintf("%d %s", h.number, h.street.name),
		street: h.street.name, postal: h.street.postal,
		phone: fmt.Sprintf("555%07d", g.r.IntN(10000000)),
	}
	if h.phone != "" && g.r.Float64() < 0.6 {
		p.phone = h.phone
	}
	return p
}

// hire makes the staff.
func (g *gen) hire() {
	n := g.cfg.Staff
	var clinical []*dept
	var total float64
	for _, d := range g.depts {
		if d.kind != kindOffice {
			clinical = append(clinical, d)
			total += d.weight
		}
	}
	pickDept := func() *dept {
		x := g.r.Float64() * total
		for _, d := range clinical {
			if x -= d.weight; x < 0 {
				return d
			}
		}
		return clinical[len(clinical)-1]
	}
	nAdmin := max(3, n/60)
	nBilling := max(3, n*7/100)
	nDesk := max(4, n*9/100)
	nPhys := max(8, n*17/100)
	nRes := max(3, n*7/100)
	nFloat := max(3, n*7/100)
	nNurse := n - nAdmin - 1 - nBilling - nDesk - nPhys - nRes - nFloat
	hire := func(role string, d *dept) *staffer {
		s := &staffer{idx: len(g.staff), role: role, dept: d, offset: g.r.IntN(7), status: phivault.AccountActive}
		s.id = g.ns(fmt.Sprintf("u%04d", 1000+s.idx))
		s.roles = []string{role}
		s.rate = 3 + g.r.Float64()*3
		if d != nil {
			s.ws = fmt.Sprintf("10.%d.%d.%d", d.subnet, 1+g.r.IntN(8), 10+g.r.IntN(200))
		} else {
			s.ws = fmt.Sprintf("10.9.%d.%d", 1+g.r.IntN(8), 10+g.r.IntN(200))
		}
		g.staff = append(g.staff, s)
		return s
	}
	for range nAdmin {
		g.admins = append(g.admins, hire(roleSecurityAdmin, g.byID["it"]))
	}
	hire(rolePrivacy, g.byID["privacy"])
	for range nBilling {
		g.billing = append(g.billing, hire(roleBilling, g.byID["billing"]))
	}
	for i := range nDesk {
		d := g.byID["emergency"]
		if i%3 != 0 {
			d = g.clinics[i%len(g.clinics)]
		}
		s := hire(roleFrontDesk, d)
		d.desk = append(d.desk, s)
	}
	for i := range nPhys {
		d := pickDept()
		if i < len(clinical) {
			d = clinical[i] // every department has a physician
		}
		s := hire(rolePhysician, d)
		s.practitioner = fmt.Sprintf("pr%04d", 1000+s.idx)
		s.rate = 2.5 + g.r.Float64()*2.5
		d.physicians = append(d.physicians, s)
	}
	for range nRes {
		s := hire(rolePhysician, nil)
		s.resident, s.shift = true, shiftResident
		s.practitioner = fmt.Sprintf("pr%04d", 1000+s.idx)
		s.rate = 4 + g.r.Float64()*2
		g.resident = append(g.resident, s)
	}
	for i := range max(nNurse, 10) {
		d := pickDept()
		if i < len(clinical) {
			d = clinical[i]
		}
		d.nurses = append(d.nurses, hire(roleNurse, d))
	}
	for range nFloat {
		s := hire(roleNurse, nil)
		s.float = true
		g.floats = append(g.floats, s)
	}
	// Shifts: wards run day and night; the rest keep office hours.
	for _, s := range g.staff {
		switch {
		case s.resident:
		case s.dept != nil && s.dept.kind == kindWard && (s.role == roleNurse || s.dept.id == "emergency"):
			s.shift = []int{shiftDay, shiftDay, shiftDay, shiftEvening, shiftEvening, shiftNight, shiftNight}[g.r.IntN(7)]
		case s.float:
			s.shift = []int{shiftDay, shiftEvening, shiftNight}[g.r.IntN(3)]
		default:
			s.shift = shiftOffice
		}
	}
	for _, d := range g.wards {
		for i, s := range d.physicians {
			if d.id != "emergency" && i%3 == 0 {
				s.weekendCall = true
			}
		}
	}
	// Some physicians work from home in the evening, over a VPN.
	for _, s := range g.staff {
		if s.role == rolePhysician && !s.resident && g.r.Float64() < 0.3 {
			s.vpn = fmt.Sprintf("198.51.100.%d", 1+s.idx%250)
		}
	}
	// Where staff live: many in the hospital's own catchment, some as
	// patients of it.
	for _, s := range g.staff {
		if g.r.Float64() < 0.45 {
			p := g.patients[g.r.IntN(len(g.patients))]
			h := p.home
			fam := h.family
			if g.r.Float64() < 0.2 {
				fam = familyNames[g.zipf(len(familyNames))]
			}
			s.person = g.personAt(h, fam)
			s.household = h
			h.staff = append(h.staff, s)
			if g.r.Float64() < 0.7 {
				// The staffer is a patient too: a record of their own
				// in the same household.
				self := &pat{home: h, person: s.person, employee: s, labels: []string{detect.LabelEmployee}}
				self.id = g.pid()
				h.people = append(h.people, self)
				g.patients = append(g.patients, self)
				s.patient = self
			}
			continue
		}
		h := &household{street: &street{name: "Elsewhere " + s.id, postal: "99999"}, number: 1, family: familyNames[g.zipf(len(familyNames))]}
		s.person = g.personAt(h, h.family)
	}
}

// rosters emits the staff and patient rosters and the honeytokens.
func (g *gen) rosters() {
	t := g.cfg.Start.Add(-time.Hour)
	for _, s := range g.staff {
		g.add(t, prioRoster, detect.Record{Kind: detect.RecordStaff, User: g.user(s)})
	}
	for _, p := range g.patients {
		g.add(t, prioRoster, detect.Record{Kind: detect.RecordPatient, Patient: g.patient(p)})
	}
	for _, p := range g.honey {
		g.add(t, prioRoster, detect.Record{Kind: detect.RecordPatient, Patient: g.patient(p)})
	}
	for _, p := range g.honey {
		g.add(t, prioRoster, detect.Record{Kind: detect.RecordHoneytoken, Honeytoken: p.id})
	}
}

func (g *gen) tokens(p *person) detect.Person {
	t, err := personTokens(g.ctx, g.tk, p)
	if err != nil {
		g.fail(err)
	}
	return t
}

// user returns the roster entry of s as it stands.
func (g *gen) user(s *staffer) *detect.User {
	u := &detect.User{
		ID: s.id, Roles: slices.Clone(s.roles), Practitioner: s.practitioner,
		Status: s.status, Person: g.tokens(s.person),
	}
	switch {
	case s.dept != nil:
		u.Department = s.dept.id
	case s.float:
		u.Department = "float-pool"
	case s.resident:
		u.Department = "residency"
	}
	if s.patient != nil {
		u.Patient = s.patient.id
	}
	return u
}

// patient returns the roster entry of p as it stands.
func (g *gen) patient(p *pat) *detect.Patient {
	out := &detect.Patient{ID: p.id, Labels: slices.Clone(p.labels), Deceased: p.deceased, Person: g.tokens(p.person)}
	if p.employee != nil {
		out.Employee = p.employee.id
	}
	return out
}

// pid returns a new random patient id.
func (g *gen) pid() string {
	if g.pids == nil {
		g.pids = map[string]bool{}
	}
	for {
		id := g.ns(fmt.Sprintf("p%07d", 1000000+g.r.IntN(9000000)))
		if !g.pids[id] {
			g.pids[id] = true
			return id
		}
	}
}
