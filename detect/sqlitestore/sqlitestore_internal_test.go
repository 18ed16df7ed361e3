package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// TestIngestTail checks that what Ingest stores is also in the in-memory
// tail, numbered, so the pipeline reads it without decoding it again.
func TestIngestTail(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "detect.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := make([]detect.Record, ingestChunk+3) // a full chunk and single rows
	for i := range recs {
		recs[i] = detect.Record{Kind: detect.RecordHoneytoken, Honeytoken: "p"}
	}
	for round := range 2 {
		last, err := s.Ingest(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		first := last - int64(len(recs)) + 1
		got, ok := s.recent.Get(first, last+1)
		if !ok || len(got) != len(recs) || got[0].Seq != first || got[len(got)-1].Seq != last {
			t.Fatalf("round %d: tail holds %d records (ok %v), want %d numbered %d..%d", round, len(got), ok, len(recs), first, last)
		}
		if n, _ := s.IngestSize(ctx); n != last {
			t.Fatalf("IngestSize = %d, want %d", n, last)
		}
	}
}

// TestIngestTail_maxRequest checks that the tail holds two requests of
// the most lines an ingest takes and the step before them, and not a
// record more.
func TestIngestTail_maxRequest(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "detect.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ingest := func(n int) int64 {
		recs := make([]detect.Record, n)
		for i := range recs {
			recs[i] = detect.Record{Kind: detect.RecordHoneytoken, Honeytoken: "p"}
		}
		last, err := s.Ingest(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		return last
	}
	ingest(detect.DefaultBatch)
	ingest(detect.DefaultIngestMaxLines)
	last := ingest(detect.DefaultIngestMaxLines)
	if _, ok := s.recent.Get(1, last+1); !ok {
		t.Errorf("the tail lacks some of a step and two full requests (%d records)", last)
	}
	last = ingest(1)
	if _, ok := s.recent.Get(1, last+1); ok {
		t.Errorf("the tail holds %d records, more than RecentRecords", last)
	}
}

// TestAlertPatients_unknown checks that an alert stored before the
// alerts table recorded its patients (patients_n -1, as migration 0002
// leaves them) has its patients rewritten whole at its next commit.
func TestAlertPatients_unknown(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "detect.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := &detect.Alert{ID: "0123456789abcdef", Rule: "r", Key: "k", User: "u", State: detect.StateOpen, Patients: []string{"p-a", "p-b"}}
	commit := func() {
		t.Helper()
		if err := s.Commit(ctx, &detect.Commit{Alerts: []*detect.Alert{a.Clone()}}); err != nil {
			t.Fatal(err)
		}
	}
	commit()
	if _, err := s.wdb.ExecContext(ctx, `UPDATE alerts SET patients_n = -1, patients_digest = NULL`); err != nil {
		t.Fatal(err)
	}
	a.Patients = []string{"p-x", "p-b", "p-c"} // p-a gone: only a rewrite drops it
	commit()
	for p, want := range map[string]bool{"p-a": false, "p-b": true, "p-c": true, "p-x": true} {
		got, err := s.Alerts(ctx, detect.AlertFilter{Patient: p})
		if err != nil || (len(got) == 1) != want {
			t.Errorf("Alerts(patient %s) = %d alerts, %v; want found %v", p, len(got), err, want)
		}
	}
}

// TestIngest_storedJSON checks that each row Ingest writes (full chunks
// encoded ahead of the inserts, then single rows) holds exactly
// json.Marshal of its record, numbered, and reads back equal from the
// file.
func TestIngest_storedJSON(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "detect.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	recs := make([]detect.Record, 2*ingestChunk+5)
	for i := range recs {
		recs[i] = detect.Record{Kind: detect.RecordAccess, Event: &detect.Event{
			Stream: detect.StreamIngest, Time: t0.Add(time.Duration(i) * time.Second), System: "ehr",
			User: fmt.Sprintf("ehr:u%d", i%7), Action: phivault.ActionRead, Patients: []string{fmt.Sprintf("ehr:p%d", i)},
			Count: i % 3, OK: i%5 != 0, Outcome: "ok",
		}}
	}
	if _, err := s.Ingest(ctx, recs[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(ctx, recs[1:]); err != nil {
		t.Fatal(err)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, data FROM ingest ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for ; rows.Next(); n++ {
		var (
			seq  int64
			data []byte
		)
		if err := rows.Scan(&seq, &data); err != nil {
			t.Fatal(err)
		}
		r := recs[n]
		r.Seq = int64(n + 1)
		want, _ := json.Marshal(&r)
		if seq != r.Seq || !bytes.Equal(data, want) {
			t.Fatalf("row %d: seq %d, data %s; want %d, %s", n, seq, data, r.Seq, want)
		}
	}
	if n != len(recs) {
		t.Fatalf("%d rows, want %d", n, len(recs))
	}
	var read []detect.Record
	if err := s.read(ctx, func(tx *sql.Tx) error {
		return loadJSON(ctx, tx, `SELECT data FROM ingest ORDER BY seq`, &read)
	}); err != nil {
		t.Fatal(err)
	}
	for i := range read {
		if read[i].Seq != int64(i+1) || !reflect.DeepEqual(read[i].Event, recs[i].Event) {
			t.Fatalf("record %d read back as %+v, want seq %d, %+v", i, read[i].Event, i+1, recs[i].Event)
		}
	}
}
