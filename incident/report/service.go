package report

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident"
)

// Store keeps reports. Implementations are safe for concurrent use.
type Store interface {
	// Create stores a new report; an existing id is ECONFLICT.
	Create(ctx context.Context, r *Report) error
	// Update replaces the report r.ID if its stored version is
	// r.Version-1; another stored version is EPRECONDITION.
	Update(ctx context.Context, r *Report) error
	// Get returns a copy of the report id, or ENOTFOUND.
	Get(ctx context.Context, id string) (*Report, error)
	// List returns the reports f selects, most recently submitted first.
	List(ctx context.Context, f Filter) ([]*Report, error)
}

// Filter selects reports. Zero fields select everything.
type Filter struct {
	State    string
	Kind     string
	Reporter string // only those this account submitted in its own name
	Limit    int    // at most this many; 0 means DefaultLimit
}

// DefaultLimit bounds a List without a limit.
const DefaultLimit = 100

// Match reports whether f selects r (Limit aside); stores may use it.
func (f *Filter) Match(r *Report) bool {
	return (f.State == "" || r.State == f.State) && (f.Kind == "" || r.Kind == f.Kind) &&
		(f.Reporter == "" || (!r.Anonymous && r.Reporter == f.Reporter))
}

// Options configure a Service.
type Options struct {
	Store Store             // required
	Audit phivault.AuditLog // required: every change is recorded first
	// Sealer seals descriptions, notes and reasons (envelope.NoteSealer
	// with purpose "report"); Reporters seals anonymous reporters
	// (purpose "reporter"). Both required, and different purposes: a
	// sealed reporter never opens as a description.
	Sealer, Reporters incident.Sealer
	// Incidents opens the incidents reports are taken into; nil refuses
	// triage into an incident.
	Incidents *incident.Service
	Now       func() time.Time // nil means time.Now
	Rand      io.Reader        // ids and receipts; nil means crypto/rand
}

// Service takes and triages reports, recording each change in the audit
// trail before storing it. It is safe for concurrent use.
type Service struct {
	opts Options
}

// NewService returns a Service for opts.
func NewService(opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	return &Service{opts: opts}
}

// Now returns the Service's time.
func (s *Service) Now() time.Time { return s.opts.Now() }

// Bounds of what a report holds.
const (
	MaxDescription = 4000 // characters
	MaxNote        = 4000 // characters
	maxReason      = 200  // characters
)

// Draft is what submitting a report takes.
type Draft struct {
	Kind        string
	Description string    // free text; sealed at once, never logged
	Occurred    time.Time // when it happened; zero: not said
	Patient     string    // a patient it concerns, if any
	User        string    // a user it concerns, if any
	Anonymous   bool      // seal the reporter
}

var (
	errNotStaff   = phivault.Errorf(phivault.EFORBIDDEN, "Reports are made by staff members signed in with their own account.")
	errNotFound   = phivault.Errorf(phivault.ENOTFOUND, "No such report.")
	errNotOfficer = phivault.Errorf(phivault.EFORBIDDEN, "Opening a reporter's identity takes two privacy officers or security admins, each signed in with their own account.")
)

// Staff reports whether p is a staff member signed in with their own
// account: the only callers that may report.
func Staff(p *phivault.Principal) bool {
	return p != nil && p.Kind == phivault.PrincipalStaff && p.ID != ""
}

// Submit takes a report from the staff member in ctx: recorded in the
// audit trail (an anonymous one as [AnonymousActor], with no account,
// roles, client or source), then stored. It returns the report and its
// receipt, which is returned only here: only its hash is kept.
func (s *Service) Submit(ctx context.Context, d Draft) (*Report, string, error) {
	p := phivault.PrincipalFromContext(ctx)
	if !Staff(p) {
		return nil, "", errNotStaff
	}
	if err := d.check(); err != nil {
		return nil, "", err
	}
	now := s.opts.Now().UTC()
	id, err := s.newID()
	if err != nil {
		return nil, "", err
	}
	receipt, err := s.newReceipt()
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256([]byte(receipt))
	r := &Report{
		ID: id, Kind: d.Kind, Occurred: d.Occurred, Patient: d.Patient, User: d.User, State: StateReceived,
		Anonymous: d.Anonymous, Receipt: sum[:], Submitted: now, Updated: now, Version: 1,
	}
	if r.Description, err = s.opts.Sealer.Seal(id, []byte(d.Description)); err != nil {
		return nil, "", fmt.Errorf("report: seal description: %w", err)
	}
	if d.Anonymous {
		if r.SealedReporter, err = s.opts.Reporters.Seal(id, []byte(p.ID)); err != nil {
			return nil, "", fmt.Errorf("report: seal reporter: %w", err)
		}
	} else {
		r.Reporter = p.ID
	}
	ev := Event{At: now, Kind: EventSubmitted, Detail: "kind " + r.Kind}
	if d.Anonymous {
		ev.Detail += ", anonymous"
	}
	e := s.entry(ctx, r, &ev)
	if d.Anonymous {
		// No account, roles, client or source: see AnonymousEntry.
		anon := AnonymousEntry(ctx, now, phivault.ActionIncident, r.ID)
		anon.TargetVersion, anon.Compartments, anon.Decision, anon.RequestID = e.TargetVersion, e.Compartments, e.Decision, e.RequestID
		e = anon
	}
	if err := s.opts.Audit.Append(ctx, e); err != nil {
		return nil, "", errAudit
	}
	ev.Actor, ev.Request = e.Actor, e.RequestID
	r.History = []Event{ev}
	if err := s.opts.Store.Create(ctx, r); err != nil {
		return nil, "", s.failed(ctx, e, err)
	}
	return r, receipt, nil
}

var errAudit = phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the report was not changed.")

// AnonymousEntry returns the audit entry of a request made for an
// anonymous reporter: its request id and nothing of who made it (actor
// AnonymousActor; no roles, client or source address).
func AnonymousEntry(ctx context.Context, now time.Time, action, id string) *phivault.AuditEntry {
	e := &phivault.AuditEntry{Time: now.UTC(), Actor: AnonymousActor, Action: action, TargetType: TargetType, TargetID: id, Outcome: "ok"}
	if info, ok := phivault.RequestInfoFromContext(ctx); ok {
		e.RequestID = info.ID
	}
	return e
}

func (d *Draft) check() error {
	if !slices.Contains(Kinds, d.Kind) {
		return phivault.Errorf(phivault.EINVALID, "The kind must be one of %s.", strings.Join(Kinds, ", "))
	}
	if strings.TrimSpace(d.Description) == "" {
		return phivault.Errorf(phivault.EINVALID, "A report needs a description of what happened.")
	}
	if err := incident.CheckText("description", d.Description, MaxDescription); err != nil {
		return err
	}
	return incident.CheckIDs("patient and user", []string{d.Patient, d.User}, 2)
}

// Get returns the report id.
func (s *Service) Get(ctx context.Context, id string) (*Report, error) {
	return s.opts.Store.Get(ctx, id)
}

// List returns the reports f selects, most recently submitted first.
func (s *Service) List(ctx context.Context, f Filter) ([]*Report, error) {
	return s.opts.Store.List(ctx, f)
}

// Follow returns the report id if receipt is its receipt; a wrong receipt
// is ENOTFOUND, the same as a report that does not exist.
func (s *Service) Follow(ctx context.Context, id, receipt string) (*Report, error) {
	sum := sha256.Sum256([]byte(receipt))
	r, err := s.opts.Store.Get(ctx, id)
	if phivault.ErrorCode(err) == phivault.ENOTFOUND {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	if receipt == "" || subtle.ConstantTimeCompare(sum[:], r.Receipt) != 1 {
		return nil, errNotFound
	}
	return r, nil
}

// OpenText opens a description, note or reason sealed for the report id.
func (s *Service) OpenText(id string, sealed []byte) ([]byte, error) {
	return s.opts.Sealer.Open(id, sealed)
}

// Change is a change an officer makes to a report.
type Change struct {
	Version int64  // the version it was made on (If-Match)
	State   string // received, triaging or closed-no-action; "" leaves it
	Note    string // a note on the history, sealed
}

// Change applies c to the report id, recording it in the audit trail
// first. A report taken into an incident stays there.
func (s *Service) Change(ctx context.Context, id string, c Change) (*Report, error) {
	if c.Version < 1 {
		return nil, phivault.Errorf(phivault.EINVALID, "A change names the version it was made on (If-Match).")
	}
	if c.State != "" && (c.State == StateIncident || !slices.Contains(States, c.State)) {
		return nil, phivault.Errorf(phivault.EINVALID, "The state must be %s, %s or %s; a report goes into an incident through triage.", StateReceived, StateTriaging, StateClosed)
	}
	if err := incident.CheckText("note", c.Note, MaxNote); err != nil {
		return nil, err
	}
	return s.apply(ctx, id, c.Version, func(r *Report, now time.Time) ([]Event, error) {
		var evs []Event
		if c.State != "" && c.State != r.State {
			if r.State == StateIncident {
				return nil, phivault.Errorf(phivault.EINVALID, "The report was taken into incident %s; follow it there.", r.Incident)
			}
			evs = append(evs, Event{Kind: EventState, Detail: r.State + " → " + c.State})
			r.State = c.State
		}
		if c.Note != "" {
			sealed, err := s.opts.Sealer.Seal(r.ID, []byte(c.Note))
			if err != nil {
				return nil, fmt.Errorf("report: seal note: %w", err)
			}
			evs = append(evs, Event{Kind: EventNote, Note: sealed})
		}
		return evs, nil
	})
}

// Triage is taking a report into an incident.
type Triage struct {
	Version int64 // the report's version it was made on (If-Match)
	// Incident names an existing incident to take the report into; ""
	// opens a new one, of source report, with Severity (zero: medium).
	Incident string
	Severity detect.Severity
}

// Triage takes the report id into an incident: a new one (source
// report; scope the report's user and patient; discovered when the
// report was submitted; the description as its first note, sealed for
// the incident) or an existing one (a note and the scope widened). Each
// side records its own audit entries.
func (s *Service) Triage(ctx context.Context, id string, t Triage) (*Report, *incident.Incident, error) {
	if s.opts.Incidents == nil {
		return nil, nil, phivault.Errorf(phivault.EUNAVAILABLE, "Incidents are off on this server.")
	}
	if t.Version < 1 {
		return nil, nil, phivault.Errorf(phivault.EINVALID, "Triage names the report's version it was made on (If-Match).")
	}
	if err := incident.CheckIDs("incident", []string{t.Incident}, 1); err != nil {
		return nil, nil, err
	}
	r, err := s.opts.Store.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case r.Version != t.Version:
		return nil, nil, phivault.Errorf(phivault.EPRECONDITION, "The report changed since version %d (it is at version %d); read it again and retry.", t.Version, r.Version)
	case r.State == StateIncident:
		return nil, nil, phivault.Errorf(phivault.ECONFLICT, "The report was taken into incident %s already.", r.Incident)
	}
	scope := incident.Scope{Users: nonEmpty(r.User), Patients: nonEmpty(r.Patient)}
	var in *incident.Incident
	if t.Incident == "" {
		desc, err := s.opts.Sealer.Open(r.ID, r.Description)
		if err != nil {
			return nil, nil, fmt.Errorf("report: open description: %w", err)
		}
		sev := t.Severity
		if sev == 0 {
			sev = detect.SeverityMedium
		}
		note := string(desc)
		if utf8.RuneCountInString(note) > incident.MaxNote {
			note = string([]rune(note)[:incident.MaxNote])
		}
		in, err = s.opts.Incidents.Open(ctx, incident.Draft{
			Title: "Staff report " + r.ID + " (" + r.Kind + ")", Severity: sev, Source: incident.SourceReport,
			Scope: scope, Discovered: r.Submitted, Note: note,
		})
		if err != nil {
			return nil, nil, err
		}
	} else {
		cur, err := s.opts.Incidents.Get(ctx, t.Incident)
		if phivault.ErrorCode(err) == phivault.ENOTFOUND {
			return nil, nil, phivault.Errorf(phivault.EINVALID, "The incident named does not exist.")
		}
		if err != nil {
			return nil, nil, err
		}
		if cur.Phase == incident.PhaseClosed {
			return nil, nil, phivault.Errorf(phivault.EINVALID, "The incident named is closed; reopen it first.")
		}
		if in, err = s.opts.Incidents.Change(ctx, cur.ID, incident.Change{
			Version: cur.Version, Scope: scope, Note: "Staff report " + r.ID + " (" + r.Kind + ") taken into this incident.",
		}); err != nil {
			return nil, nil, err
		}
	}
	out, err := s.apply(ctx, id, t.Version, func(r *Report, now time.Time) ([]Event, error) {
		if r.State == StateIncident {
			return nil, phivault.Errorf(phivault.ECONFLICT, "The report was taken into incident %s already.", r.Incident)
		}
		ev := Event{Kind: EventIncident, Detail: r.State + " → " + StateIncident + ", incident " + in.ID}
		r.State, r.Incident = StateIncident, in.ID
		return []Event{ev}, nil
	})
	return out, in, err
}

// RequestIdentity asks, as the officer in ctx, for the reporter of the
// anonymous report id to be opened, for reason; a second officer
// approves (ApproveIdentity).
func (s *Service) RequestIdentity(ctx context.Context, id, reason string) (*Report, error) {
	by, err := officer(ctx)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) == "" {
		return nil, phivault.Errorf(phivault.EINVALID, "Asking for a reporter's identity needs a reason.")
	}
	if err := incident.CheckText("reason", reason, maxReason); err != nil {
		return nil, err
	}
	return s.apply(ctx, id, 0, func(r *Report, now time.Time) ([]Event, error) {
		switch {
		case !r.Anonymous:
			return nil, phivault.Errorf(phivault.EINVALID, "The report is not anonymous: its reporter is named on it.")
		case r.Identity != nil && r.Identity.Approved.IsZero():
			return nil, phivault.Errorf(phivault.ECONFLICT, "%s asked already; a second, different officer approves.", r.Identity.RequestedBy)
		case r.Identity != nil:
			return nil, phivault.Errorf(phivault.ECONFLICT, "The reporter's identity was opened already.")
		}
		sealed, err := s.opts.Sealer.Seal(r.ID, []byte(reason))
		if err != nil {
			return nil, fmt.Errorf("report: seal reason: %w", err)
		}
		r.Identity = &Opening{RequestedBy: by, Requested: now, Reason: sealed}
		return []Event{{Kind: EventIdentityRequest, Detail: "by " + by, Note: slices.Clone(sealed)}}, nil
	})
}

// ApproveIdentity approves, as the officer in ctx, the pending request
// to open the reporter of report id, and returns the reporter's account
// id. The officer who asked may not approve.
func (s *Service) ApproveIdentity(ctx context.Context, id string) (*Report, string, error) {
	by, err := officer(ctx)
	if err != nil {
		return nil, "", err
	}
	r, err := s.apply(ctx, id, 0, func(r *Report, now time.Time) ([]Event, error) {
		switch {
		case !r.Anonymous:
			return nil, phivault.Errorf(phivault.EINVALID, "The report is not anonymous: its reporter is named on it.")
		case r.Identity == nil:
			return nil, phivault.Errorf(phivault.EINVALID, "Nobody asked for the reporter's identity; ask first, with a reason.")
		case !r.Identity.Approved.IsZero():
			return nil, phivault.Errorf(phivault.ECONFLICT, "The reporter's identity was opened already.")
		case r.Identity.RequestedBy == by:
			return nil, phivault.Errorf(phivault.EFORBIDDEN, "The officer who asked may not approve: a second, different officer approves.")
		}
		r.Identity.ApprovedBy, r.Identity.Approved = by, now
		return []Event{{Kind: EventIdentityApproved, Detail: "asked by " + r.Identity.RequestedBy + ", approved by " + by}}, nil
	})
	if err != nil {
		return nil, "", err
	}
	reporter, err := s.opts.Reporters.Open(r.ID, r.SealedReporter)
	if err != nil {
		return nil, "", fmt.Errorf("report: open reporter: %w", err)
	}
	return r, string(reporter), nil
}

// Identity returns the reporter of the anonymous report id to one of
// the two officers who opened it (the officer in ctx); anyone else,
// or before the approval, is refused.
func (s *Service) Identity(ctx context.Context, id string) (*Report, string, error) {
	by, err := officer(ctx)
	if err != nil {
		return nil, "", err
	}
	r, err := s.opts.Store.Get(ctx, id)
	if err != nil {
		return nil, "", err
	}
	switch {
	case !r.Anonymous:
		return nil, "", phivault.Errorf(phivault.EINVALID, "The report is not anonymous: its reporter is named on it.")
	case r.Identity == nil || r.Identity.Approved.IsZero():
		return nil, "", phivault.Errorf(phivault.EFORBIDDEN, "The reporter's identity is not opened: one officer asks, a second approves.")
	case by != r.Identity.RequestedBy && by != r.Identity.ApprovedBy:
		return nil, "", phivault.Errorf(phivault.EFORBIDDEN, "The reporter's identity was opened for the two officers who asked and approved only.")
	}
	reporter, err := s.opts.Reporters.Open(r.ID, r.SealedReporter)
	if err != nil {
		return nil, "", fmt.Errorf("report: open reporter: %w", err)
	}
	return r, string(reporter), nil
}

// officer returns the id of the privacy officer or security admin in
// ctx, signed in with their own account (not the operator's token: the
// two people must be people).
func officer(ctx context.Context) (string, error) {
	p := phivault.PrincipalFromContext(ctx)
	if !Staff(p) || !p.Auditor() {
		return "", errNotOfficer
	}
	return p.ID, nil
}

// maxRetries bounds the retries of a change on the latest version
// (version 0) that lost a race with another change.
const maxRetries = 5

// apply changes the report id with fn, which changes its copy and
// returns the events of the change (none: nothing changed). version is
// the version the change was made on; 0 means the latest, retried if
// another change wins meanwhile. The change is recorded in the audit
// trail first (one entry), then stored.
func (s *Service) apply(ctx context.Context, id string, version int64, fn func(r *Report, now time.Time) ([]Event, error)) (*Report, error) {
	for try := 0; ; try++ {
		old, err := s.opts.Store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if version != 0 && version != old.Version {
			return nil, phivault.Errorf(phivault.EPRECONDITION, "The report changed since version %d (it is at version %d); read it again and retry.", version, old.Version)
		}
		now := s.opts.Now().UTC()
		r := old.Clone()
		evs, err := fn(r, now)
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			return old, nil
		}
		r.Version++
		r.Updated = now
		summary := Event{At: now, Kind: evs[0].Kind, Detail: summarize(evs)}
		e := s.entry(ctx, r, &summary)
		if err := s.opts.Audit.Append(ctx, e); err != nil {
			return nil, errAudit
		}
		for i := range evs {
			evs[i].At, evs[i].Actor, evs[i].Request = now, e.Actor, e.RequestID
		}
		r.History = append(r.History, evs...)
		err = s.opts.Store.Update(ctx, r)
		if err == nil {
			return r, nil
		}
		if version == 0 && phivault.ErrorCode(err) == phivault.EPRECONDITION && try < maxRetries {
			s.failed(ctx, e, err)
			continue
		}
		return nil, s.failed(ctx, e, err)
	}
}

// entry returns the audit entry of ev, a change to r by the caller in
// ctx.
func (s *Service) entry(ctx context.Context, r *Report, ev *Event) *phivault.AuditEntry {
	e := phivault.NewRequestEntry(ctx, "", ev.At, phivault.ActionIncident, TargetType, r.ID)
	e.TargetVersion = r.Version
	if vaultPatient(r.Patient) {
		e.Compartments = []string{r.Patient}
	}
	e.Decision = decision(ev)
	if e.RequestID == "" {
		e.RequestID = phivault.NewRequestID(s.opts.Rand)
	}
	return e
}

func decision(ev *Event) string {
	if ev.Detail == "" {
		return "report " + ev.Kind
	}
	return "report " + ev.Kind + ": " + ev.Detail
}

// failed records that the change of entry e could not be stored, and
// returns err.
func (s *Service) failed(ctx context.Context, e *phivault.AuditEntry, err error) error {
	f := *e
	f.Outcome = phivault.ErrorCode(err)
	if f.Outcome == "" || f.Outcome == "ok" {
		f.Outcome = phivault.EINTERNAL
	}
	_ = s.opts.Audit.Append(context.WithoutCancel(ctx), &f) // the first entry stands either way
	var pe *phivault.Error
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("report: store %s: %w", e.TargetID, err)
}

func summarize(evs []Event) string {
	parts := make([]string, 0, len(evs))
	for _, ev := range evs {
		if ev.Detail == "" {
			parts = append(parts, ev.Kind)
		} else {
			parts = append(parts, ev.Kind+" "+ev.Detail)
		}
	}
	return strings.Join(parts, "; ")
}

// vaultPatient reports whether id is one of the vault's patients (not
// "system:id" of another system, nor none).
func vaultPatient(id string) bool { return id != "" && !strings.Contains(id, ":") }

func nonEmpty(id string) []string {
	if id == "" {
		return nil
	}
	return []string{id}
}

func (s *Service) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("report: new id: %w", err)
	}
	return fmt.Sprintf("rep-%x", b), nil
}

// newReceipt returns 32 random bytes, base64url without padding: there
// is nothing to guess, so its unsalted SHA-256 hash is what is kept.
func (s *Service) newReceipt() (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(s.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("report: new receipt: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
