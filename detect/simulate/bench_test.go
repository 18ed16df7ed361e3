package simulate_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/simulate"
)

// BenchmarkReplay measures the engine's replay throughput with
// detect.DefaultRules over the default (CI-size) simulated workload,
// generated before the timer starts. Each iteration replays the whole
// workload into a fresh engine, draining (and so scoring) alerts every
// detect.DefaultBatch records as the pipeline does. It reports events/s
// (wall) and events/cpu-s: events per second of CPU time of the whole
// process, garbage collection included, which is the per-core figure the
// engine's single goroutine achieves.
// The engine is serve's (detect.NewEngineFor): every rule plus the
// learned scoring.
func BenchmarkReplay(b *testing.B) {
	w, err := simulate.Generate(context.Background(), simulate.Config{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	events := int64(w.Events())
	runtime.GC() // the generator's garbage is not the engine's cost
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, start := cpuTime(), time.Now()
	for range b.N {
		eng := detect.NewEngineFor(simulate.Settings(), detect.NewDirectory(), nil)
		eng.Now = func() time.Time { return w.End }
		dir := eng.Directory()
		for i := range w.Records {
			r := &w.Records[i]
			switch r.Kind {
			case detect.RecordAccess:
				eng.Observe(r.Event)
			case detect.RecordStaff:
				dir.PutUser(r.User)
			case detect.RecordPatient:
				dir.PutPatient(r.Patient)
			case detect.RecordRelationship:
				dir.AddRelationship(*r.Relationship)
			case detect.RecordHoneytoken:
				dir.SetHoneytoken(r.Honeytoken, true)
			}
			if i%detect.DefaultBatch == detect.DefaultBatch-1 {
				eng.Drain()
			}
		}
		eng.Drain()
	}
	wall, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	total := float64(events) * float64(b.N)
	b.ReportMetric(total/wall.Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(total/cpu.Seconds(), "events/cpu-s")
	}
	b.ReportMetric(0, "ns/op") // one op is a whole workload: not a useful unit
}
