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
// wrapped under keys' current KEK, or is wrapped under it but not bound to
// its id (a key stored before wraps were bound, see phivault.Keyring): it
// unwraps each under its old KEK, wraps it under the current one bound to
// its id, and replaces the stored row only if it is still the one read
// (phivault.StoreTx.ReplaceKey), a batch per transaction. The plaintext
// keys do not change, so nothing sealed needs re-encrypting, and reads and
// writes go on throughout. A key that changed or vanished meanwhile (a
// concurrent shred) is skipped.
//
// Rewrap is idempotent and resumable: run again after a crash, it continues
// with whatever is still under an old KEK or unbound. It returns the number
// of keys it rewrapped. The current KEK is the one keys.WrapKey names; a
// keyring that changes its current KEK during Rewrap leaves keys for a later
// run. Progress counts the keys under other KEKs as the total; unbound keys
// under the current KEK, rewrapped last, raise it as they are met. An
// unbound key under the current KEK that fails its integrity check (forged,
// or refused by a KEK that no longer accepts unbound wraps) is left as it
// is, as it never opens; any other failure stops Rewrap.
func Rewrap(ctx context.Context, store phivault.Store, keys phivault.Keyring, opts RewrapOptions) (int, error) {
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
	done, err := rewrapWhere(ctx, store, keys, current, phivault.KeyFilter{ExceptKEK: current}, 0, total, opts)
	if err != nil {
		return done, err
	}
	return rewrapWhere(ctx, store, keys, current, phivault.KeyFilter{KEK: current, Unbound: true}, done, total, opts)
}

// An UnboundRefuser is a keyring that records, per KEK and in itself rather
// than in the store, whether UnwrapKey still accepts unbound wraps (name
// "", made before wraps were bound to key names), and can stop accepting
// them for good. The keyring package's PKCS#11 and KMS keyrings are; the
// file keyring is with its passphrase (keyring.Reloading.RefuseUnbound).
type UnboundRefuser interface {
	phivault.Keyring
	// AcceptsUnbound returns the KEKs under which UnwrapKey still unwraps
	// unbound wraps.
	AcceptsUnbound(ctx context.Context) ([]phivault.KeyID, error)
	// RefuseUnbound makes UnwrapKey refuse unbound wraps under KEKs ids
	// from now on. It MUST NOT return before the keyring has recorded
	// that durably where writers of the store cannot undo it.
	RefuseUnbound(ctx context.Context, ids []phivault.KeyID) error
}

// EndUnbound ends the acceptance of unbound wraps: for each KEK that keys
// still accepts them under, it rewraps the stored keys unbound under that
// KEK bound to their ids under the current KEK, as Rewrap does, and then
// makes keys refuse unbound wraps under it. An unbound key that fails its
// integrity check is left as it is, as it never opens; any other failure
// stops EndUnbound before that KEK is refused, so a later run resumes.
//
// Once a KEK refuses unbound wraps, an unbound key row under it (say a
// wrap from an old backup, copied into another key's row by someone who
// can write the store) fails to unwrap, whatever the row's Bound says;
// keys stored unbound under it after the rebind (only a version before
// binding writes them) are lost the same way. The server runs EndUnbound
// at start and with every KEK rotation. It returns the number of keys it
// rewrapped.
func EndUnbound(ctx context.Context, store phivault.Store, keys UnboundRefuser, opts RewrapOptions) (int, error) {
	ids, err := keys.AcceptsUnbound(ctx)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	current, err := currentKEK(ctx, keys)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, id := range ids {
		done, err = rewrapWhere(ctx, store, keys, current, phivault.KeyFilter{KEK: id, Unbound: true}, done, 0, opts)
		if err != nil {
			return done, err
		}
		if err := keys.RefuseUnbound(ctx, []phivault.KeyID{id}); err != nil {
			return done, fmt.Errorf("envelope: refuse unbound wraps under %s: %w", id, err)
		}
	}
	return done, nil
}

// Bind rewraps, under keys' current KEK and bound to their ids, the stored
// keys wrapped under that KEK before wraps were bound, like the last step
// of Rewrap, and leaves keys under other KEKs alone. The server runs it at
// start for a KMS keyring, whose switch to another key waits for keys
// rotate. It returns the number of keys it rewrapped.
func Bind(ctx context.Context, store phivault.Store, keys phivault.Keyring, opts RewrapOptions) (int, error) {
	current, err := currentKEK(ctx, keys)
	if err != nil {
		return 0, err
	}
	return rewrapWhere(ctx, store, keys, current, phivault.KeyFilter{KEK: current, Unbound: true}, 0, 0, opts)
}

// rewrapWhere rewraps the keys that f selects (f.After and f.Limit are
// set here) under current, counting on from done. If f selects unbound
// keys, one that fails its integrity check is skipped.
func rewrapWhere(ctx context.Context, store phivault.Store, keys phivault.Keyring, current phivault.KeyID, f phivault.KeyFilter, done, total int, opts RewrapOptions) (int, error) {
	batch := opts.Batch
	if batch <= 0 {
		batch = DefaultRewrapBatch
	}
	f.After, f.Limit = "", batch
	for {
		var old []*phivault.WrappedKey
		if err := store.View(ctx, func(tx phivault.StoreTx) (err error) {
			old, err = tx.Keys(ctx, f)
			return err
		}); err != nil {
			return done, fmt.Errorf("envelope: rewrap: list: %w", err)
		}
		if len(old) == 0 {
			return done, nil
		}
		f.After = old[len(old)-1].ID
		repl := make([]*phivault.WrappedKey, len(old))
		for i, k := range old {
			var err error
			repl[i], err = rewrapOne(ctx, keys, k, current)
			if f.Unbound && phivault.ErrorCode(err) == phivault.EINTEGRITY {
				continue // forged or refused: it never opens, rewrapped or not
			} else if err != nil {
				return done, err
			}
		}
		var n int
		err := store.Update(ctx, func(tx phivault.StoreTx) error {
			n = 0
			for i, k := range old {
				if repl[i] == nil {
					continue
				}
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
			opts.Progress(done, max(total, done))
		}
	}
}

// rewrapOne wraps the plaintext of k under the current KEK, bound to k.ID.
func rewrapOne(ctx context.Context, keys phivault.Keyring, k *phivault.WrappedKey, current phivault.KeyID) (*phivault.WrappedKey, error) {
	dek, err := keys.UnwrapKey(ctx, k.KEKID, wrapName(k), k.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("envelope: rewrap: unwrap key %s: %w", k.ID, err)
	}
	defer clear(dek)
	kek, wrapped, err := keys.WrapKey(ctx, k.ID, dek)
	if err != nil {
		return nil, fmt.Errorf("envelope: rewrap: wrap key %s: %w", k.ID, err)
	}
	if kek != current {
		return nil, errors.New("envelope: rewrap: the keyring's current kek changed; run again")
	}
	return &phivault.WrappedKey{ID: k.ID, KEKID: kek, Wrapped: wrapped, Created: k.Created, Bound: true}, nil
}

// currentKEK returns the KEK id that keys wraps under now, found by wrapping
// a throwaway key.
func currentKEK(ctx context.Context, keys phivault.Keyring) (phivault.KeyID, error) {
	probe := make([]byte, KeySize)
	id, _, err := keys.WrapKey(ctx, "probe", probe)
	if err != nil {
		return "", fmt.Errorf("envelope: rewrap: current kek: %w", err)
	}
	return id, nil
}
