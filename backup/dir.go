package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultRetention is the time during which a Dir refuses to delete an
// object.
const DefaultRetention = 30 * 24 * time.Hour

// A Dir is a Target in a local folder (another disk, a mounted share).
// Objects are files under it, made read-only.
type Dir struct {
	// Path is the folder; Put makes it if missing.
	Path string
	// Retention is how long after its writing an object cannot be
	// deleted. Zero means DefaultRetention.
	Retention time.Duration
	// Now returns the time; nil means time.Now.
	Now func() time.Time
}

var _ Target = (*Dir)(nil)

// ValidName reports whether name is a well-formed object name (see
// Target); targets refuse any other.
func ValidName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/') {
			return false
		}
	}
	return true
}

func (d *Dir) file(name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("backup: object name %q is not valid", name)
	}
	return filepath.Join(d.Path, filepath.FromSlash(name)), nil
}

// Put writes data to a temporary file (created with O_EXCL), syncs it and
// hard-links it to its name, which fails if the name exists: an object is
// never overwritten, and a crash leaves a whole object or none, never a
// cut one under its final name. The folder is synced after.
func (d *Dir) Put(ctx context.Context, name string, data []byte) error {
	path, err := d.file(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("backup: put %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: put %s: %w", name, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o400)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: put %s: %w", name, err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("backup: put %s: %w", name, ErrExist)
		}
		return fmt.Errorf("backup: put %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("backup: put %s: %w", name, err)
	}
	return nil
}

// Get reads the object name.
func (d *Dir) Get(ctx context.Context, name string) ([]byte, error) {
	path, err := d.file(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("backup: object %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: get %s: %w", name, err)
	}
	return b, nil
}

// List returns the objects under prefix, which ends in "/".
func (d *Dir) List(ctx context.Context, prefix string) ([]string, error) {
	if !ValidName(prefix+"x") || !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("backup: list prefix %q is not valid", prefix)
	}
	entries, err := os.ReadDir(filepath.Join(d.Path, filepath.FromSlash(prefix)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup: list %s: %w", prefix, err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && ValidName(prefix+e.Name()) {
			names = append(names, prefix+e.Name())
		}
	}
	return names, nil
}

// Delete removes the object name once it is older than the retention.
func (d *Dir) Delete(ctx context.Context, name string) error {
	path, err := d.file(name)
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: object %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("backup: delete %s: %w", name, err)
	}
	now, ret := time.Now, d.Retention
	if d.Now != nil {
		now = d.Now
	}
	if ret <= 0 {
		ret = DefaultRetention
	}
	if now().Before(fi.ModTime().Add(ret)) {
		return fmt.Errorf("backup: delete %s: %w", name, ErrRetained)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("backup: delete %s: %w", name, err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs the folder dir, so that the names made in it last.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}
