package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// patientGen builds one patient's bundle. Its state is the patient's
// physiology and history so far, so later encounters agree with earlier ones.
type patientGen struct {
	r    *rand.Rand
	sh   *shared
	now  time.Time
	b    bundle
	look *look

	ref       string // urn:uuid of the Patient
	birth     time.Time
	female    bool
	adultCM   float64 // height once grown
	bmi       float64 // adult body mass index
	pcp       string  // conditional reference to the usual practitioner
	clinic    int     // the department of the usual practitioner
	chronic   []*chronicState
	allergies []allergyDef
	meds      []*medicationRequest // active chronic prescriptions

	// Per encounter.
	enc   string // urn:uuid of the current encounter
	start time.Time
	prac  string
	fever bool
}

type chronicState struct {
	def       *chronicDef
	diagnosed bool
	ref       string // urn:uuid of the Condition once diagnosed
	at        int    // index of the diagnosing encounter
}

type visit struct {
	kind  encounterKind
	start time.Time
}

// look is how a patient's record looks beyond what the generator draws:
// as the demo hospital's patients do, or as a site's.
type look struct {
	mrn                  bool             // give the hospital's MRN, from index
	index                int              // the patient's number in the hospital
	identifiers          []map[string]any // a site's, if not mrn
	managingOrganization string           // reference, or "" for none
	generalPractitioner  bool             // name the usual practitioner
	meta                 *meta            // of every resource, or nil
	// lacks names the optional Patient elements (optionalElements) the
	// record leaves out, as the site's patient it follows does.
	lacks map[string]bool
	place *place // of the address, if not synth's own
}

// optionalElements are the Patient elements the generator fills that a
// site's records may not have (Synthea's have no active): a decoy
// following a patient without one leaves it out, since an element only
// decoys have would pick them out in one search (active=true).
var optionalElements = []string{"active", "telecom", "address", "maritalStatus", "communication"}

// omitLacking clears the optional elements of p that l lacks.
func (l *look) omitLacking(p *patient) {
	omit := map[string]func(){
		"active":        func() { p.Active = nil },
		"telecom":       func() { p.Telecom = nil },
		"address":       func() { p.Address = nil },
		"maritalStatus": func() { p.MaritalStatus = nil },
		"communication": func() { p.Communication = nil },
	}
	for name := range l.lacks {
		omit[name]()
	}
}

// hospitalLook returns the look of the hospital's patient index, whose
// resources carry the HTEST label if label is set.
func hospitalLook(sh *shared, index int, label bool) *look {
	l := &look{mrn: true, index: index, managingOrganization: sh.depts[deptHospital].org, generalPractitioner: true}
	if label {
		l.meta = newMeta()
	}
	return l
}

// newPatient returns the bundle of one patient drawn from r, treated at
// the departments of sh and looking as l says.
func newPatient(r *rand.Rand, sh *shared, now time.Time, l *look) bundle {
	g := &patientGen{r: r, sh: sh, now: now, b: bundle{ResourceType: "Bundle", Type: "transaction"}, look: l}
	g.patient()
	visits := g.plan()
	for i, v := range visits {
		g.visit(i, v)
	}
	return g.b
}

// meta returns the meta of a new resource, or nil.
func (g *patientGen) meta() *meta { return g.look.meta }

func (g *patientGen) add(typ string, res any) string {
	ref := urn(newUUID(g.r))
	g.b.Entry = append(g.b.Entry, entry{FullURL: ref, Resource: res, Request: request{Method: "POST", URL: typ}})
	return ref
}

// ageAt returns the patient's age in years at t.
func (g *patientGen) ageAt(t time.Time) float64 {
	return t.Sub(g.birth).Hours() / (24 * 365.25)
}

func (g *patientGen) patient() {
	r := g.r
	// Age: a plausible catchment area, weighted towards adults.
	var age int
	switch x := r.Float64(); {
	case x < 0.20:
		age = r.IntN(18)
	case x < 0.70:
		age = between(r, 18, 64)
	default:
		age = between(r, 65, 95)
	}
	g.birth = g.now.AddDate(-age, 0, -between(r, 14, 364)).Truncate(24 * time.Hour)
	g.female = chance(r, 0.51)
	given, gender := pick(r, maleNames), "male"
	if g.female {
		given, gender = pick(r, femaleNames), "female"
		g.adultCM = 162 + 6*r.NormFloat64()
	} else {
		g.adultCM = 176 + 7*r.NormFloat64()
	}
	family := pick(r, familyNames)
	names := []string{given}
	if chance(r, 0.4) {
		if g.female {
			names = append(names, pick(r, femaleNames))
		} else {
			names = append(names, pick(r, maleNames))
		}
	}

	// Chronic conditions, by age and sex.
	for i := range chronics {
		d := &chronics[i]
		if age < d.minAge || (d.maxAge > 0 && age > d.maxAge) || (d.sex != "" && d.sex != gender) ||
			(d.code == condPrediabetes && g.has(condDiabetes)) {
			continue
		}
		p := d.p + d.perDecade*float64(age-d.minAge)/10
		if chance(r, p) {
			g.chronic = append(g.chronic, &chronicState{def: d})
		}
	}
	if g.has(condDiabetes) || g.has(condObesity) {
		g.bmi = 30 + 8*r.Float64()
	} else {
		g.bmi = 19 + 10*r.Float64()
	}
	for range 3 {
		if !chance(r, 0.22) {
			break
		}
		a := weighted(r, allergies, func(a allergyDef) int { return a.weight })
		if !slices.ContainsFunc(g.allergies, func(b allergyDef) bool { return b.code == a.code }) {
			g.allergies = append(g.allergies, a)
		}
	}

	g.clinic = deptFamily
	if age < 18 {
		g.clinic = deptPediatrics
	}
	g.pcp = pick(r, g.sh.depts[g.clinic].practitioners)

	c := pick(r, cities)
	var ids any
	if len(g.look.identifiers) > 0 {
		ids = g.look.identifiers
	}
	if g.look.mrn {
		ids = []identifier{{
			Use:    "usual",
			Type:   &concept{Coding: []coding{{System: sysV2IDType, Code: "MR", Display: "Medical record number"}}, Text: "Medical Record Number"},
			System: MRNSystem,
			Value:  strconv.Itoa(10_000_000 + (g.look.index+1)*1000 + r.IntN(1000)),
		}}
	}
	marital := maritalStatuses[0]
	if age >= 18 {
		marital = weighted(r, maritalStatuses, func(c coding) int {
			switch {
			case c.Code == "M":
				return 50
			case c.Code == "W" && age < 60:
				return 1
			case c.Code == "W":
				return 15
			case c.Code == "D":
				return 12
			}
			return 25
		})
	}
	lang := weighted(r, languages, func(l code) int {
		switch l.code {
		case "en-US":
			return 80
		case "es":
			return 12
		}
		return 4
	})
	telecom := []contactPoint{{System: "phone", Value: phone(r), Use: pick(r, []string{"home", "mobile"})}}
	if age >= 14 {
		telecom = append(telecom, contactPoint{
			System: "email",
			Value:  fmt.Sprintf("%s.%s%d@example.com", strings.ToLower(given), strings.ToLower(family), r.IntN(100)),
			Use:    "home",
		})
	}
	p := &patient{
		ResourceType: "Patient",
		Meta:         g.meta(),
		Identifier:   ids,
		Active:       new(true),
		Name:         []humanName{{Use: "official", Family: family, Given: names}},
		Telecom:      telecom,
		Gender:       gender,
		BirthDate:    g.birth.Format(dateFormat),
		Address: []address{{
			Use:        "home",
			Line:       []string{fmt.Sprintf("%d %s %s", between(r, 1, 980), pick(r, streetNames), pick(r, streetKinds))},
			City:       c.name,
			State:      hospitalState,
			PostalCode: fmt.Sprintf("%03d%02d", c.postal, r.IntN(100)),
			Country:    "US",
		}},
		MaritalStatus: &concept{Coding: []coding{marital}, Text: marital.Display},
		Communication: []communication{{Language: lang.concept(), Preferred: true}},
	}
	if g.look.generalPractitioner {
		p.GeneralPractitioner = []reference{{Reference: g.pcp}}
	}
	if g.look.managingOrganization != "" {
		p.ManagingOrganization = &reference{Reference: g.look.managingOrganization}
	}
	if pl := g.look.place; pl != nil {
		a := &p.Address[0]
		a.City, a.State, a.PostalCode, a.Country = pl.City, pl.State, pl.PostalCode, pl.Country
	}
	g.look.omitLacking(p)
	g.ref = g.add("Patient", p)
}

func (g *patientGen) has(c code) bool {
	return slices.ContainsFunc(g.chronic, func(s *chronicState) bool { return s.def.code == c })
}

// plan chooses the patient's encounters over the last ten years (or since
// birth) and the check-ups at which chronic conditions are diagnosed.
func (g *patientGen) plan() []visit {
	r := g.r
	age := int(g.ageAt(g.now))
	n := min(max(5+age/4+4*len(g.chronic)+r.IntN(11), 5), 40)
	from := g.now.AddDate(-10, 0, 0)
	if b := g.birth.AddDate(0, 0, 3); b.After(from) {
		from = b
	}
	span := g.now.AddDate(0, 0, -2).Sub(from)
	visits := make([]visit, n)
	for i := range visits {
		day := from.Add(time.Duration(r.Int64N(int64(span)))).Truncate(24 * time.Hour)
		kind := weighted(r, []encounterKind{kindWellness, kindFollowUp, kindSymptom, kindEmergency, kindInpatient}, func(k encounterKind) int {
			switch k {
			case kindWellness:
				return 30
			case kindFollowUp:
				return 30 * min(len(g.chronic), 1)
			case kindSymptom:
				return 25
			case kindEmergency:
				return 8
			}
			return 2 + age/20
		})
		var clock time.Duration
		if kind == kindWellness || kind == kindFollowUp || kind == kindSymptom {
			clock = 8*time.Hour + time.Duration(r.IntN(36))*15*time.Minute // 08:00 to 16:45
		} else {
			clock = time.Duration(r.IntN(24*60)) * time.Minute
		}
		visits[i] = visit{kind: kind, start: day.Add(clock)}
	}
	slices.SortFunc(visits, func(a, b visit) int { return a.start.Compare(b.start) })
	visits[0].kind = kindWellness

	// Each chronic condition is diagnosed at a check-up, more often an early one.
	var checkups []int
	for i, v := range visits {
		if v.kind == kindWellness {
			checkups = append(checkups, i)
		}
	}
	first := len(visits)
	for _, c := range g.chronic {
		c.at = checkups[min(r.IntN(len(checkups)), r.IntN(len(checkups)))]
		first = min(first, c.at)
	}
	// A follow-up needs something to follow up.
	for i := range visits[:first] {
		if visits[i].kind == kindFollowUp {
			visits[i].kind = kindWellness
		}
	}
	return visits
}

func (g *patientGen) visit(i int, v visit) {
	r := g.r
	g.start, g.fever = v.start, false
	dept := g.clinic
	switch v.kind {
	case kindEmergency:
		dept = deptEmergency
	case kindInpatient:
		dept = deptHospital
	}
	g.prac = g.pcp
	if dept != g.clinic || chance(r, 0.2) {
		g.prac = pick(r, g.sh.depts[dept].practitioners)
	}

	var (
		reasons []string
		labs    []obsDef
		procs   []code
		acute   *acuteDef
	)
	switch v.kind {
	case kindWellness:
		for _, c := range g.chronic {
			if c.at == i {
				c.diagnosed = true
			}
		}
		if g.ageAt(v.start) >= 40 && chance(r, 0.3) {
			labs = append(labs, panelLipid...)
		}
		if g.ageAt(v.start) >= 18 && chance(r, 0.25) {
			labs = append(labs, panelBMP...)
		}
	case kindFollowUp:
		for _, c := range g.chronic {
			if c.diagnosed && c.ref != "" && chance(r, 0.6) {
				reasons = append(reasons, c.ref)
				labs = append(labs, c.def.labs...)
				if len(c.def.procs) > 0 && chance(r, 0.3) {
					procs = append(procs, pick(r, c.def.procs))
				}
			}
		}
	default:
		acute = g.pickAcute(v.kind, g.ageAt(v.start))
		if acute != nil {
			g.fever = acute.fever && chance(r, 0.7)
			labs = append(labs, acute.labs...)
		}
	}

	end := v.start.Add(time.Duration(between(r, 15, 45)) * time.Minute)
	switch v.kind {
	case kindEmergency:
		end = v.start.Add(time.Duration(between(r, 90, 480)) * time.Minute)
	case kindInpatient:
		end = v.start.Add(time.Duration(between(r, 24, 144)) * time.Hour)
	}
	end = minTime(end, g.now)

	et := encounterTypes[v.kind]
	enc := &encounter{
		ResourceType: "Encounter",
		Meta:         g.meta(),
		Status:       "finished",
		Class:        et.class,
		Type:         []concept{et.typ.concept()},
		Subject:      reference{Reference: g.ref},
		Participant: []encounterParticipant{{
			Type:       []concept{code{sysPartType, "PPRF", "primary performer"}.concept()},
			Period:     &period{Start: v.start.Format(dateTimeFormat), End: end.Format(dateTimeFormat)},
			Individual: &reference{Reference: g.prac},
		}},
		Period:          period{Start: v.start.Format(dateTimeFormat), End: end.Format(dateTimeFormat)},
		ServiceProvider: &reference{Reference: g.sh.depts[dept].org},
	}
	if loc := g.sh.depts[dept].location; loc != "" {
		enc.Location = []encounterLocation{{Location: reference{Reference: loc}}}
	}
	if v.kind == kindInpatient {
		enc.Hospitalization = &hospitalization{
			AdmitSource:          &concept{Coding: []coding{{System: sysAdmitSrc, Code: "emd", Display: "From accident/emergency department"}}},
			DischargeDisposition: &concept{Coding: []coding{{System: sysDischarge, Code: "home", Display: "Home"}}},
		}
	}
	g.enc = g.add("Encounter", enc)

	// Diagnoses made at this encounter, with their prescriptions.
	for _, c := range g.chronic {
		if c.at == i && c.diagnosed && c.ref == "" {
			c.ref = g.condition(c.def.code, true, v.start, 0)
			reasons = append(reasons, c.ref)
			for _, m := range c.def.meds {
				g.meds = append(g.meds, g.prescribe(m, c.ref, true))
			}
			labs = append(labs, c.def.labs...)
		}
	}
	if acute != nil {
		ref := g.condition(acute.code, false, v.start, acute.resolveIn)
		reasons = append(reasons, ref)
		for _, m := range acute.meds {
			g.prescribe(m, ref, false)
		}
		for _, p := range acute.procs {
			g.procedure(p, ref, v.kind != kindSymptom)
		}
	}
	if v.kind == kindFollowUp && len(g.meds) > 0 && chance(r, 0.3) {
		g.renew(r.IntN(len(g.meds)))
	}
	if i == 0 {
		for _, a := range g.allergies {
			g.allergy(a)
		}
	}
	enc.ReasonReference = refs(reasons)

	g.observations(v.kind, labs)

	for _, p := range procs {
		g.procedure(p, "", false)
	}
	if v.kind == kindWellness {
		age := g.ageAt(v.start)
		if len(g.meds) > 0 && chance(r, 0.5) {
			g.procedure(procMedicationDoc, "", false)
		}
		if age >= 50 && chance(r, 0.06) {
			g.procedure(procColonoscopy, "", true)
		}
		if age >= 12 && chance(r, 0.15) {
			g.procedure(procDepression, "", false)
		}
		for _, vac := range vaccines {
			if int(age) >= vac.minAge && int(age) <= vac.maxAge && chance(r, vac.p) {
				g.immunize(vac.code)
			}
		}
	}
}

func (g *patientGen) pickAcute(kind encounterKind, age float64) *acuteDef {
	var fit []*acuteDef
	for i := range acutes {
		a := &acutes[i]
		if a.kind == kind && int(age) >= a.minAge && (a.maxAge == 0 || int(age) <= a.maxAge) {
			fit = append(fit, a)
		}
	}
	if len(fit) == 0 {
		return nil
	}
	return weighted(g.r, fit, func(a *acuteDef) int { return a.weight })
}

func refs(urns []string) []reference {
	var out []reference
	for _, u := range urns {
		out = append(out, reference{Reference: u})
	}
	return out
}

func (g *patientGen) condition(c code, chronic bool, onset time.Time, resolveIn int) string {
	cond := &condition{
		ResourceType:       "Condition",
		Meta:               g.meta(),
		ClinicalStatus:     concept{Coding: []coding{{System: sysCondClin, Code: "active", Display: "Active"}}},
		VerificationStatus: concept{Coding: []coding{{System: sysCondVer, Code: "confirmed", Display: "Confirmed"}}},
		Category:           []concept{{Coding: []coding{{System: sysCondCat, Code: "encounter-diagnosis", Display: "Encounter Diagnosis"}}}},
		Code:               c.concept(),
		Subject:            reference{Reference: g.ref},
		Encounter:          &reference{Reference: g.enc},
		OnsetDateTime:      onset.Format(dateTimeFormat),
		RecordedDate:       onset.Format(dateTimeFormat),
		Recorder:           &reference{Reference: g.prac},
	}
	if chronic {
		cond.Category = []concept{{Coding: []coding{{System: sysCondCat, Code: "problem-list-item", Display: "Problem List Item"}}}}
	} else if end := onset.AddDate(0, 0, resolveIn); !end.After(g.now) {
		cond.ClinicalStatus.Coding[0] = coding{System: sysCondClin, Code: "resolved", Display: "Resolved"}
		cond.AbatementDateTime = end.Format(dateTimeFormat)
	}
	return g.add("Condition", cond)
}

var dosageTexts = map[bool][]string{
	true:  {"Take 1 tablet by mouth once daily.", "Take 1 tablet by mouth twice daily.", "Use as directed once daily."},
	false: {"Take 1 tablet by mouth every 6 hours as needed.", "Take 1 tablet by mouth three times daily for 7 days.", "Take as directed for 10 days."},
}

func (g *patientGen) prescribe(m code, reason string, chronic bool) *medicationRequest {
	status := "active"
	if !chronic && g.now.Sub(g.start) > 60*24*time.Hour {
		status = "completed"
	}
	mr := &medicationRequest{
		ResourceType:              "MedicationRequest",
		Meta:                      g.meta(),
		Status:                    status,
		Intent:                    "order",
		MedicationCodeableConcept: m.concept(),
		Subject:                   reference{Reference: g.ref},
		Encounter:                 &reference{Reference: g.enc},
		AuthoredOn:                g.start.Format(dateTimeFormat),
		Requester:                 &reference{Reference: g.prac},
		DosageInstruction:         []dosage{{Sequence: 1, Text: pick(g.r, dosageTexts[chronic]), AsNeeded: !chronic && chance(g.r, 0.5)}},
	}
	if reason != "" {
		mr.ReasonReference = []reference{{Reference: reason}}
	}
	g.add("MedicationRequest", mr)
	return mr
}

// renew replaces active prescription i with a new one, completing the old.
func (g *patientGen) renew(i int) {
	old := g.meds[i]
	old.Status = "completed"
	reason := ""
	if len(old.ReasonReference) > 0 {
		reason = old.ReasonReference[0].Reference
	}
	m := code{system: sysRxNorm, code: old.MedicationCodeableConcept.Coding[0].Code, display: old.MedicationCodeableConcept.Text}
	g.meds[i] = g.prescribe(m, reason, true)
}

func (g *patientGen) procedure(c code, reason string, long bool) {
	p := &procedure{
		ResourceType: "Procedure",
		Meta:         g.meta(),
		Status:       "completed",
		Code:         c.concept(),
		Subject:      reference{Reference: g.ref},
		Encounter:    &reference{Reference: g.enc},
		Performer:    []performer{{Actor: reference{Reference: g.prac}}},
	}
	at := g.start.Add(time.Duration(between(g.r, 5, 40)) * time.Minute)
	if long {
		p.PerformedPeriod = &period{Start: at.Format(dateTimeFormat), End: minTime(at.Add(time.Duration(between(g.r, 20, 120))*time.Minute), g.now).Format(dateTimeFormat)}
	} else {
		p.PerformedDateTime = at.Format(dateTimeFormat)
	}
	if reason != "" {
		p.ReasonReference = []reference{{Reference: reason}}
	}
	g.add("Procedure", p)
}

func (g *patientGen) immunize(c code) {
	g.add("Immunization", &immunization{
		ResourceType:       "Immunization",
		Meta:               g.meta(),
		Status:             "completed",
		VaccineCode:        c.concept(),
		Patient:            reference{Reference: g.ref},
		Encounter:          &reference{Reference: g.enc},
		OccurrenceDateTime: g.start.Add(20 * time.Minute).Format(dateTimeFormat),
		PrimarySource:      true,
		LotNumber:          fmt.Sprintf("%c%c%05d", 'A'+rune(g.r.IntN(26)), 'A'+rune(g.r.IntN(26)), g.r.IntN(100000)),
		Performer:          []performer{{Actor: reference{Reference: g.prac}}},
	})
}

func (g *patientGen) allergy(a allergyDef) {
	severity := "mild"
	if a.criticality == "high" {
		severity = pick(g.r, []string{"moderate", "severe"})
	}
	ai := &allergyIntolerance{
		ResourceType:       "AllergyIntolerance",
		Meta:               g.meta(),
		ClinicalStatus:     concept{Coding: []coding{{System: sysAllergyCl, Code: "active", Display: "Active"}}},
		VerificationStatus: concept{Coding: []coding{{System: sysAllergyVer, Code: "confirmed", Display: "Confirmed"}}},
		Type:               "allergy",
		Category:           []string{a.category},
		Criticality:        a.criticality,
		Code:               a.code.concept(),
		Patient:            reference{Reference: g.ref},
		Encounter:          &reference{Reference: g.enc},
		RecordedDate:       g.start.Format(dateTimeFormat),
		Recorder:           &reference{Reference: g.prac},
		Reaction:           []allergyReaction{{Manifestation: []concept{a.manifestation.concept()}, Severity: severity}},
	}
	g.add("AllergyIntolerance", ai)
	if a.manifestation.code == "39579001" { // anaphylaxis
		g.prescribe(rxnorm("1870230", "NDA020800 0.3 ML epinephrine 1 MG/ML Auto-Injector"), "", true)
	}
}

// observations records 3 to 10 results: the labs asked for (as many as fit)
// and vital signs to fill the rest.
func (g *patientGen) observations(kind encounterKind, labs []obsDef) {
	r := g.r
	var seen []string
	uniq := labs[:0:0]
	for _, l := range labs {
		if !slices.Contains(seen, l.loinc) {
			seen = append(seen, l.loinc)
			uniq = append(uniq, l)
		}
	}
	vitals := []obsDef{obsBP, obsHR, obsRR, obsTemp, obsPain, obsSpO2}
	if kind == kindWellness || kind == kindFollowUp {
		vitals = []obsDef{obsHeight, obsWeight, obsBMI, obsBP, obsHR, obsRR, obsPain, obsTemp}
	}
	k := between(r, 3, 10)
	nl := min(len(uniq), max(k-3, 0))
	nv := min(len(vitals), k-nl)
	if nv < 3 {
		nv = min(len(vitals), 3)
	}

	at := g.start.Add(5 * time.Minute)
	age := g.ageAt(g.start)
	h := g.heightAt(age)
	bmi := g.bmiAt(age)
	w := round(bmi*h*h/10000, 1)
	for _, d := range vitals[:nv] {
		switch d {
		case obsHeight:
			g.observe(d, at, round(h, 1), nil)
		case obsWeight:
			g.observe(d, at, w, nil)
		case obsBMI:
			g.observe(d, at, round(w/(h*h/10000), 1), nil)
		case obsBP:
			g.observe(d, at, 0, []observationComponent{
				{Code: code{sysLOINC, obsSystolic.loinc, obsSystolic.display}.concept(), ValueQuantity: g.quantity(obsSystolic, g.value(obsSystolic, age))},
				{Code: code{sysLOINC, obsDiastol.loinc, obsDiastol.display}.concept(), ValueQuantity: g.quantity(obsDiastol, g.value(obsDiastol, age))},
			})
		default:
			g.observe(d, at, g.value(d, age), nil)
		}
	}
	drawn := g.start.Add(20 * time.Minute)
	for _, d := range uniq[:nl] {
		g.observe(d, drawn, g.value(d, age), nil)
	}
}

func (g *patientGen) quantity(d obsDef, v float64) *quantity {
	return &quantity{Value: v, Unit: d.unit, System: sysUCUM, Code: d.unit}
}

func (g *patientGen) observe(d obsDef, at time.Time, v float64, components []observationComponent) {
	cat := code{sysObsCat, "vital-signs", "Vital Signs"}
	issued := at
	if d.lab {
		cat = code{sysObsCat, "laboratory", "Laboratory"}
		issued = at.Add(time.Duration(between(g.r, 60, 360)) * time.Minute)
	}
	o := &observation{
		ResourceType:      "Observation",
		Meta:              g.meta(),
		Status:            "final",
		Category:          []concept{{Coding: []coding{cat.coding()}}},
		Code:              code{sysLOINC, d.loinc, d.display}.concept(),
		Subject:           reference{Reference: g.ref},
		Encounter:         &reference{Reference: g.enc},
		EffectiveDateTime: at.Format(dateTimeFormat),
		Issued:            minTime(issued, g.now).Format(dateTimeFormat),
		Performer:         []reference{{Reference: g.prac}},
		Component:         components,
	}
	if components == nil {
		o.ValueQuantity = g.quantity(d, v)
	}
	g.add("Observation", o)
}

// heightAt follows a rough growth curve to the patient's adult height.
func (g *patientGen) heightAt(age float64) float64 {
	switch {
	case age < 1:
		return 50 + 25*age
	case age < 2:
		return 75 + 12*(age-1)
	}
	return 87 + (g.adultCM-87)*min((age-2)/16, 1)
}

func (g *patientGen) bmiAt(age float64) float64 {
	if age < 18 {
		return 15.5 + 0.15*age + (g.bmi-24)*0.15
	}
	return g.bmi
}

// value returns a plausible result for d, shifted by the patient's
// conditions and the current encounter.
func (g *patientGen) value(d obsDef, age float64) float64 {
	lo, hi := d.lo, d.hi
	active := func(c code) bool {
		return slices.ContainsFunc(g.chronic, func(s *chronicState) bool { return s.def.code == c && s.diagnosed })
	}
	switch d.loinc {
	case labA1c.loinc:
		if active(condDiabetes) {
			lo, hi = 6.6, 9.8
		} else if active(condPrediabetes) {
			lo, hi = 5.7, 6.4
		}
	case labGlucose.loinc:
		if active(condDiabetes) {
			lo, hi = 130, 240
		} else if active(condPrediabetes) {
			lo, hi = 100, 125
		}
	case labChol.loinc:
		if active(condLipids) {
			lo, hi = 200, 280
		}
	case labLDL.loinc:
		if active(condLipids) || active(condCHD) {
			lo, hi = 130, 190
		}
	case labTrig.loinc:
		if active(condLipids) {
			lo, hi = 150, 320
		}
	case labEGFR.loinc:
		if age > 70 {
			lo, hi = 48, 85
		}
	case labHgb.loinc:
		if active(condAnemia) {
			lo, hi = 8.5, 11.4
		} else if !g.female {
			lo, hi = 13.5, 17.2
		}
	case labHct.loinc:
		if active(condAnemia) {
			lo, hi = 27, 34
		}
	case labINR.loinc:
		if active(condAFib) {
			lo, hi = 2.0, 3.0
		}
	case labTSH.loinc:
		lo, hi = 0.8, 6.5
	case obsSystolic.loinc:
		if active(condHypertension) {
			lo, hi = 132, 165
		} else if age < 12 {
			lo, hi = 88, 110
		}
	case obsDiastol.loinc:
		if active(condHypertension) {
			lo, hi = 84, 102
		} else if age < 12 {
			lo, hi = 52, 70
		}
	case obsHR.loinc:
		switch {
		case age < 2:
			lo, hi = 100, 150
		case age < 12:
			lo, hi = 75, 115
		case active(condAFib):
			lo, hi = 80, 125
		}
		if g.fever {
			lo, hi = lo+10, hi+15
		}
	case obsRR.loinc:
		switch {
		case age < 2:
			lo, hi = 25, 40
		case age < 12:
			lo, hi = 18, 26
		}
	case obsTemp.loinc:
		if g.fever {
			lo, hi = 38.0, 39.6
		}
	case obsSpO2.loinc:
		if active(condCOPD) {
			lo, hi = 88, 95
		}
	case obsPain.loinc:
		if g.fever {
			lo, hi = 2, 6
		}
	}
	return round(lo+(hi-lo)*g.r.Float64(), d.decimals)
}

func round(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// weighted picks an element of s with probability proportional to weight.
func weighted[T any](r *rand.Rand, s []T, weight func(T) int) T {
	total := 0
	for _, v := range s {
		total += weight(v)
	}
	n := r.IntN(total)
	for _, v := range s {
		if n -= weight(v); n < 0 {
			return v
		}
	}
	panic("synth: weighted: unreachable")
}
