package sqlite_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
)

// BenchmarkAuditAppend measures durable audit appends on SQLite with many
// concurrent appenders (as many requests in flight at once), each Append
// returning only once its entry is committed (synchronous=FULL).
func BenchmarkAuditAppend(b *testing.B) {
	ctx := context.Background()
	db := mustOpenPath(b, filepath.Join(b.TempDir(), "phivault.db"))
	signer, _ := storetest.NewSigner(b)
	l := auditlog.New(db, "phivault-bench/audit", signer)
	if err := l.Open(ctx); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var n atomic.Int64
	b.SetParallelism(1024) // 2,048 appenders on 2 cores: a busy server's requests in flight
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := storetest.Entry(int(n.Add(1)))
			if err := l.Append(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "appends/s")
}
