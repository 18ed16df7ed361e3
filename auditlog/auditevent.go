package auditlog

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
)

// IndexStorage is a Storage that also keeps a search index of its entries,
// so that the trail can be read by patient, actor, action and time without
// scanning it. The index is derived from the entries: it is filled after
// the fact (see [CatchUpIndex]) and never trusted for content, since the
// views decode the entries themselves and check them again. The tree does
// not cover it, so a row deleted would hide an access: [VerifyIndex]
// rebuilds the index from the entries and reports any difference.
type IndexStorage interface {
	Storage
	// AuditIndexSize returns the number of entries indexed: one more than
	// the highest index with an index row, or 0.
	AuditIndexSize(ctx context.Context) (int64, error)
	// IndexAudit stores rows, ignoring any already stored (the same
	// (Index, Patient) pair), so that concurrent catch-ups are harmless.
	IndexAudit(ctx context.Context, rows []IndexRow) error
	// SearchAudit returns, in ascending order, the indexes of entries that
	// match q, at most q.Limit of them after skipping q.Offset, and the
	// number of matching entries in all.
	SearchAudit(ctx context.Context, q Query) (indexes []int64, total int64, err error)
	// ReadAuditIndex returns the rows indexing the entries with indexes in
	// [start, end), in any order, for VerifyIndex.
	ReadAuditIndex(ctx context.Context, start, end int64) ([]IndexRow, error)
}

// IndexRow is one row of the audit index: an entry and one patient whose
// compartment it touched ("" if none). An entry touching several patients
// has one row for each.
type IndexRow struct {
	Index   int64
	Patient string // patient (compartment) id, or ""
	Actor   string
	Action  string    // one of the phivault Action constants
	Time    time.Time // the entry's time
	// Purposes are the entry's purpose-of-use codes (v3-ActReason), as
	// the AuditEvent's purposeOfEvent shows them (see Purposes), or nil.
	Purposes []string
}

// Query selects entries from the audit index. Empty fields match anything.
type Query struct {
	Patient string
	Actor   string
	Actions []string // any of these phivault actions
	// Purposes selects entries with any of these purpose-of-use codes
	// (see the function Purposes), e.g. "BTG".
	Purposes []string
	Since    time.Time // entries at or after Since
	Before   time.Time // entries strictly before Before
	Offset   int
	Limit    int // at most this many; 0 means none, only the total
}

// IndexRows returns the index rows of the entry at index.
func IndexRows(index int64, e *phivault.AuditEntry) []IndexRow {
	row := IndexRow{Index: index, Actor: e.Actor, Action: e.Action, Time: e.Time.UTC(), Purposes: Purposes(e)}
	if len(e.Compartments) == 0 {
		return []IndexRow{row}
	}
	rows := make([]IndexRow, 0, len(e.Compartments))
	seen := make(map[string]bool, len(e.Compartments))
	for _, p := range e.Compartments {
		if seen[p] {
			continue
		}
		seen[p] = true
		row.Patient = p
		rows = append(rows, row)
	}
	return rows
}

// PurposeBreakGlass is the v3-ActReason code of break-the-glass access.
const PurposeBreakGlass = "BTG"

// Purposes returns the purpose-of-use codes of an entry, as its AuditEvent
// shows them in purposeOfEvent: the purpose the caller stated, then BTG if
// the access rested on a break-the-glass grant (if not stated already).
func Purposes(e *phivault.AuditEntry) []string {
	var out []string
	if e.Purpose != "" {
		out = append(out, e.Purpose)
	}
	if _, breakGlass := decisionPolicies(e.Decision); breakGlass && e.Purpose != PurposeBreakGlass {
		out = append(out, PurposeBreakGlass)
	}
	return out
}

// JoinPurposes returns purposes in the form the stores keep them in one
// column: each code followed and preceded by a space (" ETREAT BTG "), so
// that the column contains " CODE " exactly when the entry has CODE; ""
// for none.
func JoinPurposes(purposes []string) string {
	if len(purposes) == 0 {
		return ""
	}
	return " " + strings.Join(purposes, " ") + " "
}

// SplitPurposes reverses JoinPurposes.
func SplitPurposes(column string) []string {
	return strings.Fields(column)
}

// ScanIndexRows reads every row of rows, a query of the audit index whose
// columns are, in order, the entry's index, patient, actor, action, time
// in Unix nanoseconds and purposes as JoinPurposes writes them. It does not
// close rows. Stores use it to implement ReadAuditIndex; rows may be a
// *sql.Rows or a pgx.Rows.
func ScanIndexRows(rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}) ([]IndexRow, error) {
	var out []IndexRow
	for rows.Next() {
		var (
			r       IndexRow
			ns      int64
			purpose string
		)
		if err := rows.Scan(&r.Index, &r.Patient, &r.Actor, &r.Action, &ns, &purpose); err != nil {
			return nil, err
		}
		r.Time, r.Purposes = time.Unix(0, ns).UTC(), SplitPurposes(purpose)
		out = append(out, r)
	}
	return out, rows.Err()
}

// catchUpBatch bounds the entries read and indexed by one step of
// CatchUpIndex.
const catchUpBatch = 1024

// CatchUpIndex indexes the entries of s that are not indexed yet, a batch
// at a time, and returns the log's size. An entry that does not decode is
// indexed with no patient and no actor, so that it is found only by an
// unfiltered search (and Verify reports it).
func CatchUpIndex(ctx context.Context, s IndexStorage) (int64, error) {
	size, err := s.AuditSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("auditlog: size: %w", err)
	}
	from, err := s.AuditIndexSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("auditlog: index size: %w", err)
	}
	for from < size {
		end := min(from+catchUpBatch, size)
		data, err := s.ReadAuditEntries(ctx, from, end)
		if err != nil {
			return 0, fmt.Errorf("auditlog: read entries: %w", err)
		}
		var rows []IndexRow
		for i, d := range data {
			idx := from + int64(i)
			e, err := Decode(d)
			if err != nil {
				rows = append(rows, IndexRow{Index: idx, Action: "unknown"})
				continue
			}
			rows = append(rows, IndexRows(idx, e)...)
		}
		if err := s.IndexAudit(ctx, rows); err != nil {
			return 0, fmt.Errorf("auditlog: index entries: %w", err)
		}
		from = end
	}
	return size, nil
}

// matches reports whether e meets q's filters (not its paging): the views
// check every entry the index names again, since the index is not covered
// by the tree.
func (q Query) matches(e *phivault.AuditEntry) bool {
	if q.Patient != "" && !slices.Contains(e.Compartments, q.Patient) {
		return false
	}
	if q.Actor != "" && e.Actor != q.Actor {
		return false
	}
	if len(q.Actions) > 0 && !slices.Contains(q.Actions, e.Action) {
		return false
	}
	if len(q.Purposes) > 0 && !slices.ContainsFunc(Purposes(e), func(p string) bool { return slices.Contains(q.Purposes, p) }) {
		return false
	}
	if !q.Since.IsZero() && e.Time.Before(q.Since) {
		return false
	}
	if !q.Before.IsZero() && !e.Time.Before(q.Before) {
		return false
	}
	return true
}

// FHIR code systems used by the AuditEvent view.
const (
	systemEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	systemInteraction = "http://hl7.org/fhir/restful-interaction"
	systemEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	systemObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	systemSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	systemActReason   = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	balpProfile       = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
)

// fhirAction maps a phivault action to the AuditEvent action code
// (C, R, U, D or E) and the restful-interaction subtype.
func fhirAction(e *phivault.AuditEntry) (action, subtype string) {
	switch e.Action {
	case phivault.ActionCreate:
		return "C", "create"
	case phivault.ActionRead:
		return "R", "read"
	case phivault.ActionVRead:
		return "R", "vread"
	case phivault.ActionSearch:
		if e.TargetType == "" {
			return "E", "search-system"
		}
		return "E", "search-type"
	case phivault.ActionHistory:
		if e.TargetID != "" {
			return "R", "history-instance"
		}
		return "R", "history-type"
	case phivault.ActionUpdate:
		return "U", "update"
	case phivault.ActionDelete, phivault.ActionShred:
		return "D", "delete"
	case phivault.ActionEverything:
		return "E", "operation"
	case phivault.ActionBundle:
		return "E", "transaction"
	}
	return "E", "operation"
}

// ActionsForCode returns the phivault actions whose AuditEvent action code
// is code (C, R, U, D or E), or an error for another code.
func ActionsForCode(code string) ([]string, error) {
	all := []string{
		phivault.ActionRead, phivault.ActionVRead, phivault.ActionSearch, phivault.ActionHistory,
		phivault.ActionCreate, phivault.ActionUpdate, phivault.ActionDelete, phivault.ActionEverything,
		phivault.ActionBundle, phivault.ActionShred, phivault.ActionKeyRotate,
		phivault.ActionLogin, phivault.ActionTokenIssue, phivault.ActionTokenRevoke, phivault.ActionBreakGlass,
		phivault.ActionReview, phivault.ActionAccountChange, phivault.ActionPolicyChange, phivault.ActionExport,
		phivault.ActionKeyCompromised, phivault.ActionSeal, phivault.ActionUnseal, phivault.ActionAuditRecover,
		phivault.ActionIncident, phivault.ActionAuditGap, phivault.ActionBackup,
	}
	var out []string
	for _, a := range all {
		// Search maps to E (BALP Query), whatever its target.
		if c, _ := fhirAction(&phivault.AuditEntry{Action: a, TargetType: "x"}); c == code {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, phivault.Errorf(phivault.EINVALID, "The action must be one of C, R, U, D or E.")
	}
	return out, nil
}

// fhirOutcome maps an entry's outcome to the AuditEvent outcome code: 0
// success, 4 minor failure (the request was refused or wrong), 8 serious
// failure (the server could not serve it), 12 major failure (stored data
// failed its integrity check).
func fhirOutcome(outcome string) string {
	switch outcome {
	case "ok":
		return "0"
	case phivault.EUNAVAILABLE, phivault.EINTERNAL:
		return "8"
	case phivault.EINTEGRITY:
		return "12"
	}
	return "4"
}

// balpProfileName names the IHE BALP profile an entry conforms to.
func balpProfileName(e *phivault.AuditEntry) string {
	switch e.Action {
	case phivault.ActionCreate:
		return "IHE.BasicAudit.Create"
	case phivault.ActionRead, phivault.ActionVRead, phivault.ActionHistory:
		return "IHE.BasicAudit.Read"
	case phivault.ActionUpdate:
		return "IHE.BasicAudit.Update"
	case phivault.ActionDelete, phivault.ActionShred:
		return "IHE.BasicAudit.Delete"
	case phivault.ActionSearch, phivault.ActionEverything:
		return "IHE.BasicAudit.Query"
	}
	return ""
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type reference struct {
	Reference  string `json:"reference,omitempty"`
	Identifier *struct {
		Value string `json:"value"`
	} `json:"identifier,omitempty"`
	Display string `json:"display,omitempty"`
}

func identifierRef(v string) *reference {
	r := &reference{}
	r.Identifier = &struct {
		Value string `json:"value"`
	}{v}
	return r
}

type codeableConcept struct {
	Coding []coding `json:"coding"`
}

// AuditEvent is the FHIR R4 AuditEvent view of one entry, in the shape of
// IHE Basic Audit Log Patterns (BALP). It holds the entry's ids only.
type AuditEvent struct {
	ResourceType   string            `json:"resourceType"`
	ID             string            `json:"id"`
	Meta           *eventMeta        `json:"meta,omitempty"`
	Type           coding            `json:"type"`
	Subtype        []coding          `json:"subtype"`
	Action         string            `json:"action"`
	Recorded       string            `json:"recorded"`
	Outcome        string            `json:"outcome"`
	OutcomeDesc    string            `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []codeableConcept `json:"purposeOfEvent,omitempty"`
	Agent          []eventAgent      `json:"agent"`
	Source         eventSource       `json:"source"`
	Entity         []eventEntity     `json:"entity,omitempty"`
}

type eventMeta struct {
	Profile []string `json:"profile"`
}

type eventAgent struct {
	Type      *codeableConcept  `json:"type,omitempty"`
	Role      []codeableConcept `json:"role,omitempty"`
	Who       *reference        `json:"who,omitempty"`
	Requestor bool              `json:"requestor"`
	Policy    []string          `json:"policy,omitempty"`
	Network   *struct {
		Address string `json:"address"`
		Type    string `json:"type"`
	} `json:"network,omitempty"`
}

type eventSource struct {
	Observer reference `json:"observer"`
	Type     []coding  `json:"type"`
}

type eventEntity struct {
	What   *reference `json:"what,omitempty"`
	Type   *coding    `json:"type,omitempty"`
	Role   *coding    `json:"role,omitempty"`
	Detail []struct {
		Type        string `json:"type"`
		ValueString string `json:"valueString"`
	} `json:"detail,omitempty"`
}

// PolicyURIPrefix prefixes the ids of the Cedar policies that decided a
// request, in AuditEvent.agent.policy.
const PolicyURIPrefix = "urn:phivault:policy:"

// decisionPolicies returns the policy URIs named by an entry's decision,
// such as "permit: physician-care-team; withheld 2", and whether access
// rested on a break-the-glass grant.
func decisionPolicies(decision string) (uris []string, breakGlass bool) {
	decision, breakGlass = strings.CutPrefix(decision, "break-glass ")
	_, ids, _ := strings.Cut(decision, ": ")
	ids, _, _ = strings.Cut(ids, ";")
	for _, id := range strings.Split(ids, ",") {
		if id = strings.TrimSpace(id); id != "" && !strings.ContainsFunc(id, notIDRune) {
			uris = append(uris, PolicyURIPrefix+id)
		}
	}
	return uris, breakGlass
}

func notIDRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

// Observer names the server in the source of every AuditEvent.
const Observer = "phivault"

// NewAuditEvent returns the AuditEvent view of the entry at index.
func NewAuditEvent(index int64, e *phivault.AuditEntry) *AuditEvent {
	action, subtype := fhirAction(e)
	ev := &AuditEvent{
		ResourceType: "AuditEvent",
		ID:           strconv.FormatInt(index, 10),
		Type:         coding{System: systemEventType, Code: "rest", Display: "RESTful Operation"},
		Subtype:      []coding{{System: systemInteraction, Code: subtype}},
		Action:       action,
		Recorded:     e.Time.UTC().Format(time.RFC3339Nano),
		Outcome:      fhirOutcome(e.Outcome),
		Source: eventSource{
			Observer: reference{Display: Observer},
			Type:     []coding{{System: systemSourceType, Code: "4", Display: "Application Server"}},
		},
	}
	if p := balpProfileName(e); p != "" {
		ev.Meta = &eventMeta{Profile: []string{balpProfile + p}}
	}
	if e.Outcome != "ok" {
		ev.OutcomeDesc = e.Outcome
	}
	if e.Purpose != "" {
		ev.PurposeOfEvent = []codeableConcept{{Coding: []coding{{System: systemActReason, Code: e.Purpose}}}}
	}
	user := eventAgent{
		Type:      &codeableConcept{Coding: []coding{{System: "http://dicom.nema.org/resources/ontology/DCM", Code: "110153", Display: "Source Role ID"}}},
		Requestor: true,
	}
	if e.Actor != "" {
		user.Who = identifierRef(e.Actor)
	}
	for _, r := range e.Roles {
		user.Role = append(user.Role, codeableConcept{Coding: []coding{{Code: r}}})
	}
	var breakGlass bool
	user.Policy, breakGlass = decisionPolicies(e.Decision)
	if breakGlass && e.Purpose != PurposeBreakGlass {
		ev.PurposeOfEvent = append(ev.PurposeOfEvent, codeableConcept{Coding: []coding{{System: systemActReason, Code: PurposeBreakGlass, Display: "break the glass"}}})
	}
	if e.Source != "" {
		user.Network = &struct {
			Address string `json:"address"`
			Type    string `json:"type"`
		}{e.Source, networkType(e.Source)}
	}
	ev.Agent = append(ev.Agent, user)
	if e.Client != "" {
		ev.Agent = append(ev.Agent, eventAgent{
			Type: &codeableConcept{Coding: []coding{{System: "http://dicom.nema.org/resources/ontology/DCM", Code: "110150", Display: "Application"}}},
			Who:  identifierRef(e.Client),
		})
	}
	ev.Agent = append(ev.Agent, eventAgent{
		Type: &codeableConcept{Coding: []coding{{System: "http://dicom.nema.org/resources/ontology/DCM", Code: "110152", Display: "Destination Role ID"}}},
		Who:  &reference{Display: Observer},
	})
	for _, p := range e.Compartments {
		ev.Entity = append(ev.Entity, eventEntity{
			What: &reference{Reference: "Patient/" + p},
			Type: &coding{System: systemEntityType, Code: "1", Display: "Person"},
			Role: &coding{System: systemObjectRole, Code: "1", Display: "Patient"},
		})
	}
	target := ""
	if e.TargetType != "" && e.TargetID != "" {
		target = e.TargetType + "/" + e.TargetID
		if e.TargetVersion > 0 {
			target += "/_history/" + strconv.FormatInt(e.TargetVersion, 10)
		}
	}
	if target != "" && !slices.Contains(e.Returned, target) {
		ev.Entity = append(ev.Entity, domainEntity(target))
	}
	for _, r := range e.Returned {
		ev.Entity = append(ev.Entity, domainEntity(r))
	}
	if e.Action == phivault.ActionSearch {
		q := eventEntity{
			Type: &coding{System: systemEntityType, Code: "2", Display: "System Object"},
			Role: &coding{System: systemObjectRole, Code: "24", Display: "Query"},
		}
		// Parameter names only: the trail never holds search values
		// (under raised detail, only their keyed tokens).
		q.Detail = append(q.Detail, struct {
			Type        string `json:"type"`
			ValueString string `json:"valueString"`
		}{"search-parameters", strings.Join(e.SearchParams, ",")})
		if len(e.SearchValues) > 0 {
			q.Detail = append(q.Detail, struct {
				Type        string `json:"type"`
				ValueString string `json:"valueString"`
			}{"search-value-tokens", strings.Join(e.SearchValues, ",")})
		}
		if e.TargetType != "" {
			q.Detail = append(q.Detail, struct {
				Type        string `json:"type"`
				ValueString string `json:"valueString"`
			}{"resource-type", e.TargetType})
		}
		ev.Entity = append(ev.Entity, q)
	}
	return ev
}

func domainEntity(ref string) eventEntity {
	return eventEntity{
		What: &reference{Reference: ref},
		Type: &coding{System: systemEntityType, Code: "2", Display: "System Object"},
		Role: &coding{System: systemObjectRole, Code: "4", Display: "Domain Resource"},
	}
}

// networkType is the AuditEvent network type: 2 for an IP address, 1 for
// a machine name.
func networkType(addr string) string {
	for _, c := range addr {
		if c == ':' || c == '.' || (c >= '0' && c <= '9') {
			continue
		}
		return "1"
	}
	return "2"
}

// ParseDate parses one FHIR date search value (with an optional prefix eq,
// ge, gt, le, lt) into q.Since and q.Before. Dates without a time cover the
// whole day, month or year in UTC.
func (q *Query) ParseDate(value string) error {
	prefix := "eq"
	if len(value) > 2 && value[0] >= 'a' && value[0] <= 'z' {
		prefix, value = value[:2], value[2:]
	}
	lo, hi, err := dateRange(value)
	if err != nil {
		return phivault.Errorf(phivault.EINVALID, "The date must be a FHIR date or dateTime, with an optional prefix eq, ge, gt, le or lt.")
	}
	later := func(t time.Time) {
		if q.Since.IsZero() || t.After(q.Since) {
			q.Since = t
		}
	}
	earlier := func(t time.Time) {
		if q.Before.IsZero() || t.Before(q.Before) {
			q.Before = t
		}
	}
	switch prefix {
	case "eq":
		later(lo)
		earlier(hi)
	case "ge":
		later(lo)
	case "gt":
		later(hi)
	case "le":
		earlier(hi)
	case "lt":
		earlier(lo)
	default:
		return phivault.Errorf(phivault.EINVALID, "The date prefix must be eq, ge, gt, le or lt.")
	}
	return nil
}

// dateRange returns the interval [lo, hi) a FHIR date or dateTime covers.
func dateRange(v string) (lo, hi time.Time, err error) {
	for _, f := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
	} {
		if t, err := time.Parse(f.layout, v); err == nil {
			return t.UTC(), f.next(t).UTC(), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return lo, hi, err
	}
	return t.UTC(), t.Add(time.Nanosecond).UTC(), nil
}
