package access

import "context"

// AdminAPI adapts a RecordService to the admin API's AccessControl
// interface (admin.NewAccessHandler), which returns JSON-encodable values.
type AdminAPI struct{ s *RecordService }

// AdminAPI returns the admin API view of s.
func (s *RecordService) AdminAPI() AdminAPI { return AdminAPI{s} }

// BreakGlass calls RecordService.BreakGlass.
func (a AdminAPI) BreakGlass(ctx context.Context, patientID, purpose, reason string) (any, error) {
	g, err := a.s.BreakGlass(ctx, BreakGlassRequest{PatientID: patientID, Purpose: purpose, Reason: reason})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// BreakGlassQueue calls RecordService.BreakGlassQueue.
func (a AdminAPI) BreakGlassQueue(ctx context.Context) (any, error) {
	q, err := a.s.BreakGlassQueue(ctx)
	if err != nil {
		return nil, err
	}
	if q == nil {
		q = []BreakGlassAccess{}
	}
	return map[string]any{"accesses": q}, nil
}

// Review calls RecordService.Review.
func (a AdminAPI) Review(ctx context.Context, record, verdict, comment string) (any, error) {
	r, err := a.s.Review(ctx, ReviewRequest{Record: record, Verdict: verdict, Comment: comment})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Explain calls RecordService.Explain.
func (a AdminAPI) Explain(ctx context.Context, user, action, resource, purpose string) (any, error) {
	e, err := a.s.Explain(ctx, ExplainRequest{User: user, Action: action, Resource: resource, Purpose: purpose})
	if err != nil {
		return nil, err
	}
	return e, nil
}
