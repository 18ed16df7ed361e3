package detect_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/sqlitestore"
)

// BenchmarkPipelineIngest runs serve's engine (every rule and the risk
// scorer) in a Pipeline on a sqlitestore over requests of 100,000
// ingested access events of the adversarial random log of "phivault bench
// -mode ingest -log random": 250 users opening 10,000 patients at random,
// a millisecond apart, one event in six an update, so that every user
// has a mass-change alert the detectors merge into at every step. Only
// the pipeline's steps are timed; it reports events per second of them.
func BenchmarkPipelineIngest(b *testing.B) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "detect.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := detect.NewPipeline(s, detect.NewEngineFor(detect.Settings{}, detect.NewDirectory(), nil))
	if err := p.Open(ctx); err != nil {
		b.Fatal(err)
	}
	const perRequest, users, patients = 100_000, 250, 10_000
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	recs := make([]detect.Record, perRequest)
	events := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for j := range recs {
			action := phivault.ActionRead
			if r.IntN(6) == 0 {
				action = phivault.ActionUpdate
			}
			recs[j] = detect.Record{Kind: detect.RecordAccess, Event: &detect.Event{
				Time: start.Add(time.Duration(i*perRequest+j) * time.Millisecond), System: "bench",
				User: fmt.Sprint("bench:u", r.IntN(users)), Roles: []string{"nurse"}, Department: "ward",
				Action: action, ResourceType: "Observation", Patients: []string{fmt.Sprint("bench:p", r.IntN(patients))},
				OK: true, Outcome: "ok",
			}}
		}
		if _, err := s.Ingest(ctx, recs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for {
			n, err := p.Step(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
			events += n
		}
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(p.Status().Alerts)/float64(b.N), "alerts-stored/op")
}
