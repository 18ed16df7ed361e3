package envelope

import (
	"context"
	"errors"
	"fmt"

	"github.com/phivault/phivault"
)

// DetailKeyID names the key of raised-detail audit tokens: the keyed
// tokens of the search values of a user under investigation, which the
// audit trail records instead of the values (which may be PHI). It is a
// key of its own, not the blind-index key, so that a token in the trail
// matches no token in the store's index. Like every key it is stored
// wrapped by the keyring.
const DetailKeyID = "system/audit-detail"

// DetailTokens returns the raised-detail tokens of values, in the same
// order: HMAC-SHA256(k_param, value) truncated to 16 bytes, with k_param
// = HKDF-SHA256(detail key, info = "phivault blind index v1" ‖ 0x00 ‖
// param), the blind index's construction under DetailKeyID. It creates
// the key in store if it does not exist. An investigator tests "did this
// user search for X" by computing the token of X here again.
func (s *Sealer) DetailTokens(ctx context.Context, store phivault.Store, values []phivault.IndexValue) ([]phivault.Token, error) {
	if len(values) == 0 {
		return nil, nil
	}
	var ik *indexKey
	err := store.View(ctx, func(tx phivault.StoreTx) error {
		if _, err := tx.Key(ctx, DetailKeyID); err != nil {
			return err
		}
		var err error
		ik, err = s.hmacKey(ctx, tx, DetailKeyID)
		return err
	})
	if errors.Is(err, phivault.ErrNotFound) {
		err = store.Update(ctx, func(tx phivault.StoreTx) error {
			var err error
			ik, err = s.hmacKey(ctx, tx, DetailKeyID)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("envelope: key %s: %w", DetailKeyID, err)
	}
	tokens, err := ik.tokens(values)
	if errors.Is(err, errIndexKeyWiped) { // evicted meanwhile: fetch it again, once
		err = store.View(ctx, func(tx phivault.StoreTx) error {
			var err error
			ik, err = s.hmacKey(ctx, tx, DetailKeyID)
			return err
		})
		if err != nil {
			return nil, err
		}
		tokens, err = ik.tokens(values)
	}
	return tokens, err
}
