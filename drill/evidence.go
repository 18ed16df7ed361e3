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
	EvidenceUnavailable = "not available in this build"
)

// An EvidenceVerifier fetches and checks the evidence bundle of an
// incident on the target. It never fails the drill by itself: the report
// carries its result, and Run fails the drill only when the result is
// EvidenceFailed.
type EvidenceVerifier func(ctx context.Context, t *Target, incident string) Evidence

// HTTPEvidence returns the verifier that fetches GET
// /security/incidents/{id}/evidence as the drill's officer and hands the
// bundle to verify. A 404 or 405 (a build without the evidence archive)
// is EvidenceUnavailable; a nil verify reports a bundle fetched but not
// verified as unavailable too, saying so.
func HTTPEvidence(verify func(ctx context.Context, bundle []byte) error) EvidenceVerifier {
	return func(ctx context.Context, t *Target, incident string) Evidence {
		ev := Evidence{Incident: incident}
		status, body, err := t.do(ctx, t.Token, http.MethodGet, "/security/incidents/"+url.PathEscape(incident)+"/evidence", nil)
		switch {
		case err != nil:
			ev.Status, ev.Detail = EvidenceFailed, "could not fetch the evidence bundle"
		case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
			ev.Status = EvidenceUnavailable
		case status != http.StatusOK:
			ev.Status, ev.Detail = EvidenceFailed, "GET evidence = "+http.StatusText(status)
		case verify == nil:
			ev.Status, ev.Detail = EvidenceUnavailable, "a bundle was served; this build has no verifier wired"
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
