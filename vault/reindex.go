package vault

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// Reindex recomputes the blind-index tokens of every current resource of
// the types the store's migrations marked for it (see
// phivault.StoreTx.ReindexPending), after a change in what is indexed,
// and returns how many resources it retokened. It decrypts each resource
// and computes its tokens as a write does (fhir.IndexValues, then the
// Sealer's Tokens); it touches no version, ciphertext or audit trail.
//
// Each type is done newest first, ReindexPage resources per transaction,
// so that a large vault never holds one long transaction; a resource
// written meanwhile already has fresh tokens and is skipped. A type is
// taken off the pending list in the transaction of its last page: an
// interrupted Reindex starts that type over at its next run, and running
// it again when nothing is pending costs one read. Resources of shredded
// compartments keep no tokens and are skipped. Each type done is logged
// at Info with its count.
func (s *Service) Reindex(ctx context.Context) (int, error) {
	var types []string
	err := s.store.View(ctx, func(tx phivault.StoreTx) (err error) {
		types, err = tx.ReindexPending(ctx)
		return err
	})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, typ := range types {
		n, err := s.reindexType(ctx, typ)
		total += n
		if err != nil {
			return total, fmt.Errorf("reindex %s: %w", typ, err)
		}
		s.logger().Info("reindexed", "type", typ, "resources", n)
	}
	return total, nil
}

// reindexType retokens every current resource of typ, page by page, each
// page continuing strictly before the previous page's oldest time, and
// then takes typ off the pending list.
func (s *Service) reindexType(ctx context.Context, typ string) (int, error) {
	total := 0
	var before time.Time // zero: no bound
	for {
		var (
			n    int
			next time.Time
			more bool
		)
		err := s.store.Update(ctx, func(tx phivault.StoreTx) error {
			var err error
			if n, next, more, err = s.reindexPage(ctx, tx, typ, before); err != nil || more {
				return err
			}
			return tx.ReindexDone(ctx, typ)
		})
		if err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
		before = next
	}
}

// reindexPage retokens the newest ReindexPage current resources of typ
// last updated before before (at any time if zero). It returns how many
// it retokened and, if more may remain, the time to continue before.
//
// Resources written at the same instant as the page's oldest (the entries
// of one Bundle share it) all join the page, however many there are, so
// that the next page can start strictly before that instant: paging by
// time, unlike by offset, skips nothing when resources are written or
// deleted between pages.
func (s *Service) reindexPage(ctx context.Context, tx phivault.StoreTx, typ string, before time.Time) (n int, next time.Time, more bool, err error) {
	f := phivault.ResourceFilter{Types: []string{typ}, To: before, Limit: s.ReindexPage}
	if f.Limit <= 0 {
		f.Limit = DefaultReindexPage
	}
	page, err := tx.Find(ctx, f)
	if err != nil {
		return 0, time.Time{}, false, err
	}
	if more = len(page) == f.Limit; more {
		next = page[len(page)-1].LastUpdated
		same, err := tx.Find(ctx, phivault.ResourceFilter{Types: []string{typ}, From: next, To: next.Add(time.Microsecond)})
		if err != nil {
			return 0, time.Time{}, false, err
		}
		i := slices.IndexFunc(page, func(sr *phivault.SealedResource) bool { return sr.LastUpdated.Equal(next) })
		page = append(page[:i], same...)
	}
	// Decrypt and index the whole page first, and compute its tokens in
	// one call, which reads the index key once.
	type indexed struct {
		sr     *phivault.SealedResource
		lo, hi int // its values in values
	}
	var (
		items  []indexed
		values []phivault.IndexValue
	)
	for _, sr := range page {
		res, err := s.openSealed(ctx, tx, sr)
		if isShredded(err) {
			continue // shredded by another process since its key was cached
		} else if err != nil {
			return 0, time.Time{}, false, err
		}
		obj, err := fhir.Decode(res.Body)
		if err != nil {
			return 0, time.Time{}, false, err
		}
		lo := len(values)
		values = append(values, fhir.IndexValues(typ, obj)...)
		items = append(items, indexed{sr, lo, len(values)})
	}
	tokens, err := s.sealer.Tokens(ctx, tx, values)
	if err != nil {
		return 0, time.Time{}, false, err
	}
	for _, it := range items {
		err := tx.Retoken(ctx, typ, it.sr.ID, it.sr.Version, tokens[it.lo:it.hi:it.hi])
		if phivault.ErrorCode(err) == phivault.ECONFLICT {
			continue // written, deleted or shredded since it was read: nothing stale to fix
		} else if err != nil {
			return 0, time.Time{}, false, err
		}
		n++
	}
	return n, next, more, nil
}
