package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Paging of GET /security/alerts.
const (
	DefaultAlertPage = 100  // alerts in a page when limit is not given
	MaxAlertPage     = 1000 // the largest limit accepted
)

// MaxTriageNote is the longest triage note, in characters (as long as a
// break-the-glass reason).
const MaxTriageNote = 2000

// maxTriageBody bounds the body of a triage request.
const maxTriageBody = 64 << 10

// alertRoutes registers the alerts API.
//
//	GET  /security/alerts?since=&rule=&user=&patient=&state=&min_score=&limit=&after=
//	GET  /security/alerts/counts?since=  (alerts_counts.go)
//	GET  /security/alerts/{id}
//	POST /security/alerts/{id}/triage  {"decision", "reason", "note"}
//
// Every answer, and every refusal after authentication, is an audit entry
// on target type TargetAlert whose Compartments are the patients of the
// alerts concerned, appended before anything leaves, so a patient's
// access report shows who looked at alerts about them. The counts name
// no alert and no patient, and their entries none either.
func (h *handler) alertRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /security/alerts", h.guard(TargetAlert, h.serveAlerts))
	mux.HandleFunc("GET /security/alerts/counts", h.guard(TargetAlert, h.serveAlertCounts))
	mux.HandleFunc("GET /security/alerts/{id}", h.guard(TargetAlert, h.serveAlert))
	mux.HandleFunc("POST /security/alerts/{id}/triage", h.guard(TargetAlert, h.serveTriage))
}

// AlertView is an alert on the wire: the API's answers, the webhook's
// payload, and what clients of the API read. It holds ids only, never
// PHI.
type AlertView struct {
	ID          string    `json:"id"`
	Rule        string    `json:"rule"`
	Severity    string    `json:"severity"`
	Score       int       `json:"score"`
	User        string    `json:"user"`
	Patients    []string  `json:"patients"`
	Sources     []string  `json:"sources,omitempty"`
	Clients     []string  `json:"clients,omitempty"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Detected    time.Time `json:"detected"`
	Explanation string    `json:"explanation"`
	Factors     []string  `json:"factors"`
	Evidence    []string  `json:"evidence"`
	Events      int64     `json:"events"`
	State       string    `json:"state"`
	Suppressed  bool      `json:"suppressed"`
	// Triages, in GET /security/alerts/{id} only: the decisions made.
	Triages []TriageView `json:"triages,omitempty"`
}

// TriageView is a triage decision on the wire.
type TriageView struct {
	Decision string    `json:"decision"`
	Reason   string    `json:"reason,omitempty"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	// Note is the note, opened: the API is for auditors only, and the
	// read is an audit entry. NoteUnreadable says a note exists that
	// could not be opened (its key is gone, or no sealer is configured).
	Note           string `json:"note,omitempty"`
	NoteUnreadable bool   `json:"noteUnreadable,omitempty"`
}

func viewOf(a *Alert) AlertView {
	return AlertView{
		ID: a.ID, Rule: a.Rule, Severity: a.Severity.String(), Score: a.Score,
		User: a.User, Patients: nonNil(a.Patients), Sources: a.Sources, Clients: a.Clients,
		First: a.First.UTC(), Last: a.Last.UTC(), Detected: a.Detected.UTC(),
		Explanation: a.Why, Factors: nonNil(a.Factors), Evidence: nonNil(a.Evidence),
		Events: a.Events, State: a.State, Suppressed: a.Suppressed,
	}
}

// Alert returns the alert v shows (its triages aside).
func (v *AlertView) Alert() *Alert {
	sev, _ := ParseSeverity(v.Severity)
	return &Alert{
		ID: v.ID, Rule: v.Rule, Severity: sev, Score: v.Score, User: v.User, Patients: v.Patients,
		Sources: v.Sources, Clients: v.Clients, First: v.First, Last: v.Last, Detected: v.Detected, Why: v.Explanation, Factors: v.Factors,
		Evidence: v.Evidence, Events: v.Events, State: v.State, Suppressed: v.Suppressed,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// AlertPage is a page of GET /security/alerts.
type AlertPage struct {
	Alerts []AlertView `json:"alerts"`
	// Next is the path of the next page, or "" on the last.
	Next string `json:"next,omitempty"`
}

var alertParams = []string{"since", "rule", "user", "patient", "state", "min_score", "limit", "after"}

// parseAlertFilter reads the query of GET /security/alerts. Unknown or
// repeated parameters are refused rather than ignored: a filter silently
// dropped would show a privacy officer more, or less, than asked for.
func parseAlertFilter(q url.Values) (AlertFilter, error) {
	f := AlertFilter{Limit: DefaultAlertPage}
	for name, vs := range q {
		if !slices.Contains(alertParams, name) {
			// The name is not echoed: it is the caller's free text.
			return f, phivault.Errorf(phivault.EINVALID, "Unknown parameter; use only %s.", strings.Join(alertParams, ", "))
		}
		if len(vs) != 1 {
			return f, phivault.Errorf(phivault.EINVALID, "Parameter %s must be given once.", name)
		}
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return f, phivault.Errorf(phivault.EINVALID, "since must be an RFC 3339 time, e.g. 2026-12-06T00:00:00Z.")
		}
		f.Since = t.UTC()
	}
	if v := q.Get("rule"); v != "" {
		if !isRuleName(v) {
			return f, phivault.Errorf(phivault.EINVALID, "rule must be a rule name: lowercase letters, digits and hyphens.")
		}
		f.Rule = v
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"user", &f.User}, {"patient", &f.Patient}} {
		if v := q.Get(p.name); v != "" {
			if !isIDText(v) {
				return f, phivault.Errorf(phivault.EINVALID, "%s must be an id of at most 256 printable characters.", p.name)
			}
			*p.dst = v
		}
	}
	if v := q.Get("state"); v != "" {
		if !isState(v) {
			return f, phivault.Errorf(phivault.EINVALID, "state must be open, true-positive, false-positive or benign.")
		}
		f.State = v
	}
	if v := q.Get("min_score"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return f, phivault.Errorf(phivault.EINVALID, "min_score must be a whole number from 0 to 100.")
		}
		f.MinScore = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxAlertPage {
			return f, phivault.Errorf(phivault.EINVALID, "limit must be a whole number from 1 to %d.", MaxAlertPage)
		}
		f.Limit = n
	}
	if v := q.Get("after"); v != "" {
		if !isAlertID(v) {
			return f, phivault.Errorf(phivault.EINVALID, "after must be an alert id (16 hexadecimal digits) from a previous page.")
		}
		f.After = v
	}
	return f, nil
}

func (h *handler) serveAlerts(w http.ResponseWriter, r *http.Request) {
	e := h.entry(r, phivault.ActionSearch, TargetAlert, "", alertParams...)
	f, err := parseAlertFilter(r.URL.Query())
	if err != nil {
		h.refuse(w, r, e, err)
		return
	}
	limit := f.Limit
	f.Limit = limit + 1 // one more tells whether there is a next page
	alerts, err := h.opts.Store.Alerts(r.Context(), f)
	if err != nil {
		h.refuse(w, r, e, err)
		return
	}
	page := AlertPage{Alerts: []AlertView{}}
	if len(alerts) > limit {
		alerts = alerts[:limit]
		q := r.URL.Query()
		q.Set("after", alerts[len(alerts)-1].ID)
		page.Next = "/security/alerts?" + q.Encode()
	}
	for _, a := range alerts {
		e.Returned = append(e.Returned, TargetAlert+"/"+a.ID)
		e.Compartments = addAll(e.Compartments, a.Patients)
		page.Alerts = append(page.Alerts, viewOf(a))
	}
	if !h.record(w, r, e) {
		return
	}
	if page.Next != "" {
		w.Header().Set("Link", "<"+page.Next+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, page)
}

func (h *handler) serveAlert(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e := h.entry(r, phivault.ActionRead, TargetAlert, safeID(id))
	a, err := h.loadAlert(r, id)
	if err != nil {
		h.refuse(w, r, e, err)
		return
	}
	triages, err := h.opts.Store.Triages(r.Context(), a.ID)
	if err != nil {
		h.refuse(w, r, e, err)
		return
	}
	v := viewOf(a)
	for _, t := range triages {
		v.Triages = append(v.Triages, h.TriageView(t))
	}
	e.Compartments = addAll(e.Compartments, a.Patients)
	e.Returned = []string{TargetAlert + "/" + a.ID}
	if !h.record(w, r, e) {
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) TriageView(t *Triage) TriageView {
	v := TriageView{Decision: t.Decision, Reason: t.Reason, By: t.By, At: t.At.UTC()}
	if len(t.Note) > 0 {
		var note []byte
		var err error
		if h.opts.Notes == nil {
			err = errors.New("no note sealer")
		} else {
			note, err = h.opts.Notes.Open(t.Alert, t.Note)
		}
		if err != nil {
			v.NoteUnreadable = true
		} else {
			v.Note = string(note)
		}
	}
	return v
}

// triageRequest is the body of POST /security/alerts/{id}/triage.
type triageRequest struct {
	Decision string `json:"decision"` // true-positive, false-positive or benign
	Reason   string `json:"reason"`   // benign only, and required then: a short code
	Note     string `json:"note"`     // free text, may hold PHI: sealed, never logged
}

func (h *handler) serveTriage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e := h.entry(r, phivault.ActionUpdate, TargetAlert, safeID(id))
	req, err := h.readTriage(w, r)
	if err != nil {
		h.refuse(w, r, e, err)
		return
	}
	a, err := h.loadAlert(r, id)
	if err != nil {
		h.refuse(w, r, e, err)
		return
	}
	e.Compartments = addAll(e.Compartments, a.Patients)
	t := &Triage{
		Alert: a.ID, Decision: req.Decision, Reason: req.Reason,
		At: h.opts.Now().UTC(), Rule: a.Rule, User: a.User,
	}
	if p := phivault.PrincipalFromContext(r.Context()); p != nil {
		t.By = p.ID
	}
	// Like a break-the-glass reason, the note is recorded in the trail by
	// its length only, and stored sealed.
	e.Decision = "triage " + req.Decision
	if req.Reason != "" {
		e.Decision += " (" + req.Reason + ")"
	}
	if req.Note != "" {
		if h.opts.Notes == nil {
			h.refuse(w, r, e, phivault.Errorf(phivault.EINVALID, "This server cannot keep triage notes (no note sealer is configured); triage without a note."))
			return
		}
		if t.Note, err = h.opts.Notes.Seal(t.Alert, []byte(req.Note)); err != nil {
			h.refuse(w, r, e, phivault.Errorf(phivault.EUNAVAILABLE, "The note cannot be sealed now; try again later."))
			return
		}
		e.Decision += "; note " + strconv.Itoa(utf8.RuneCountInString(req.Note)) + " characters, sealed"
	}
	// The entry goes first: a triage that cannot be recorded is not made.
	if !h.record(w, r, e) {
		return
	}
	if err := h.opts.Store.Triage(r.Context(), t); err != nil {
		// The trail says the triage was asked for; it also says it failed.
		failed := *e
		failed.Time = h.opts.Now().UTC()
		h.refuse(w, r, &failed, err)
		return
	}
	if h.opts.OnTriage != nil {
		cp := *t
		cp.Note = nil
		h.opts.OnTriage(&cp)
	}
	a.State = t.Decision
	if fresh, err := h.opts.Store.Alert(r.Context(), a.ID); err == nil {
		a = fresh
	}
	writeJSON(w, http.StatusOK, viewOf(a))
}

func (h *handler) readTriage(w http.ResponseWriter, r *http.Request) (*triageRequest, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, phivault.Errorf(phivault.EINVALID, "The body must be JSON (Content-Type: application/json).")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTriageBody))
	if err != nil {
		return nil, phivault.Errorf(phivault.EINVALID, "The body must be a JSON object of at most %d bytes.", maxTriageBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req triageRequest
	if err := dec.Decode(&req); err != nil || dec.More() {
		return nil, phivault.Errorf(phivault.EINVALID, `The body must be one JSON object: {"decision": "...", "reason": "...", "note": "..."}.`)
	}
	req.Note = strings.TrimSpace(req.Note)
	switch {
	case req.Decision != StateTruePositive && req.Decision != StateFalsePositive && req.Decision != StateBenign:
		return nil, phivault.Errorf(phivault.EINVALID, "decision must be true-positive, false-positive or benign.")
	case req.Decision == StateBenign && !isReasonCode(req.Reason):
		return nil, phivault.Errorf(phivault.EINVALID, "A benign decision needs a reason: a short code of lowercase letters, digits and hyphens, e.g. covering-shift.")
	case req.Decision != StateBenign && req.Reason != "":
		return nil, phivault.Errorf(phivault.EINVALID, "reason is for benign decisions only; put other explanations in the note.")
	case !utf8.ValidString(req.Note) || utf8.RuneCountInString(req.Note) > MaxTriageNote:
		return nil, phivault.Errorf(phivault.EINVALID, "note must be valid text of at most %d characters.", MaxTriageNote)
	}
	return &req, nil
}

func (h *handler) loadAlert(r *http.Request, id string) (*Alert, error) {
	if !isAlertID(id) {
		return nil, phivault.Errorf(phivault.EINVALID, "An alert id is 16 hexadecimal digits.")
	}
	return h.opts.Store.Alert(r.Context(), id)
}

// refuse records e with err's code as its outcome, then answers err; if
// the entry cannot be written, it answers 503.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, e *phivault.AuditEntry, err error) {
	err = publicError(err)
	e.Outcome = phivault.ErrorCode(err)
	if !h.record(w, r, e) {
		return
	}
	fhir.WriteOutcome(w, err)
}

// publicError returns err if its message is safe to show, a not-found
// error for a missing alert, and otherwise an internal error whose
// cause is not shown.
func publicError(err error) error {
	var pe *phivault.Error
	switch {
	case errors.Is(err, phivault.ErrNotFound):
		return phivault.Errorf(phivault.ENOTFOUND, "No such alert.")
	case errors.As(err, &pe):
		return err
	}
	return phivault.Errorf(phivault.EINTERNAL, "Internal error.")
}

func addAll(set, add []string) []string {
	for _, s := range add {
		if !slices.Contains(set, s) {
			set = append(set, s)
		}
	}
	return set
}

func isAlertID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// safeID returns id for the audit entry if it is an alert id, else "".
func safeID(id string) string {
	if isAlertID(id) {
		return id
	}
	return ""
}

// isRuleName and isReasonCode accept the codes the audit trail may hold
// (phivault.IsCode): rule names and triage reasons go into entries as
// typed.
func isRuleName(s string) bool { return phivault.IsCode(s) }

func isReasonCode(s string) bool { return phivault.IsCode(s) }

// isIDText reports whether s can be a user or patient id: up to 256
// printable ASCII characters (namespaced ids hold a colon).
func isIDText(s string) bool {
	if len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

func isState(s string) bool {
	return s == StateOpen || s == StateTruePositive || s == StateFalsePositive || s == StateBenign
}

// knownParams returns the names of names that are in known, sorted: the
// trail keeps parameter names, and a name the API does not know is the
// caller's free text, which could be anything.
