package backup

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
)

// This file exports what package backup/stream (continuous protection)
// needs of the key set and of the snapshot's view of a data folder.

// streamAD is the additional data that binds a stream object to its name;
// its prefix keeps stream objects apart from chunks and manifests.
func streamAD(name string) string { return "phivault-backup stream " + name }

// SealStream encrypts data as the stream object name: under the data key,
// with a random nonce, bound to name, so that the object opens only under
// that name.
func (k *KeySet) SealStream(rand io.Reader, name string, data []byte) ([]byte, error) {
	return k.seal(rand, data, streamAD(name))
}

// OpenStream decrypts the stream object name sealed by SealStream. It
// returns ErrCorrupt if the object is cut short, changed, or sealed for
// another name or under another key set.
func (k *KeySet) OpenStream(name string, obj []byte) ([]byte, error) {
	plain, err := k.open(obj, streamAD(name))
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", name, err)
	}
	return plain, nil
}

// StreamID returns the id of the stream of the database name (slash
// path relative to the data folder): HMAC-SHA256 of the name under the id
// key, hex. It tells a holder of the backup without the keys nothing
// about which database a stream is of.
func (k *KeySet) StreamID(dbName string) string {
	m := hmac.New(sha256.New, k.idKey)
	m.Write([]byte("phivault-backup stream-id\x00" + dbName))
	return hex.EncodeToString(m.Sum(nil))
}

// Databases returns the SQLite databases of the data folder dir that a
// snapshot copies with SQLite's online backup (TakeSnapshot), the audit
// trail's included: their slash names relative to dir, sorted.
func Databases(dir string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		name := filepath.ToSlash(rel)
		if skip(name) || name == auditJournal {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() && name != checkpointLog && isSQLite(p) {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup: databases of %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// IsDatabase reports whether the file at path is an SQLite database.
func IsDatabase(path string) bool { return isSQLite(path) }
