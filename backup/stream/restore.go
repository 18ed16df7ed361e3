package stream

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/phivault/phivault/backup"
	"github.com/superfly/ltx"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	backup.RestoreOptions // the identities, and the pinned verifier
	// At is the point in time to restore; zero means the latest.
	At time.Time
}

// A RestoreResult tells what Restore restored.
type RestoreResult struct {
	// Snapshot is the manifest of the snapshot the folder's other files
	// come from.
	Snapshot *backup.Manifest
	// Databases tells where each database came from.
	Databases []RestoredDB
}

// A RestoredDB tells where a restored database came from.
type RestoredDB struct {
	Name string
	// TXID is the stream's last transaction restored, 0 if the database
	// is the snapshot's copy (no stream, or one older than the snapshot).
	TXID uint64
	// Time is the commit time of that transaction (of the last batch
	// Litestream shipped it in); zero for the snapshot's copy.
	Time time.Time
}

// Restore restores t's data folder as it was at opt.At (the latest state
// without it) into dest, which must not exist or be empty.
//
// The folder's files come from the latest snapshot taken at or before
// opt.At (backup.Restore: manifest signature, every chunk), and then each
// database that has a stream is replaced by its stream's state at opt.At:
// the last transaction shipped with a commit time at or before opt.At, if
// that is not older than the snapshot. Every LTX file's object must open
// under its name (AEAD) and be the file its name says; Litestream checks
// each file's checksums while it rebuilds the database, and the result
// must pass SQLite's integrity check. A stream whose files do not reach
// that transaction (an object deleted) is refused, as is any changed or
// truncated object (backup.ErrCorrupt). All of it is written into a
// temporary folder beside dest, renamed at the end: on any failure nothing
// is left at dest.
//
// The patients of the target's shred tombstones are shredded again, and
// opt.Prepare runs, on the folder as it will be (its databases the
// streams'), before it is renamed into place.
//
// The stream cannot tell that objects at its end were deleted: a restore
// then stops at the last transaction still stored.
func Restore(ctx context.Context, t backup.Target, dest string, opt RestoreOptions) (*RestoreResult, error) {
	if err := emptyOrAbsent(dest); err != nil {
		return nil, err
	}
	at := opt.At
	if at.IsZero() {
		at = time.Now()
	}
	keys, err := backup.OpenKeys(ctx, t, opt.Identities...)
	if err != nil {
		return nil, err
	}
	ms, err := backup.List(ctx, t, keys, opt.Verifier)
	if err != nil {
		return nil, err
	}
	var snap *backup.Manifest
	for _, m := range ms {
		if !m.Time.After(at) {
			snap = m
		}
	}
	if snap == nil {
		return nil, fmt.Errorf("stream: no snapshot taken at or before %s to restore the folder's other files from: %w", at.UTC().Format(time.RFC3339), backup.ErrNotFound)
	}
	parent := filepath.Dir(filepath.Clean(dest))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("stream: restore: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".restore-*")
	if err != nil {
		return nil, fmt.Errorf("stream: restore: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	folder := filepath.Join(tmp, "data")
	// The snapshot's part of the folder; the shreds and the caller's
	// Prepare run once the databases are the streams' (below), on the
	// folder as it will be.
	inner := opt.RestoreOptions
	inner.ApplyShreds = func(context.Context, string, []backup.Shred) error { return nil }
	inner.Prepare = nil
	m, err := backup.Restore(ctx, t, snap.Snapshot, folder, inner)
	var markErr error
	if err != nil && m != nil { // restored; its verification mark not written
		markErr = err
	} else if err != nil {
		return nil, err
	}
	res := &RestoreResult{Snapshot: m}
	names, err := streamNames(ctx, t, keys)
	if err != nil {
		return nil, err
	}
	modes := map[string]fs.FileMode{}
	for _, f := range m.Files {
		modes[f.Name] = fs.FileMode(f.Mode)
	}
	for _, name := range names {
		rdb, err := restoreDB(ctx, NewClient(t, keys, name), folder, name, at, m.Time, modes)
		if err != nil {
			return nil, err
		}
		res.Databases = append(res.Databases, rdb)
	}
	shreds, err := backup.Shreds(ctx, t, keys)
	if err != nil {
		return nil, err
	}
	if len(shreds) > 0 {
		if opt.ApplyShreds == nil {
			return nil, fmt.Errorf("stream: the target holds %d shred tombstones and the restore has no way to apply them", len(shreds))
		}
		if err := opt.ApplyShreds(ctx, folder, shreds); err != nil {
			return nil, fmt.Errorf("stream: restore: shred again the patients shredded since: %w", err)
		}
	}
	if opt.Prepare != nil {
		if err := opt.Prepare(ctx, folder, m); err != nil {
			return nil, fmt.Errorf("stream: restore: %w", err)
		}
	}
	if err := syncDir(folder); err != nil {
		return nil, fmt.Errorf("stream: restore: %w", err)
	}
	if err := emptyOrAbsent(dest); err != nil { // filled meanwhile
		return nil, err
	}
	if err := os.Remove(dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stream: restore: %w", err)
	}
	if err := os.Rename(folder, dest); err != nil {
		return nil, fmt.Errorf("stream: restore: %w", err)
	}
	done = true
	os.RemoveAll(tmp)
	if err := syncDir(parent); err != nil {
		return nil, fmt.Errorf("stream: restore: %w", err)
	}
	return res, markErr
}

// restoreDB restores the database name into folder from its stream in c,
// at the last transaction shipped at or before at, unless that is older
// than the snapshot (taken at snapTime) already in folder.
func restoreDB(ctx context.Context, c *Client, folder, name string, at, snapTime time.Time, modes map[string]fs.FileMode) (RestoredDB, error) {
	rdb := RestoredDB{Name: name}
	if !safeName(name) {
		return rdb, fmt.Errorf("stream: a stream names the database %q, outside the folder: %w", name, backup.ErrCorrupt)
	}
	last, err := lastFile(ctx, c, at)
	if err != nil {
		return rdb, err
	}
	if last == nil || last.CreatedAt.Before(snapTime) {
		return rdb, nil // the snapshot's copy is as new
	}
	path := filepath.Join(folder, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return rdb, fmt.Errorf("stream: restore %s: %w", name, err)
	}
	out := path + ".stream"
	r := litestream.NewReplicaWithClient(nil, c)
	err = r.Restore(ctx, litestream.RestoreOptions{OutputPath: out, TXID: last.MaxTXID, Parallelism: litestream.DefaultRestoreParallelism})
	switch {
	case errors.Is(err, litestream.ErrTxNotAvailable):
		return rdb, fmt.Errorf("stream: restore %s: its stream does not reach transaction %s (an object is missing): %w", name, last.MaxTXID, backup.ErrCorrupt)
	case errors.Is(err, backup.ErrCorrupt):
		return rdb, fmt.Errorf("stream: restore %s: %w", name, err)
	case err != nil:
		return rdb, fmt.Errorf("stream: restore %s: %w (%v)", name, backup.ErrCorrupt, err)
	}
	if err := integrityCheck(ctx, out); err != nil {
		return rdb, fmt.Errorf("stream: restore %s: %w: %v", name, backup.ErrCorrupt, err)
	}
	mode, ok := modes[name]
	if !ok {
		mode = 0o600
	}
	if err := os.Chmod(out, mode); err != nil {
		return rdb, fmt.Errorf("stream: restore %s: %w", name, err)
	}
	if err := os.Rename(out, path); err != nil {
		return rdb, fmt.Errorf("stream: restore %s: %w", name, err)
	}
	rdb.TXID, rdb.Time = uint64(last.MaxTXID), last.CreatedAt
	return rdb, nil
}

// lastFile returns the file of c's stream, of any level, that ends with
// the last transaction shipped at or before at; nil if there is none.
func lastFile(ctx context.Context, c *Client, at time.Time) (*ltx.FileInfo, error) {
	var last *ltx.FileInfo
	for level := 0; level <= litestream.SnapshotLevel; level++ {
		it, err := c.LTXFiles(ctx, level, 0, true)
		if err != nil {
			return nil, err
		}
		for it.Next() {
			f := it.Item()
			if !f.CreatedAt.After(at) && (last == nil || f.MaxTXID > last.MaxTXID) {
				last = f
			}
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	return last, nil
}

// integrityCheck runs SQLite's integrity check on the database at path.
func integrityCheck(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var result string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&result); err != nil {
		return err
	}
	if result != "ok" {
		return errors.New("integrity check failed")
	}
	return db.Close()
}

// safeName reports whether name is a clean relative slash path.
func safeName(name string) bool {
	clean := filepath.ToSlash(filepath.Clean(filepath.FromSlash(name)))
	return name != "" && clean == name && !filepath.IsAbs(name) && name != ".." &&
		len(name) < 4096 && !(len(name) >= 3 && name[:3] == "../")
}

// emptyOrAbsent returns an error unless dest does not exist or is an
// empty folder.
func emptyOrAbsent(dest string) error {
	entries, err := os.ReadDir(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream: restore into %s: %w", dest, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("stream: restore into %s: the folder is not empty", dest)
	}
	return nil
}

// syncDir fsyncs the folder dir.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}
