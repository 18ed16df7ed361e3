package incident

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/fhir"
)

// Alerts looks alerts up by id; detect.Store is one.
type Alerts interface {
	Alert(ctx context.Context, id string) (*detect.Alert, error)
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Service *Service
	API     *detect.API // the security API's guard and audit recording
	Alerts  Alerts      // for incidents opened from alerts; nil refuses those
	// Responder carries out approved actions and undoes done ones; nil
	// refuses those routes.
	Responder *Responder
	// Trail and Residences serve the breach report; nil refuses it.
	Trail      detect.Trail
	Residences Residences
	// Addressees, with Trail, serve the breach notices; nil refuses them.
	Addressees Addressees
	// Evidence serves the evidence archive; nil refuses it.
	Evidence Evidence
}

// MaxPage bounds a page of GET /security/incidents.
const MaxPage = 500

// maxBody bounds a request body.
const maxBody = 64 << 10

// NewHandler returns the incidents API, for absolute paths under
// /security/incidents, for privacy officers and security admins only
// (detect.API.Guard). Every request is an audit entry before its answer:
// reads as reads, changes as the Service's own entry.
//
//	GET   /security/incidents        list (open, phase, owner, alert, user, patient, limit)
//	POST  /security/incidents        open one
//	GET   /security/incidents/{id}   one, with its clocks and timeline
//	PATCH /security/incidents/{id}   change one (If-Match: its version)
//	POST  /security/incidents/{id}/actions  add an action by hand (If-Match; {"kind", "target", "for", "channels", "twoPerson"})
//	POST  /security/incidents/{id}/actions/{action}/approve   (If-Match)
//	POST  /security/incidents/{id}/actions/{action}/reject    (If-Match; {"reason"})
//	POST  /security/incidents/{id}/actions/{action}/undo      (If-Match)
//	GET   /security/incidents/{id}/breach  the breach-impact report (privacy officers)
//	POST  /security/incidents/{id}/notices the breach notices, as a file (privacy officers)
//	GET   /security/incidents/{id}/evidence  the signed evidence archive
func NewHandler(opts HandlerOptions) http.Handler {
	h := &handler{opts: opts}
	mux := http.NewServeMux()
	g := opts.API.Guard
	mux.HandleFunc("GET /security/incidents", g(TargetType, h.list))
	mux.HandleFunc("POST /security/incidents", g(TargetType, h.open))
	mux.HandleFunc("GET /security/incidents/{id}", g(TargetType, h.get))
	mux.HandleFunc("PATCH /security/incidents/{id}", g(TargetType, h.change))
	mux.HandleFunc("POST /security/incidents/{id}/actions", g(TargetType, h.propose))
	mux.HandleFunc("POST /security/incidents/{id}/actions/{action}/{op}", g(TargetType, h.actionOp))
	mux.HandleFunc("GET /security/incidents/{id}/breach", g(TargetType, h.breachReport))
	mux.HandleFunc("POST /security/incidents/{id}/notices", g(TargetType, h.notices))
	mux.HandleFunc("GET /security/incidents/{id}/evidence", g(TargetType, h.evidenceArchive))
	return mux
}

type handler struct {
	opts HandlerOptions
}

var listParams = []string{"open", "phase", "owner", "alert", "user", "patient", "limit"}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
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
		Incidents []View `json:"incidents"`
	}{Incidents: []View{}}
	for _, in := range list {
		e.Returned = append(e.Returned, TargetType+"/"+in.ID)
		e.Compartments = union(e.Compartments, vaultPatients(in.Scope.Patients))
		out.Incidents = append(out.Incidents, h.view(in))
	}
	if !a.Record(w, r, e) {
		return
	}
	detect.WriteJSON(w, http.StatusOK, out)
}

func parseFilter(r *http.Request) (Filter, error) {
	q := r.URL.Query()
	f := Filter{Phase: q.Get("phase"), Owner: q.Get("owner"), Alert: q.Get("alert"), User: q.Get("user"), Patient: q.Get("patient")}
	if v := q.Get("open"); v != "" {
		open, err := strconv.ParseBool(v)
		if err != nil {
			return f, phivault.Errorf(phivault.EINVALID, "open is true or false.")
		}
		f.Open = open
	}
	if f.Phase != "" && phaseRank(f.Phase) < 0 {
		return f, phivault.Errorf(phivault.EINVALID, "phase must be one of %s.", strings.Join(Phases, ", "))
	}
	if err := CheckIDs("filter", []string{f.Owner, f.Alert, f.User, f.Patient}, 4); err != nil {
		return f, err
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

// openRequest is the body of POST /security/incidents.
type openRequest struct {
	Title      string    `json:"title"`
	Severity   string    `json:"severity"`
	Owner      string    `json:"owner"`
	Alerts     []string  `json:"alerts"`
	Scope      Scope     `json:"scope"`
	Discovered time.Time `json:"discovered"`
	Note       string    `json:"note"`
}

func (h *handler) open(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	var req openRequest
	if err := decode(r, &req); err != nil {
		a.Refuse(w, r, a.Entry(r, phivault.ActionIncident, TargetType, ""), err)
		return
	}
	d := Draft{Title: req.Title, Owner: req.Owner, Source: SourceManual, Scope: req.Scope, Discovered: req.Discovered, Note: req.Note}
	if req.Severity != "" {
		var ok bool
		if d.Severity, ok = detect.ParseSeverity(req.Severity); !ok {
			a.Refuse(w, r, a.Entry(r, phivault.ActionIncident, TargetType, ""), phivault.Errorf(phivault.EINVALID, "The severity must be low, medium, high or critical."))
			return
		}
	}
	if len(req.Alerts) > 0 {
		if err := h.fromAlerts(r.Context(), &d, req.Alerts); err != nil {
			a.Refuse(w, r, a.Entry(r, phivault.ActionIncident, TargetType, ""), err)
			return
		}
	}
	in, err := h.opts.Service.Open(r.Context(), d)
	if err != nil {
		h.refuseChange(w, r, "", err)
		return
	}
	h.answer(w, http.StatusCreated, in, nil)
}

// fromAlerts fills d from the alerts ids: the source, the severity if
// not given (the highest), the scope (their users, patients and time
// span) and the discovery date (the earliest detection).
func (h *handler) fromAlerts(ctx context.Context, d *Draft, ids []string) error {
	if h.opts.Alerts == nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The detectors are off: incidents cannot be opened from alerts here.")
	}
	if err := CheckIDs("alerts", ids, MaxAlerts); err != nil {
		return err
	}
	d.Source = SourceAlert
	d.Alerts = ids
	var sev detect.Severity
	for _, id := range ids {
		al, err := h.opts.Alerts.Alert(ctx, id)
		if errors.Is(err, phivault.ErrNotFound) || phivault.ErrorCode(err) == phivault.ENOTFOUND {
			return phivault.Errorf(phivault.EINVALID, "An alert named in alerts does not exist.")
		}
		if err != nil {
			return err
		}
		sev = max(sev, al.Severity)
		d.Scope.widen(Scope{Users: []string{al.User}, Patients: al.Patients, From: al.First, To: al.Last})
		if d.Discovered.IsZero() || al.Detected.Before(d.Discovered) {
			d.Discovered = al.Detected
		}
	}
	if d.Severity == 0 {
		d.Severity = sev
	}
	return nil
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	id := r.PathValue("id")
	e := a.Entry(r, phivault.ActionRead, TargetType, safeID(id))
	in, err := h.opts.Service.Get(r.Context(), id)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	tl, err := h.opts.Service.Timeline(r.Context(), id)
	if err != nil {
		a.Refuse(w, r, e, err)
		return
	}
	e.Returned = []string{TargetType + "/" + in.ID}
	e.Compartments = vaultPatients(in.Scope.Patients)
	if !a.Record(w, r, e) {
		return
	}
	h.answer(w, http.StatusOK, in, tl)
}

// changeRequest is the body of PATCH /security/incidents/{id}.
type changeRequest struct {
	Phase      string    `json:"phase"`
	Owner      string    `json:"owner"`
	Severity   string    `json:"severity"`
	Title      string    `json:"title"`
	Alerts     []string  `json:"alerts"`
	Scope      Scope     `json:"scope"`
	Discovered time.Time `json:"discovered"`
	Reason     string    `json:"reason"`
	Note       string    `json:"note"`
}

func (h *handler) change(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	id := r.PathValue("id")
	refuse := func(err error) { a.Refuse(w, r, a.Entry(r, phivault.ActionIncident, TargetType, safeID(id)), err) }
	version, ok := parseIfMatch(r.Header.Get("If-Match"))
	if !ok {
		refuse(phivault.Errorf(phivault.EINVALID, `A change needs If-Match with the incident's version, as its ETag gave it (W/"3").`))
		return
	}
	var req changeRequest
	if err := decode(r, &req); err != nil {
		refuse(err)
		return
	}
	c := Change{Version: version, Phase: req.Phase, Owner: req.Owner, Title: req.Title, Alerts: req.Alerts,
		Scope: req.Scope, Discovered: req.Discovered, Reason: req.Reason, Note: req.Note}
	if req.Severity != "" {
		if c.Severity, ok = detect.ParseSeverity(req.Severity); !ok {
			refuse(phivault.Errorf(phivault.EINVALID, "The severity must be low, medium, high or critical."))
			return
		}
	}
	in, err := h.opts.Service.Change(r.Context(), id, c)
	if err != nil {
		h.refuseChange(w, r, id, err)
		return
	}
	h.answer(w, http.StatusOK, in, nil)
}

// propose adds an action by hand; one that needs no second person is
// carried out before the answer, which shows its outcome.
func (h *handler) propose(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	id := r.PathValue("id")
	refuse := func(err error) { a.Refuse(w, r, a.Entry(r, phivault.ActionIncident, TargetType, safeID(id)), err) }
	if h.opts.Responder == nil {
		refuse(phivault.Errorf(phivault.EUNAVAILABLE, "This server carries out no incident actions."))
		return
	}
	version, ok := parseIfMatch(r.Header.Get("If-Match"))
	if !ok {
		refuse(phivault.Errorf(phivault.EINVALID, `An action needs If-Match with the incident's version, as its ETag gave it (W/"3").`))
		return
	}
	var req struct {
		Kind      string   `json:"kind"`
		Target    Target   `json:"target"`
		For       string   `json:"for"`
		Channels  []string `json:"channels"`
		TwoPerson bool     `json:"twoPerson"`
	}
	if err := decode(r, &req); err != nil {
		refuse(err)
		return
	}
	p := Proposal{Kind: req.Kind, Target: req.Target, Channels: req.Channels, TwoPerson: req.TwoPerson}
	if req.For != "" {
		var err error
		if p.For, err = time.ParseDuration(req.For); err != nil {
			refuse(phivault.Errorf(phivault.EINVALID, `The duration is not one, e.g. "72h".`))
			return
		}
	}
	in, act, err := h.opts.Service.Propose(r.Context(), id, version, p)
	if err == nil && act != nil {
		if done := h.opts.Responder.Carry(r.Context(), id, *act); done != nil {
			in = done
		}
	}
	if err != nil {
		h.refuseChange(w, r, id, err)
		return
	}
	h.answer(w, http.StatusOK, in, nil)
}

// actionOp approves, rejects or undoes an action. An approved action is
// carried out, and an undo made, before the answer, which shows the
// outcome.
func (h *handler) actionOp(w http.ResponseWriter, r *http.Request) {
	a := h.opts.API
	id, actionID, op := r.PathValue("id"), r.PathValue("action"), r.PathValue("op")
	refuse := func(err error) { a.Refuse(w, r, a.Entry(r, phivault.ActionIncident, TargetType, safeID(id)), err) }
	if op != "approve" && op != "reject" && op != "undo" {
		refuse(phivault.Errorf(phivault.ENOTFOUND, "No such operation on an action; use approve, reject or undo."))
		return
	}
	if h.opts.Responder == nil {
		refuse(phivault.Errorf(phivault.EUNAVAILABLE, "This server carries out no incident actions."))
		return
	}
	version, ok := parseIfMatch(r.Header.Get("If-Match"))
	if !ok {
		refuse(phivault.Errorf(phivault.EINVALID, `An action needs If-Match with the incident's version, as its ETag gave it (W/"3").`))
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			refuse(err)
			return
		}
	}
	s := h.opts.Service
	var (
		in  *Incident
		err error
	)
	switch op {
	case "approve", "reject":
		var act *Action
		in, act, err = s.Decide(r.Context(), id, actionID, version, op == "approve", req.Reason)
		if err == nil && act != nil {
			if done := h.opts.Responder.Carry(r.Context(), id, *act); done != nil {
				in = done
			}
		}
	case "undo":
		var act *Action
		if act, err = s.Undoing(r.Context(), id, actionID, version); err == nil {
			in, err = h.opts.Responder.Revert(r.Context(), id, *act)
		}
	}
	if err != nil {
		h.refuseChange(w, r, id, err)
		return
	}
	h.answer(w, http.StatusOK, in, nil)
}

// refuseChange answers a change the Service refused. A refusal before its
// audit entry (bad input, a stale version) is recorded here; a failure
// after it was recorded by the Service.
func (h *handler) refuseChange(w http.ResponseWriter, r *http.Request, id string, err error) {
	a := h.opts.API
	switch phivault.ErrorCode(err) {
	case phivault.EINVALID, phivault.EPRECONDITION, phivault.ENOTFOUND, phivault.EFORBIDDEN:
		a.Refuse(w, r, a.Entry(r, phivault.ActionIncident, TargetType, safeID(id)), err)
		return
	}
	var pe *phivault.Error
	if !errors.As(err, &pe) {
		err = phivault.Errorf(phivault.EINTERNAL, "Internal error.")
	}
	fhir.WriteOutcome(w, err)
}

func (h *handler) answer(w http.ResponseWriter, status int, in *Incident, tl []*Event) {
	v := h.view(in)
	for _, ev := range tl {
		v.Timeline = append(v.Timeline, h.eventView(in.ID, ev))
	}
	w.Header().Set("ETag", etag(in.Version))
	detect.WriteJSON(w, status, v)
}

// View is an incident as the API shows it: the title opened, the
// severity named, the clocks as of now.
type View struct {
	ID              string      `json:"id"`
	Title           string      `json:"title"`
	TitleUnreadable bool        `json:"title_unreadable,omitempty"`
	Severity        string      `json:"severity"`
	Phase           string      `json:"phase"`
	Owner           string      `json:"owner,omitempty"`
	Source          string      `json:"source"`
	Alerts          []string    `json:"alerts,omitempty"`
	Scope           Scope       `json:"scope"`
	Discovered      time.Time   `json:"discovered"`
	Opened          time.Time   `json:"opened"`
	Updated         time.Time   `json:"updated"`
	Acknowledged    time.Time   `json:"acknowledged,omitzero"`
	Contained       time.Time   `json:"contained,omitzero"`
	Closed          time.Time   `json:"closed,omitzero"`
	Version         int64       `json:"version"`
	Actions         []Action    `json:"actions,omitempty"`
	Clocks          []Clock     `json:"clocks"`
	Overdue         bool        `json:"overdue"`
	Timeline        []EventView `json:"timeline,omitempty"`
}

// EventView is a timeline event as the API shows it, its note opened.
type EventView struct {
	At             time.Time `json:"at"`
	Actor          string    `json:"actor"`
	Kind           string    `json:"kind"`
	Detail         string    `json:"detail,omitempty"`
	Note           string    `json:"note,omitempty"`
	NoteUnreadable bool      `json:"note_unreadable,omitempty"`
	Request        string    `json:"request"`
}

func (h *handler) view(in *Incident) View {
	s := h.opts.Service
	now := s.Now()
	v := View{
		ID: in.ID, Severity: in.Severity.String(), Phase: in.Phase, Owner: in.Owner, Source: in.Source,
		Alerts: in.Alerts, Scope: in.Scope, Discovered: in.Discovered, Opened: in.Opened, Updated: in.Updated,
		Acknowledged: in.Acknowledged, Contained: in.Contained, Closed: in.Closed, Version: in.Version, Actions: in.Actions,
		Clocks: in.Clocks(now, s.SLA()), Overdue: in.Overdue(now, s.SLA()),
	}
	if title, err := s.OpenText(in.ID, in.Title); err != nil {
		v.TitleUnreadable = true
	} else {
		v.Title = string(title)
	}
	return v
}

func (h *handler) eventView(id string, ev *Event) EventView {
	v := EventView{At: ev.At, Actor: ev.Actor, Kind: ev.Kind, Detail: ev.Detail, Request: ev.Request}
	if len(ev.Note) > 0 {
		if note, err := h.opts.Service.OpenText(id, ev.Note); err != nil {
			v.NoteUnreadable = true
		} else {
			v.Note = string(note)
		}
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

// decode reads r's JSON body into v: one object, known fields only.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return phivault.Errorf(phivault.EUNSUPPORTED, "Send the body as application/json.")
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return phivault.Errorf(phivault.EINVALID, "The field %q has the wrong type.", te.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return phivault.Errorf(phivault.EINVALID, "The body has a field this API does not know.")
		}
		return phivault.Errorf(phivault.EINVALID, "The body is not a JSON object of at most %d bytes.", maxBody)
	}
	if dec.More() {
		return phivault.Errorf(phivault.EINVALID, "The body holds more than one JSON value.")
	}
	return nil
}

// safeID returns id if it looks like an incident id, else "" (an entry
// never carries the caller's words).
func safeID(id string) string {
	if !strings.HasPrefix(id, "inc-") || len(id) != 36 {
		return ""
	}
	for _, c := range id[4:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return id
}
