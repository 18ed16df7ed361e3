package main

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/phivault/phivault/detect"
)

// TestBenchAccessLog checks that both logs of bench -mode ingest are what
// the server takes whole: every line accepted, cut into requests of the
// batch asked for, the same for the same seed.
func TestBenchAccessLog(t *testing.T) {
	ctx := context.Background()
	for _, log := range []string{benchLogSim, benchLogRandom} {
		t.Run(log, func(t *testing.T) {
			opts := benchIngestOptions{log: log, events: 2500, batch: 1000, patients: 500, seed: 3}
			lines, err := benchAccessLog(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != opts.events {
				t.Fatalf("%d lines, want %d", len(lines), opts.events)
			}
			bodies := benchBodies(lines, opts.batch)
			if len(bodies) != 3 || bytes.Count(bodies[2], []byte("\n")) != 500 {
				t.Fatalf("%d bodies, the last of %d lines; want 3, the last of 500", len(bodies), bytes.Count(bodies[len(bodies)-1], []byte("\n")))
			}
			for i, b := range bodies {
				recs, rep, err := detect.ParseIngest(ctx, nil, detect.IngestAccess, "application/x-ndjson", bytes.NewReader(b), detect.IngestOptions{})
				if err != nil || rep.Rejected != 0 || len(recs) != bytes.Count(b, []byte("\n")) {
					t.Fatalf("request %d: %d records, report %+v, %v; want every line accepted", i, len(recs), rep, err)
				}
			}
			again, err := benchAccessLog(ctx, opts)
			if err != nil || !slices.EqualFunc(lines, again, bytes.Equal) {
				t.Errorf("a second log of the same seed differs (%v)", err)
			}
			opts.seed++
			other, err := benchAccessLog(ctx, opts)
			if err != nil || slices.EqualFunc(lines, other, bytes.Equal) {
				t.Errorf("the log of another seed is the same (%v)", err)
			}
		})
	}
	if _, err := benchAccessLog(ctx, benchIngestOptions{log: "replay", events: 1}); err == nil {
		t.Error("an unknown -log was taken")
	}
}
