package incident

import (
	"context"
	"fmt"
	"iter"
	"net/netip"
	"slices"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// Selection chooses the trail entries of an incident: the one reading of
// the trail by scope that the breach report and the evidence archive
// share.
type Selection struct {
	// Scope selects the entries made by its users, clients or sources
	// within its window (an empty window side is open). A scope of nobody
	// selects nothing by its actors, never everything.
	Scope Scope
	// Patients also selects the entries within the window whose
	// compartments include one of Scope.Patients, whoever made them.
	Patients bool
	// Requests also selects the entries with these request ids, whatever
	// their time: the entries behind an incident's timeline.
	Requests []string
}

// matcher returns the predicate of sel, its networks parsed once.
func (sel *Selection) matcher() func(*phivault.AuditEntry) bool {
	s := sel.Scope
	nets := prefixes(s.Sources)
	requests := make(map[string]bool, len(sel.Requests))
	for _, r := range sel.Requests {
		if r != "" {
			requests[r] = true
		}
	}
	var patients map[string]bool
	if sel.Patients && len(s.Patients) > 0 {
		patients = make(map[string]bool, len(s.Patients))
		for _, p := range s.Patients {
			patients[p] = true
		}
	}
	return func(e *phivault.AuditEntry) bool {
		if e.RequestID != "" && requests[e.RequestID] {
			return true
		}
		if (!s.From.IsZero() && e.Time.Before(s.From)) || (!s.To.IsZero() && e.Time.After(s.To)) {
			return false
		}
		if s.covers(e, nets) {
			return true
		}
		return patients != nil && slices.ContainsFunc(e.Compartments, func(c string) bool { return patients[c] })
	}
}

// Select yields the entries of trail's first size that sel selects, with
// their indexes, in order, reading trailChunk entries at a time and
// yielding a chunk's entries before reading the next. A read error ends
// the sequence; err then returns it.
func Select(ctx context.Context, trail detect.Trail, size int64, sel Selection) (entries iter.Seq2[int64, *phivault.AuditEntry], err func() error) {
	var readErr error
	match := sel.matcher()
	entries = func(yield func(int64, *phivault.AuditEntry) bool) {
		for start := int64(0); start < size; start += trailChunk {
			es, err := trail.Entries(ctx, start, min(start+trailChunk, size))
			if err != nil {
				readErr = fmt.Errorf("incident: read the trail: %w", err)
				return
			}
			for i, e := range es {
				if e != nil && match(e) && !yield(start+int64(i), e) {
					return
				}
			}
		}
	}
	return entries, func() error { return readErr }
}

// prefixes reads sources as networks; an address is its own /32 or /128.
func prefixes(sources []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range sources {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out
}
