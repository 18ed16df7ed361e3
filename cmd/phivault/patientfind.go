package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/smart"
)

// Paging bounds of the patient lookup.
const (
	DefaultPatientFindCount = 20 // _count when absent
	MaxPatientFindCount     = 50 // largest _count accepted
)

// patientFinder serves GET /fhir/admin/reports/patients: a privacy
// officer's narrow lookup of any patient, to open their accounting of
// disclosures (HIPAA 164.528).
//
// Under the built-in policies a privacy officer reads the audit trail and
// no patient record, so the FHIR search (bounded to their care teams)
// never finds anyone. This lookup searches the vault below the access
// layer instead, and in return shows the least that tells patients apart
// (minimum necessary, 164.502(b)): the id, one display name and the birth
// date, never the rest of the Patient. Every request is one audit entry
// of action search on Patient, appended before the answer, whose
// compartments are the patients answered: each one's own access report
// shows the lookup.
type patientFinder struct {
	// vault is the record service below the access and audit layers: it
	// decides nothing and records nothing, so this handler does both.
	vault  phivault.RecordService
	auth   api.Authenticator // must put the principal and the actor in the context
	log    phivault.AuditLog
	detail auditlog.Detailer // raised detail of some actors' searches; nil for none
	sealed func() bool
	now    func() time.Time
	logger *slog.Logger
}

// patientFind returns the patient lookup of a, for fhirAndAdmin. It
// searches a's vault below the access layer (see patientFinder).
func (a *app) patientFind() http.Handler {
	f := &patientFinder{
		vault:  a.vault,
		auth:   auditActor{a.bearer},
		log:    a.audit.log,
		sealed: a.seal.Sealed,
		now:    time.Now,
		logger: a.logger,
	}
	if a.detail != nil {
		f.detail = a.detail
	}
	return withClient(f)
}

// patientFound is one patient of the lookup's answer: nothing else of the
// Patient leaves.
type patientFound struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	BirthDate string `json:"birthDate,omitempty"`
}

// patientFindAnswer is the lookup's answer. Total counts every match,
// of which Patients holds the first _count.
type patientFindAnswer struct {
	Patients []patientFound `json:"patients"`
	Total    int            `json:"total"`
}

var (
	errPatientFindRole  = phivault.Errorf(phivault.EFORBIDDEN, "Finding a patient for their access report is for privacy officers.")
	errPatientFindScope = phivault.Errorf(phivault.EFORBIDDEN,
		"The token's scopes do not include searching Patient.")
	errPatientFindSealed = phivault.Errorf(phivault.EUNAVAILABLE,
		"The vault is sealed: patient names and identifiers are encrypted, so no patient can be found until it is unsealed (phivault unseal). A report can still be opened by the patient's id.")
	errPatientFindParams = phivault.Errorf(phivault.EINVALID,
		"Find a patient by identifier=SYSTEM|VALUE or by name=TEXT (one of them, once), with an optional _count from 1 to %d.", MaxPatientFindCount)
	errPatientFindCount = phivault.Errorf(phivault.EINVALID, "_count must be a number from 1 to %d.", MaxPatientFindCount)
)

// authorizePatientFind lets through the operator and privacy officers
// (never a patient, whatever roles their account claims) whose SMART
// scopes, if their token has any, search every Patient.
func authorizePatientFind(p *phivault.Principal) error {
	if p.Operator() {
		return nil
	}
	if p == nil || p.Kind == phivault.PrincipalPatient || !p.HasRole(phivault.RolePrivacyOfficer) {
		return errPatientFindRole
	}
	if p.SMART {
		scopes, err := smart.ParseList(p.Scopes)
		if err != nil || !smart.Unconditional(scopes, smart.ContextOf(p.Kind), smart.Search, "Patient") {
			return errPatientFindScope
		}
	}
	return nil
}

// parsePatientFind reads the lookup's parameters into a Patient search,
// with the FHIR API's own parser (fhir.ParseQuery), so that a name or an
// identifier means here what it means to GET /fhir/Patient.
func parsePatientFind(raw string) (*phivault.Query, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errPatientFindParams
	}
	count := DefaultPatientFindCount
	by := ""
	for name, vs := range vals {
		if len(vs) != 1 {
			return nil, errPatientFindParams
		}
		switch name {
		case "identifier", "name":
			if by != "" {
				return nil, errPatientFindParams
			}
			by = name
		case "_count":
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 1 || n > MaxPatientFindCount {
				return nil, errPatientFindCount
			}
			count = n
		default:
			return nil, errPatientFindParams
		}
	}
	if by == "" || strings.TrimSpace(vals.Get(by)) == "" {
		return nil, errPatientFindParams
	}
	q, err := fhir.ParseQuery("Patient", url.Values{by: vals[by], "_count": {strconv.Itoa(count)}}, false)
	if err != nil {
		return nil, err
	}
	if len(q.Params) == 0 { // only empty values, e.g. name=","; never a search of every patient
		return nil, errPatientFindParams
	}
	return q, nil
}

// patientOf reads what the lookup shows of a stored Patient: its id, its
// birth date, and as its name the given names and family of its first
// name (or that name's text if it has neither).
func patientOf(body []byte) (patientFound, error) {
	var p struct {
		ID   string `json:"id"`
		Name []struct {
			Text   string   `json:"text"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
		BirthDate string `json:"birthDate"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return patientFound{}, err
	}
	out := patientFound{ID: p.ID, BirthDate: p.BirthDate}
	if len(p.Name) > 0 {
		n := p.Name[0]
		out.Name = strings.Join(strings.Fields(strings.Join(append(slices.Clone(n.Given), n.Family), " ")), " ")
		if out.Name == "" {
			out.Name = strings.TrimSpace(n.Text)
		}
	}
	return out, nil
}

// ServeHTTP answers GET /fhir/admin/reports/patients?identifier= or ?name=
// (see patientFinder): authenticate, authorize, parse, search, record,
// answer. A refusal after authentication is recorded with its outcome.
func (f *patientFinder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, err := api.Authenticate(w, r, f.auth, "phivault")
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	e := phivault.NewRequestEntry(ctx, r.RemoteAddr, f.now(), phivault.ActionSearch, auditlog.TargetPatientLookup, "")
	for _, name := range []string{"identifier", "name"} {
		if r.URL.Query().Has(name) {
			e.SearchParams = append(e.SearchParams, name) // names only, never values
		}
	}
	if err := authorizePatientFind(phivault.PrincipalFromContext(ctx)); err != nil {
		f.refuse(ctx, w, e, err)
		return
	}
	if f.sealed() {
		f.refuse(ctx, w, e, errPatientFindSealed)
		return
	}
	q, err := parsePatientFind(r.URL.RawQuery)
	if err != nil {
		f.refuse(ctx, w, e, err)
		return
	}
	res, err := f.vault.Search(ctx, q)
	if err != nil {
		if phivault.ErrorCode(err) == phivault.EINTERNAL {
			f.logger.Error("patient lookup: search failed", "request", e.RequestID, "error_type", fmt.Sprintf("%T", err)) // its text may hold PHI
		}
		f.refuse(ctx, w, e, err)
		return
	}
	out := patientFindAnswer{Patients: []patientFound{}, Total: res.Total}
	for _, m := range res.Matches {
		found, err := patientOf(m.Body)
		if err != nil || found.ID != m.ID {
			f.logger.Error("patient lookup: a stored Patient does not decode", "request", e.RequestID, "id", m.ID)
			f.refuse(ctx, w, e, phivault.Errorf(phivault.EINTERNAL, "Internal error."))
			return
		}
		out.Patients = append(out.Patients, found)
		e.Returned = append(e.Returned, m.Ref()+"/_history/"+strconv.FormatInt(m.Version, 10))
		e.Compartments = append(e.Compartments, m.ID)
	}
	if f.detail != nil {
		if e.SearchValues, err = f.detail.SearchValues(ctx, e.Actor, e.Time, q); err != nil {
			f.refuse(ctx, w, e, auditlog.ErrUnavailable)
			return
		}
	}
	// The entry is written before any name leaves, even if the caller went
	// away; without it nothing is answered.
	if err := f.log.Append(context.WithoutCancel(ctx), e); err != nil {
		fhir.WriteOutcome(w, auditlog.ErrUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// refuse records e as a refused attempt with err's code, and answers err.
// The refusal stands even if the entry cannot be written: nothing of a
// patient leaves either way.
func (f *patientFinder) refuse(ctx context.Context, w http.ResponseWriter, e *phivault.AuditEntry, err error) {
	e.Outcome = phivault.ErrorCode(err)
	e.Returned, e.Compartments = nil, nil
	if aerr := f.log.Append(context.WithoutCancel(ctx), e); aerr != nil {
		f.logger.Error("patient lookup: a refusal was not recorded", "request", e.RequestID, "error", aerr.Error())
	}
	fhir.WriteOutcome(w, err)
}
