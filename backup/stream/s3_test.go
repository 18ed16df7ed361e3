package stream_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/backup/s3"
	"github.com/phivault/phivault/backup/stream"
	"github.com/phivault/phivault/internal/s3test"
)

// TestStream_s3 streams to an S3 bucket with object lock (a real S3
// server) and restores the latest state from it: every acknowledged
// write is there, from the stream.
func TestStream_s3(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	c := s3.Config{Endpoint: srv.Endpoint, Bucket: "stream", Region: s3test.Region,
		AccessKey: s3test.RootAccessKey, SecretKey: s3test.RootSecretKey, Insecure: true, Retention: time.Hour}
	if err := s3.CreateBucket(ctx, c); err != nil {
		t.Fatal(err)
	}
	tg, err := s3.Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVault(t, tg)
	s := v.mustStream(t)
	stop := make(chan struct{})
	var ws []write
	var wg sync.WaitGroup
	wg.Go(func() { ws = v.writeFor(t, stop) })
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "restored")
	res, err := stream.Restore(ctx, tg, dest, v.restoreOptions(time.Time{}))
	if err != nil {
		t.Fatalf("Restore from S3 = %v", err)
	}
	if len(res.Databases) != 1 || res.Databases[0].TXID == 0 {
		t.Errorf("restored %+v, want phivault.db from its stream", res.Databases)
	}
	ids := mustRows(t, dest)
	checkPrefix(t, ids)
	if len(ids) != len(ws) || len(ws) == 0 {
		t.Errorf("restored %d rows, want all %d acknowledged", len(ids), len(ws))
	}
}
