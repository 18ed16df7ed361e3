package stream_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/stream"
)

// BenchmarkRestore restores a 64 MiB database from its stream (its first
// LTX file holds every page; 200 transactions follow) and reports the
// rate in MB/s of database restored. "snapshot" restores the snapshot
// alone (backup.Restore), which "stream" does first: the baseline.
func BenchmarkRestore(b *testing.B) {
	ctx := context.Background()
	v := mustTestVault(b)
	payload := make([]byte, 1<<10)
	tx, err := v.db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for i := range 64 << 10 {
		rand.Read(payload)
		if _, err := tx.Exec("INSERT INTO r (id, data) VALUES (?, ?)", i+1, payload); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	v.mustBackup(b)
	s := v.mustStream(b)
	for i := range 200 {
		if _, err := v.db.Exec("UPDATE r SET data = ? WHERE id = ?", payload, i*300+1); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(2 * testSyncInterval)
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(v.dir, "phivault.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(fi.Size())
		for range b.N {
			dest := filepath.Join(b.TempDir(), "restored")
			res, err := stream.Restore(ctx, v.target, dest, v.restoreOptions(time.Time{}))
			if err != nil {
				b.Fatal(err)
			}
			if res.Databases[0].TXID == 0 {
				b.Fatal("restored the snapshot's copy, not the stream")
			}
		}
	})
	b.Run("snapshot", func(b *testing.B) {
		b.SetBytes(fi.Size())
		for range b.N {
			dest := filepath.Join(b.TempDir(), "restored")
			if _, err := backup.Restore(ctx, v.target, "", dest, v.restoreOptions(time.Time{}).RestoreOptions); err != nil {
				b.Fatal(err)
			}
		}
	})
}
