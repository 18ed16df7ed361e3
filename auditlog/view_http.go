package auditlog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// ViewOptions configure NewViewHandler.
type ViewOptions struct {
	// Store holds the trail and its index.
	Store IndexStorage
	// Auth checks every request's bearer token.
	Auth Authenticator
	// Log records every read of the trail (action export, see
	// NewViewHandler) before the answer is sent, and every refused
	// attempt; if it cannot, the request fails with 503 and no data.
	// Required.
	Log phivault.AuditLog
	// BaseURL is the FHIR base URL for fullUrl and paging links, e.g.
	// https://vault.example.org/fhir. Default: from the request.
	BaseURL string
	// Now stamps the view's own audit entries. Default time.Now.
	Now func() time.Time
}

// Paging bounds of the AuditEvent search.
const (
	DefaultCount = 50
	MaxCount     = 1000
)

// NewViewHandler returns the read-only views of the audit trail, for the
// absolute paths below. They read the audit store only: they never decrypt
// a record, so they answer while the vault is sealed, and they show ids, not
// PHI. Every request needs a bearer token that opts.Auth accepts, and:
//
//   - AuditEvent search and read, and the user activity report: an
//     operator (the bootstrap admin token), or a principal with the
//     privacy-officer or security-admin role; others get 403.
//   - A patient's access report: the patient themself (a principal of kind
//     patient whose PatientID is the patient; 404 for any other patient),
//     a privacy officer, or an operator; others get 403.
//
// A token with SMART scopes also needs a scope that reads AuditEvent.
// Each read is recorded before data leaves, as an entry of action export:
// target AuditEvent (its index for a read; Returned lists the AuditEvents
// answered), AccessReport with the patient's id and compartment, or
// ActivityReport with the actor's id; with the names (never the values) of
// the query parameters. Refusals are recorded with their outcome.
//
//	GET /fhir/AuditEvent?patient=&agent=&date=&action=&purpose=&_id=&_count=&_offset=
//	    a searchset Bundle of AuditEvents (IHE BALP shape), oldest first
//	GET /fhir/AuditEvent/{index}
//	    one AuditEvent; its id is the entry's index in the log
//	GET /fhir/admin/reports/patients/{id}/access?format=json|csv&date=
//	    the patient's accounting of disclosures: every access to their
//	    compartment, as a Bundle of AuditEvents or as CSV (see WriteCSV)
//	GET /fhir/admin/reports/users/{actor}/activity?format=json|csv&date=
//	    everything one actor did, in the same two forms
//
// Writes to AuditEvent are not served here: the FHIR API rejects them with
// 403, since nothing may change or delete the trail.
func NewViewHandler(opts ViewOptions) http.Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		panic("auditlog: NewViewHandler needs a Log to record reads of the trail")
	}
	v := &view{opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/AuditEvent", v.serveSearch)
	mux.HandleFunc("GET /fhir/AuditEvent/{index}", v.serveRead)
	mux.HandleFunc("GET /fhir/admin/reports/patients/{id}/access", v.servePatientReport)
	mux.HandleFunc("GET /fhir/admin/reports/users/{actor}/activity", v.serveUserReport)
	return requireBearer(opts.Auth, flushFirst(opts.Log, mux))
}

type view struct {
	opts ViewOptions
}

func (v *view) serveRead(w http.ResponseWriter, r *http.Request) {
	if !v.authorize(w, r, authorizeAuditor, TargetAuditEvent, r.PathValue("index")) {
		return
	}
	idx, err := strconv.ParseInt(r.PathValue("index"), 10, 64)
	notFound := phivault.Errorf(phivault.ENOTFOUND, "No such AuditEvent.")
	if err != nil || idx < 0 {
		fhir.WriteOutcome(w, notFound)
		return
	}
	e, err := v.entry(r.Context(), idx)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	rec := readEntry(r, v.opts.Now(), TargetAuditEvent, r.PathValue("index"))
	rec.Returned = []string{"AuditEvent/" + r.PathValue("index")}
	if err := recordRead(r, v.opts.Log, rec); err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	writeFHIRJSON(w, NewAuditEvent(idx, e))
}

// entry reads and decodes the entry at idx.
func (v *view) entry(ctx context.Context, idx int64) (*phivault.AuditEntry, error) {
	data, err := v.opts.Store.ReadAuditEntries(ctx, idx, idx+1)
	if err != nil {
		return nil, phivault.Errorf(phivault.EINTERNAL, "The audit trail could not be read.")
	}
	if len(data) != 1 || data[0] == nil {
		return nil, phivault.Errorf(phivault.ENOTFOUND, "No such AuditEvent.")
	}
	e, err := Decode(data[0])
	if err != nil {
		return nil, phivault.Errorf(phivault.EINTEGRITY, "Audit entry %d does not decode; run phivault audit verify.", idx)
	}
	return e, nil
}

// searchParams are the AuditEvent search parameters the view understands.
var searchParams = map[string]bool{
	"patient": true, "agent": true, "date": true, "action": true, "purpose": true,
	"_id": true, "_count": true, "_offset": true, "_format": true,
}

// parsePurpose reads the purpose search parameter's comma-separated tokens,
// each "CODE", "|CODE" or "http://terminology.hl7.org/CodeSystem/v3-ActReason|CODE".
func parsePurpose(value string) ([]string, error) {
	var out []string
	for _, tok := range strings.Split(value, ",") {
		system, code, hasSystem := strings.Cut(tok, "|")
		if !hasSystem {
			code, system = system, ""
		}
		if system != "" && system != systemActReason || code == "" || len(code) > 32 || strings.ContainsFunc(code, notIDRune) {
			return nil, phivault.Errorf(phivault.EINVALID, "purpose takes v3-ActReason codes, e.g. purpose=BTG or purpose=%s|ETREAT.", systemActReason)
		}
		out = append(out, code)
	}
	return out, nil
}

// parseQuery reads the filters shared by the search and the reports.
func parseQuery(vals url.Values) (Query, error) {
	var q Query
	if p := vals.Get("patient"); p != "" {
		q.Patient = strings.TrimPrefix(p, "Patient/")
	}
	q.Actor = vals.Get("agent")
	for _, d := range vals["date"] {
		if err := q.ParseDate(d); err != nil {
			return q, err
		}
	}
	for _, v := range vals["purpose"] {
		ps, err := parsePurpose(v)
		if err != nil {
			return q, err
		}
		q.Purposes = append(q.Purposes, ps...)
	}
	for _, codes := range vals["action"] {
		for _, c := range strings.Split(codes, ",") {
			as, err := ActionsForCode(c)
			if err != nil {
				return q, err
			}
			q.Actions = append(q.Actions, as...)
		}
	}
	return q, nil
}

func (v *view) serveSearch(w http.ResponseWriter, r *http.Request) {
	if !v.authorize(w, r, authorizeAuditor, TargetAuditEvent, "") {
		return
	}
	vals := r.URL.Query()
	var names []string
	for name := range vals {
		if !searchParams[name] {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "Unknown AuditEvent search parameter %q; use patient, agent, date, action, purpose, _id, _count or _offset.", name))
			return
		}
		if !strings.HasPrefix(name, "_") {
			names = append(names, name)
		}
	}
	q, err := parseQuery(vals)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	q.Limit, q.Offset = DefaultCount, 0
	if c := vals.Get("_count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "_count must be a number from 0 to %d.", MaxCount))
			return
		}
		q.Limit = min(n, MaxCount)
	}
	if o := vals.Get("_offset"); o != "" {
		n, err := strconv.Atoi(o)
		if err != nil || n < 0 {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "_offset must be a number of 0 or more."))
			return
		}
		q.Offset = n
	}
	ctx := r.Context()
	var (
		idxs  []int64
		total int64
	)
	if id := vals.Get("_id"); id != "" {
		// _id is the entry's index: at most one match, filtered like the rest.
		idx, err := strconv.ParseInt(id, 10, 64)
		if err == nil && idx >= 0 {
			if e, err := v.entry(ctx, idx); err == nil && q.matches(e) {
				total = 1
				if q.Offset == 0 && q.Limit > 0 {
					idxs = []int64{idx}
				}
			}
		}
	} else {
		if _, err := CatchUpIndex(ctx, v.opts.Store); err != nil {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINTERNAL, "The audit index could not be updated."))
			return
		}
		idxs, total, err = v.opts.Store.SearchAudit(ctx, q)
		if err != nil {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINTERNAL, "The audit index could not be searched."))
			return
		}
	}
	events, err := v.events(ctx, q, idxs)
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	rec := readEntry(r, v.opts.Now(), TargetAuditEvent, "")
	slices.Sort(names)
	rec.SearchParams = names
	for _, ev := range events {
		rec.Returned = append(rec.Returned, "AuditEvent/"+ev.ID)
	}
	if err := recordRead(r, v.opts.Log, rec); err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	base := v.baseURL(r)
	b := bundle{ResourceType: "Bundle", Type: "searchset", Total: &total}
	page := func(offset int) string {
		u := *r.URL
		qv := u.Query()
		qv.Set("_count", strconv.Itoa(q.Limit))
		qv.Set("_offset", strconv.Itoa(offset))
		return base + "/AuditEvent?" + qv.Encode()
	}
	b.Link = append(b.Link, link{"self", page(q.Offset)})
	if int64(q.Offset+q.Limit) < total && q.Limit > 0 {
		b.Link = append(b.Link, link{"next", page(q.Offset + q.Limit)})
	}
	if q.Offset > 0 && q.Limit > 0 {
		b.Link = append(b.Link, link{"previous", page(max(q.Offset-q.Limit, 0))})
	}
	for _, ev := range events {
		b.Entry = append(b.Entry, bundleEntry{FullURL: base + "/AuditEvent/" + ev.ID, Resource: ev, Search: &searchMode{"match"}})
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	writeFHIRJSON(w, b)
}

// events reads the entries at idxs and returns their AuditEvents, skipping
// any that do not meet q after all (the index is not covered by the tree).
func (v *view) events(ctx context.Context, q Query, idxs []int64) ([]*AuditEvent, error) {
	out := make([]*AuditEvent, 0, len(idxs))
	for _, idx := range idxs {
		e, err := v.entry(ctx, idx)
		if err != nil {
			return nil, err
		}
		if q.matches(e) {
			out = append(out, NewAuditEvent(idx, e))
		}
	}
	return out, nil
}

// Target types of the entries that record reads of the trail and its
// reports. None is a look at a patient's record, though each names the
// patients it concerns (so that their access reports show who looked).
const (
	TargetAuditEvent     = "AuditEvent"     // the trail's entries: a search, a read, an export or a stream
	TargetPatientLookup  = "PatientLookup"  // a privacy officer's lookup of patients by name or identifier
	TargetAccessReport   = "AccessReport"   // a patient's accounting of disclosures
	TargetActivityReport = "ActivityReport" // a user's activity report
)

var errPatientNotFound = phivault.Errorf(phivault.ENOTFOUND, "No such patient.")

// authorizePatientReport decides who may read patient's access report: the
// patient themself, a privacy officer, or an operator. A patient asking for
// another patient's report is told there is no such patient.
func authorizePatientReport(ctx context.Context, patient string) error {
	p := phivault.PrincipalFromContext(ctx)
	switch {
	case p == nil:
		return errNotAuditor
	case p.Kind == phivault.PrincipalPatient:
		if p.PatientID == "" || p.PatientID != patient {
			return errPatientNotFound
		}
	case isOperator(p):
		return nil
	case !p.HasRole(RolePrivacyOfficer):
		return phivault.Errorf(phivault.EFORBIDDEN, "A patient's access report is for the patient and privacy officers.")
	}
	if !scopesAllow(p) {
		return errNoAuditScope
	}
	return nil
}

// authorize runs check on r; if it refuses, the refusal is recorded (as an
// export of targetType) and answered, and authorize returns false.
func (v *view) authorize(w http.ResponseWriter, r *http.Request, check func(context.Context) error, targetType, targetID string) bool {
	err := check(r.Context())
	if err == nil {
		return true
	}
	e := readEntry(r, v.opts.Now(), targetType, targetID)
	if targetType == TargetAccessReport {
		e.Compartments = []string{targetID}
	}
	recordDenied(r, v.opts.Log, e, err)
	fhir.WriteOutcome(w, err)
	return false
}

func (v *view) servePatientReport(w http.ResponseWriter, r *http.Request) {
	patient := r.PathValue("id")
	check := func(ctx context.Context) error { return authorizePatientReport(ctx, patient) }
	if !v.authorize(w, r, check, TargetAccessReport, patient) {
		return
	}
	rec := readEntry(r, v.opts.Now(), TargetAccessReport, patient)
	rec.Compartments = []string{patient}
	v.serveReport(w, r, Query{Patient: patient}, "patient-"+patient, rec)
}

func (v *view) serveUserReport(w http.ResponseWriter, r *http.Request) {
	actor := r.PathValue("actor")
	if !v.authorize(w, r, authorizeAuditor, TargetActivityReport, actor) {
		return
	}
	v.serveReport(w, r, Query{Actor: actor}, "user-"+actor, readEntry(r, v.opts.Now(), TargetActivityReport, actor))
}

// serveReport answers a report of the entries that match base and the
// request's filters, after recording rec.
func (v *view) serveReport(w http.ResponseWriter, r *http.Request, base Query, name string, rec *phivault.AuditEntry) {
	vals := r.URL.Query()
	for n := range vals {
		if n != "format" && n != "date" && n != "action" && n != "purpose" {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "Unknown report parameter %q; use format, date, action or purpose.", n))
			return
		}
	}
	q, err := parseQuery(url.Values{"date": vals["date"], "action": vals["action"], "purpose": vals["purpose"]})
	if err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	q.Patient, q.Actor = base.Patient, base.Actor
	format := vals.Get("format")
	if format != "" && format != "json" && format != "csv" {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "The format must be json or csv."))
		return
	}
	ctx := r.Context()
	if _, err := CatchUpIndex(ctx, v.opts.Store); err != nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EINTERNAL, "The audit index could not be updated."))
		return
	}
	rep := &Report{Store: v.opts.Store, Query: q}
	// Check that the report can be read before recording and answering, so
	// a broken store answers with an error rather than half a report.
	if _, _, err := v.opts.Store.SearchAudit(ctx, Query{Patient: q.Patient, Actor: q.Actor, Actions: q.Actions, Purposes: q.Purposes, Since: q.Since, Before: q.Before}); err != nil {
		fhir.WriteOutcome(w, phivault.Errorf(phivault.EINTERNAL, "The audit index could not be searched."))
		return
	}
	rec.SearchParams = paramNames(r)
	if err := recordRead(r, v.opts.Log, rec); err != nil {
		fhir.WriteOutcome(w, err)
		return
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="access-report-`+SafeFileName(name)+`.csv"`)
		rep.WriteCSV(ctx, w) // an error midway leaves a short file; the rows sent are right
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	rep.WriteBundle(ctx, w, v.baseURL(r))
}

func (v *view) baseURL(r *http.Request) string {
	if v.opts.BaseURL != "" {
		return strings.TrimSuffix(v.opts.BaseURL, "/")
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + "/fhir"
}

// SafeFileName keeps s to letters, digits, '-' and '.' (others become
// '_'), for a file name in a Content-Disposition header: the reports' and
// the console's downloads.
func SafeFileName(s string) string {
	return strings.Map(func(c rune) rune {
		if c == '-' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			return c
		}
		return '_'
	}, s)
}

type bundle struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Total        *int64        `json:"total,omitempty"`
	Link         []link        `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type link struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string      `json:"fullUrl"`
	Resource *AuditEvent `json:"resource"`
	Search   *searchMode `json:"search,omitempty"`
}

type searchMode struct {
	Mode string `json:"mode"`
}

// writeFHIRJSON writes v as JSON without HTML escaping, so links keep their
// '&' as the other FHIR responses do.
func writeFHIRJSON(w http.ResponseWriter, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
