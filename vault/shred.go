package vault

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// shredder is implemented by Sealers that cache unwrapped keys and must drop
// a compartment's key when it is shredded (envelope.Sealer does).
type shredder interface {
	Shred(ctx context.Context, tx phivault.StoreTx, compartment string, at time.Time) error
}

// Shred crypto-shreds the compartment of Patient patientID: its data key and
// blind-index tokens are destroyed in one transaction, the compartment is
// put on the store's shred list, and from then on every read of its
// resources answers EGONE (phivault.ErrShredded) and every write into it is
// refused. The ciphertext of every version stays, unreadable by any key.
// Shredding twice keeps the first time. It returns the time of the (first)
// shred.
//
// If the shred committed but the store could not yet erase the destroyed
// key's old bytes from its files, Shred returns the time and an error
// wrapping phivault.ErrErasePending: the shred is done, and the store
// erases them at its next shred or start (see phivault.Store.Update).
//
// The Patient must exist (it may be deleted). The shred is logged at Info
// with the patient id, which is not PHI, and the time.
func (s *Service) Shred(ctx context.Context, patientID string) (time.Time, error) {
	if !fhir.IsID(patientID) {
		return time.Time{}, phivault.ErrNotFound
	}
	var at time.Time
	var already bool
	err := s.store.Update(ctx, func(tx phivault.StoreTx) error {
		var err error
		at, already, err = tx.Shredded(ctx, patientID)
		if err != nil {
			return err
		} else if already {
			return tx.Shred(ctx, patientID, at)
		}
		if _, err := tx.Current(ctx, "Patient", patientID); err != nil {
			return err
		}
		at = s.now()
		if sh, ok := s.sealer.(shredder); ok {
			return sh.Shred(ctx, tx, patientID, at)
		}
		return tx.Shred(ctx, patientID, at)
	})
	if err != nil && !errors.Is(err, phivault.ErrErasePending) {
		return time.Time{}, err
	}
	if !already {
		s.logger().Info("patient compartment crypto-shredded", "patient", patientID, "at", at)
	}
	return at, err
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// isShredded reports whether err says a compartment was shredded.
func isShredded(err error) bool {
	return errors.Is(err, phivault.ErrShredded)
}

// checkShredded returns phivault.ErrShredded if compartment was shredded.
func checkShredded(ctx context.Context, tx phivault.StoreTx, compartment string) error {
	if compartment == "" {
		return nil
	}
	_, ok, err := tx.Shredded(ctx, compartment)
	if err != nil {
		return err
	} else if ok {
		return phivault.ErrShredded
	}
	return nil
}
