package incident

import "context"

type incidentKey struct{}

// WithIncident returns ctx carrying the id of the incident an action is
// carried out for, as the Responder hands it to Controls.
func WithIncident(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, incidentKey{}, id)
}

// IncidentFromContext returns the incident id WithIncident put in ctx, or
// "".
func IncidentFromContext(ctx context.Context) string {
	id, _ := ctx.Value(incidentKey{}).(string)
	return id
}
