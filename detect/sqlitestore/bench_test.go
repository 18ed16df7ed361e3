package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// BenchmarkIngest appends batches of small access records, each batch
// one durable transaction, and reports records per second: batches of
// 1,000, and of 100,000 (the most an ingest request holds).
func BenchmarkIngest(b *testing.B) {
	for _, batch := range []int{1000, detect.DefaultIngestMaxLines} {
		b.Run(fmt.Sprint(batch), func(b *testing.B) { benchIngest(b, batch) })
	}
}

func benchIngest(b *testing.B, batch int) {
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "detect.db"))
	defer s.Close()
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	recs := make([]detect.Record, batch)
	for i := range recs {
		recs[i] = detect.Record{Kind: detect.RecordAccess, Event: &detect.Event{
			Stream: detect.StreamIngest, Time: t0.Add(time.Duration(i) * time.Millisecond), System: "ehr",
			User: fmt.Sprintf("ehr:u%d", i%50), Roles: []string{"nurse"}, Department: "cardio",
			Action: phivault.ActionRead, ResourceType: "Patient", ResourceID: fmt.Sprintf("ehr:p%d", i),
			Patients: []string{fmt.Sprintf("ehr:p%d", i)}, Count: 1, OK: true, Outcome: "ok", Source: "10.0.0.7",
		}}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Ingest(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}
