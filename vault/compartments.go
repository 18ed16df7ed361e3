package vault

import (
	"context"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// MatchCompartments returns the patient compartments ("" for resources in
// none) holding the current resources that match q, without decrypting
// anything: the store answers from the blind index alone. Every parameter
// of q must be one the index answers exactly (equality on indexed values,
// _id, _lastUpdated); others are refused, since their matches could only
// be told after decryption.
func (s *Service) MatchCompartments(ctx context.Context, q *phivault.Query) ([]string, error) {
	if !fhir.IsResourceType(q.Type) {
		return nil, phivault.Errorf(phivault.ENOTFOUND, "Resource type %q is not supported.", safeName(q.Type))
	}
	var out []string
	err := s.store.View(ctx, func(tx phivault.StoreTx) error {
		p, err := s.plan(ctx, tx, q)
		if err != nil {
			return err
		}
		if len(p.post) > 0 {
			return phivault.Errorf(phivault.EINVALID, "Parameter %q is not answered by the index alone.", p.post[0].Name)
		}
		if p.none {
			return nil
		}
		out, err = tx.MatchCompartments(ctx, p.filter)
		return err
	})
	return out, err
}
