package access

import (
	"context"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/policy"
)

// fetchFunc returns the page of a paged list at offset, and the total.
type fetchFunc func(offset int) ([]*phivault.Resource, int, error)

// pages reads a paged list MaxCount at a time: fn gets each page fetch
// returns, until a short page or the total. Past MaxScan it stops with
// tooMany(what).
func (s *RecordService) pages(what string, fetch fetchFunc, fn func([]*phivault.Resource) error) error {
	for offset := 0; ; {
		rs, total, err := fetch(offset)
		if err != nil {
			return err
		}
		if err := fn(rs); err != nil {
			return err
		}
		offset += len(rs)
		if len(rs) < MaxCount || offset >= total {
			return nil
		}
		if offset >= s.MaxScan {
			return tooMany(what, s.MaxScan)
		}
	}
}

// window returns the page of all at offset, of pageSize(count) at most.
func window[T any](all []T, offset, count int) []T {
	lo := min(offset, len(all))
	hi := min(lo+pageSize(count), len(all))
	return all[lo:hi]
}

// collect appends a page to *all, for pages.
func collect(all *[]*phivault.Resource) func([]*phivault.Resource) error {
	return func(rs []*phivault.Resource) error {
		*all = append(*all, rs...)
		return nil
	}
}

// gather reads every page of fetch and returns all of them and, in order,
// those the caller may see for action, adding the decisions to tl.
func (s *RecordService) gather(ctx context.Context, c *caller, action policy.Action, what string, fetch fetchFunc, tl *tally) (all, visible []*phivault.Resource, err error) {
	if err := s.pages(what, fetch, collect(&all)); err != nil {
		return nil, nil, err
	}
	visible, err = s.filter(ctx, c, action, all, tl)
	if err != nil {
		return nil, nil, err
	}
	return all, visible, nil
}
