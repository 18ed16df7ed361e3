package drill

import (
	"context"
	"net/http"
	"net/url"
)

// Evidence statuses.
const (
	EvidenceVerified    = "verified"
	EvidenceFailed      = "failed"
	EvidenceUnavailable = "not verified"
)

// An EvidenceVerifier fetches and checks the evidence bundle of an
// incident on the target. It never fails the drill by itself: the report
// carries its result, and Run fails the drill only when the result is
// EvidenceFailed.
type EvidenceVerifier func(ctx context.Context, t *Target, incident string) Evidence

// HTTPEvidence returns the verifier that fetches GET
// /security/incidents/{id}/evidence as the drill's officer and hands the
// bundle to verify. A bundle that cannot be fetched fails; a nil verify
// (no verifier key given) reports a bundle fetched but not verified as
// EvidenceUnavailable, saying so.
func HTTPEvidence(verify func(ctx context.Context, bundle []byte) error) EvidenceVerifier {
	return func(ctx context.Context, t *Target, incident string) Evidence {
		ev := Evidence{Incident: incident}
		status, body, err := t.do(ctx, t.Token, http.MethodGet, "/security/incidents/"+url.PathEscape(incident)+"/evidence", nil)
		switch {
		case err != nil:
			ev.Status, ev.Detail = EvidenceFailed, "could not fetch the evidence bundle"
		case status != http.StatusOK:
			ev.Status, ev.Detail = EvidenceFailed, "GET evidence = "+http.StatusText(status)
		case verify == nil:
			ev.Status, ev.Detail = EvidenceUnavailable, "a bundle was served, not verified: no verifier key given (-key)"
		default:
			if err := verify(ctx, body); err != nil {
				ev.Status, ev.Detail = EvidenceFailed, err.Error()
			} else {
				ev.Status = EvidenceVerified
			}
		}
		return ev
	}
}
