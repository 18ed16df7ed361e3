package incident

import (
	"iter"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
)

// Kinds of PHI a breach report counts, by the resource types that hold
// them.
const (
	KindDemographics = "demographics"
	KindDiagnoses    = "diagnoses"
	KindMedications  = "medications"
	KindResults      = "results"
	KindNotes        = "notes"
	KindFinancial    = "financial"
	KindCare         = "care" // encounters, procedures, plans, immunizations, …
	KindOther        = "other"
)

// phiKinds maps FHIR R4 resource types to the kind of PHI they hold;
// a type not listed is KindOther.
var phiKinds = map[string]string{
	"Patient": KindDemographics, "RelatedPerson": KindDemographics, "Person": KindDemographics,

	"Condition": KindDiagnoses, "AllergyIntolerance": KindDiagnoses, "FamilyMemberHistory": KindDiagnoses,
	"ClinicalImpression": KindDiagnoses, "DetectedIssue": KindDiagnoses,

	"Medication": KindMedications, "MedicationRequest": KindMedications, "MedicationStatement": KindMedications,
	"MedicationAdministration": KindMedications, "MedicationDispense": KindMedications,

	"Observation": KindResults, "DiagnosticReport": KindResults, "ImagingStudy": KindResults,
	"Specimen": KindResults, "MolecularSequence": KindResults, "RiskAssessment": KindResults,

	"DocumentReference": KindNotes, "Composition": KindNotes, "Communication": KindNotes,
	"QuestionnaireResponse": KindNotes, "Media": KindNotes, "Binary": KindNotes,

	"Claim": KindFinancial, "ClaimResponse": KindFinancial, "ExplanationOfBenefit": KindFinancial,
	"Coverage": KindFinancial, "Account": KindFinancial, "Invoice": KindFinancial,
	"CoverageEligibilityRequest": KindFinancial, "CoverageEligibilityResponse": KindFinancial,

	"Encounter": KindCare, "EpisodeOfCare": KindCare, "Procedure": KindCare, "Immunization": KindCare,
	"CarePlan": KindCare, "CareTeam": KindCare, "Goal": KindCare, "ServiceRequest": KindCare,
	"Appointment": KindCare, "Device": KindCare, "DeviceRequest": KindCare, "NutritionOrder": KindCare,
	"ImmunizationRecommendation": KindCare, "Flag": KindCare, "Consent": KindCare, "Provenance": KindCare,
}

// PHIKind returns the kind of PHI a resource type holds.
func PHIKind(resourceType string) string {
	if k, ok := phiKinds[resourceType]; ok {
		return k
	}
	return KindOther
}

// readActions are the audit actions whose Returned lists are PHI that
// left the vault to the caller.
var readActions = []string{
	phivault.ActionRead, phivault.ActionVRead, phivault.ActionSearch, phivault.ActionHistory,
	phivault.ActionEverything, phivault.ActionExport, phivault.ActionBundle,
}

// Impact is what a breach touched, computed from the audit trail alone:
// the resources that left (the Returned lists of successful reads by the
// scope's users, clients or sources within its window), whose they were,
// and what kinds of PHI they held.
type Impact struct {
	// Entries are the trail indexes of the reads in scope, in order: the
	// evidence of the report (an archive proves each one).
	Entries []int64 `json:"entries"`
	// Resources are the versions that left ("Type/id/_history/n"),
	// sorted, each once.
	Resources []string `json:"resources"`
	// Patients are the patients whose records left, sorted. An entry
	// that touched several compartments counts every one of them: a
	// breach report errs towards notifying.
	Patients []string `json:"patients"`
	// ByType counts the resources by type; ByKind by kind of PHI.
	ByType map[string]int `json:"by_type"`
	ByKind map[string]int `json:"by_kind"`
	// Writes are the trail indexes of successful writes in scope: an
	// integrity matter the report names, though nothing left by them.
	Writes []int64 `json:"writes,omitempty"`
}

// Assess computes the impact of the incident scope s from the trail
// entries (index, entry), read in order. An empty window side is open.
func Assess(entries iter.Seq2[int64, *phivault.AuditEntry], s Scope) *Impact {
	im := &Impact{ByType: map[string]int{}, ByKind: map[string]int{}}
	resources := map[string]bool{}
	patients := map[string]bool{}
	sel := Selection{Scope: s}
	covers := sel.matcher()
	for i, e := range entries {
		if e.Outcome != "ok" || !covers(e) {
			continue
		}
		if !slices.Contains(readActions, e.Action) {
			if isWrite(e.Action) {
				im.Writes = append(im.Writes, i)
			}
			continue
		}
		if len(e.Returned) == 0 {
			continue
		}
		im.Entries = append(im.Entries, i)
		for _, c := range e.Compartments {
			patients[c] = true
		}
		for _, r := range e.Returned {
			if resources[r] {
				continue
			}
			resources[r] = true
			typ, _, _ := strings.Cut(r, "/")
			im.ByType[typ]++
			im.ByKind[PHIKind(typ)]++
		}
	}
	for r := range resources {
		im.Resources = append(im.Resources, r)
	}
	slices.Sort(im.Resources)
	for p := range patients {
		im.Patients = append(im.Patients, p)
	}
	slices.Sort(im.Patients)
	return im
}

func isWrite(action string) bool {
	switch action {
	case phivault.ActionCreate, phivault.ActionUpdate, phivault.ActionDelete, phivault.ActionShred:
		return true
	}
	return false
}

// covers reports whether entry e was made by one of the scope's users,
// clients or sources (nets); a scope naming none of them covers nothing.
// Its window is the caller's (Selection).
func (s *Scope) covers(e *phivault.AuditEntry, nets []netip.Prefix) bool {
	if len(s.Users)+len(s.Clients)+len(nets) == 0 {
		return false // a scope of nobody covers nothing, never everything
	}
	if slices.Contains(s.Users, e.Actor) || (e.Client != "" && slices.Contains(s.Clients, e.Client)) {
		return true
	}
	if a, err := netip.ParseAddr(e.Source); err == nil {
		for _, n := range nets {
			if n.Contains(a.Unmap()) {
				return true
			}
		}
	}
	return false
}

// Notification thresholds of the HIPAA Breach Notification Rule.
const (
	// MediaThreshold: a breach of more than this many residents of a
	// state or jurisdiction is also notified to prominent media outlets
	// there (45 CFR 164.406).
	MediaThreshold = 500
	// HHSThreshold: a breach of this many individuals or more is notified
	// to the Secretary at the same time as the individuals; fewer go in
	// the annual log (45 CFR 164.408).
	HHSThreshold = 500
)

// Deadline is one notice a breach calls for.
type Deadline struct {
	Notice string    `json:"notice"` // individuals, media (STATE), hhs, hhs-annual-log
	Due    time.Time `json:"due"`
	Rule   string    `json:"rule"` // the regulation
}

// Deadlines returns the notices a breach of the given residents by state
// (state code → individuals; "" for unknown residence) discovered on
// discovered calls for, if notice is required (the four-factor
// assessment decides that): individuals within 60 days; media in each
// state with more than 500; the Secretary within 60 days if 500 or more
// in all, else in the annual log, within 60 days of the end of the
// calendar year.
func Deadlines(discovered time.Time, byState map[string]int) []Deadline {
	total := 0
	for _, n := range byState {
		total += n
	}
	if total == 0 {
		return nil
	}
	due := discovered.Add(NotificationWindow)
	out := []Deadline{{Notice: "individuals", Due: due, Rule: "45 CFR 164.404(b)"}}
	states := make([]string, 0, len(byState))
	for st := range byState {
		states = append(states, st)
	}
	slices.Sort(states)
	for _, st := range states {
		if st != "" && byState[st] > MediaThreshold {
			out = append(out, Deadline{Notice: "media " + st, Due: due, Rule: "45 CFR 164.406"})
		}
	}
	if total >= HHSThreshold {
		out = append(out, Deadline{Notice: "hhs", Due: due, Rule: "45 CFR 164.408(b)"})
	} else {
		end := time.Date(discovered.Year()+1, 1, 1, 0, 0, 0, 0, time.UTC)
		out = append(out, Deadline{Notice: "hhs-annual-log", Due: end.Add(NotificationWindow), Rule: "45 CFR 164.408(c)"})
	}
	return out
}
