package vault

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Search runs q and returns one page of matches plus _include'd resources.
func (s *Service) Search(ctx context.Context, q *phivault.Query) (*phivault.SearchResult, error) {
	if !fhir.IsResourceType(q.Type) {
		return nil, phivault.Errorf(phivault.ENOTFOUND, "Resource type %q is not supported.", safeName(q.Type))
	}
	var out *phivault.SearchResult
	err := s.store.View(ctx, func(tx phivault.StoreTx) (err error) {
		out, err = s.search(ctx, tx, q)
		return err
	})
	return out, err
}

// plan is a search split into what the store answers (filter) and what is
// evaluated after decryption (post).
type plan struct {
	filter phivault.ResourceFilter
	post   []phivault.QueryParam
	none   bool // a condition can match nothing (e.g. disjoint _id sets)
}

func (s *Service) plan(ctx context.Context, tx phivault.StoreTx, q *phivault.Query) (*plan, error) {
	p := &plan{filter: phivault.ResourceFilter{Types: []string{q.Type}, Ascending: q.Sorted && q.SortAsc, Compartments: q.Compartments}}
	// Every equality parameter's values go to the Sealer in one call (each
	// call reads the index key's row); group i of the filter is then
	// tokens[groups[i].lo:groups[i].hi].
	var (
		values []phivault.IndexValue
		groups []struct{ lo, hi int }
	)
	for _, qp := range q.Params {
		switch qp.Name {
		case "_id":
			p.restrictIDs(qp.Values)
		case "_lastUpdated":
			if err := p.restrictLastUpdated(qp); err != nil {
				return nil, err
			}
		default:
			vs, ok := fhir.EqualityValues(q.Type, qp)
			if !ok {
				p.post = append(p.post, qp)
				continue
			}
			g := struct{ lo, hi int }{len(values), len(values) + len(vs)}
			values = append(values, vs...)
			if sp, ok := fhir.LookupParam(q.Type, qp.Name); ok && sp.Type == "reference" {
				// References (patient, subject, encounter) usually narrow
				// most; the store drives the search from the first group.
				groups = slices.Insert(groups, 0, g)
			} else {
				groups = append(groups, g)
			}
		}
	}
	if len(groups) == 0 {
		return p, nil
	}
	tokens, err := s.sealer.Tokens(ctx, tx, values)
	if err != nil {
		return nil, err
	}
	p.filter.Tokens = make([][]phivault.Token, len(groups))
	for i, g := range groups {
		p.filter.Tokens[i] = tokens[g.lo:g.hi:g.hi]
	}
	return p, nil
}

// restrictIDs intersects the filter's id set with ids (values are ORed).
func (p *plan) restrictIDs(ids []string) {
	var valid []string
	for _, id := range ids {
		if fhir.IsID(id) {
			valid = append(valid, id)
		}
	}
	if p.filter.IDs == nil {
		p.filter.IDs = valid
	} else {
		p.filter.IDs = slices.DeleteFunc(p.filter.IDs, func(id string) bool { return !slices.Contains(valid, id) })
	}
	if len(p.filter.IDs) == 0 {
		p.none = true
	}
}

// restrictLastUpdated narrows the filter's [From, To) range; _lastUpdated is
// stored in the clear, so the store evaluates it.
func (p *plan) restrictLastUpdated(qp phivault.QueryParam) error {
	if len(qp.Values) != 1 {
		return phivault.Errorf(phivault.EINVALID, "_lastUpdated takes one value per parameter; repeat the parameter to combine.")
	}
	prefix, from, to, err := fhir.DateRange(qp.Values[0])
	if err != nil {
		return phivault.Errorf(phivault.EINVALID, "_lastUpdated has an invalid date.")
	}
	lo, hi := time.Time{}, time.Time{}
	switch prefix {
	case "", "eq":
		lo, hi = from, to
	case "gt", "sa":
		lo = to
	case "ge":
		lo = from
	case "lt", "eb":
		hi = from
	case "le":
		hi = to
	default:
		return phivault.Errorf(phivault.EINVALID, "_lastUpdated supports the prefixes eq, gt, ge, lt, le, sa and eb.")
	}
	if !lo.IsZero() && (p.filter.From.IsZero() || lo.After(p.filter.From)) {
		p.filter.From = lo
	}
	if !hi.IsZero() && (p.filter.To.IsZero() || hi.Before(p.filter.To)) {
		p.filter.To = hi
	}
	if !p.filter.From.IsZero() && !p.filter.To.IsZero() && !p.filter.From.Before(p.filter.To) {
		p.none = true
	}
	return nil
}

// bounded reports whether the store-side filter limits the candidates
// enough to decrypt them for post-filtering.
func (p *plan) bounded() bool {
	return len(p.filter.Tokens) > 0 || len(p.filter.IDs) > 0 || len(p.filter.Compartments) > 0
}

func (s *Service) search(ctx context.Context, tx phivault.StoreTx, q *phivault.Query) (*phivault.SearchResult, error) {
	p, err := s.plan(ctx, tx, q)
	if err != nil {
		return nil, err
	}
	out := &phivault.SearchResult{}
	if p.none {
		return out, nil
	}
	limit := pageSize(q.Count)
	var objs []fhir.Object
	if len(p.post) == 0 {
		if q.Summary == "count" {
			out.Total, err = tx.Count(ctx, p.filter)
			return out, err
		}
		f := p.filter
		f.Offset, f.Limit = q.Offset, limit
		sealed, err := tx.Find(ctx, f)
		if err != nil {
			return nil, err
		}
		// A short page that starts at 0 holds every match: no need to
		// count them with a second query.
		if out.Total = len(sealed); q.Offset > 0 || len(sealed) == limit {
			if out.Total, err = tx.Count(ctx, p.filter); err != nil {
				return nil, err
			}
		}
		for _, sr := range sealed {
			res, err := s.openSealed(ctx, tx, sr)
			if isShredded(err) {
				continue // shredded by another process since its key was cached
			} else if err != nil {
				return nil, err
			}
			out.Matches = append(out.Matches, res)
		}
	} else {
		if out.Matches, objs, err = s.postFilter(ctx, tx, q, p); err != nil {
			return nil, err
		}
		out.Total = len(out.Matches)
		if q.Summary == "count" {
			out.Matches = nil
			return out, nil
		}
		lo, hi := min(q.Offset, len(out.Matches)), min(q.Offset+limit, len(out.Matches))
		out.Matches, objs = out.Matches[lo:hi], objs[lo:hi]
	}
	if len(q.Include) > 0 {
		if out.Included, err = s.include(ctx, tx, q, out.Matches, objs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// postFilter decrypts the bounded candidate set and keeps what matches the
// parameters the store could not evaluate. It returns the matches in order
// and their decoded bodies.
func (s *Service) postFilter(ctx context.Context, tx phivault.StoreTx, q *phivault.Query, p *plan) ([]*phivault.Resource, []fhir.Object, error) {
	if !p.bounded() {
		return nil, nil, refuseUnbounded(q.Type, p.post)
	}
	n, err := tx.Count(ctx, p.filter)
	if err != nil {
		return nil, nil, err
	}
	if n > s.MaxCandidates {
		// The message does not say how many: the count would include
		// records the caller may not see.
		return nil, nil, phivault.Errorf(phivault.EINVALID,
			"This search would decrypt more than %d records to evaluate %s. Narrow it with %s.",
			s.MaxCandidates, paramNames(p.post), suggest(q.Type))
	}
	sealed, err := tx.Find(ctx, p.filter)
	if err != nil {
		return nil, nil, err
	}
	var matches []*phivault.Resource
	var objs []fhir.Object
	for _, sr := range sealed {
		res, err := s.openSealed(ctx, tx, sr)
		if isShredded(err) {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		obj, err := fhir.Decode(res.Body)
		if err != nil {
			return nil, nil, err
		}
		if matchAll(q.Type, p.post, obj) {
			matches = append(matches, res)
			objs = append(objs, obj)
		}
	}
	return matches, objs, nil
}

func matchAll(typ string, params []phivault.QueryParam, obj fhir.Object) bool {
	for _, qp := range params {
		if !fhir.Match(typ, qp, obj) {
			return false
		}
	}
	return true
}

// refuseUnbounded explains why a search cannot run and what to add.
func refuseUnbounded(typ string, post []phivault.QueryParam) error {
	return &phivault.Error{
		Code: phivault.EINVALID,
		Message: "Records are encrypted: " + paramNames(post) + " can only be evaluated on a narrowed set. " +
			"Add " + suggest(typ) + ".",
		Issues: []phivault.Issue{{
			Severity:    "error",
			Code:        "too-costly",
			Diagnostics: "Add " + suggest(typ) + " to narrow the search.",
		}},
	}
}

func paramNames(params []phivault.QueryParam) string {
	var names []string
	for _, p := range params {
		if !slices.Contains(names, p.Name) {
			names = append(names, p.Name)
		}
	}
	return strings.Join(names, ", ")
}

// suggest names the equality parameters that narrow a search of typ.
func suggest(typ string) string {
	switch {
	case typ == "Patient":
		return "identifier, family, given, name, or birthdate with a full date (YYYY-MM-DD)"
	case fhir.IsCompartmentType(typ):
		if _, ok := fhir.LookupParam(typ, "patient"); ok {
			return "patient (a Patient id)"
		}
		return "subject (a Patient reference)"
	}
	var names []string
	for _, sp := range fhir.SearchParams(typ) {
		if sp.Type == "token" || sp.Type == "reference" {
			names = append(names, sp.Name)
		}
	}
	if len(names) == 0 {
		return "_id"
	}
	return strings.Join(names, ", ")
}

// include returns the targets of the _include parameters of q, read from the
// matches, without duplicates or resources already among the matches.
func (s *Service) include(ctx context.Context, tx phivault.StoreTx, q *phivault.Query, matches []*phivault.Resource, objs []fhir.Object) ([]*phivault.Resource, error) {
	seen := make(map[string]bool, len(matches))
	for _, m := range matches {
		seen[m.Ref()] = true
	}
	var out []*phivault.Resource
	for i, m := range matches {
		var obj fhir.Object
		if objs != nil {
			obj = objs[i]
		} else {
			var err error
			if obj, err = fhir.Decode(m.Body); err != nil {
				return nil, err
			}
		}
		values := fhir.IndexValues(q.Type, obj)
		for _, inc := range q.Include {
			if inc.Source != q.Type {
				continue
			}
			param := q.Type + "." + inc.Param
			for _, v := range values {
				if v.Param != param || seen[v.Value] {
					continue
				}
				typ, id, ok := strings.Cut(v.Value, "/")
				if !ok || strings.Contains(id, "/") || (inc.Target != "" && typ != inc.Target) || !fhir.IsID(id) {
					continue
				}
				seen[v.Value] = true
				sr, err := tx.Current(ctx, typ, id)
				if isNotFound(err) || (err == nil && sr.Deleted) {
					continue
				} else if err != nil {
					return nil, err
				}
				res, err := s.openSealed(ctx, tx, sr)
				if isShredded(err) {
					continue // erased records are not included
				} else if err != nil {
					return nil, err
				}
				out = append(out, res)
			}
		}
	}
	return out, nil
}

// Everything returns the Patient and every resource in its compartment.
func (s *Service) Everything(ctx context.Context, patientID string, count, offset int) (*phivault.SearchResult, error) {
	if !fhir.IsID(patientID) {
		return nil, phivault.ErrNotFound
	}
	out := &phivault.SearchResult{}
	err := s.store.View(ctx, func(tx phivault.StoreTx) error {
		sr, err := tx.Current(ctx, "Patient", patientID)
		if err != nil {
			return err
		}
		if err := checkShredded(ctx, tx, patientID); err != nil {
			return err
		}
		if sr.Deleted {
			return errGone
		}
		f := phivault.ResourceFilter{Compartments: []string{patientID}, Ascending: true}
		if out.Total, err = tx.Count(ctx, f); err != nil {
			return err
		}
		f.Offset, f.Limit = offset, pageSize(count)
		sealed, err := tx.Find(ctx, f)
		if err != nil {
			return err
		}
		for _, sr := range sealed {
			res, err := s.openSealed(ctx, tx, sr)
			if err != nil {
				return err
			}
			out.Matches = append(out.Matches, res)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// conditionalQuery parses the query string of If-None-Exist or a
// conditional reference.
func conditionalQuery(typ, rawQuery string) (*phivault.Query, error) {
	v, err := url.ParseQuery(rawQuery)
	if err != nil || len(v) == 0 {
		return nil, phivault.Errorf(phivault.EINVALID, "The conditional query is not a valid search.")
	}
	return fhir.ParseQuery(typ, v, false)
}

// matchOne returns the single current resource matching q among those g
// lets the caller see (all of them without a guard), nil if none, or
// EPRECONDITION if several do. Hidden matches count for nothing, so the
// answer never depends on what the caller may not see. The search is
// bounded to the caller's compartments when it has some (g.Bound), and at
// most MaxCount candidates are decided: matching runs inside the write
// transaction, and its cost must not grow with what the caller cannot see.
func (s *Service) matchOne(ctx context.Context, tx phivault.StoreTx, g phivault.WriteGuard, q *phivault.Query) (*phivault.Resource, error) {
	q2 := *q
	q2.Include, q2.Summary, q2.Offset, q2.Count = nil, "", 0, 2
	if g != nil {
		b, err := g.Bound(ctx, q.Type)
		if err != nil {
			return nil, err
		}
		q2.Count, q2.Compartments = MaxCount, b
	}
	res, err := s.search(ctx, tx, &q2)
	if err != nil {
		return nil, err
	}
	if g != nil && res.Total > MaxCount {
		return nil, errTooManyMatches
	}
	var found *phivault.Resource
	for _, m := range res.Matches {
		if h, err := hide(ctx, g, m); err != nil {
			return nil, err
		} else if h != nil {
			continue
		}
		if found != nil {
			return nil, errManyMatches
		}
		found = m
	}
	if g == nil && res.Total > 1 {
		return nil, errManyMatches
	}
	return found, nil
}

var errTooManyMatches = phivault.Errorf(phivault.EPRECONDITION, "The conditional query matches too many resources to choose among; narrow it (for example with an identifier).")

var errManyMatches = phivault.Errorf(phivault.EPRECONDITION, "The conditional query matches more than one resource; it must match at most one.")
