package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault"
)

// ErrUnavailable is returned instead of data when the audit log cannot be
// written: no record leaves the server without its entry.
var ErrUnavailable = &phivault.Error{Code: phivault.EUNAVAILABLE, Message: "The audit log cannot be written; no data was returned."}

// RecordService records every call of the RecordService it wraps in an
// AuditLog, allowed or failed. Reads, searches, history, $everything and
// Bundles are recorded, with the ids of everything returned, before their
// data is returned; writes are recorded after the write, with the new
// version. If the entry cannot be appended, the call returns ErrUnavailable
// and no data (a write that succeeded stays written).
//
// It is safe for concurrent use by multiple goroutines.
type RecordService struct {
	next phivault.RecordService
	log  phivault.AuditLog
	// Now stamps entries. Default time.Now.
	Now func() time.Time
	// Detail, if set, raises the detail of some actors' search entries
	// (an incident's raise-detail): see Detailer.
	Detail Detailer
}

// Detailer says whose searches an incident put under raised detail, and
// gives their search values as keyed tokens.
type Detailer interface {
	// SearchValues returns what a search entry of actor at t records as
	// phivault.AuditEntry.SearchValues for q: nil unless actor is under
	// raised detail at t, else one "name=TOKEN" per value, never a value.
	// An error means the tokens cannot be made: the search then answers
	// ErrUnavailable, like a search whose entry cannot be written.
	SearchValues(ctx context.Context, actor string, t time.Time, q *phivault.Query) ([]string, error)
}

var _ phivault.RecordService = (*RecordService)(nil)

// NewRecordService returns a RecordService recording calls of next in log.
func NewRecordService(next phivault.RecordService, log phivault.AuditLog) *RecordService {
	return &RecordService{next: next, log: log, Now: time.Now}
}

// entry starts an entry from the request in ctx.
func (s *RecordService) entry(ctx context.Context, action, typ, id string) *phivault.AuditEntry {
	e := &phivault.AuditEntry{Time: s.Now().UTC(), Action: action, TargetType: typ, TargetID: id}
	if info, ok := phivault.RequestInfoFromContext(ctx); ok {
		e.RequestID, e.Actor, e.Roles, e.Client, e.Source, e.Purpose =
			info.ID, info.Actor, info.Roles, info.Client, info.Source, info.Purpose
	}
	return e
}

// record sets the outcome and appends e. It returns ErrUnavailable if the
// append fails, else err.
func (s *RecordService) record(ctx context.Context, e *phivault.AuditEntry, err error) error {
	e.Outcome = "ok"
	if err != nil {
		e.Outcome = phivault.ErrorCode(err)
	}
	if info, ok := phivault.RequestInfoFromContext(ctx); ok {
		for _, c := range info.Note.Compartments() {
			addCompartment(e, c) // a refused attempt on a patient's record
		}
		if d, glass := info.Note.Decision(); glass {
			e.Decision = "break-glass " + d
		} else {
			e.Decision = d
		}
	}
	// The entry must be written even if the caller went away: the data
	// may already be on its way.
	if aerr := s.log.Append(context.WithoutCancel(ctx), e); aerr != nil {
		return ErrUnavailable
	}
	return err
}

// returned adds resources to e's returned ids and compartments.
func returned(e *phivault.AuditEntry, rs ...*phivault.Resource) {
	for _, r := range rs {
		if r == nil {
			continue
		}
		e.Returned = append(e.Returned, r.Ref()+"/_history/"+strconv.FormatInt(r.Version, 10))
		addCompartment(e, r.Compartment)
	}
}

func addCompartment(e *phivault.AuditEntry, c string) {
	if c == "" {
		return
	}
	for _, have := range e.Compartments {
		if have == c {
			return
		}
	}
	e.Compartments = append(e.Compartments, c)
}

func (s *RecordService) Create(ctx context.Context, typ string, body []byte, opts phivault.CreateOptions) (*phivault.Resource, bool, error) {
	res, created, err := s.next.Create(ctx, typ, body, opts)
	e := s.entry(ctx, phivault.ActionCreate, typ, "")
	if res != nil {
		e.TargetID, e.TargetVersion = res.ID, res.Version
		returned(e, res)
	}
	if err := s.record(ctx, e, err); err != nil {
		return nil, false, err
	}
	return res, created, nil
}

func (s *RecordService) Read(ctx context.Context, typ, id string) (*phivault.Resource, error) {
	res, err := s.next.Read(ctx, typ, id)
	e := s.entry(ctx, phivault.ActionRead, typ, id)
	if res != nil {
		e.TargetVersion = res.Version
		returned(e, res)
	}
	if err := s.record(ctx, e, err); err != nil {
		return nil, err
	}
	return res, nil
}

func (s *RecordService) VRead(ctx context.Context, typ, id string, version int64) (*phivault.Resource, error) {
	res, err := s.next.VRead(ctx, typ, id, version)
	e := s.entry(ctx, phivault.ActionVRead, typ, id)
	e.TargetVersion = version
	returned(e, res)
	if err := s.record(ctx, e, err); err != nil {
		return nil, err
	}
	return res, nil
}

func (s *RecordService) Update(ctx context.Context, typ, id string, body []byte, opts phivault.UpdateOptions) (*phivault.Resource, bool, error) {
	res, created, err := s.next.Update(ctx, typ, id, body, opts)
	e := s.entry(ctx, phivault.ActionUpdate, typ, id)
	if res != nil {
		e.TargetVersion = res.Version
		returned(e, res)
	}
	if err := s.record(ctx, e, err); err != nil {
		return nil, false, err
	}
	return res, created, nil
}

func (s *RecordService) Delete(ctx context.Context, typ, id string) error {
	err := s.next.Delete(ctx, typ, id)
	return s.record(ctx, s.entry(ctx, phivault.ActionDelete, typ, id), err)
}

func (s *RecordService) History(ctx context.Context, q phivault.HistoryQuery) (*phivault.HistoryResult, error) {
	res, err := s.next.History(ctx, q)
	e := s.entry(ctx, phivault.ActionHistory, q.Type, q.ID)
	if res != nil {
		returned(e, res.Versions...)
	}
	if err := s.record(ctx, e, err); err != nil {
		return nil, err
	}
	return res, nil
}

func (s *RecordService) Search(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
	res, err := s.next.Search(ctx, q)
	e := s.entry(ctx, phivault.ActionSearch, q.Type, "")
	for _, p := range q.Params {
		name := p.Name
		if p.Modifier != "" {
			name += ":" + p.Modifier
		}
		e.SearchParams = append(e.SearchParams, name)
	}
	for _, inc := range q.Include {
		e.SearchParams = append(e.SearchParams, "_include="+inc.Source+":"+inc.Param)
	}
	if s.Detail != nil {
		vals, derr := s.Detail.SearchValues(ctx, e.Actor, e.Time, q)
		if derr != nil {
			res, err = nil, ErrUnavailable
		}
		e.SearchValues = vals
	}
	if res != nil {
		returned(e, res.Matches...)
		returned(e, res.Included...)
	}
	if err := s.record(ctx, e, err); err != nil {
		return nil, err
	}
	return res, nil
}

func (s *RecordService) Everything(ctx context.Context, patientID string, count, offset int) (*phivault.SearchResult, error) {
	res, err := s.next.Everything(ctx, patientID, count, offset)
	e := s.entry(ctx, phivault.ActionEverything, "Patient", patientID)
	addCompartment(e, patientID)
	if res != nil {
		returned(e, res.Matches...)
		returned(e, res.Included...)
	}
	if err := s.record(ctx, e, err); err != nil {
		return nil, err
	}
	return res, nil
}

func (s *RecordService) Bundle(ctx context.Context, body []byte, base string) (*phivault.BundleResult, error) {
	res, err := s.next.Bundle(ctx, body, base)
	e := s.entry(ctx, phivault.ActionBundle, "", "")
	if res != nil {
		e.Returned = bundleRefs(res.Body, base)
	}
	if err := s.record(ctx, e, err); err != nil {
		return nil, err
	}
	return res, nil
}

// bundleRefs lists the resource versions a response Bundle names: each
// entry's resource (type, id, version) or else its response.location. It
// reads ids only and ignores anything it does not understand.
func bundleRefs(body []byte, base string) []string {
	var b struct {
		Entry []struct {
			Resource *struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
				Meta         struct {
					VersionID string `json:"versionId"`
				} `json:"meta"`
			} `json:"resource"`
			Response *struct {
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &b) != nil {
		return []string{"unparsed-bundle"}
	}
	var refs []string
	for _, en := range b.Entry {
		switch {
		case en.Resource != nil && en.Resource.ResourceType != "" && en.Resource.ID != "":
			ref := en.Resource.ResourceType + "/" + en.Resource.ID
			if en.Resource.Meta.VersionID != "" {
				ref += "/_history/" + en.Resource.Meta.VersionID
			}
			refs = append(refs, ref)
		case en.Response != nil && en.Response.Location != "":
			loc := strings.TrimPrefix(en.Response.Location, strings.TrimSuffix(base, "/")+"/")
			refs = append(refs, loc)
		}
	}
	return refs
}

// Shredder crypto-shreds a patient compartment (the admin API's operation).
type Shredder interface {
	Shred(ctx context.Context, patientID string) (time.Time, error)
}

type shredder struct {
	next Shredder
	rs   *RecordService
}

// NewShredder returns a Shredder that records every shred, done or failed,
// in log after it runs. A shred cannot be undone: if its entry cannot be
// written, the shred stands and the call returns ErrUnavailable. A shred
// whose erasure of the old key bytes is pending (phivault.ErrErasePending)
// is done: its entry says "ok", and the call returns next's time and error.
func NewShredder(next Shredder, log phivault.AuditLog) Shredder {
	return &shredder{next: next, rs: NewRecordService(nil, log)}
}

func (s *shredder) Shred(ctx context.Context, patientID string) (time.Time, error) {
	at, err := s.next.Shred(ctx, patientID)
	e := s.rs.entry(ctx, phivault.ActionShred, "Patient", patientID)
	addCompartment(e, patientID)
	failed := err
	if errors.Is(err, phivault.ErrErasePending) {
		failed = nil
	}
	if rerr := s.rs.record(ctx, e, failed); rerr != nil {
		return time.Time{}, rerr
	}
	return at, err
}
