package report

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/fhir"
)

// ReceiptHeader carries a report's receipt on GET /security/reports/{id}:
// a header, not a query parameter, so that it stays out of access logs
// and browser histories.
const ReceiptHeader = "Report-Receipt"

// MaxBody bounds a request body; more is refused with 413.
const MaxBody = 32 << 10

// MaxPage bounds a page of GET /security/reports.
const MaxPage = 500

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Service *Service
	API     *detect.API // authentication, the officers' guard and audit recording
	// Limiter bounds each account's submissions; nil means a Limiter
	// with its defaults (DefaultRate per DefaultRateWindow).
	Limiter *Limiter
}

// NewHandler returns the reports API, for absolute paths under
// /security/reports. Every request is an audit entry before its answer.
//
//	POST  /security/reports                 submit (any staff member)
//	GET   /security/reports?mine            the caller's own named reports (any staff member)
//	GET   /security/reports                 list (officers; state, kind, limit)
//	GET   /security/reports/{id}            one: officers, or its reporter with Report-Receipt
//	PATCH /security/reports/{id}            change its state, add a note (officers; If-Match)
//	POST  /security/reports/{id}/incident   take it into an incident (officers; If-Match)
//	POST  /security/reports/{id}/identity   open an anonymous reporter: two officers
//
// Officers are privacy officers and security admins (detect.API.Guard).
func NewHandler(opts HandlerOptions) http.Handler {
	if opts.Limiter == nil {
		opts.Limiter = &Limiter{}
	}
	h := &handler{opts: opts}
	g := h.officers
	mux := http.NewServeMux()
	mux.HandleFunc("POST /security/reports", h.submit)
	mux.HandleFunc("GET /security/reports", h.list)
	mux.HandleFunc("GET /security/reports/{id}", h.get)
	mux.HandleFunc("PATCH /security/reports/{id}", g(TargetType, h.change))
	mux.HandleFunc("POST /security/reports/{id}/incident", g(TargetType, h.triage))
	mux.HandleFunc("POST /security/reports/{id}/identity", g(TargetType, h.identity))
	return mux
}

type handler struct {
	opts HandlerOptions
}

var errUnauthenticated = phivault.Errorf(phivault.EUNAUTHORIZED, "A bearer token is required.")

// staff authenticates r and lets only staff members signed in with their
// own account through; a refusal is recorded (naming the caller, who is
// no reporter) and answered.
func (h *handler) staff(w http.ResponseWriter, r *http.Request, action string) (*http.Request, bool) {
	a := h.opts.API
	ctx, err := api.Authenticate(w, r, a.Auth, api.Realm)
	if err != nil {
		if err == api.ErrNoToken {
			err = errUnauthenticated
		}
		fhir.WriteOutcome(w, err)
		return nil, false
	}
	r = r.WithContext(ctx)
	if !Staff(phivault.PrincipalFromContext(ctx)) {
		a.Refuse(w, r, a.Entry(r, action, TargetType, ""), errNotStaff)
		return nil, false
	}
	return r, true
}

var errNotOfficer403 = phivault.Errorf(phivault.EFORBIDDEN, "Reports are read and triaged by privacy officers and security admins; follow your own with its receipt.")

// officers lets only officers through to next (detect.API.Guard). A staff
// member who is not one is refused as AnonymousActor: a reporter who
// tries an officer's route (her report without its receipt, say) would
// otherwise be named next to it.
func (h *handler) officers(targetType string, next http.HandlerFunc) http.HandlerFunc {
	guarded := h.opts.API.Guard(targetType, next)
	return func(w http.ResponseWriter, r *http.Request) {
		a := h.opts.API
		ctx, err := api.Authenticate(w, r, a.Auth, api.Realm)
		if err != nil {
			if err == api.ErrNoToken {
				err = errUnauthenticated
			}
			fhir.WriteOutcome(w, err)
			return
		}
		if p := phivault.PrincipalFromContext(ctx); Staff(p) && !p.Auditor() {
			r = r.WithContext(ctx)
			a.Refuse(w, r, AnonymousEntry(ctx, h.opts.Service.Now(), phivault.ActionExport, ""), errNotOfficer403)
			return
		}
		guarded(w, r)
	}
}

// Ack is the answer to a submission: the receipt is shown here once.
type Ack struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	State     string    `json:"state"`
	Anonymous bool      `json:"anonymous"`
	Submitted time.Time `json:"submitted"`
	// Receipt follows the report (GET /security/reports/{id} with the
	// Report-Receipt header); it is not kept, only its hash.
	Receipt string `json:"receipt"`
}

// submitRequest is the body of POST /security/reports.
type submitRequest struct {
	Kind        string    `json:"kind"`
	Description string    `json:"description"`
	Occurred    time.Time `json:"occurred"`
	Patient     string    `json:"patient"`
	User        string    `json:"user"`
	Anonymous   bool      `json:"anonymous"`
}

// submit takes a report. Refusals after the staff check are recorded as
// AnonymousActor: the body that says whether the reporter asked for
// anonymity may be what was refused, and an entry naming the account
// next to an anonymous report would tell.
func (h *handler) submit(w http.ResponseWriter, r *http.Request) {
	r, ok := h.staff(w, r, phivault.ActionIncident)
	if !ok {
		return
	}
	a, s := h.opts.API, h.opts.Service
	refuse := func(err error) {
		a.Refuse(w, r, AnonymousEntry(r.Context(), s.Now(), phivault.ActionIncident, ""), err)
	}
	var req submitRequest
	if err := decode(w, r, &req); err != nil {
		refuse(err)
		return
	}
	p := phivault.PrincipalFromContext(r.Context())
	if ok, wait := h.opts.Limiter.Allow(p.ID); !ok {
		e := AnonymousEntry(r.Context(), s.Now(), phivault.ActionIncident, "")
		e.Outcome = "throttled"
		if !a.Record(w, r, e) {
			return
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeOutcome(w, http.StatusTooManyRequests, "throttled", "Too many reports from this account for now; try again later, or tell a privacy officer directly.")
		return
	}
	rep, receipt, err := s.Submit(r.Context(), Draft(req))
	if err != nil {
		if recorded(err) {
			writeError(w, err)
			return
		}
		refuse(err)
		return
	}
	w.Header().Set("ETag", etag(rep.Version))
	detect.WriteJSON(w, http.StatusCreated, Ack{ID: rep.ID, Kind: rep.Kind, State: rep.State, Anonymous: rep.Anonymous, Submitted: rep.Submitted, Receipt: receipt})
}

// recorded reports whether err came after the Service recorded the
// change (the trail or the store failed), so it needs no entry of its
// own.
func recorded(err error) bool {
	switch phivault.ErrorCode(err) {
	case phivault.EINVALID, phivault.EPRECONDITION, phivault.ENOTFOUND, phivault.EFORBIDDEN, phivault.ECONFLICT:
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, err error) {
	var pe *phivault.Error
	if !errors.As(err, &pe) {
		err = phivault.Errorf(phivault.EINTERNAL, "Internal error.")
	}
	fhir.WriteOutcome(w, err)
}

func writeOutcome(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(fhir.NewOutcome("error", code, msg))
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	w.Write(b)
}

var listParams = []string{"state", "kind", "limit", "mine"}

// list answers the officers' list, or with ?mine a staff member's own
// named reports (anonymous ones are nobody's: they are followed by
// receipt only).
func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("mine") {
		h.mine(w, r)
		return
	}
	h.officers(TargetType, h.officerList)(w, r)
}

func (h *handler) officerList(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	e := a.Entry(r, phivault.ActionSearch, TargetType, "", listParams...)
	f, err := parseFilter(r)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	list, err := h.opts.Service.List(r.Context(), f)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	out := struct {
		Reports []View `json:"reports"`
	}{Reports: []View{}}
	for _, rep := range list {
		e.Returned = append(e.Returned, TargetType+"/"+rep.ID)
		if vaultPatient(rep.Patient) && !slices.Contains(e.Compartments, rep.Patient) {
			e.Compartments = append(e.Compartments, rep.Patient)
		}
		out.Reports = append(out.Reports, h.view(rep, false))
	}
	if !a.Record(w, r, e) {
		return
	}
	detect.WriteJSON(w, http.StatusOK, out)
}

// mine answers a staff member's own named reports, as ReceiptViews. Like
// every request of the reporter's side, its entry names no account
// (AnonymousActor) and no report: a reporter listing her reports just
// after an anonymous one came in would tell.
func (h *handler) mine(w http.ResponseWriter, r *http.Request) {
	r, ok := h.staff(w, r, phivault.ActionSearch)
	if !ok {
		return
	}
	a, s := h.opts.API, h.opts.Service
	e := AnonymousEntry(r.Context(), s.Now(), phivault.ActionSearch, "")
	e.SearchParams = []string{"mine"}
	f, err := parseFilter(r)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	f.Reporter = phivault.PrincipalFromContext(r.Context()).ID
	list, err := s.List(r.Context(), f)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	out := struct {
		Reports []ReceiptView `json:"reports"`
	}{Reports: []ReceiptView{}}
	for _, rep := range list {
		out.Reports = append(out.Reports, receiptView(rep))
	}
	if !a.Record(w, r, e) {
		return
	}
	detect.WriteJSON(w, http.StatusOK, out)
}

func parseFilter(r *http.Request) (Filter, error) {
	q := r.URL.Query()
	f := Filter{State: q.Get("state"), Kind: q.Get("kind")}
	if f.State != "" && !slices.Contains(States, f.State) {
		return f, phivault.Errorf(phivault.EINVALID, "state must be one of %s.", strings.Join(States, ", "))
	}
	if f.Kind != "" && !slices.Contains(Kinds, f.Kind) {
		return f, phivault.Errorf(phivault.EINVALID, "kind must be one of %s.", strings.Join(Kinds, ", "))
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPage {
			return f, phivault.Errorf(phivault.EINVALID, "limit must be a whole number from 1 to %d.", MaxPage)
		}
		f.Limit = n
	}
	return f, nil
}

// get answers one report: to its reporter, with the receipt, as a
// ReceiptView (recorded as AnonymousActor, whoever follows it); else to
// an officer, description opened.
func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	receipt := r.Header.Get(ReceiptHeader)
	if receipt == "" {
		h.officers(TargetType, h.officerGet)(w, r)
		return
	}
	r, ok := h.staff(w, r, phivault.ActionRead)
	if !ok {
		return
	}
	a, s := h.opts.API, h.opts.Service
	id := r.PathValue("id")
	e := AnonymousEntry(r.Context(), s.Now(), phivault.ActionRead, safeID(id))
	rep, err := s.Follow(r.Context(), id, receipt)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	e.Returned = []string{TargetType + "/" + rep.ID}
	if !a.Record(w, r, e) {
		return
	}
	detect.WriteJSON(w, http.StatusOK, receiptView(rep))
}

func (h *handler) officerGet(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	id := r.PathValue("id")
	e := a.Entry(r, phivault.ActionRead, TargetType, safeID(id))
	rep, err := h.opts.Service.Get(r.Context(), id)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	e.Returned = []string{TargetType + "/" + rep.ID}
	if vaultPatient(rep.Patient) {
		e.Compartments = []string{rep.Patient}
	}
	if !a.Record(w, r, e) {
		return
	}
	h.answer(w, http.StatusOK, rep)
}

// changeRequest is the body of PATCH /security/reports/{id}.
type changeRequest struct {
	State string `json:"state"`
	Note  string `json:"note"`
}

func (h *handler) change(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	version, ok := parseIfMatch(r.Header.Get("If-Match"))
	if !ok {
		h.refuse(w, r, id, phivault.Errorf(phivault.EINVALID, `A change needs If-Match with the report's version, as its ETag gave it (W/"3").`))
		return
	}
	var req changeRequest
	if err := decode(w, r, &req); err != nil {
		h.refuse(w, r, id, err)
		return
	}
	rep, err := h.opts.Service.Change(r.Context(), id, Change{Version: version, State: req.State, Note: req.Note})
	if err != nil {
		h.refuse(w, r, id, err)
		return
	}
	h.answer(w, http.StatusOK, rep)
}

// triageRequest is the body of POST /security/reports/{id}/incident.
type triageRequest struct {
	Incident string `json:"incident"` // an existing incident; "" opens one
	Severity string `json:"severity"` // of a new incident; default medium
}

// TriageAnswer is the answer to POST /security/reports/{id}/incident.
type TriageAnswer struct {
	Report   View   `json:"report"`
	Incident string `json:"incident"`
}

func (h *handler) triage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	version, ok := parseIfMatch(r.Header.Get("If-Match"))
	if !ok {
		h.refuse(w, r, id, phivault.Errorf(phivault.EINVALID, `Triage needs If-Match with the report's version, as its ETag gave it (W/"3").`))
		return
	}
	var req triageRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			h.refuse(w, r, id, err)
			return
		}
	}
	t := Triage{Version: version, Incident: req.Incident}
	if req.Severity != "" {
		if t.Severity, ok = detect.ParseSeverity(req.Severity); !ok {
			h.refuse(w, r, id, phivault.Errorf(phivault.EINVALID, "The severity must be low, medium, high or critical."))
			return
		}
	}
	rep, in, err := h.opts.Service.Triage(r.Context(), id, t)
	if err != nil {
		h.refuse(w, r, id, err)
		return
	}
	w.Header().Set("ETag", etag(rep.Version))
	detect.WriteJSON(w, http.StatusOK, TriageAnswer{Report: h.view(rep, true), Incident: in.ID})
}

// identityRequest is the body of POST /security/reports/{id}/identity:
// a reason asks, approve approves another officer's request, neither
// reads the identity already opened (by one of the two officers).
type identityRequest struct {
	Reason  string `json:"reason"`
	Approve bool   `json:"approve"`
}

// IdentityAnswer is the answer to POST /security/reports/{id}/identity.
type IdentityAnswer struct {
	Report string `json:"report"`
	// State is awaiting-approval after a request, opened once approved.
	State       string `json:"state"`
	RequestedBy string `json:"requested_by"`
	ApprovedBy  string `json:"approved_by,omitempty"`
	// Reporter is the reporter's account id, once opened.
	Reporter string `json:"reporter,omitempty"`
}

func (h *handler) identity(w http.ResponseWriter, r *http.Request) {
	a, s := h.opts.API, h.opts.Service
	id := r.PathValue("id")
	var req identityRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			h.refuse(w, r, id, err)
			return
		}
	}
	switch {
	case req.Approve && req.Reason != "":
		h.refuse(w, r, id, phivault.Errorf(phivault.EINVALID, "Ask (reason) or approve, not both."))
	case req.Approve:
		rep, reporter, err := s.ApproveIdentity(r.Context(), id)
		if err != nil {
			h.refuse(w, r, id, err)
			return
		}
		detect.WriteJSON(w, http.StatusOK, IdentityAnswer{Report: rep.ID, State: "opened", RequestedBy: rep.Identity.RequestedBy,
			ApprovedBy: rep.Identity.ApprovedBy, Reporter: reporter})
	case req.Reason != "":
		rep, err := s.RequestIdentity(r.Context(), id, req.Reason)
		if err != nil {
			h.refuse(w, r, id, err)
			return
		}
		detect.WriteJSON(w, http.StatusAccepted, IdentityAnswer{Report: rep.ID, State: "awaiting-approval", RequestedBy: rep.Identity.RequestedBy})
	default:
		e := a.Entry(r, phivault.ActionRead, TargetType, safeID(id))
		e.Decision = "report identity"
		rep, reporter, err := s.Identity(r.Context(), id)
		if err != nil {
			a.Refuse(w, r, e, err)
			return
		}
		e.Returned = []string{TargetType + "/" + rep.ID}
		if !a.Record(w, r, e) {
			return
		}
		detect.WriteJSON(w, http.StatusOK, IdentityAnswer{Report: rep.ID, State: "opened", RequestedBy: rep.Identity.RequestedBy,
			ApprovedBy: rep.Identity.ApprovedBy, Reporter: reporter})
	}
}

// refuse answers an officer's change the Service refused: a refusal
// before its audit entry (bad input, a stale version) is recorded here;
// a failure after it was recorded by the Service.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, id string, err error) {
	if recorded(err) {
		writeError(w, err)
		return
	}
	a := h.opts.API
	a.Refuse(w, r, a.Entry(r, phivault.ActionIncident, TargetType, safeID(id)), err)
}

func (h *handler) answer(w http.ResponseWriter, status int, rep *Report) {
	w.Header().Set("ETag", etag(rep.Version))
	detect.WriteJSON(w, status, h.view(rep, true))
}

// View is a report as officers see it: the reporter "anonymous" unless
// named; with its description and history opened when one report is
// read, without them in a list.
type View struct {
	ID                    string        `json:"id"`
	Kind                  string        `json:"kind"`
	Description           string        `json:"description,omitempty"`
	DescriptionUnreadable bool          `json:"description_unreadable,omitempty"`
	Occurred              time.Time     `json:"occurred,omitzero"`
	Patient               string        `json:"patient,omitempty"`
	User                  string        `json:"user,omitempty"`
	State                 string        `json:"state"`
	Incident              string        `json:"incident,omitempty"`
	Reporter              string        `json:"reporter"` // the account id, or "anonymous"
	Anonymous             bool          `json:"anonymous"`
	Identity              *IdentityView `json:"identity,omitempty"`
	Submitted             time.Time     `json:"submitted"`
	Updated               time.Time     `json:"updated"`
	Version               int64         `json:"version"`
	History               []EventView   `json:"history,omitempty"`
}

// IdentityView is the opening of an anonymous reporter, without the
// identity.
type IdentityView struct {
	RequestedBy string    `json:"requested_by"`
	Requested   time.Time `json:"requested"`
	Reason      string    `json:"reason,omitempty"`
	ApprovedBy  string    `json:"approved_by,omitempty"`
	Approved    time.Time `json:"approved,omitzero"`
}

// EventView is a history event, its note opened.
type EventView struct {
	At             time.Time `json:"at"`
	Actor          string    `json:"actor"`
	Kind           string    `json:"kind"`
	Detail         string    `json:"detail,omitempty"`
	Note           string    `json:"note,omitempty"`
	NoteUnreadable bool      `json:"note_unreadable,omitempty"`
	Request        string    `json:"request"`
}

func (h *handler) view(rep *Report, full bool) View {
	s := h.opts.Service
	v := View{
		ID: rep.ID, Kind: rep.Kind, Occurred: rep.Occurred, Patient: rep.Patient, User: rep.User, State: rep.State,
		Incident: rep.Incident, Reporter: rep.Reporter, Anonymous: rep.Anonymous, Submitted: rep.Submitted, Updated: rep.Updated, Version: rep.Version,
	}
	if rep.Anonymous {
		v.Reporter = "anonymous"
	}
	if o := rep.Identity; o != nil {
		v.Identity = &IdentityView{RequestedBy: o.RequestedBy, Requested: o.Requested, ApprovedBy: o.ApprovedBy, Approved: o.Approved}
		if full {
			if reason, err := s.OpenText(rep.ID, o.Reason); err == nil {
				v.Identity.Reason = string(reason)
			}
		}
	}
	if !full {
		return v
	}
	if desc, err := s.OpenText(rep.ID, rep.Description); err != nil {
		v.DescriptionUnreadable = true
	} else {
		v.Description = string(desc)
	}
	for _, ev := range rep.History {
		ew := EventView{At: ev.At, Actor: ev.Actor, Kind: ev.Kind, Detail: ev.Detail, Request: ev.Request}
		if len(ev.Note) > 0 {
			if note, err := s.OpenText(rep.ID, ev.Note); err != nil {
				ew.NoteUnreadable = true
			} else {
				ew.Note = string(note)
			}
		}
		v.History = append(v.History, ew)
	}
	return v
}

// ReceiptView is a report as its reporter follows it: where it stands,
// and whether their identity was asked for and opened. No description
// (a receipt that leaks shows nothing of what was reported), no
// incident id, no officer's name.
type ReceiptView struct {
	ID                string    `json:"id"`
	Kind              string    `json:"kind"`
	State             string    `json:"state"`
	Anonymous         bool      `json:"anonymous"`
	Submitted         time.Time `json:"submitted"`
	Updated           time.Time `json:"updated"`
	IdentityRequested time.Time `json:"identity_requested,omitzero"`
	IdentityOpened    time.Time `json:"identity_opened,omitzero"`
}

func receiptView(rep *Report) ReceiptView {
	v := ReceiptView{ID: rep.ID, Kind: rep.Kind, State: rep.State, Anonymous: rep.Anonymous, Submitted: rep.Submitted, Updated: rep.Updated}
	if o := rep.Identity; o != nil {
		v.IdentityRequested, v.IdentityOpened = o.Requested, o.Approved
	}
	return v
}

func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// parseIfMatch reads a version from If-Match: W/"3", "3" or 3.
func parseIfMatch(v string) (int64, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	v = strings.Trim(v, `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}

// decode reads r's JSON body into v: one object of at most MaxBody bytes
// (more is ETOOLARGE), known fields only.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return phivault.Errorf(phivault.EUNSUPPORTED, "Send the body as application/json.")
	}
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return phivault.Errorf(phivault.EINVALID, "The body holds more than one JSON value.")
		}
		// Read to the end: a body over the limit after the object is
		// over the limit all the same.
		if _, err = io.Copy(io.Discard, body); err == nil {
			return nil
		}
	}
	var te *json.UnmarshalTypeError
	var me *http.MaxBytesError
	switch {
	case errors.As(err, &me):
		return phivault.Errorf(phivault.ETOOLARGE, "The body is larger than %d bytes.", MaxBody)
	case errors.As(err, &te) && te.Field != "":
		return phivault.Errorf(phivault.EINVALID, "The field %q has the wrong type.", te.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return phivault.Errorf(phivault.EINVALID, "The body has a field this API does not know.")
	}
	return phivault.Errorf(phivault.EINVALID, "The body is not one JSON object.")
}

// safeID returns id if it looks like a report id, else "" (an entry
// never carries the caller's words).
func safeID(id string) string {
	if !strings.HasPrefix(id, "rep-") || len(id) != 36 {
		return ""
	}
	for _, c := range id[4:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return id
}
