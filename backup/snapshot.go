package backup

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// The data folder's files that the snapshot takes in a fixed order (see
// Snapshot).
const (
	auditDB          = "phivault.audit.db"
	auditJournal     = "phivault.audit.journal"
	checkpointLog    = "audit-checkpoints.log"
	keyCache         = "backup.key"
	sqliteMagic      = "SQLite format 3\x00"
	snapshotTempGlob = ".backup-*"
)

// skip reports whether the file name (relative to the data folder) stays
// out of a snapshot: SQLite's side files (the copy is a whole database),
// temporary files, and the backup key cache.
func skip(name string) bool {
	base := filepath.Base(name)
	return name == keyCache || strings.HasPrefix(base, ".") ||
		strings.HasSuffix(base, "-wal") || strings.HasSuffix(base, "-shm") || strings.HasSuffix(base, "-journal")
}

// A snapshotFile is a file of a snapshot: its name in the manifest and
// the file holding its content (the original, or a copy).
type snapshotFile struct {
	name string
	path string
	mode fs.FileMode
}

// A Snapshot is a consistent copy of a data folder, ready to be chunked.
// Close removes its copies.
type Snapshot struct {
	Dirs  []string
	files []snapshotFile
	tmp   string
	// Checkpoint is the latest signed audit checkpoint in the snapshot.
	Checkpoint string
}

// Close removes the snapshot's temporary copies.
func (s *Snapshot) Close() error { return os.RemoveAll(s.tmp) }

// TakeSnapshot copies the data folder dir consistently while a server may
// be writing to it, into a temporary folder inside dir (same disk, same
// permissions). Its order makes the copy consistent:
//
//  1. the small files, which are replaced atomically (read whole);
//  2. every SQLite database but the audit trail's, each with SQLite's
//     online backup (one read transaction: one consistent state of it);
//  3. the checkpoint log, up to its last whole checkpoint;
//  4. the audit journal's segments, and then
//  5. the audit database.
//
// Every change is written to the audit trail before it is made, so the
// trail copied last covers every change in the databases copied before
// it; checkpoints copied before the trail cover no entry it lacks; and the
// journal, copied before the audit database, holds every entry the
// database copy lacks that was acknowledged before the journal copy (a
// segment is removed only once its entries are in the database).
//
// A snapshot killed half-way leaves its temporary folder; the next one
// removes such folders once they are a day old (StaleSnapshot), so as not
// to remove the copies of a snapshot running alongside.
func TakeSnapshot(ctx context.Context, dir string) (s *Snapshot, err error) {
	removeStale(dir, time.Now().Add(-StaleSnapshot))
	tmp, err := os.MkdirTemp(dir, snapshotTempGlob)
	if err != nil {
		return nil, fmt.Errorf("backup: snapshot: %w", err)
	}
	s = &Snapshot{tmp: tmp}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	var small, dbs []snapshotFile
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := filepath.ToSlash(rel)
		if p == dir {
			return nil
		}
		if skip(name) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			if name == auditJournal {
				s.Dirs = append(s.Dirs, name)
				return filepath.SkipDir // copied in its turn
			}
			s.Dirs = append(s.Dirs, name)
			return nil
		}
		if !e.Type().IsRegular() || name == checkpointLog || name == auditDB {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		f := snapshotFile{name: name, path: p, mode: fi.Mode().Perm()}
		if isSQLite(p) {
			dbs = append(dbs, f)
		} else {
			small = append(small, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup: snapshot: %w", err)
	}
	for _, f := range small {
		if f, err = s.copyFile(f); err != nil {
			return nil, err
		}
		s.files = append(s.files, f)
	}
	for _, f := range dbs {
		if f, err = s.copyDB(ctx, f); err != nil {
			return nil, err
		}
		s.files = append(s.files, f)
	}
	if err := s.checkpoints(ctx, dir); err != nil {
		return nil, err
	}
	if err := s.journal(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Join(dir, auditDB)); err == nil {
		f, err := s.copyDB(ctx, snapshotFile{name: auditDB, path: filepath.Join(dir, auditDB), mode: fi.Mode().Perm()})
		if err != nil {
			return nil, err
		}
		s.files = append(s.files, f)
	}
	slices.Sort(s.Dirs) // parents before children
	return s, nil
}

// StaleSnapshot is the age after which a snapshot's temporary folder left in
// the data folder is taken to be a killed snapshot's, and removed.
const StaleSnapshot = 24 * time.Hour

// removeStale removes the temporary folders of snapshots in dir last
// changed before cutoff.
func removeStale(dir string, cutoff time.Time) {
	old, _ := filepath.Glob(filepath.Join(dir, snapshotTempGlob))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() && fi.ModTime().Before(cutoff) {
			os.RemoveAll(p)
		}
	}
}

// isSQLite reports whether the file at p is an SQLite database.
func isSQLite(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [16]byte
	_, err = io.ReadFull(f, h[:])
	return err == nil && string(h[:]) == sqliteMagic
}

// tempPath returns the path of the copy of the file name in s.
func (s *Snapshot) tempPath(name string) string {
	return filepath.Join(s.tmp, strings.ReplaceAll(name, "/", "%"))
}

// copyFile copies a small file: whole, in one read, so that a file
// replaced by rename is the old one or the new one.
func (s *Snapshot) copyFile(f snapshotFile) (snapshotFile, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return f, fmt.Errorf("backup: snapshot %s: %w", f.name, err)
	}
	return s.keep(f, b)
}

func (s *Snapshot) keep(f snapshotFile, b []byte) (snapshotFile, error) {
	f.path = s.tempPath(f.name)
	if err := os.WriteFile(f.path, b, 0o600); err != nil {
		return f, fmt.Errorf("backup: snapshot %s: %w", f.name, err)
	}
	return f, nil
}

// copyDB copies the SQLite database f with SQLite's online backup API, all
// pages in one step: one read transaction, so one consistent state of the
// database, taken without blocking writers (WAL mode). The copy is page
// for page, so pages no write touched are byte-identical from one backup to
// the next and their chunks dedup (VACUUM INTO, which repacks every b-tree,
// shifts the content of every page after a changed row).
func (s *Snapshot) copyDB(ctx context.Context, f snapshotFile) (snapshotFile, error) {
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: f.path}).EscapedPath()+"?_pragma=busy_timeout(30000)")
	if err != nil {
		return f, fmt.Errorf("backup: snapshot %s: %v", f.name, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return f, fmt.Errorf("backup: snapshot %s: %v", f.name, err)
	}
	defer conn.Close()
	out := s.tempPath(f.name)
	err = conn.Raw(func(dc any) error {
		b, ok := dc.(interface {
			NewBackup(dst string) (*sqlite.Backup, error)
		})
		if !ok {
			return errors.New("the SQLite driver has no online backup")
		}
		bk, err := b.NewBackup(out)
		if err != nil {
			return err
		}
		for {
			more, err := bk.Step(-1)
			if err != nil {
				bk.Finish()
				return err
			}
			if !more {
				return bk.Finish()
			}
		}
	})
	if err != nil {
		return f, fmt.Errorf("backup: snapshot %s: online backup: %v", f.name, err)
	}
	f.path = out
	return f, nil
}

// checkpoints copies the checkpoint log up to its last whole checkpoint
// (each ends in an empty line) and keeps the last one.
func (s *Snapshot) checkpoints(ctx context.Context, dir string) error {
	p := filepath.Join(dir, checkpointLog)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup: snapshot %s: %w", checkpointLog, err)
	}
	var b []byte
	for try := 0; ; try++ {
		if b, err = os.ReadFile(p); err != nil {
			return fmt.Errorf("backup: snapshot %s: %w", checkpointLog, err)
		}
		if len(b) == 0 || bytes.HasSuffix(b, []byte("\n\n")) {
			break
		}
		if try == 50 {
			return fmt.Errorf("backup: snapshot %s: its last checkpoint stays cut short", checkpointLog)
		}
		select { // a checkpoint is being appended
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if notes := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n\n")); len(notes) >= 2 {
		// A note is text, an empty line, signatures, and an empty line.
		s.Checkpoint = string(notes[len(notes)-2]) + "\n\n" + string(notes[len(notes)-1])
	}
	f, err := s.keep(snapshotFile{name: checkpointLog, mode: fi.Mode().Perm()}, b)
	if err != nil {
		return err
	}
	s.files = append(s.files, f)
	return nil
}

// journal copies the audit journal's segments. A segment removed while
// it is read (its entries reached the database) starts the copy again.
func (s *Snapshot) journal(dir string) error {
	jdir := filepath.Join(dir, auditJournal)
	for try := 0; try < 10; try++ {
		entries, err := os.ReadDir(jdir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("backup: snapshot %s: %w", auditJournal, err)
		}
		var copied []snapshotFile
		gone := false
		for _, e := range entries {
			name := auditJournal + "/" + e.Name()
			if !e.Type().IsRegular() || skip(name) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(jdir, e.Name()))
			if errors.Is(err, fs.ErrNotExist) {
				gone = true
				break
			}
			if err != nil {
				return fmt.Errorf("backup: snapshot %s: %w", name, err)
			}
			f, err := s.keep(snapshotFile{name: name, mode: 0o600}, b)
			if err != nil {
				return err
			}
			copied = append(copied, f)
		}
		if !gone {
			s.files = append(s.files, copied...)
			return nil
		}
	}
	return fmt.Errorf("backup: snapshot %s: segments keep being removed", auditJournal)
}
