package sqlite_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
)

// BenchmarkAuditAppend measures durable audit appends on SQLite with many
// concurrent appenders (as many requests in flight at once), each Append
// returning only once its entry is durable: fdatasynced in the journal and
// committed to the audit file ("journal", what phivault serve runs), or
// committed with synchronous=FULL to the audit file ("direct", the Log's
// NoJournal). It reports appends/s over the whole run, including the
// closing Log.Close, which makes the audit file durable and empties the
// journal.
func BenchmarkAuditAppend(b *testing.B) {
	for _, mode := range []string{"journal", "direct"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			db := mustOpenPath(b, filepath.Join(b.TempDir(), "phivault.db"))
			signer, _ := storetest.NewSigner(b)
			l := auditlog.New(db, "phivault-bench/audit", signer)
			l.NoJournal = mode == "direct"
			if err := l.Open(ctx); err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.SetParallelism(1024) // 2,048 appenders on 2 cores: a busy server's requests in flight
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Append(ctx, benchEntry(int(n.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "appends/s")
			if size, err := db.AuditSize(ctx); err != nil || size != n.Load() {
				b.Fatalf("the log holds %d entries (%v), want %d", size, err, n.Load())
			}
		})
	}
}

// benchEntry is a read of one Observation, like storetest.Entry, built
// without fmt.
func benchEntry(i int) *phivault.AuditEntry {
	id := "obs-" + strconv.Itoa(i)
	return &phivault.AuditEntry{
		Time:          time.Unix(1767225600, int64(i)).UTC(),
		RequestID:     "req" + strconv.Itoa(i),
		Actor:         "admin",
		Action:        phivault.ActionRead,
		TargetType:    "Observation",
		TargetID:      id,
		TargetVersion: 1,
		Compartments:  []string{"pat-" + strconv.Itoa(i%7)},
		Returned:      []string{"Observation/" + id + "/_history/1"},
		Outcome:       "ok",
	}
}
