package synth

// Code systems.
const (
	sysSNOMED     = "http://snomed.info/sct"
	sysLOINC      = "http://loinc.org"
	sysRxNorm     = "http://www.nlm.nih.gov/research/umls/rxnorm"
	sysCVX        = "http://hl7.org/fhir/sid/cvx"
	sysUCUM       = "http://unitsofmeasure.org"
	sysActCode    = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	sysObsCat     = "http://terminology.hl7.org/CodeSystem/observation-category"
	sysCondClin   = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	sysCondVer    = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	sysCondCat    = "http://terminology.hl7.org/CodeSystem/condition-category"
	sysAllergyCl  = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	sysAllergyVer = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	sysV2IDType   = "http://terminology.hl7.org/CodeSystem/v2-0203"
	sysV2Degree   = "http://terminology.hl7.org/CodeSystem/v2-0360"
	sysMarital    = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
	sysPartType   = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	sysOrgType    = "http://terminology.hl7.org/CodeSystem/organization-type"
	sysRoleCode   = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
	sysActReason  = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	sysAdmitSrc   = "http://terminology.hl7.org/CodeSystem/admit-source"
	sysDischarge  = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
	sysLanguage   = "urn:ietf:bcp:47"
)

// code is one coded concept.
type code struct{ system, code, display string }

func (c code) concept() concept {
	return concept{Coding: []coding{{System: c.system, Code: c.code, Display: c.display}}, Text: c.display}
}

func (c code) coding() coding { return coding{System: c.system, Code: c.code, Display: c.display} }

func snomed(c, d string) code { return code{sysSNOMED, c, d} }
func rxnorm(c, d string) code { return code{sysRxNorm, c, d} }
func cvx(c, d string) code    { return code{sysCVX, c, d} }

// testData labels every resource as test health data (HL7 v3 ActReason
// HTEST), so nothing generated here can be mistaken for a real record.
var testData = code{sysActReason, TestDataCode, "test health data"}

// TestDataSystem and TestDataCode make the security label every generated
// resource carries when labelled (meta.security): HL7 v3 ActReason HTEST.
const (
	TestDataSystem = sysActReason
	TestDataCode   = "HTEST"
)

// Encounter kinds.
type encounterKind int

const (
	kindWellness encounterKind = iota
	kindFollowUp
	kindSymptom
	kindEmergency
	kindInpatient
)

var encounterTypes = [...]struct {
	class coding
	typ   code
}{
	kindWellness:  {coding{sysActCode, "AMB", "ambulatory"}, snomed("185349003", "Encounter for check up (procedure)")},
	kindFollowUp:  {coding{sysActCode, "AMB", "ambulatory"}, snomed("390906007", "Follow-up encounter (procedure)")},
	kindSymptom:   {coding{sysActCode, "AMB", "ambulatory"}, snomed("185345009", "Encounter for symptom (procedure)")},
	kindEmergency: {coding{sysActCode, "EMER", "emergency"}, snomed("50849002", "Emergency room admission (procedure)")},
	kindInpatient: {coding{sysActCode, "IMP", "inpatient encounter"}, snomed("32485007", "Hospital admission (procedure)")},
}

// Observation definitions: LOINC code, UCUM unit, normal range, decimals.
type obsDef struct {
	loinc, display, unit string
	lo, hi               float64
	decimals             int
	lab                  bool
}

var (
	obsHeight   = obsDef{"8302-2", "Body height", "cm", 0, 0, 1, false}
	obsWeight   = obsDef{"29463-7", "Body weight", "kg", 0, 0, 1, false}
	obsBMI      = obsDef{"39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 0, 0, 1, false}
	obsHR       = obsDef{"8867-4", "Heart rate", "/min", 60, 96, 0, false}
	obsRR       = obsDef{"9279-1", "Respiratory rate", "/min", 12, 19, 0, false}
	obsTemp     = obsDef{"8310-5", "Body temperature", "Cel", 36.3, 37.2, 1, false}
	obsSpO2     = obsDef{"59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 95, 100, 0, false}
	obsPain     = obsDef{"72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", 0, 3, 0, false}
	obsBP       = obsDef{"85354-9", "Blood pressure panel with all children optional", "", 0, 0, 0, false}
	obsSystolic = obsDef{"8480-6", "Systolic blood pressure", "mm[Hg]", 105, 130, 0, false}
	obsDiastol  = obsDef{"8462-4", "Diastolic blood pressure", "mm[Hg]", 65, 84, 0, false}

	labGlucose    = obsDef{"2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 70, 99, 0, true}
	labA1c        = obsDef{"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.5, 5.6, 1, true}
	labCreatinine = obsDef{"2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.2, 2, true}
	labBUN        = obsDef{"6299-2", "Urea nitrogen [Mass/volume] in Blood", "mg/dL", 7, 20, 0, true}
	labSodium     = obsDef{"2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 136, 145, 0, true}
	labPotassium  = obsDef{"6298-4", "Potassium [Moles/volume] in Blood", "mmol/L", 3.5, 5.0, 1, true}
	labChloride   = obsDef{"2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107, 0, true}
	labCO2        = obsDef{"2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22, 29, 0, true}
	labCalcium    = obsDef{"17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.2, 1, true}
	labEGFR       = obsDef{"33914-3", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)", "mL/min/{1.73_m2}", 75, 120, 0, true}
	labChol       = obsDef{"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 150, 199, 0, true}
	labTrig       = obsDef{"2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 60, 149, 0, true}
	labHDL        = obsDef{"2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, 75, 0, true}
	labLDL        = obsDef{"18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL", 60, 129, 0, true}
	labHgb        = obsDef{"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 16.5, 1, true}
	labHct        = obsDef{"4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36, 49, 1, true}
	labWBC        = obsDef{"6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.0, 10.5, 1, true}
	labPlatelets  = obsDef{"777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400, 0, true}
	labTSH        = obsDef{"3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.5, 4.0, 2, true}
	labINR        = obsDef{"6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", 0.9, 1.1, 1, true}
)

var (
	panelBMP   = []obsDef{labGlucose, labBUN, labCreatinine, labSodium, labPotassium, labChloride, labCO2, labCalcium}
	panelLipid = []obsDef{labChol, labTrig, labHDL, labLDL}
	panelCBC   = []obsDef{labHgb, labHct, labWBC, labPlatelets}
)

// chronicDef is a long-term condition: who gets it, how it is treated, and
// what is measured at its follow-ups.
type chronicDef struct {
	code
	sex          string  // "female", "male" or "" for both
	minAge       int     // not diagnosed before this age
	maxAge       int     // nor after it (0 means no limit)
	p, perDecade float64 // prevalence at minAge, and its rise per decade
	meds         []code
	labs         []obsDef
	procs        []code
}

var (
	condHypertension = snomed("38341003", "Hypertension")
	condDiabetes     = snomed("44054006", "Diabetes mellitus type 2 (disorder)")
	condPrediabetes  = snomed("15777000", "Prediabetes")
	condLipids       = snomed("55822004", "Hyperlipidemia")
	condObesity      = snomed("162864005", "Body mass index 30+ - obesity (finding)")
	condAsthma       = snomed("195967001", "Asthma")
	condCOPD         = snomed("185086009", "Chronic obstructive bronchitis (disorder)")
	condCHD          = snomed("53741008", "Coronary arteriosclerosis (disorder)")
	condAFib         = snomed("49436004", "Atrial fibrillation (disorder)")
	condAnemia       = snomed("271737000", "Anemia (disorder)")
)

var chronics = []chronicDef{
	{code: condHypertension, minAge: 25, p: 0.04, perDecade: 0.11,
		meds: []code{rxnorm("314076", "lisinopril 10 MG Oral Tablet"), rxnorm("197361", "amlodipine 5 MG Oral Tablet"), rxnorm("310798", "hydrochlorothiazide 25 MG Oral Tablet")},
		labs: []obsDef{labCreatinine, labPotassium, labEGFR, labSodium}},
	{code: condDiabetes, minAge: 30, p: 0.02, perDecade: 0.04,
		meds:  []code{rxnorm("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet")},
		labs:  []obsDef{labA1c, labGlucose, labCreatinine, labEGFR},
		procs: []code{snomed("36228007", "Ophthalmic examination and evaluation (procedure)")}},
	{code: condPrediabetes, minAge: 20, p: 0.05, perDecade: 0.03,
		labs: []obsDef{labA1c, labGlucose}},
	{code: condLipids, minAge: 30, p: 0.05, perDecade: 0.07,
		meds: []code{rxnorm("312961", "simvastatin 20 MG Oral Tablet")},
		labs: []obsDef{labChol, labTrig, labHDL, labLDL}},
	{code: condObesity, minAge: 18, p: 0.25, perDecade: 0.01,
		procs: []code{snomed("304549008", "Giving encouragement to exercise (procedure)")}},
	{code: condAsthma, minAge: 3, p: 0.08, perDecade: -0.005,
		meds:  []code{rxnorm("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"), rxnorm("895994", "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler")},
		procs: []code{snomed("127783003", "Spirometry (procedure)")}},
	{code: condCOPD, minAge: 45, p: 0.03, perDecade: 0.03,
		meds:  []code{rxnorm("896209", "60 ACTUAT fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler")},
		procs: []code{snomed("127783003", "Spirometry (procedure)")}},
	{code: condCHD, minAge: 45, p: 0.03, perDecade: 0.05,
		meds:  []code{rxnorm("309362", "clopidogrel 75 MG Oral Tablet"), rxnorm("866414", "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet")},
		labs:  []obsDef{labChol, labLDL},
		procs: []code{snomed("29303009", "Electrocardiographic procedure (procedure)")}},
	{code: condAFib, minAge: 55, p: 0.02, perDecade: 0.04,
		meds:  []code{rxnorm("855332", "warfarin sodium 5 MG Oral Tablet")},
		labs:  []obsDef{labINR},
		procs: []code{snomed("29303009", "Electrocardiographic procedure (procedure)")}},
	{code: snomed("40930008", "Hypothyroidism (disorder)"), minAge: 20, p: 0.02, perDecade: 0.015,
		meds: []code{rxnorm("966222", "levothyroxine sodium 0.075 MG Oral Tablet")},
		labs: []obsDef{labTSH}},
	{code: condAnemia, sex: "female", minAge: 14, p: 0.06, perDecade: 0,
		meds: []code{rxnorm("310325", "ferrous sulfate 325 MG Oral Tablet")},
		labs: []obsDef{labHgb, labHct}},
	{code: snomed("35489007", "Depressive disorder (disorder)"), minAge: 15, p: 0.07, perDecade: 0,
		meds:  []code{rxnorm("312940", "sertraline 50 MG Oral Tablet")},
		procs: []code{snomed("171207006", "Depression screening (procedure)")}},
	{code: snomed("239873007", "Osteoarthritis of knee (disorder)"), minAge: 45, p: 0.03, perDecade: 0.05,
		meds: []code{rxnorm("849574", "naproxen sodium 220 MG Oral Tablet")}},
	{code: snomed("64859006", "Osteoporosis (disorder)"), sex: "female", minAge: 55, p: 0.05, perDecade: 0.05,
		meds:  []code{rxnorm("904419", "alendronic acid 10 MG Oral Tablet")},
		procs: []code{snomed("312681000", "Bone density scan (procedure)")}},
	{code: snomed("446096008", "Perennial allergic rhinitis"), minAge: 4, p: 0.10, perDecade: -0.005,
		meds: []code{rxnorm("665078", "loratadine 5 MG Chewable Tablet")}},
	{code: snomed("24079001", "Atopic dermatitis"), minAge: 0, maxAge: 17, p: 0.10, perDecade: 0,
		meds: []code{rxnorm("106258", "hydrocortisone 10 MG/ML Topical Cream")}},
	{code: snomed("192127007", "Child attention deficit disorder"), minAge: 6, maxAge: 17, p: 0.07, perDecade: 0},
}

// acuteDef is a short illness or injury seen at a symptom, emergency or
// inpatient encounter.
type acuteDef struct {
	code
	kind      encounterKind
	minAge    int
	maxAge    int
	weight    int
	fever     bool
	meds      []code
	procs     []code
	labs      []obsDef
	resolveIn int // days until it resolves
}

var (
	medAmoxClav     = rxnorm("562251", "amoxicillin 250 MG / clavulanate 125 MG Oral Tablet")
	medAmoxicillin  = rxnorm("308182", "amoxicillin 250 MG Oral Capsule")
	medPenicillinV  = rxnorm("834061", "penicillin V potassium 250 MG Oral Tablet")
	medAcetaminophn = rxnorm("313782", "acetaminophen 325 MG Oral Tablet")
	medIbuprofen    = rxnorm("310965", "ibuprofen 200 MG Oral Tablet")
	medNaproxen     = rxnorm("849574", "naproxen sodium 220 MG Oral Tablet")
	medOxycodone    = rxnorm("1049221", "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet")
	medCefuroxime   = rxnorm("309097", "cefuroxime 250 MG Oral Tablet")
	medNitrofuranto = rxnorm("311995", "nitrofurantoin, macrocrystals 50 MG Oral Capsule")
)

var acutes = []acuteDef{
	{code: snomed("444814009", "Viral sinusitis (disorder)"), kind: kindSymptom, weight: 20, resolveIn: 14, meds: []code{medAcetaminophn}},
	{code: snomed("195662009", "Acute viral pharyngitis (disorder)"), kind: kindSymptom, weight: 14, fever: true, resolveIn: 10, meds: []code{medIbuprofen}},
	{code: snomed("10509002", "Acute bronchitis (disorder)"), kind: kindSymptom, weight: 12, fever: true, resolveIn: 21, meds: []code{medAcetaminophn}},
	{code: snomed("43878008", "Streptococcal sore throat (disorder)"), kind: kindSymptom, maxAge: 40, weight: 8, fever: true, resolveIn: 10,
		meds: []code{medPenicillinV}, procs: []code{snomed("117015009", "Throat culture (procedure)")}},
	{code: snomed("65363002", "Otitis media"), kind: kindSymptom, maxAge: 10, weight: 14, fever: true, resolveIn: 10, meds: []code{medAmoxicillin}},
	{code: snomed("68566005", "Urinary tract infectious disease (disorder)"), kind: kindSymptom, minAge: 12, weight: 8, resolveIn: 7,
		meds: []code{medNitrofuranto}, procs: []code{snomed("117010004", "Urine culture (procedure)")}},
	{code: snomed("386661006", "Fever (finding)"), kind: kindEmergency, maxAge: 5, weight: 4, fever: true, resolveIn: 5, meds: []code{medAcetaminophn}},
	{code: snomed("44465007", "Sprain of ankle"), kind: kindEmergency, minAge: 8, weight: 6, resolveIn: 28, meds: []code{medNaproxen}},
	{code: snomed("70704007", "Sprain of wrist"), kind: kindEmergency, minAge: 8, weight: 4, resolveIn: 28, meds: []code{medIbuprofen}},
	{code: snomed("65966004", "Fracture of forearm"), kind: kindEmergency, minAge: 4, weight: 3, resolveIn: 56,
		meds: []code{medOxycodone}, procs: []code{snomed("274474001", "Bone immobilization (procedure)"), snomed("168537006", "Plain X-ray (procedure)")}},
	{code: snomed("284549007", "Laceration of hand"), kind: kindEmergency, minAge: 2, weight: 4, resolveIn: 14,
		procs: []code{snomed("288086009", "Suture open wound (procedure)")}},
	{code: snomed("62106007", "Concussion with no loss of consciousness"), kind: kindEmergency, minAge: 5, weight: 3, resolveIn: 21,
		procs: []code{snomed("303653007", "Computed tomography of head (procedure)")}},
	{code: snomed("233604007", "Pneumonia (disorder)"), kind: kindInpatient, weight: 3, fever: true, resolveIn: 21,
		meds: []code{medCefuroxime}, labs: panelCBC, procs: []code{snomed("399208008", "Plain chest X-ray (procedure)")}},
	{code: snomed("74400008", "Appendicitis"), kind: kindInpatient, minAge: 5, maxAge: 60, weight: 2, fever: true, resolveIn: 21,
		meds: []code{medAmoxClav}, labs: panelCBC, procs: []code{snomed("80146002", "Appendectomy (procedure)")}},
}

// Routine procedures at check-ups.
var (
	procMedicationDoc = snomed("428191000124101", "Documentation of current medications (procedure)")
	procColonoscopy   = snomed("73761001", "Colonoscopy (procedure)")
	procDepression    = snomed("171207006", "Depression screening (procedure)")
)

// vaccine is given at a check-up between the ages (inclusive) with the
// chance p.
type vaccine struct {
	code
	minAge, maxAge int
	p              float64
}

var vaccines = []vaccine{
	{cvx("140", "Influenza, seasonal, injectable, preservative free"), 1, 120, 0.55},
	{cvx("08", "Hep B, adolescent or pediatric"), 0, 1, 0.8},
	{cvx("20", "DTaP"), 0, 6, 0.7},
	{cvx("10", "IPV"), 0, 6, 0.6},
	{cvx("133", "Pneumococcal conjugate PCV 13"), 0, 2, 0.6},
	{cvx("03", "MMR"), 1, 6, 0.5},
	{cvx("21", "varicella"), 1, 6, 0.5},
	{cvx("62", "HPV, quadrivalent"), 11, 17, 0.4},
	{cvx("114", "meningococcal MCV4P"), 11, 18, 0.4},
	{cvx("113", "Td (adult) preservative free"), 19, 120, 0.1},
	{cvx("121", "zoster"), 50, 120, 0.15},
	{cvx("33", "pneumococcal polysaccharide vaccine, 23 valent"), 65, 120, 0.15},
}

// allergyDef is an allergy with its likely reaction.
type allergyDef struct {
	code
	category      string
	manifestation code
	criticality   string
	weight        int
}

var allergies = []allergyDef{
	{snomed("91936005", "Allergy to penicillin (finding)"), "medication", snomed("271807003", "Eruption of skin (disorder)"), "high", 6},
	{snomed("294505008", "Allergy to sulfonamides (finding)"), "medication", snomed("271807003", "Eruption of skin (disorder)"), "low", 3},
	{snomed("91935009", "Allergy to peanuts"), "food", snomed("39579001", "Anaphylaxis (disorder)"), "high", 3},
	{snomed("300913006", "Shellfish allergy"), "food", snomed("247472004", "Wheal (finding)"), "high", 3},
	{snomed("425525006", "Allergy to dairy product"), "food", snomed("21522001", "Abdominal pain (finding)"), "low", 2},
	{snomed("232347008", "Dander (animal) allergy"), "environment", snomed("76067001", "Sneezing (finding)"), "low", 5},
	{snomed("419263009", "Allergy to tree pollen"), "environment", snomed("49727002", "Cough (finding)"), "low", 5},
	{snomed("232350006", "House dust mite allergy"), "environment", snomed("76067001", "Sneezing (finding)"), "low", 4},
	{snomed("300916003", "Latex allergy"), "environment", snomed("247472004", "Wheal (finding)"), "low", 1},
	{snomed("424213003", "Allergy to bee venom"), "environment", snomed("39579001", "Anaphylaxis (disorder)"), "high", 1},
}

var maritalStatuses = []coding{
	{sysMarital, "S", "Never Married"},
	{sysMarital, "M", "Married"},
	{sysMarital, "D", "Divorced"},
	{sysMarital, "W", "Widowed"},
}

var languages = []code{
	{sysLanguage, "en-US", "English (United States)"},
	{sysLanguage, "es", "Spanish"},
	{sysLanguage, "zh", "Chinese"},
	{sysLanguage, "pt", "Portuguese"},
}
