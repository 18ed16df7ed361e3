// Package stream implements continuous protection of a phivault data
// folder's SQLite databases: every committed transaction is shipped to a
// backup target within about a second, and a folder can be restored to a
// chosen point in time.
//
// It uses Litestream (github.com/benbjohnson/litestream) as a library: a
// [Streamer] runs one litestream.DB per database of the folder (the set
// [backup.Databases] names, which a snapshot copies too), and a [Client]
// is the litestream.ReplicaClient that keeps the LTX files Litestream
// writes in a [backup.Target], each sealed with the target's key set
// ([backup.KeySet.SealStream]) under a name that says nothing of the
// database:
//
//	stream/dbs/<id>                          the database's name, sealed
//	stream/<id>/<level>/<min>-<max>-<ms>-<size>  an LTX file, sealed
//
// # How Litestream reads the WAL
//
// Litestream holds a read transaction open on each database, so no other
// connection's checkpoint can restart the write-ahead log before
// Litestream has copied its frames: phivault's PASSIVE checkpoints after
// commits still copy pages into the database file, and its TRUNCATE
// checkpoint (when the WAL outgrows its limit) waits at most 100 ms and
// gives up, so Litestream's own checkpoints (PASSIVE at 1,000 pages, and
// once a minute) keep the WAL short. A checkpoint that does restart the
// WAL behind Litestream's back (another process) is detected, and
// Litestream ships a full snapshot: nothing committed is lost, only the
// points in time in between.
//
// # Restore
//
// [Restore] rebuilds a data folder as it was at a time: the files that
// are not databases (keyring.age, the audit journal, tokens) from the
// latest snapshot ([backup.Backup]) taken at or before that time, and each
// streamed database from its stream, up to the last transaction committed
// at or before it. Every object is opened (AEAD under its name) and every
// LTX file's checksums checked while the folder is written into a
// temporary folder, renamed at the end.
package stream

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/phivault/phivault/backup"
)

// Defaults of Streamer's fields.
const (
	// DefaultSyncInterval is how often each database's new transactions
	// are shipped: the recovery point is about this plus an upload.
	DefaultSyncInterval = time.Second
	// DefaultSnapshotInterval is how often a stream gets a full copy of
	// its database, which bounds how many files a restore reads.
	DefaultSnapshotInterval = 24 * time.Hour
	// DefaultRetention is how long a stream keeps its history (its daily
	// full copies and the compactions between them): points in time older
	// than this may no longer be restorable. It is the local folder
	// target's retention (backup.DefaultRetention), before which the
	// target refuses deletions anyway.
	DefaultRetention = backup.DefaultRetention
)

// streamPrefix is the prefix of every object of the streams.
const streamPrefix = "stream/"

// metaDir is the folder, inside the data folder, where Litestream stages
// LTX files before shipping them. Its dot keeps it out of snapshots.
const metaDir = ".stream"

// A Streamer ships every committed transaction of a data folder's SQLite
// databases to a backup target.
//
// Create one with New, set fields, then Open; Close stops it. It is the
// only writer of the streams of its folder in its target: run one
// Streamer per data folder and target.
type Streamer struct {
	// Dir is the data folder.
	Dir string
	// Target receives the streams.
	Target backup.Target
	// Keys is Target's key set (backup.OpenKeys, backup.CachedKeys).
	Keys *backup.KeySet
	// SyncInterval is how often new transactions are shipped. Default
	// DefaultSyncInterval.
	SyncInterval time.Duration
	// SnapshotInterval is how often a full copy of each database is
	// shipped. Default DefaultSnapshotInterval.
	SnapshotInterval time.Duration
	// Retention is how long the streams keep their history. Default
	// DefaultRetention.
	Retention time.Duration
	// Logger receives Litestream's messages (database names and TXIDs,
	// never contents). Nil discards them.
	Logger *slog.Logger
	// Rand is the source of nonces; nil means crypto/rand.
	Rand io.Reader

	names []string
	store *litestream.Store
}

// New returns a Streamer of the data folder dir to t, with defaults.
func New(dir string, t backup.Target, keys *backup.KeySet) *Streamer {
	return &Streamer{
		Dir:              dir,
		Target:           t,
		Keys:             keys,
		SyncInterval:     DefaultSyncInterval,
		SnapshotInterval: DefaultSnapshotInterval,
		Retention:        DefaultRetention,
	}
}

// Databases returns the names of the databases s streams (after Open).
func (s *Streamer) Databases() []string { return s.names }

// Open starts streaming every SQLite database of the folder, as found
// now: a database made later is streamed from the next Open. It returns
// once each is set up; shipping goes on in the background, from the first
// sync interval on (a Streamer closed before it, without Sync, ships
// nothing).
func (s *Streamer) Open(ctx context.Context) error {
	if s.Target == nil || s.Keys == nil {
		return errors.New("stream: no target or no keys")
	}
	if strings.ContainsAny(s.Dir, "?#") {
		return fmt.Errorf("stream: the data folder's path has a '?' or '#', which SQLite file names cannot carry")
	}
	if s.SyncInterval <= 0 {
		s.SyncInterval = DefaultSyncInterval
	}
	if s.SnapshotInterval <= 0 {
		s.SnapshotInterval = DefaultSnapshotInterval
	}
	if s.Retention <= 0 {
		s.Retention = DefaultRetention
	}
	logger := s.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	names, err := backup.Databases(s.Dir)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("stream: %s has no SQLite database", s.Dir)
	}
	var dbs []*litestream.DB
	for _, name := range names {
		if err := writeName(ctx, s.Target, s.Keys, s.Rand, name); err != nil {
			return err
		}
		db := litestream.NewDB(filepath.Join(s.Dir, filepath.FromSlash(name)))
		db.SetMetaPath(filepath.Join(s.Dir, metaDir, strings.ReplaceAll(name, "/", "%")))
		db.MonitorInterval = s.SyncInterval
		c := NewClient(s.Target, s.Keys, name)
		if s.Rand != nil {
			c.rand = s.Rand
		}
		r := litestream.NewReplicaWithClient(db, c)
		r.SyncInterval = s.SyncInterval
		db.Replica = r
		dbs = append(dbs, db)
	}
	levels := make(litestream.CompactionLevels, len(litestream.DefaultCompactionLevels))
	for i, l := range litestream.DefaultCompactionLevels {
		levels[i] = &litestream.CompactionLevel{Level: l.Level, Interval: l.Interval}
	}
	store := litestream.NewStore(dbs, levels)
	store.Logger = logger
	store.SnapshotInterval = s.SnapshotInterval
	store.SnapshotRetention = s.Retention
	// Litestream's L0 files (one per sync) are compacted into 30 s files;
	// it keeps them 5 min more, locally too (in metaDir), and then deletes
	// them: the local copies go, the target's stay until its retention.
	store.SetL0Retention(litestream.DefaultL0Retention)
	for i, db := range dbs {
		l := logger.With("db", names[i])
		db.SetLogger(l)
		db.Replica.Client.SetLogger(l)
	}
	if err := store.Open(ctx); err != nil {
		store.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("stream: open: %w", err)
	}
	s.names, s.store = names, store
	return nil
}

// Close ships what is committed and not yet shipped (trying for up to
// 30 s) and stops.
func (s *Streamer) Close(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	err := s.store.Close(ctx)
	s.store = nil
	if err != nil {
		return fmt.Errorf("stream: close: %w", err)
	}
	return nil
}

// Sync ships every database's committed transactions now and returns
// once the target holds them.
func (s *Streamer) Sync(ctx context.Context) error {
	if s.store == nil {
		return errors.New("stream: not open")
	}
	for _, db := range s.store.DBs() {
		if err := db.SyncAndWait(ctx); err != nil {
			return fmt.Errorf("stream: sync %s: %w", filepath.Base(db.Path()), err)
		}
	}
	return nil
}

// nameObject is the object that holds the sealed name of the stream id.
func nameObject(id string) string { return streamPrefix + "dbs/" + id }

// writeName stores the name of the database name's stream, once.
func writeName(ctx context.Context, t backup.Target, keys *backup.KeySet, rand io.Reader, name string) error {
	obj := nameObject(keys.StreamID(name))
	if rand == nil {
		rand = cryptorand.Reader
	}
	sealed, err := keys.SealStream(rand, obj, []byte(name))
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	if err := t.Put(ctx, obj, sealed); err != nil && !errors.Is(err, backup.ErrExist) {
		return fmt.Errorf("stream: %w", err)
	}
	return nil
}

// streamNames returns the names of the databases t has streams of, each
// checked against its id.
func streamNames(ctx context.Context, t backup.Target, keys *backup.KeySet) ([]string, error) {
	objs, err := t.List(ctx, streamPrefix+"dbs/")
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	var names []string
	for _, obj := range objs {
		sealed, err := t.Get(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
		name, err := keys.OpenStream(obj, sealed)
		if err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
		if nameObject(keys.StreamID(string(name))) != obj {
			return nil, fmt.Errorf("stream: object %s names another stream: %w", obj, backup.ErrCorrupt)
		}
		names = append(names, string(name))
	}
	return names, nil
}

// HasStreams reports whether t holds the stream of any database.
func HasStreams(ctx context.Context, t backup.Target) (bool, error) {
	objs, err := t.List(ctx, streamPrefix+"dbs/")
	if err != nil {
		return false, fmt.Errorf("stream: %w", err)
	}
	return len(objs) > 0, nil
}
