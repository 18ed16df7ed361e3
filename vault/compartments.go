package vault

import (
	"context"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// CountCompartments returns how many current resources matching q each
// patient compartment holds ("" for resources in none), without decrypting
// anything: the store answers from the blind index alone. Every parameter
// of q must be one the index answers exactly (equality on indexed values,
// _id, _lastUpdated); others are refused with EUNSUPPORTED, since their
// matches could only be told after decryption.
func (s *Service) CountCompartments(ctx context.Context, q *phivault.Query) (map[string]int, error) {
	if !fhir.IsResourceType(q.Type) {
		return nil, phivault.Errorf(phivault.ENOTFOUND, "Resource type %q is not supported.", safeName(q.Type))
	}
	out := map[string]int{}
	err := s.store.View(ctx, func(tx phivault.StoreTx) error {
		p, err := s.plan(ctx, tx, q)
		if err != nil {
			return err
		}
		if len(p.post) > 0 {
			return phivault.Errorf(phivault.EUNSUPPORTED, "Parameter %q is not answered by the index alone.", p.post[0].Name)
		}
		if p.none {
			return nil
		}
		out, err = tx.CountCompartments(ctx, p.filter)
		return err
	})
	return out, err
}
