package incident

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// Residences tells the state (or jurisdiction) of residence of patients,
// read from their records inside the vault; "" where it is unknown.
type Residences interface {
	States(ctx context.Context, patients []string) (map[string]string, error)
}

// trailChunk is how many entries a breach assessment reads at a time.
const trailChunk = 4096

// Report is the breach-impact report of an incident.
type Report struct {
	Incident   string    `json:"incident"`
	Discovered time.Time `json:"discovered"`
	Scope      Scope     `json:"scope"`
	Impact     *Impact   `json:"impact"`
	// ResidentsByState counts the affected patients by state of
	// residence ("" for unknown).
	ResidentsByState map[string]int `json:"residents_by_state"`
	// Secured says whether the PHI was "secured" in the HHS sense
	// (unusable to unauthorised persons: encrypted, its key not
	// compromised), and why.
	Secured       bool   `json:"secured"`
	SecuredReason string `json:"secured_reason"`
	// Deadlines are the notices due if the assessment finds notice is
	// required.
	Deadlines []Deadline `json:"deadlines"`
	// Worksheet is the four-factor risk assessment of 45 CFR 164.402(2),
	// with what the trail tells pre-filled, for the privacy officer to
	// complete.
	Worksheet []Factor `json:"worksheet"`
}

// Factor is one factor of the risk assessment.
type Factor struct {
	Factor   string `json:"factor"`
	Known    string `json:"known"`    // what the trail and the incident say
	Complete string `json:"complete"` // what the privacy officer must add
}

// notSecuredReason: PHI that left through the API was decrypted for the
// caller, so the encryption at rest does not make the disclosure secured.
const notSecuredReason = "The records left through the API, decrypted for the caller: encryption at rest does not make this disclosure secured (HHS guidance on unsecured PHI, 74 FR 42740)."

// Assess computes the breach-impact report of the incident id from the
// audit trail: the reads by its scope within its window.
func (s *Service) Assess(ctx context.Context, id string, trail detect.Trail, res Residences) (*Report, error) {
	in, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	size, err := trail.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("incident: trail size: %w", err)
	}
	entries, readErr := Select(ctx, trail, size, Selection{Scope: in.Scope})
	im := Assess(entries, in.Scope)
	if err := readErr(); err != nil {
		return nil, err
	}
	states, err := res.States(ctx, vaultPatients(im.Patients))
	if err != nil {
		return nil, fmt.Errorf("incident: residences: %w", err)
	}
	byState := map[string]int{}
	for _, p := range im.Patients {
		byState[states[p]]++ // another system's patient: unknown residence
	}
	r := &Report{
		Incident: in.ID, Discovered: in.Discovered, Scope: in.Scope, Impact: im, ResidentsByState: byState,
		Secured: false, SecuredReason: notSecuredReason, Deadlines: Deadlines(in.Discovered, byState),
	}
	if len(im.Resources) == 0 {
		r.Secured, r.SecuredReason = true, "No record left to the incident's scope within its window."
		byState = map[string]int{}
		r.ResidentsByState = byState
	}
	r.Worksheet = worksheet(in, im)
	return r, nil
}

func worksheet(in *Incident, im *Impact) []Factor {
	var kinds []string
	for _, k := range []string{KindDemographics, KindDiagnoses, KindMedications, KindResults, KindNotes, KindFinancial, KindCare, KindOther} {
		if n := im.ByKind[k]; n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
	}
	var who []string
	if n := len(in.Scope.Users); n > 0 {
		who = append(who, fmt.Sprintf("%d accounts (%s)", n, strings.Join(in.Scope.Users, ", ")))
	}
	if n := len(in.Scope.Clients); n > 0 {
		who = append(who, fmt.Sprintf("%d client applications", n))
	}
	if n := len(in.Scope.Sources); n > 0 {
		who = append(who, fmt.Sprintf("%d source addresses or networks", n))
	}
	var done []string
	for _, a := range in.Actions {
		if a.State == ActionDone {
			done = append(done, a.Kind)
		}
	}
	return []Factor{
		{"1. The nature and extent of the PHI involved, including the types of identifiers and the likelihood of re-identification",
			fmt.Sprintf("%d resources of %d patients left: %s.", len(im.Resources), len(im.Patients), strings.Join(kinds, ", ")),
			"Which identifiers the resources held (names, SSNs, record numbers), how sensitive the clinical data is (mental health, HIV, substance use), and whether it could be used against the patients."},
		{"2. The unauthorized person who used the PHI or to whom the disclosure was made",
			"By " + strings.Join(who, "; ") + ".",
			"Who they are, and whether they have obligations to protect the information (a workforce member, another covered entity)."},
		{"3. Whether the PHI was actually acquired or viewed",
			fmt.Sprintf("Acquired: the trail records %d reads that returned the resources to the caller.", len(im.Entries)),
			"Whether the person viewed, kept, copied or passed on what was returned."},
		{"4. The extent to which the risk to the PHI has been mitigated",
			"Actions taken: " + orNone(strings.Join(done, ", ")) + ".",
			"Assurances obtained (attestation of destruction), devices recovered, and other mitigation."},
	}
}

// breachReport serves GET /security/incidents/{id}/breach: for privacy
// officers (and the operator) only, as it reads the patients' residence.
func (h *handler) breachReport(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	id := r.PathValue("id")
	e := a.Entry(r, phivault.ActionExport, TargetType, safeID(id))
	p := phivault.PrincipalFromContext(r.Context())
	if p == nil || !(p.HasRole(phivault.RolePrivacyOfficer) || p.Operator()) {
		a.Refuse(w, r, e, phivault.Errorf(phivault.EFORBIDDEN, "The breach report is for privacy officers."))
		return
	}
	if h.opts.Trail == nil || h.opts.Residences == nil {
		a.Refuse(w, r, e, phivault.Errorf(phivault.EUNAVAILABLE, "This server cannot assess breaches."))
		return
	}
	rep, err := h.opts.Service.Assess(r.Context(), id, h.opts.Trail, h.opts.Residences)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	e.Decision = "breach report"
	e.Compartments = vaultPatients(rep.Impact.Patients)
	e.Returned = []string{TargetType + "/" + id}
	if !a.Record(w, r, e) {
		return
	}
	detect.WriteJSON(w, http.StatusOK, rep)
}
