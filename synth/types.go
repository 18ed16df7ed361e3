package synth

// FHIR R4 JSON shapes, limited to the elements the generator fills. Field order
// is the order of the FHIR specification, and because encoding/json writes
// struct fields in declaration order, output is byte-for-byte reproducible.

type bundle struct {
	ResourceType string  `json:"resourceType"`
	Meta         *meta   `json:"meta,omitempty"`
	Type         string  `json:"type"`
	Entry        []entry `json:"entry"`
}

type entry struct {
	FullURL  string  `json:"fullUrl"`
	Resource any     `json:"resource"`
	Request  request `json:"request"`
}

type request struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfNoneExist string `json:"ifNoneExist,omitempty"`
}

type meta struct {
	Security []coding `json:"security,omitempty"`
	Tag      []coding `json:"tag,omitempty"`
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type concept struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type reference struct {
	Reference string `json:"reference,omitempty"`
	Display   string `json:"display,omitempty"`
}

type identifier struct {
	Use    string   `json:"use,omitempty"`
	Type   *concept `json:"type,omitempty"`
	System string   `json:"system,omitempty"`
	Value  string   `json:"value,omitempty"`
}

type humanName struct {
	Use    string   `json:"use,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Prefix []string `json:"prefix,omitempty"`
}

type contactPoint struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
	Use    string `json:"use,omitempty"`
}

type address struct {
	Use        string   `json:"use,omitempty"`
	Type       string   `json:"type,omitempty"`
	Line       []string `json:"line,omitempty"`
	City       string   `json:"city,omitempty"`
	State      string   `json:"state,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Country    string   `json:"country,omitempty"`
}

type period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

type quantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	System string  `json:"system,omitempty"`
	Code   string  `json:"code,omitempty"`
}

type organization struct {
	ResourceType string         `json:"resourceType"`
	Meta         *meta          `json:"meta,omitempty"`
	Identifier   []identifier   `json:"identifier"`
	Active       bool           `json:"active"`
	Type         []concept      `json:"type,omitempty"`
	Name         string         `json:"name"`
	Telecom      []contactPoint `json:"telecom,omitempty"`
	Address      []address      `json:"address,omitempty"`
	PartOf       *reference     `json:"partOf,omitempty"`
}

type location struct {
	ResourceType         string         `json:"resourceType"`
	Meta                 *meta          `json:"meta,omitempty"`
	Identifier           []identifier   `json:"identifier"`
	Status               string         `json:"status"`
	Name                 string         `json:"name"`
	Mode                 string         `json:"mode,omitempty"`
	Type                 []concept      `json:"type,omitempty"`
	Telecom              []contactPoint `json:"telecom,omitempty"`
	Address              *address       `json:"address,omitempty"`
	ManagingOrganization *reference     `json:"managingOrganization,omitempty"`
}

type qualification struct {
	Code concept `json:"code"`
}

type practitioner struct {
	ResourceType  string          `json:"resourceType"`
	Meta          *meta           `json:"meta,omitempty"`
	Identifier    []identifier    `json:"identifier"`
	Active        bool            `json:"active"`
	Name          []humanName     `json:"name"`
	Telecom       []contactPoint  `json:"telecom,omitempty"`
	Gender        string          `json:"gender,omitempty"`
	Qualification []qualification `json:"qualification,omitempty"`
}

type patient struct {
	ResourceType         string          `json:"resourceType"`
	Meta                 *meta           `json:"meta,omitempty"`
	Identifier           any             `json:"identifier,omitempty"` // []identifier, or a site's
	Active               *bool           `json:"active,omitempty"`
	Name                 []humanName     `json:"name"`
	Telecom              []contactPoint  `json:"telecom,omitempty"`
	Gender               string          `json:"gender"`
	BirthDate            string          `json:"birthDate"`
	Address              []address       `json:"address,omitempty"`
	MaritalStatus        *concept        `json:"maritalStatus,omitempty"`
	Communication        []communication `json:"communication,omitempty"`
	GeneralPractitioner  []reference     `json:"generalPractitioner,omitempty"`
	ManagingOrganization *reference      `json:"managingOrganization,omitempty"`
}

type communication struct {
	Language  concept `json:"language"`
	Preferred bool    `json:"preferred,omitempty"`
}

type encounterParticipant struct {
	Type       []concept  `json:"type,omitempty"`
	Period     *period    `json:"period,omitempty"`
	Individual *reference `json:"individual,omitempty"`
}

type encounterLocation struct {
	Location reference `json:"location"`
}

type hospitalization struct {
	AdmitSource          *concept `json:"admitSource,omitempty"`
	DischargeDisposition *concept `json:"dischargeDisposition,omitempty"`
}

type encounter struct {
	ResourceType    string                 `json:"resourceType"`
	Meta            *meta                  `json:"meta,omitempty"`
	Status          string                 `json:"status"`
	Class           coding                 `json:"class"`
	Type            []concept              `json:"type,omitempty"`
	Subject         reference              `json:"subject"`
	Participant     []encounterParticipant `json:"participant,omitempty"`
	Period          period                 `json:"period"`
	ReasonReference []reference            `json:"reasonReference,omitempty"`
	Hospitalization *hospitalization       `json:"hospitalization,omitempty"`
	Location        []encounterLocation    `json:"location,omitempty"`
	ServiceProvider *reference             `json:"serviceProvider,omitempty"`
}

type observationComponent struct {
	Code          concept   `json:"code"`
	ValueQuantity *quantity `json:"valueQuantity,omitempty"`
}

type observation struct {
	ResourceType      string                 `json:"resourceType"`
	Meta              *meta                  `json:"meta,omitempty"`
	Status            string                 `json:"status"`
	Category          []concept              `json:"category"`
	Code              concept                `json:"code"`
	Subject           reference              `json:"subject"`
	Encounter         *reference             `json:"encounter,omitempty"`
	EffectiveDateTime string                 `json:"effectiveDateTime"`
	Issued            string                 `json:"issued,omitempty"`
	Performer         []reference            `json:"performer,omitempty"`
	ValueQuantity     *quantity              `json:"valueQuantity,omitempty"`
	Component         []observationComponent `json:"component,omitempty"`
}

type condition struct {
	ResourceType       string     `json:"resourceType"`
	Meta               *meta      `json:"meta,omitempty"`
	ClinicalStatus     concept    `json:"clinicalStatus"`
	VerificationStatus concept    `json:"verificationStatus"`
	Category           []concept  `json:"category"`
	Code               concept    `json:"code"`
	Subject            reference  `json:"subject"`
	Encounter          *reference `json:"encounter,omitempty"`
	OnsetDateTime      string     `json:"onsetDateTime"`
	AbatementDateTime  string     `json:"abatementDateTime,omitempty"`
	RecordedDate       string     `json:"recordedDate,omitempty"`
	Recorder           *reference `json:"recorder,omitempty"`
}

type dosage struct {
	Sequence int    `json:"sequence,omitempty"`
	Text     string `json:"text,omitempty"`
	AsNeeded bool   `json:"asNeededBoolean,omitempty"`
}

type medicationRequest struct {
	ResourceType              string      `json:"resourceType"`
	Meta                      *meta       `json:"meta,omitempty"`
	Status                    string      `json:"status"`
	Intent                    string      `json:"intent"`
	MedicationCodeableConcept concept     `json:"medicationCodeableConcept"`
	Subject                   reference   `json:"subject"`
	Encounter                 *reference  `json:"encounter,omitempty"`
	AuthoredOn                string      `json:"authoredOn"`
	Requester                 *reference  `json:"requester,omitempty"`
	ReasonReference           []reference `json:"reasonReference,omitempty"`
	DosageInstruction         []dosage    `json:"dosageInstruction,omitempty"`
}

type allergyReaction struct {
	Manifestation []concept `json:"manifestation"`
	Severity      string    `json:"severity,omitempty"`
}

type allergyIntolerance struct {
	ResourceType       string            `json:"resourceType"`
	Meta               *meta             `json:"meta,omitempty"`
	ClinicalStatus     concept           `json:"clinicalStatus"`
	VerificationStatus concept           `json:"verificationStatus"`
	Type               string            `json:"type,omitempty"`
	Category           []string          `json:"category,omitempty"`
	Criticality        string            `json:"criticality,omitempty"`
	Code               concept           `json:"code"`
	Patient            reference         `json:"patient"`
	Encounter          *reference        `json:"encounter,omitempty"`
	OnsetDateTime      string            `json:"onsetDateTime,omitempty"`
	RecordedDate       string            `json:"recordedDate,omitempty"`
	Recorder           *reference        `json:"recorder,omitempty"`
	Reaction           []allergyReaction `json:"reaction,omitempty"`
}

type performer struct {
	Actor reference `json:"actor"`
}

type immunization struct {
	ResourceType       string      `json:"resourceType"`
	Meta               *meta       `json:"meta,omitempty"`
	Status             string      `json:"status"`
	VaccineCode        concept     `json:"vaccineCode"`
	Patient            reference   `json:"patient"`
	Encounter          *reference  `json:"encounter,omitempty"`
	OccurrenceDateTime string      `json:"occurrenceDateTime"`
	PrimarySource      bool        `json:"primarySource"`
	LotNumber          string      `json:"lotNumber,omitempty"`
	Performer          []performer `json:"performer,omitempty"`
}

type procedure struct {
	ResourceType      string      `json:"resourceType"`
	Meta              *meta       `json:"meta,omitempty"`
	Status            string      `json:"status"`
	Code              concept     `json:"code"`
	Subject           reference   `json:"subject"`
	Encounter         *reference  `json:"encounter,omitempty"`
	PerformedDateTime string      `json:"performedDateTime,omitempty"`
	PerformedPeriod   *period     `json:"performedPeriod,omitempty"`
	Performer         []performer `json:"performer,omitempty"`
	ReasonReference   []reference `json:"reasonReference,omitempty"`
}
