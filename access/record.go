package access

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/policy"
	"github.com/phivault/phivault/smart"
)

// Read returns the resource if the caller may read it.
func (s *RecordService) Read(ctx context.Context, typ, id string) (*phivault.Resource, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.next.Read(ctx, typ, id)
	if err != nil {
		return nil, s.hideGone(ctx, c, typ, id, err)
	}
	return s.readable(ctx, c, policy.Read, res)
}

// VRead returns the version if the caller may read it.
func (s *RecordService) VRead(ctx context.Context, typ, id string, version int64) (*phivault.Resource, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.next.VRead(ctx, typ, id, version)
	if err != nil {
		return nil, s.hideGone(ctx, c, typ, id, err)
	}
	return s.readable(ctx, c, policy.Read, res)
}

// readable authorizes action on res and returns it, or the hiding error.
func (s *RecordService) readable(ctx context.Context, c *caller, action policy.Action, res *phivault.Resource) (*phivault.Resource, error) {
	t, err := targetOf(c, res)
	if err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, c, action, t); err != nil {
		return nil, err
	}
	return res, nil
}

// hideGone turns EGONE (a deleted resource) into ENOTFOUND unless the
// caller may see the deletion: that is decided on the newest version, the
// tombstone, in its compartment.
func (s *RecordService) hideGone(ctx context.Context, c *caller, typ, id string, err error) error {
	if phivault.ErrorCode(err) != phivault.EGONE {
		return err
	}
	h, herr := s.next.History(ctx, phivault.HistoryQuery{Type: typ, ID: id, Count: 1})
	if herr != nil || len(h.Versions) == 0 {
		return phivault.ErrNotFound
	}
	t, terr := targetOf(c, h.Versions[0])
	if terr != nil {
		return terr
	}
	if _, aerr := s.authorize(ctx, c, policy.Read, t); aerr != nil {
		return aerr
	}
	return err
}

// tally sums the decisions of a call over many resources for the audit
// note: the permitting policies and how many resources were withheld.
type tally struct {
	permits []string
	denied  int
	glass   bool
}

func (t *tally) add(d policy.Decision) { t.addN(d, 1) }

// addN adds a decision that held for n resources.
func (t *tally) addN(d policy.Decision, n int) {
	if !d.Allow {
		t.denied += n
		return
	}
	for _, p := range d.Policies {
		if !slices.Contains(t.permits, p) {
			t.permits = append(t.permits, p)
		}
	}
	t.glass = t.glass || usedGrant(d)
}

func (t *tally) note(c *caller) {
	if c.note == nil {
		return
	}
	msg := "permit: " + strings.Join(t.permits, ",")
	if len(t.permits) == 0 {
		msg = "permit: nothing visible"
	}
	if t.denied > 0 {
		msg += "; withheld " + strconv.Itoa(t.denied)
	}
	c.note.SetDecision(msg)
	if t.glass {
		c.note.MarkBreakGlass()
	}
}

// filter keeps the resources the caller may see, in order.
func (s *RecordService) filter(ctx context.Context, c *caller, action policy.Action, rs []*phivault.Resource, tl *tally) ([]*phivault.Resource, error) {
	out := rs[:0:0]
	for _, r := range rs {
		t, err := targetOf(c, r)
		if err != nil {
			return nil, err
		}
		d, err := s.decide(ctx, c, action, t)
		if err != nil {
			return nil, err
		}
		tl.add(d)
		if d.Allow {
			out = append(out, r)
		}
	}
	return out, nil
}

// checkScope refuses at once an interaction the caller's SMART scopes can
// never allow on typ: the scopes are the client's own, so saying so leaks
// nothing.
func checkScope(c *caller, in smart.Interactions, typ string) error {
	if !c.p.SMART || smart.MayGrant(c.scopes, smart.ContextOf(c.p.Kind), in, typ) {
		return nil
	}
	if c.note != nil {
		c.note.SetDecision("deny: smart-scope")
	}
	return phivault.Errorf(phivault.EFORBIDDEN, "The token's scopes do not allow %s on %s.", in, typ)
}

// Search returns the page of matches the caller may see; Total counts
// only those.
func (s *RecordService) Search(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkScope(c, smart.Search, q.Type); err != nil {
		return nil, err
	}
	if b, err := s.bound(ctx, c, q.Type); err != nil {
		return nil, err
	} else if b != nil {
		qq := *q
		qq.Compartments = b
		q = &qq
	}
	var tl tally
	if q.Summary == "count" {
		if n, ok, err := s.countByCompartment(ctx, c, q, &tl); err != nil {
			return nil, err
		} else if ok {
			tl.note(c)
			return &phivault.SearchResult{Total: n}, nil
		}
	}
	_, visible, err := s.gather(ctx, c, policy.Search, q.Type, s.searchPages(ctx, q), &tl)
	if err != nil {
		return nil, err
	}
	out := &phivault.SearchResult{Total: len(visible)}
	if q.Summary == "count" {
		tl.note(c)
		return out, nil
	}
	out.Matches = window(visible, q.Offset, q.Count)
	if len(q.Include) > 0 && len(out.Matches) > 0 {
		ids := make([]string, len(out.Matches))
		for i, m := range out.Matches {
			ids[i] = m.ID
		}
		inc, err := s.next.Search(ctx, &phivault.Query{Type: q.Type, Count: len(ids), Include: q.Include,
			Params: []phivault.QueryParam{{Name: "_id", Values: ids}}})
		if err != nil {
			return nil, err
		}
		if out.Included, err = s.filter(ctx, c, policy.Search, inc.Included, &tl); err != nil {
			return nil, err
		}
	}
	tl.note(c)
	return out, nil
}

var errPatientTypeHistory = phivault.Errorf(phivault.EFORBIDDEN,
	"Type-level history is not open to patients; read the history of one resource (Type/id/_history), or search with _lastUpdated.")

// Everything returns the patient's compartment as far as the caller may
// see it. If the caller may not see the Patient, it is hidden like a read.
func (s *RecordService) Everything(ctx context.Context, patientID string, count, offset int) (*phivault.SearchResult, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	pat, err := s.next.Read(ctx, "Patient", patientID)
	if err != nil {
		return nil, s.hideGone(ctx, c, "Patient", patientID, err)
	}
	if _, err := s.readable(ctx, c, policy.Read, pat); err != nil {
		return nil, err
	}
	var tl tally
	_, visible, err := s.gather(ctx, c, policy.Read, "compartment", func(offset int) ([]*phivault.Resource, int, error) {
		res, err := s.next.Everything(ctx, patientID, MaxCount, offset)
		if err != nil {
			return nil, 0, err
		}
		return res.Matches, res.Total, nil
	}, &tl)
	if err != nil {
		return nil, err
	}
	tl.note(c)
	return &phivault.SearchResult{Total: len(visible), Matches: window(visible, offset, count)}, nil
}

// History returns the versions the caller may see. An instance history
// with no visible version is hidden like a read.
func (s *RecordService) History(ctx context.Context, q phivault.HistoryQuery) (*phivault.HistoryResult, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkScope(c, smart.Read, q.Type); err != nil {
		return nil, err
	}
	if c.p.Kind == phivault.PrincipalPatient && fhir.IsCompartmentType(q.Type) && q.ID == "" {
		// Type-level history spans every compartment, and the store
		// cannot bound it to one yet; it is not open to patients.
		return nil, errPatientTypeHistory
	}
	qq := q
	qq.Count = MaxCount
	var tl tally
	all, visible, err := s.gather(ctx, c, policy.History, q.Type, func(offset int) ([]*phivault.Resource, int, error) {
		qq.Offset = offset
		h, err := s.next.History(ctx, qq)
		if err != nil {
			return nil, 0, err
		}
		return h.Versions, h.Total, nil
	}, &tl)
	if err != nil {
		return nil, err
	}
	if q.ID != "" && len(visible) == 0 && len(all) > 0 {
		// Hide it like a read; the newest version decides what to say.
		t, err := targetOf(c, all[0])
		if err != nil {
			return nil, err
		}
		_, err = s.authorize(ctx, c, policy.History, t)
		if err == nil {
			err = phivault.ErrNotFound
		}
		return nil, err
	}
	tl.note(c)
	return &phivault.HistoryResult{Total: len(visible), Versions: window(visible, q.Offset, q.Count)}, nil
}

// Create passes the create on with the caller's guard, which decides it
// on the stored form. A conditional create matches only resources the
// caller may see.
func (s *RecordService) Create(ctx context.Context, typ string, body []byte, opts phivault.CreateOptions) (*phivault.Resource, bool, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, false, err
	}
	ctx, g := s.guarded(ctx, c)
	defer g.done()
	return s.next.Create(ctx, typ, body, opts)
}

// authorizeExisting decides action on the stored version of a resource:
// one the caller may not even read is hidden, one it may read but not
// change is refused.
func (s *RecordService) authorizeExisting(ctx context.Context, c *caller, action policy.Action, old *phivault.Resource) error {
	t, err := targetOf(c, old)
	if err != nil {
		return err
	}
	d, err := s.decide(ctx, c, action, t)
	if err != nil {
		return err
	}
	record(c, d)
	if d.Allow {
		return nil
	}
	c.note.AddCompartment(t.compartment)
	rd, err := s.decide(ctx, c, policy.Read, t)
	if err != nil {
		return err
	}
	if !rd.Allow {
		return hidden(rd)
	}
	return phivault.Errorf(phivault.EFORBIDDEN, "You may not %s this %s.", action, old.Type)
}

// Update passes the update on with the caller's guard, which decides it
// on the stored version and the new one.
func (s *RecordService) Update(ctx context.Context, typ, id string, body []byte, opts phivault.UpdateOptions) (*phivault.Resource, bool, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, false, err
	}
	ctx, g := s.guarded(ctx, c)
	defer g.done()
	return s.next.Update(ctx, typ, id, body, opts)
}

// Delete passes the deletion on with the caller's guard, which decides it
// on the stored version. Deleting a deleted resource the caller may not
// see is hidden like a read.
func (s *RecordService) Delete(ctx context.Context, typ, id string) error {
	c, err := s.caller(ctx)
	if err != nil {
		return err
	}
	ctx, g := s.guarded(ctx, c)
	defer g.done()
	if err := s.next.Delete(ctx, typ, id); err != nil {
		return s.hideGone(ctx, c, typ, id, err)
	}
	return nil
}
