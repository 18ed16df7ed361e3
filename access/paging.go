package access

import "github.com/phivault/phivault"

// pages reads a paged list MaxCount at a time: fetch returns the page at
// offset and the total, and fn gets each page, until a short page or the
// total. Past MaxScan it stops with tooMany(what).
func (s *RecordService) pages(what string, fetch func(offset int) ([]*phivault.Resource, int, error), fn func([]*phivault.Resource) error) error {
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
