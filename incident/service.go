package incident

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// Store keeps incidents and their timelines. Implementations are safe for
// concurrent use.
type Store interface {
	// Create stores a new incident with the first event of its timeline.
	Create(ctx context.Context, in *Incident, ev *Event) error
	// Update replaces the incident in.ID if its stored version is
	// in.Version-1, and appends evs to its timeline, atomically; another
	// stored version is EPRECONDITION (someone changed it meanwhile).
	Update(ctx context.Context, in *Incident, evs []*Event) error
	// Get returns a copy of the incident id, or ENOTFOUND.
	Get(ctx context.Context, id string) (*Incident, error)
	// List returns the incidents f selects, most recently opened first.
	List(ctx context.Context, f Filter) ([]*Incident, error)
	// Timeline returns the events of the incident id, oldest first.
	Timeline(ctx context.Context, id string) ([]*Event, error)
}

// Filter selects incidents. Zero fields select everything.
type Filter struct {
	Open    bool   // only incidents not closed
	Phase   string // only in this phase
	Owner   string
	Alert   string // only those linking this alert
	User    string // only those whose scope names this user
	Patient string // only those whose scope names this patient
	Limit   int    // at most this many; 0 means DefaultLimit
}

// DefaultLimit bounds a List without a limit.
const DefaultLimit = 100

// Match reports whether f selects in (Limit aside); stores may use it.
func (f *Filter) Match(in *Incident) bool {
	switch {
	case f.Open && in.Phase == PhaseClosed,
		f.Phase != "" && in.Phase != f.Phase,
		f.Owner != "" && in.Owner != f.Owner,
		f.Alert != "" && !slices.Contains(in.Alerts, f.Alert),
		f.User != "" && !slices.Contains(in.Scope.Users, f.User),
		f.Patient != "" && !slices.Contains(in.Scope.Patients, f.Patient):
		return false
	}
	return true
}

// Sealer seals free text about one incident (its title, notes), bound to
// its id; envelope.NoteSealer is one.
type Sealer interface {
	Seal(id string, plaintext []byte) ([]byte, error)
	Open(id string, sealed []byte) ([]byte, error)
}

// Options configure a Service.
type Options struct {
	Store  Store             // required
	Audit  phivault.AuditLog // required: every change is recorded first
	Sealer Sealer            // required: titles and notes are sealed
	SLA    SLA               // zero means DefaultSLA
	Now    func() time.Time  // nil means time.Now
	Rand   io.Reader         // ids; nil means crypto/rand
}

// Service opens and changes incidents, recording each change in the
// audit trail before storing it. It is safe for concurrent use.
type Service struct {
	opts Options
}

// NewService returns a Service for opts.
func NewService(opts Options) *Service {
	if opts.SLA.Acknowledge == nil && opts.SLA.Contain == nil {
		opts.SLA = DefaultSLA()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	return &Service{opts: opts}
}

// SLA returns the service levels the Service's clocks use.
func (s *Service) SLA() SLA { return s.opts.SLA }

// Now returns the Service's time.
func (s *Service) Now() time.Time { return s.opts.Now() }

// Get returns the incident id.
func (s *Service) Get(ctx context.Context, id string) (*Incident, error) {
	return s.opts.Store.Get(ctx, id)
}

// List returns the incidents f selects, most recently opened first.
func (s *Service) List(ctx context.Context, f Filter) ([]*Incident, error) {
	return s.opts.Store.List(ctx, f)
}

// Timeline returns the events of the incident id, oldest first.
func (s *Service) Timeline(ctx context.Context, id string) ([]*Event, error) {
	return s.opts.Store.Timeline(ctx, id)
}

// OpenText opens a title or note sealed for the incident id.
func (s *Service) OpenText(id string, sealed []byte) ([]byte, error) {
	return s.opts.Sealer.Open(id, sealed)
}

// Bounds of what an incident holds.
const (
	MaxTitle     = 200  // characters
	MaxNote      = 4000 // characters
	MaxScopeIDs  = 10000
	MaxActions   = 1000 // proposed by hand (a playbook's steps are bounded by its alerts)
	MaxAlerts    = 1000
	maxIDLen     = 256
	maxReasonLen = 200
)

// Draft is what opening an incident takes.
type Draft struct {
	Title    string // free text; sealed at once, never logged
	Severity detect.Severity
	Source   string // SourceAlert, SourceReport, SourceManual or SourceDrill
	Owner    string
	Alerts   []string
	Scope    Scope
	// Discovered is the HIPAA discovery date; zero means now. Opening
	// from alerts passes the earliest alert's detection time.
	Discovered time.Time
	Note       string // optional first note, sealed
}

// Open opens an incident from d: recorded in the audit trail, then
// stored, in phase detect (analyse if it has an owner).
func (s *Service) Open(ctx context.Context, d Draft) (*Incident, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	now := s.opts.Now().UTC()
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	in := &Incident{
		ID: id, Severity: d.Severity, Phase: PhaseDetect, Owner: d.Owner, Source: d.Source,
		Alerts: slices.Clone(d.Alerts), Scope: d.Scope.clone(),
		Discovered: d.Discovered.UTC(), Opened: now, Updated: now, Version: 1,
	}
	if in.Discovered.IsZero() || in.Discovered.After(now) {
		in.Discovered = now
	}
	if in.Owner != "" {
		in.Phase, in.Acknowledged = PhaseAnalyse, now
	}
	if in.Title, err = s.opts.Sealer.Seal(id, []byte(d.Title)); err != nil {
		return nil, fmt.Errorf("incident: seal title: %w", err)
	}
	ev := &Event{At: now, Kind: EventOpened, Detail: openedDetail(in)}
	if d.Note != "" {
		if ev.Note, err = s.opts.Sealer.Seal(id, []byte(d.Note)); err != nil {
			return nil, fmt.Errorf("incident: seal note: %w", err)
		}
	}
	if err := s.record(ctx, in, ev); err != nil {
		return nil, err
	}
	if err := s.opts.Store.Create(ctx, in, ev); err != nil {
		return nil, s.failed(ctx, in, ev, err)
	}
	return in, nil
}

func openedDetail(in *Incident) string {
	d := "source " + in.Source + ", severity " + in.Severity.String() + ", phase " + in.Phase
	if len(in.Alerts) > 0 {
		d += ", alerts " + strings.Join(in.Alerts, " ")
	}
	return d
}

func (d *Draft) check() error {
	switch d.Source {
	case SourceAlert, SourceReport, SourceManual, SourceDrill:
	default:
		return phivault.Errorf(phivault.EINVALID, "The source must be alert, report, manual or drill.")
	}
	if d.Severity < detect.SeverityLow || d.Severity > detect.SeverityCritical {
		return phivault.Errorf(phivault.EINVALID, "The severity must be low, medium, high or critical.")
	}
	if strings.TrimSpace(d.Title) == "" {
		return phivault.Errorf(phivault.EINVALID, "An incident needs a title.")
	}
	if err := CheckText("title", d.Title, MaxTitle); err != nil {
		return err
	}
	if err := CheckText("note", d.Note, MaxNote); err != nil {
		return err
	}
	if d.Source == SourceAlert && len(d.Alerts) == 0 {
		return phivault.Errorf(phivault.EINVALID, "An incident opened from alerts names at least one alert.")
	}
	if err := CheckIDs("owner", []string{d.Owner}, 1); err != nil {
		return err
	}
	if err := CheckIDs("alerts", d.Alerts, MaxAlerts); err != nil {
		return err
	}
	return d.Scope.check()
}

// Change is one change to an incident; zero fields leave it as it is.
type Change struct {
	// Version is the version the change was made on (If-Match): the
	// change is refused with EPRECONDITION if the incident moved on.
	Version  int64
	Phase    string
	Owner    string
	Severity detect.Severity
	Title    string
	Alerts   []string // added
	Scope    Scope    // widened: ids added, the window extended
	// Discovered moves the discovery date earlier (only earlier: a later
	// date would shorten the notification clock), with Reason.
	Discovered time.Time
	Reason     string // why: required to reopen a closed incident or move discovery
	Note       string // a note on the timeline, sealed
}

// Change applies c to the incident id, recording it in the audit trail
// first, and returns the incident as stored.
func (s *Service) Change(ctx context.Context, id string, c Change) (*Incident, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return s.apply(ctx, id, c.Version, func(in *Incident, now time.Time) ([]*Event, error) {
		return s.changeEvents(in, c, now)
	})
}

// maxRetries bounds the retries of a system change (version 0) that
// lost a race with another change.
const maxRetries = 5

// apply changes the incident id with fn, which changes its copy and
// returns the events of the change (none: nothing changed). version is
// the version the change was made on; 0 means the latest, retried if
// another change wins meanwhile (the responder's own changes). The
// change is recorded in the audit trail first, then stored.
func (s *Service) apply(ctx context.Context, id string, version int64, fn func(in *Incident, now time.Time) ([]*Event, error)) (*Incident, error) {
	for try := 0; ; try++ {
		old, err := s.opts.Store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if version != 0 && version != old.Version {
			return nil, phivault.Errorf(phivault.EPRECONDITION, "The incident changed since version %d (it is at version %d); read it again and retry.", version, old.Version)
		}
		now := s.opts.Now().UTC()
		in := old.Clone()
		evs, err := fn(in, now)
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			return old, nil // nothing to change
		}
		in.stamp(now)
		in.Version++
		in.Updated = now
		// One audit entry for the change; every event of it names that entry.
		summary := &Event{At: now, Kind: evs[0].Kind, Detail: summarize(evs)}
		if err := s.record(ctx, in, summary); err != nil {
			return nil, err
		}
		for _, ev := range evs {
			ev.At, ev.Actor, ev.Request = now, summary.Actor, summary.Request
		}
		err = s.opts.Store.Update(ctx, in, evs)
		if err == nil {
			return in, nil
		}
		if version == 0 && phivault.ErrorCode(err) == phivault.EPRECONDITION && try < maxRetries {
			// Lost a race: the entry stands for an attempt; try again on
			// the new version.
			s.failed(ctx, in, summary, err)
			continue
		}
		return nil, s.failed(ctx, in, summary, err)
	}
}

// changeEvents applies c to in and returns its events.
func (s *Service) changeEvents(in *Incident, c Change, now time.Time) ([]*Event, error) {
	var evs []*Event
	add := func(kind, detail string) {
		evs = append(evs, &Event{At: now, Kind: kind, Detail: detail})
	}
	var err error
	id := in.ID
	// A person's reason is free text: sealed on its event as a note is,
	// never in the detail that the audit entry carries in clear.
	addReasoned := func(kind, detail string) error {
		ev := &Event{At: now, Kind: kind, Detail: detail}
		if ev.Note, err = s.sealReason(id, c.Reason); err != nil {
			return err
		}
		if ev.Note != nil {
			ev.Detail += reasonInNote
		}
		evs = append(evs, ev)
		return nil
	}
	if c.Phase != "" && c.Phase != in.Phase {
		if in.Phase == PhaseClosed && c.Phase != PhaseAnalyse {
			return nil, phivault.Errorf(phivault.EINVALID, "A closed incident can only be reopened, to analyse.")
		}
		if in.Phase == PhaseClosed && c.Reason == "" {
			return nil, phivault.Errorf(phivault.EINVALID, "Reopening an incident needs a reason.")
		}
		if err := addReasoned(EventPhase, in.Phase+" → "+c.Phase); err != nil {
			return nil, err
		}
		in.Phase = c.Phase
	}
	if c.Owner != "" && c.Owner != in.Owner {
		add(EventOwner, orNone(in.Owner)+" → "+c.Owner)
		in.Owner = c.Owner
	}
	if c.Severity != 0 && c.Severity != in.Severity {
		add(EventSeverity, in.Severity.String()+" → "+c.Severity.String())
		in.Severity = c.Severity
	}
	if c.Title != "" {
		if in.Title, err = s.opts.Sealer.Seal(id, []byte(c.Title)); err != nil {
			return nil, fmt.Errorf("incident: seal title: %w", err)
		}
		add(EventTitle, "changed")
	}
	if added := missing(in.Alerts, c.Alerts); len(added) > 0 {
		if len(in.Alerts)+len(added) > MaxAlerts {
			return nil, phivault.Errorf(phivault.EINVALID, "An incident links at most %d alerts.", MaxAlerts)
		}
		in.Alerts = append(in.Alerts, added...)
		add(EventAlerts, "added "+strings.Join(added, " "))
	}
	if detail := in.Scope.widenDetail(c.Scope); detail != "" {
		if in.Scope.size() > MaxScopeIDs {
			return nil, phivault.Errorf(phivault.EINVALID, "An incident's scope names at most %d users, clients, sources and patients.", MaxScopeIDs)
		}
		add(EventScope, detail)
	}
	if !c.Discovered.IsZero() {
		d := c.Discovered.UTC()
		if !d.Before(in.Discovered) {
			return nil, phivault.Errorf(phivault.EINVALID, "The discovery date can only move earlier (it starts the notification clock).")
		}
		if c.Reason == "" {
			return nil, phivault.Errorf(phivault.EINVALID, "Moving the discovery date needs a reason.")
		}
		if err := addReasoned(EventDiscovered, in.Discovered.Format(time.RFC3339)+" → "+d.Format(time.RFC3339)); err != nil {
			return nil, err
		}
		in.Discovered = d
	}
	if c.Note != "" {
		sealed, err := s.opts.Sealer.Seal(id, []byte(c.Note))
		if err != nil {
			return nil, fmt.Errorf("incident: seal note: %w", err)
		}
		evs = append(evs, &Event{At: now, Kind: EventNote, Note: sealed})
	}
	return evs, nil
}

// stamp sets the times the incident first reached a point, as of now.
func (in *Incident) stamp(now time.Time) {
	r := phaseRank(in.Phase)
	if in.Acknowledged.IsZero() && (in.Owner != "" || r > phaseRank(PhaseDetect)) {
		in.Acknowledged = now
	}
	if in.Contained.IsZero() && r > phaseRank(PhaseContain) {
		in.Contained = now
	}
	if in.Phase == PhaseClosed {
		in.Closed = now
	} else {
		in.Closed = time.Time{}
	}
}

func (c *Change) check() error {
	if c.Version < 1 {
		return phivault.Errorf(phivault.EINVALID, "A change names the version it was made on (If-Match).")
	}
	if c.Phase != "" && phaseRank(c.Phase) < 0 {
		return phivault.Errorf(phivault.EINVALID, "The phase must be one of %s.", strings.Join(Phases, ", "))
	}
	if c.Severity != 0 && (c.Severity < detect.SeverityLow || c.Severity > detect.SeverityCritical) {
		return phivault.Errorf(phivault.EINVALID, "The severity must be low, medium, high or critical.")
	}
	if err := CheckText("title", c.Title, MaxTitle); err != nil {
		return err
	}
	if err := CheckText("note", c.Note, MaxNote); err != nil {
		return err
	}
	if err := CheckText("reason", c.Reason, maxReasonLen); err != nil {
		return err
	}
	if strings.ContainsAny(c.Reason, "\r\n") {
		return phivault.Errorf(phivault.EINVALID, "The reason is one line.")
	}
	if err := CheckIDs("owner", []string{c.Owner}, 1); err != nil {
		return err
	}
	if err := CheckIDs("alerts", c.Alerts, MaxAlerts); err != nil {
		return err
	}
	return c.Scope.check()
}

// record appends the audit entry of ev, a change to in, and fills ev's
// actor and request id from it.
func (s *Service) record(ctx context.Context, in *Incident, ev *Event) error {
	e := s.entry(ctx, in, ev)
	if err := s.opts.Audit.Append(ctx, e); err != nil {
		return phivault.Errorf(phivault.EUNAVAILABLE, "The audit trail cannot be written; the incident was not changed.")
	}
	ev.Actor, ev.Request = e.Actor, e.RequestID
	return nil
}

// failed records that the change ev could not be stored, and returns err.
func (s *Service) failed(ctx context.Context, in *Incident, ev *Event, err error) error {
	e := s.entry(ctx, in, ev)
	e.Outcome = phivault.ErrorCode(err)
	if e.Outcome == "" || e.Outcome == "ok" {
		e.Outcome = phivault.EINTERNAL
	}
	_ = s.opts.Audit.Append(context.WithoutCancel(ctx), e) // the first entry stands either way
	var pe *phivault.Error
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("incident: store %s: %w", in.ID, err)
}

func (s *Service) entry(ctx context.Context, in *Incident, ev *Event) *phivault.AuditEntry {
	e := phivault.NewRequestEntry(ctx, "", ev.At, phivault.ActionIncident, TargetType, in.ID)
	e.TargetVersion = in.Version
	e.Compartments = vaultPatients(in.Scope.Patients)
	e.Decision = ev.Kind
	if ev.Detail != "" {
		e.Decision += ": " + ev.Detail
	}
	if e.RequestID == "" {
		e.RequestID = phivault.NewRequestID(s.opts.Rand)
	}
	return e
}

// vaultPatients returns the patients of ids that are the vault's own (not
// "system:id" of an ingested log): the compartments an entry names.
func vaultPatients(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !strings.Contains(id, ":") {
			out = append(out, id)
		}
	}
	return out
}

func (s *Service) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("incident: new id: %w", err)
	}
	return fmt.Sprintf("inc-%x", b), nil
}

func summarize(evs []*Event) string {
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

// reasonInNote ends the detail of an event whose reason is its note.
const reasonInNote = " (reason in the note)"

// sealReason seals a person's reason for the incident id; "" is nil.
func (s *Service) sealReason(id, reason string) ([]byte, error) {
	if reason == "" {
		return nil, nil
	}
	sealed, err := s.opts.Sealer.Seal(id, []byte(reason))
	if err != nil {
		return nil, fmt.Errorf("incident: seal reason: %w", err)
	}
	return sealed, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// missing returns the elements of b not in a, without duplicates.
func missing(a, b []string) []string {
	var out []string
	for _, v := range b {
		if !slices.Contains(a, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func (s Scope) size() int {
	return len(s.Users) + len(s.Clients) + len(s.Sources) + len(s.Patients)
}

// widenDetail widens s by o and describes what it added, or "".
func (s *Scope) widenDetail(o Scope) string {
	before := s.clone()
	s.widen(o)
	var parts []string
	for _, f := range []struct {
		name     string
		was, now []string
	}{
		{"users", before.Users, s.Users}, {"clients", before.Clients, s.Clients},
		{"sources", before.Sources, s.Sources}, {"patients", before.Patients, s.Patients},
	} {
		if n := len(f.now) - len(f.was); n > 0 {
			parts = append(parts, fmt.Sprintf("+%d %s", n, f.name))
		}
	}
	if !s.From.Equal(before.From) || !s.To.Equal(before.To) {
		parts = append(parts, "window "+s.From.Format(time.RFC3339)+" – "+s.To.Format(time.RFC3339))
	}
	return strings.Join(parts, ", ")
}

func (s *Scope) check() error {
	if s.size() > MaxScopeIDs {
		return phivault.Errorf(phivault.EINVALID, "An incident's scope names at most %d users, clients, sources and patients.", MaxScopeIDs)
	}
	for _, f := range []struct {
		name string
		ids  []string
	}{{"users", s.Users}, {"clients", s.Clients}, {"patients", s.Patients}} {
		if err := CheckIDs("scope."+f.name, f.ids, MaxScopeIDs); err != nil {
			return err
		}
	}
	for _, src := range s.Sources {
		if _, err := netip.ParsePrefix(src); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(src); err != nil {
			return phivault.Errorf(phivault.EINVALID, "Each of scope.sources is an IP address or a network in CIDR form.")
		}
	}
	if !s.From.IsZero() && !s.To.IsZero() && s.To.Before(s.From) {
		return phivault.Errorf(phivault.EINVALID, "The scope's window ends before it starts.")
	}
	return nil
}

// CheckIDs checks ids are short printable tokens without spaces ("" is
// allowed and ignored), at most max of them; errors name field, never a
// value.
func CheckIDs(field string, ids []string, max int) error {
	if len(ids) > max {
		return phivault.Errorf(phivault.EINVALID, "%s: at most %d.", field, max)
	}
	for _, id := range ids {
		if len(id) > maxIDLen {
			return phivault.Errorf(phivault.EINVALID, "%s: an id is longer than %d bytes.", field, maxIDLen)
		}
		for _, r := range id {
			if r <= ' ' || r == 0x7f || r == ';' || r == utf8.RuneError { // RuneError: not UTF-8
				return phivault.Errorf(phivault.EINVALID, "%s: an id holds a space, a control character or ';'.", field)
			}
		}
	}
	return nil
}

// CheckText checks free text is valid UTF-8 of at most max characters;
// the error names field. The staff reports check theirs with it too.
func CheckText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return phivault.Errorf(phivault.EINVALID, "The %s is not valid UTF-8.", field)
	}
	if utf8.RuneCountInString(s) > max {
		return phivault.Errorf(phivault.EINVALID, "The %s is longer than %d characters.", field, max)
	}
	return nil
}
