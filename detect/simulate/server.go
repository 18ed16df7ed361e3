package simulate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/detect"
)

// Server is the security API of a running phivault server, as
// EvaluateServer uses it (phivault simulate -ingest implements it over
// HTTPS).
type Server interface {
	// Ingest sends one NDJSON batch of kind (POST /security/ingest/{kind}).
	Ingest(ctx context.Context, kind string, body []byte) (*detect.IngestReport, error)
	// Processed returns the last ingest sequence the detector has
	// processed (GET /security/detector: cursor.ingest).
	Processed(ctx context.Context) (int64, error)
	// Alerts returns every alert detected at or after since, on the
	// server's clock (GET /security/alerts, every page).
	Alerts(ctx context.Context, since time.Time) ([]*detect.Alert, error)
}

// Defaults of ServerOptions.
const (
	DefaultServerPoll = 50 * time.Millisecond
	// DefaultServerStall is how long the detector may go without
	// processing anything before EvaluateServer gives up on it.
	DefaultServerStall = 2 * time.Minute
	// DefaultClockSkew is how far the server's clock may lag the
	// caller's: alerts detected up to this long before the run started
	// are fetched too, then kept only if they are about the run's
	// system.
	DefaultClockSkew = time.Minute
)

// ServerOptions configure EvaluateServer.
type ServerOptions struct {
	Options
	// Poll is the time between two looks at the detector's progress;
	// default DefaultServerPoll.
	Poll time.Duration
	// Stall is how long the detector's progress may stay still, while
	// behind, before the run fails (a detector that is stopped, failing,
	// or not watching ingestion would be waited on for ever); default
	// DefaultServerStall.
	Stall time.Duration
	// Now is the caller's clock; default time.Now.
	Now func() time.Time
}

// EvaluateServer sends w to srv through its ingestion API (Export, in
// order, one request a batch), waits for the detector to have processed
// everything sent, fetches the alerts about w's system and scores them
// against w's truth with Score, as Evaluate does in process.
//
// Differences with Evaluate, all stated in the Report:
//   - the events the formats cannot carry are not sent (Report.Skipped),
//     and the truth is scored against what was sent (Workload.Ingested);
//   - the targets of the rules that only those events feed (role-grant,
//     policy-reload, key-operation, seal-unseal), and the alerts about
//     them, are left out of precision, recall and AUC
//     (Report.NotMeasurable);
//   - the server stamps alerts with its wall clock while events carry
//     simulated times, days of which are sent in seconds, so time to
//     detect has no meaning: every TTD is -1, and Report.Latency is the
//     wall time from the last answer to the detector having caught up;
//   - the rules are those of the default engine (Options.Rules if set):
//     a rule the server has disabled shows as present, with no alerts.
//
// srv should hold nothing of w.Config.System from earlier runs: rosters,
// relationships and the rules' baselines would carry over. Use a fresh
// server or a System of its own per run.
func EvaluateServer(ctx context.Context, w *Workload, srv Server, opts ServerOptions) (*Report, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	poll := cmpOr(opts.Poll, DefaultServerPoll)
	start := now()
	x, err := w.Export(0)
	if err != nil {
		return nil, err
	}
	first := make([]int64, len(x.Batches))
	var last int64
	for i, b := range x.Batches {
		rep, err := srv.Ingest(ctx, b.Kind, b.Body)
		if err != nil {
			return nil, fmt.Errorf("simulate: send batch %d of %d (%s): %w", i+1, len(x.Batches), b.Kind, err)
		}
		if rep.Rejected > 0 || rep.Accepted != len(b.Lines) {
			return nil, fmt.Errorf("simulate: batch %d (%s): the server accepted %d lines of %d%s", i+1, b.Kind, rep.Accepted, len(b.Lines), firstLineError(rep))
		}
		first[i], last = rep.First, rep.Last
	}
	sent := now()
	if err := waitProcessed(ctx, srv, last, poll, cmpOr(opts.Stall, DefaultServerStall), now); err != nil {
		return nil, err
	}
	latency := now().Sub(sent)
	view, err := w.Ingested(ctx, x, first)
	if err != nil {
		return nil, err
	}
	all, err := srv.Alerts(ctx, start.Add(-DefaultClockSkew))
	if err != nil {
		return nil, fmt.Errorf("simulate: fetch alerts: %w", err)
	}
	alerts := view.about(all)
	rules := opts.Rules
	if rules == nil {
		rules = detect.NewEngineFor(Settings(), detect.NewDirectory(), nil).Rules()
	}
	rep := Score(view, alerts, ruleNames(rules), opts.Options)
	rep.noTTD()
	rep.Through, rep.Skipped, rep.Latency = "ingest", x.Skipped, latency
	rep.Elapsed = now().Sub(start)
	return rep, nil
}

// firstLineError says why the first line rep lists was rejected, or "".
// Reports hold line numbers, fields and fixed reasons, never a value.
func firstLineError(rep *detect.IngestReport) string {
	if len(rep.Errors) == 0 {
		return ""
	}
	e := rep.Errors[0]
	if e.Field == "" {
		return fmt.Sprintf(", the first rejected at line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf(", the first rejected at line %d (%s): %s", e.Line, e.Field, e.Reason)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// waitProcessed polls srv until it has processed sequence last. It fails
// once the detector has not moved for stall.
func waitProcessed(ctx context.Context, srv Server, last int64, poll, stall time.Duration, now func() time.Time) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	prev, moved := int64(-1), now()
	for {
		done, err := srv.Processed(ctx)
		if err != nil {
			return fmt.Errorf("simulate: detector status: %w", err)
		}
		if done >= last {
			return nil
		}
		if done != prev {
			prev, moved = done, now()
		} else if still := now().Sub(moved); still >= stall {
			return fmt.Errorf("simulate: the detector has not moved from %d (of %d sent) for %v: is it running? (phivault detect status)",
				done, last, still.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("simulate: waiting for the detector (at %d of %d): %w", done, last, ctx.Err())
		case <-t.C:
		}
	}
}

// about returns the alerts about w's system: their user or a patient
// is in its namespace, or their evidence is among w's events.
func (w *Workload) about(alerts []*detect.Alert) []*detect.Alert {
	prefix := w.Config.System + ":"
	refs := map[string]bool{}
	for i := range w.Records {
		if ev := w.Records[i].Event; ev != nil {
			refs[ev.Ref()] = true
		}
	}
	ours := func(a *detect.Alert) bool {
		return strings.HasPrefix(a.User, prefix) ||
			slices.ContainsFunc(a.Patients, func(p string) bool { return strings.HasPrefix(p, prefix) }) ||
			slices.ContainsFunc(a.Evidence, func(r string) bool { return refs[r] })
	}
	var out []*detect.Alert
	for _, a := range alerts {
		if ours(a) {
			out = append(out, a)
		}
	}
	return out
}

// noTTD marks every time to detect as undefined.
func (r *Report) noTTD() {
	r.MedianTTD = -1
	for i := range r.Detectors {
		r.Detectors[i].MedianTTD = -1
	}
	for i := range r.ByScenario {
		r.ByScenario[i].TTD = -1
	}
}
