package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/stream"
)

// Continuous protection (docs/backup.md, "Continuous protection"): serve
// streams the data folder's SQLite databases to a backup target, and
// restore rebuilds a folder at a point in time from it.

// backupStreamCloseTimeout bounds how long serve's shutdown spends
// shipping what is committed and not yet shipped.
const backupStreamCloseTimeout = 30 * time.Second

// streamShredEraseWait is how long a shred's erasure of the WAL waits for
// readers while the stream runs: the stream's read transaction never ends,
// so a longer wait only holds every write back (sqlite.DB.ShredEraseWaitMillis).
const streamShredEraseWait = 250 * time.Millisecond

// startBackupStream streams the databases of d to the target spec (none
// if "") with the key set the data folder keeps for it (backup.key).
func startBackupStream(ctx context.Context, d dataDir, spec string, logger *slog.Logger) (func(), error) {
	if spec == "" {
		return func() {}, nil
	}
	if kind, err := d.storeKind(); err != nil {
		return nil, err
	} else if kind != storeSQLite {
		return nil, errors.New("-backup-stream covers the embedded (SQLite) store only; stream PostgreSQL's WAL with its own tools (docs/backup.md)")
	}
	t, err := openBackupTarget(spec, os.Getenv)
	if err != nil {
		return nil, err
	}
	has, err := backup.HasKeys(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("-backup-stream: %w", err)
	}
	if !has {
		return nil, errorWithHint("-backup-stream "+spec+" has no backup keys: back the folder up to it once first, which sets it up",
			"phivault backup -data "+string(d)+" -to "+spec+" -recipient age1...")
	}
	cache, err := os.ReadFile(d.backupKeyCache())
	var keys *backup.KeySet
	if err == nil {
		keys, err = backup.CachedKeys(ctx, t, cache)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, backup.ErrNotFound):
		return nil, errorWithHint("this data folder holds no keys of -backup-stream "+spec+": back it up there once to fetch them",
			"phivault backup -data "+string(d)+" -to "+spec+" -identity backup-identity.txt")
	case err != nil:
		return nil, fmt.Errorf("-backup-stream: %w", err)
	}
	s := stream.New(string(d), t, keys)
	s.Logger = logger.With("component", "backup-stream")
	if err := s.Open(ctx); err != nil {
		return nil, err
	}
	logger.Info("backup stream started", "target", spec, "databases", s.Databases(), "sync_interval", s.SyncInterval.String())
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backupStreamCloseTimeout)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			logger.Error("backup stream: final sync", "error", err.Error())
		}
	}, nil
}

// restoreStream restores the point in time at (RFC 3339; "" for the
// latest) from t's streams, if the restore is of a time (not of -snapshot)
// and t holds streams: stream.Restore. It returns the snapshot the
// folder's other files came from and the databases restored, or a nil
// manifest (and no error) if the restore is not one for the streams.
func restoreStream(ctx context.Context, t backup.Target, at, snapshot, data string, opt backup.RestoreOptions) (*backup.Manifest, []stream.RestoredDB, error) {
	if snapshot != "" {
		if at != "" {
			return nil, nil, errorWithHint("give -snapshot or -at, not both", "phivault restore -from FOLDER -at 2026-01-02T15:04:05Z -identity FILE -data NEWDIR")
		}
		return nil, nil, nil
	}
	var when time.Time
	if at != "" {
		var err error
		if when, err = time.Parse(time.RFC3339, at); err != nil {
			return nil, nil, errorWithHint("-at must be an RFC 3339 time", "phivault restore -at 2026-01-02T15:04:05Z ...")
		}
	} else if has, err := stream.HasStreams(ctx, t); err != nil || !has {
		return nil, nil, err
	}
	res, err := stream.Restore(ctx, t, data, stream.RestoreOptions{RestoreOptions: opt, At: when})
	if res == nil {
		return nil, nil, err
	}
	return res.Snapshot, res.Databases, err
}
