package envelope

import (
	"context"
	"errors"
	"fmt"

	"github.com/phivault/phivault"
)

// DefaultRewrapBatch is how many keys Rewrap replaces per transaction.
const DefaultRewrapBatch = 500

// RewrapOptions configures Rewrap. The zero value is valid.
type RewrapOptions struct {
	// Batch is how many keys one transaction replaces. Zero means
	// DefaultRewrapBatch.
	Batch int
	// Progress, if set, is called after each batch with the number of keys
	// rewrapped so far and the number that needed it when Rewrap started.
	Progress func(done, total int)
}

// Rewrap rewraps every stored key (DEKs and the index key) that is not
// wrapped under keys' current KEK: it unwraps each under its old KEK, wraps
// it under the current one, and replaces the stored row only if it is still
// the one read (phivault.StoreTx.ReplaceKey), a batch per transaction. The
// plaintext keys do not change, so nothing sealed needs re-encrypting, and
// reads and writes go on throughout. A key that changed or vanished
// meanwhile (a concurrent shred) is skipped.
//
// Rewrap is idempotent and resumable: run again after a crash, it continues
// with whatever is still under an old KEK. It returns the number of keys it
// rewrapped. The current KEK is the one keys.WrapKey names; a keyring that
// changes its current KEK during Rewrap leaves keys for a later run.
func Rewrap(ctx context.Context, store phivault.Store, keys phivault.Keyring, opts RewrapOptions) (int, error) {
	batch := opts.Batch
	if batch <= 0 {
		batch = DefaultRewrapBatch
	}
	current, err := currentKEK(ctx, keys)
	if err != nil {
		return 0, err
	}
	total := 0
	if err := store.View(ctx, func(tx phivault.StoreTx) error {
		counts, err := tx.KeyCounts(ctx)
		if err != nil {
			return err
		}
		total = 0
		for id, n := range counts {
			if id != current {
				total += n
			}
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("envelope: rewrap: count: %w", err)
	}
	done, after := 0, ""
	for {
		var old []*phivault.WrappedKey
		if err := store.View(ctx, func(tx phivault.StoreTx) (err error) {
			old, err = tx.Keys(ctx, phivault.KeyFilter{After: after, ExceptKEK: current, Limit: batch})
			return err
		}); err != nil {
			return done, fmt.Errorf("envelope: rewrap: list: %w", err)
		}
		if len(old) == 0 {
			return done, nil
		}
		after = old[len(old)-1].ID
		repl := make([]*phivault.WrappedKey, len(old))
		for i, k := range old {
			if repl[i], err = rewrapOne(ctx, keys, k, current); err != nil {
				return done, err
			}
		}
		var n int
		err := store.Update(ctx, func(tx phivault.StoreTx) error {
			n = 0
			for i, k := range old {
				err := tx.ReplaceKey(ctx, k, repl[i])
				switch code := phivault.ErrorCode(err); {
				case err == nil:
					n++
				case code == phivault.ECONFLICT || code == phivault.ENOTFOUND:
					// Changed or shredded since it was read: leave it.
				default:
					return err
				}
			}
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("envelope: rewrap: replace: %w", err)
		}
		done += n
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
}

// rewrapOne wraps the plaintext of k under the current KEK.
func rewrapOne(ctx context.Context, keys phivault.Keyring, k *phivault.WrappedKey, current phivault.KeyID) (*phivault.WrappedKey, error) {
	dek, err := keys.UnwrapKey(ctx, k.KEKID, k.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("envelope: rewrap: unwrap key %s: %w", k.ID, err)
	}
	defer clear(dek)
	kek, wrapped, err := keys.WrapKey(ctx, dek)
	if err != nil {
		return nil, fmt.Errorf("envelope: rewrap: wrap key %s: %w", k.ID, err)
	}
	if kek != current {
		return nil, errors.New("envelope: rewrap: the keyring's current kek changed; run again")
	}
	return &phivault.WrappedKey{ID: k.ID, KEKID: kek, Wrapped: wrapped, Created: k.Created}, nil
}

// currentKEK returns the KEK id that keys wraps under now, found by wrapping
// a throwaway key.
func currentKEK(ctx context.Context, keys phivault.Keyring) (phivault.KeyID, error) {
	probe := make([]byte, KeySize)
	id, _, err := keys.WrapKey(ctx, probe)
	if err != nil {
		return "", fmt.Errorf("envelope: rewrap: current kek: %w", err)
	}
	return id, nil
}
