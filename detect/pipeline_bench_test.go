package detect_test

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/phivault/phivault/detect"
)

// BenchmarkLatency measures live latency: from the start of an Append of
// one entry to a real audit log (SQLite, journal mode, default settings)
// until the alert it raises is committed to a sqlitestore by a running
// Pipeline (default Poll). It reports the p50 and p99 in milliseconds.
//
//   - wake-after-append: the appender calls Pipeline.Wake when Append
//     returns. In journal mode the entry is durable then but not yet in
//     the storage the pipeline reads (it is applied within ApplyDelay),
//     so the wake often finds nothing and the entry waits for the next
//     Poll.
//   - wake-after-flush: Wake once the entry is in the storage (Flush
//     here; in serve, a hook on the log's storage commit).
//   - poll: no Wake; the pipeline finds the entry within Poll.
func BenchmarkLatency(b *testing.B) {
	for _, mode := range []string{"wake-after-append", "wake-after-flush", "poll"} {
		b.Run(mode, func(b *testing.B) { benchLatency(b, mode) })
	}
}

func benchLatency(b *testing.B, mode string) {
	ctx := context.Background()
	dir := b.TempDir()
	l, db := openLog(b, dir)
	s := openStore(b, filepath.Join(dir, "detect.db"))
	p := newPipeline(s, logTrail{l, db}, newCountRule())
	committed := make(chan string, 1024)
	p.OnCommit = func(alerts []*detect.Alert) {
		for _, a := range alerts {
			if a.Rule == "test-watch" {
				committed <- a.User
			}
		}
	}
	if err := p.Open(ctx); err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(runCtx) }()
	defer func() { stop(); <-done }()

	var lat []time.Duration
	i := 0
	for b.Loop() {
		e := entry(0) // a read of the watched patient
		e.Actor = "bench-" + strconv.Itoa(i)
		i++
		start := time.Now()
		if err := l.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
		switch mode {
		case "wake-after-append":
			p.Wake()
		case "wake-after-flush":
			if err := l.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			p.Wake()
		}
		for u := range committed {
			if u == e.Actor {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	ms := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
