package envelope

import (
	"context"
	"errors"
	"fmt"

	"github.com/phivault/phivault"
)

// DefaultRotateBatch is how many versions RotateKey re-encrypts per
// transaction.
const DefaultRotateBatch = 100

// maxRotateRounds bounds how often RotateKey goes back for versions that
// writers stored under an old key version after it started (only possible
// with a store that runs writers concurrently, and only for writers that
// read the key before the new version existed).
const maxRotateRounds = 3

// RotateKey replaces the DEK of compartment ("" for the shared DEK) with a
// new one and re-encrypts every stored version of the compartment (all
// history) under it, online:
//
//  1. One transaction adds a new key version (phivault.KeyVersionID) next
//     to the current one. From its commit on, every write seals under it,
//     and reads open either, since each version names its key.
//  2. The versions sealed under an older key version are opened, sealed
//     again under the new one (same row, fresh nonce) and swapped in with
//     phivault.StoreTx.Reseal, a batch (Options.RotateBatch) per
//     transaction; a version that changed meanwhile is left to whoever
//     changed it.
//  3. Once no version refers to an older key version, it is deleted
//     (phivault.StoreTx.DeleteKey) and dropped from memory, so the old DEK
//     exists nowhere any more and opens nothing that is stored.
//
// RotateKey is resumable: if older key versions are still stored (a
// rotation was interrupted), it continues towards the newest one instead
// of adding another. It returns phivault.ErrShredded for a shredded
// compartment, nothing to do for a compartment without a key, and an error
// wrapping phivault.ErrIntegrity if a stored version does not open (that
// version keeps its old key; the rotation stops there). progress, if set,
// is called after each batch with the versions re-encrypted so far and the
// number that needed it when the rotation started. It returns the number of
// versions it re-encrypted.
func (s *Sealer) RotateKey(ctx context.Context, store phivault.Store, compartment string, progress func(done, total int)) (int, error) {
	base := KeyID(compartment)
	var target *phivault.WrappedKey
	var olds []*phivault.WrappedKey
	err := store.Update(ctx, func(tx phivault.StoreTx) error {
		target, olds = nil, nil
		if err := shredded(ctx, tx, compartment); err != nil {
			return err
		}
		vs, err := tx.KeyVersions(ctx, base)
		if err != nil || len(vs) == 0 {
			return err
		}
		if len(vs) == 1 {
			_, n, ok := phivault.ParseKeyVersionID(vs[0].ID)
			if !ok {
				return fmt.Errorf("envelope: rotate: malformed key id")
			}
			// A concurrent rotation may have stored this version first;
			// then both use its key.
			wk, dek, err := s.createKey(ctx, tx, phivault.KeyVersionID(base, n+1))
			clear(dek)
			if err != nil {
				return err
			}
			vs = append(vs, wk)
		}
		target, olds = vs[len(vs)-1], vs[:len(vs)-1]
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("envelope: rotate: %w", err)
	}
	if target == nil {
		return 0, nil // no key: nothing was ever sealed in the compartment
	}
	e, err := s.entry(ctx, target)
	if err != nil {
		return 0, fmt.Errorf("envelope: rotate: %w", err)
	}

	total := 0
	if err := store.View(ctx, func(tx phivault.StoreTx) error {
		total = 0
		for _, old := range olds {
			_, n, err := tx.SealedUnder(ctx, old.ID, 1)
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("envelope: rotate: count: %w", err)
	}

	done := 0
	for round := 1; ; round++ {
		for _, old := range olds {
			for {
				n, more, err := s.resealBatch(ctx, store, compartment, old.ID, e)
				done += n
				if err != nil {
					return done, err
				}
				if progress != nil && n > 0 {
					progress(done, max(total, done))
				}
				if !more {
					break
				}
			}
		}
		inUse := false
		var gone []string
		err := store.Update(ctx, func(tx phivault.StoreTx) error {
			inUse, gone = false, nil
			for _, old := range olds {
				err := tx.DeleteKey(ctx, old.ID)
				switch {
				case err == nil || errors.Is(err, phivault.ErrNotFound):
					gone = append(gone, old.ID)
				case phivault.ErrorCode(err) == phivault.ECONFLICT:
					inUse = true // sealed under it after we listed: go again
				default:
					return err
				}
			}
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("envelope: rotate: delete old key: %w", err)
		}
		for _, id := range gone {
			s.cache.kill(id) // destroyed: never cache it again
		}
		if !inUse {
			return done, nil
		}
		if round == maxRotateRounds {
			return done, errors.New("envelope: rotate: versions keep arriving under the old key; run again")
		}
	}
}

// resealBatch re-encrypts up to one batch of the versions sealed under
// oldID with e. It returns how many it replaced and whether any were left
// to look at.
func (s *Sealer) resealBatch(ctx context.Context, store phivault.Store, compartment, oldID string, e *keyEntry) (int, bool, error) {
	var olds, news []*phivault.SealedResource
	err := store.View(ctx, func(tx phivault.StoreTx) error {
		var err error
		if olds, _, err = tx.SealedUnder(ctx, oldID, s.batch); err != nil {
			return err
		}
		news = make([]*phivault.SealedResource, len(olds))
		for i, sr := range olds {
			r, err := s.Open(ctx, tx, sr)
			if err != nil {
				return fmt.Errorf("open %s/%s/%d: %w", sr.Type, sr.ID, sr.Version, err)
			}
			c := *sr
			err = s.sealWith(e, &c, r.Body)
			clear(r.Body)
			if err != nil {
				return err
			}
			news[i] = &c
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("envelope: rotate: %w", err)
	}
	if len(olds) == 0 {
		return 0, false, nil
	}
	var n, skipped int
	err = store.Update(ctx, func(tx phivault.StoreTx) error {
		n, skipped = 0, 0
		if err := shredded(ctx, tx, compartment); err != nil {
			return err
		}
		for i, sr := range olds {
			err := tx.Reseal(ctx, sr, news[i])
			switch code := phivault.ErrorCode(err); {
			case err == nil:
				n++
			case code == phivault.ECONFLICT || code == phivault.ENOTFOUND:
				skipped++ // changed since it was read: no longer under oldID
			default:
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("envelope: rotate: reseal: %w", err)
	}
	if n+skipped == 0 {
		return 0, false, errors.New("envelope: rotate: no progress")
	}
	return n, true, nil
}

// entry returns the unwrapped DEK of wk, from the cache if it came from
// exactly wk.
func (s *Sealer) entry(ctx context.Context, wk *phivault.WrappedKey) (*keyEntry, error) {
	if e := s.cache.get(wk.ID); e != nil && e.aead != nil && e.matches(wk) {
		return e, nil
	}
	return s.unwrapDEK(ctx, wk, nil, s.cache.generation())
}
