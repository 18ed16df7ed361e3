package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/incident"
	"golang.org/x/mod/sumdb/note"
)

// Writer makes the archives of a running server's incidents: it looks
// their alerts up and signs a checkpoint of the trail for each. It is
// safe for concurrent use.
type Writer struct {
	Storage auditlog.Storage
	// Checkpoint returns a signed checkpoint of Storage holding every
	// entry appended before the call: auditlog.Log.Checkpoint.
	Checkpoint func(ctx context.Context) ([]byte, error)
	Signer     note.Signer
	Verifier   note.Verifier
	Alerts     incident.Alerts  // nil: the archives hold no alerts
	Now        func() time.Time // nil means time.Now
}

var _ incident.Evidence = (*Writer)(nil)

// WriteEvidence implements incident.Evidence.
func (wr *Writer) WriteEvidence(ctx context.Context, w io.Writer, in *incident.Incident, timeline []*incident.Event) error {
	_, err := wr.Write(ctx, w, in, timeline)
	return err
}

// Write writes the archive of in and its timeline to w.
func (wr *Writer) Write(ctx context.Context, w io.Writer, in *incident.Incident, timeline []*incident.Event) (Summary, error) {
	src := Source{Incident: in, Timeline: timeline}
	if wr.Alerts != nil {
		for _, id := range in.Alerts {
			a, err := wr.Alerts.Alert(ctx, id)
			if errors.Is(err, phivault.ErrNotFound) || phivault.ErrorCode(err) == phivault.ENOTFOUND {
				return Summary{}, phivault.Errorf(phivault.EUNAVAILABLE, "An alert the incident links is not in the detectors' store; no archive can be made.")
			}
			if err != nil {
				return Summary{}, fmt.Errorf("evidence: alert %s: %w", id, err)
			}
			src.Alerts = append(src.Alerts, a)
		}
	}
	cp, err := wr.Checkpoint(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("evidence: checkpoint: %w", err)
	}
	now := time.Now
	if wr.Now != nil {
		now = wr.Now
	}
	return Write(ctx, w, src, Options{Storage: wr.Storage, Checkpoint: cp, Signer: wr.Signer, Verifier: wr.Verifier, Created: now()})
}
