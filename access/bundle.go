package access

import (
	"context"

	"github.com/phivault/phivault"
)

// Bundle passes a batch or transaction on with the caller's guard. The
// vault resolves every entry (fullUrl, urn:uuid: and conditional
// references, ifNoneExist) and the guard decides each write on the form it
// will store, in the same code path as single interactions: a refused
// entry of a transaction stores nothing, a refused batch entry answers
// alone. Reads inside a Bundle answer only what the caller may see.
func (s *RecordService) Bundle(ctx context.Context, body []byte, base string) (*phivault.BundleResult, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	ctx, g := s.guarded(ctx, c)
	defer g.done()
	return s.next.Bundle(ctx, body, base)
}
