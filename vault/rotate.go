package vault

import (
	"context"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// keyRotator is implemented by Sealers that can give a compartment a new
// data key and re-encrypt its records (envelope.Sealer does).
type keyRotator interface {
	RotateKey(ctx context.Context, store phivault.Store, compartment string, progress func(done, total int)) (int, error)
}

// RotatePatientKey replaces the data-encryption key of Patient patientID's
// compartment, e.g. after a suspected exposure of the old one: it creates a
// new key that writes use at once, re-encrypts every version (all history)
// of the patient's records under it in batches, and then destroys the old
// key. Reads and writes go on throughout. If an earlier rotation was
// interrupted, RotatePatientKey continues it. progress, if set, is called
// after each batch with the versions re-encrypted so far and the total.
//
// The Patient must exist (it may be deleted). It returns
// phivault.ErrShredded for a shredded compartment and EUNSUPPORTED if the
// Sealer cannot rotate keys. The rotation is logged at Info with the
// patient id, which is not PHI, and the number of versions.
func (s *Service) RotatePatientKey(ctx context.Context, patientID string, progress func(done, total int)) error {
	if !fhir.IsID(patientID) {
		return phivault.ErrNotFound
	}
	rot, ok := s.sealer.(keyRotator)
	if !ok {
		return phivault.Errorf(phivault.EUNSUPPORTED, "This server's encryption cannot rotate a patient's key.")
	}
	err := s.store.View(ctx, func(tx phivault.StoreTx) error {
		if err := checkShredded(ctx, tx, patientID); err != nil {
			return err
		}
		_, err := tx.Current(ctx, "Patient", patientID)
		return err
	})
	if err != nil {
		return err
	}
	n, err := rot.RotateKey(ctx, s.store, patientID, progress)
	if err != nil {
		return err
	}
	s.logger().Info("patient data key rotated", "patient", patientID, "versions", n)
	return nil
}
