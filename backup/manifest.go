package backup

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// manifestHeader is the first line of a manifest's text.
const manifestHeader = "phivault backup manifest v1\n"

// A Manifest describes one snapshot: what its files are and which chunks
// make them up. It is kept signed (a note) and sealed in the target.
type Manifest struct {
	Snapshot string    `json:"snapshot"` // 32 hex digits
	Time     time.Time `json:"time"`     // UTC
	// Checkpoint is the audit trail's latest signed checkpoint in the
	// snapshot (a note), or "" if the trail had none.
	Checkpoint string   `json:"checkpoint,omitempty"`
	Dirs       []string `json:"dirs,omitempty"` // folders, parents first
	Files      []File   `json:"files"`
}

// A File is one file of a snapshot.
type File struct {
	Name   string  `json:"name"` // slash-separated, relative to the data folder
	Mode   uint32  `json:"mode"` // permission bits
	Size   int64   `json:"size"`
	SHA256 string  `json:"sha256"` // of the whole file, hex
	Chunks []Chunk `json:"chunks"`
}

// A Chunk is a piece of a file: its id and its plaintext size.
type Chunk struct {
	ID   string `json:"id"` // HMAC-SHA256 under the id key, hex
	Size int64  `json:"size"`
}

// Size returns the total size of m's files.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Marshal returns m's canonical text: the header line, then m as one line
// of JSON.
func (m *Manifest) Marshal() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic("backup: marshal manifest: " + err.Error())
	}
	return append(append([]byte(manifestHeader), b...), '\n')
}

// ParseManifest parses a manifest's text and checks it: canonical form,
// well-formed ids and hashes, safe file names (relative, clean, no "..",
// no duplicates), sizes that add up.
func ParseManifest(text []byte) (*Manifest, error) {
	body, ok := bytes.CutPrefix(text, []byte(manifestHeader))
	if !ok {
		return nil, errors.New("backup: manifest: bad header")
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, errors.New("backup: manifest: malformed")
	}
	if !bytes.Equal(m.Marshal(), text) {
		return nil, errors.New("backup: manifest: not canonical")
	}
	if !isHex(m.Snapshot, 16) {
		return nil, errors.New("backup: manifest: bad snapshot id")
	}
	if m.Time.Location() != time.UTC {
		return nil, errors.New("backup: manifest: time is not UTC")
	}
	seen := map[string]bool{}
	for _, d := range m.Dirs {
		if !safeName(d) || seen[d] {
			return nil, fmt.Errorf("backup: manifest: bad folder name %q", d)
		}
		if p := path.Dir(d); p != "." && !seen[p] {
			return nil, fmt.Errorf("backup: manifest: folder %q before its parent", d)
		}
		seen[d] = true
	}
	for _, f := range m.Files {
		if !safeName(f.Name) || seen[f.Name] {
			return nil, fmt.Errorf("backup: manifest: bad file name %q", f.Name)
		}
		if p := path.Dir(f.Name); p != "." && !seen[p] {
			return nil, fmt.Errorf("backup: manifest: file %q outside the listed folders", f.Name)
		}
		seen[f.Name] = true
		if f.Mode&^0o777 != 0 || !isHex(f.SHA256, 32) || f.Size < 0 {
			return nil, fmt.Errorf("backup: manifest: file %q: bad mode, size or hash", f.Name)
		}
		var n int64
		for _, c := range f.Chunks {
			if !isHex(c.ID, 32) || c.Size <= 0 || c.Size > maxChunk {
				return nil, fmt.Errorf("backup: manifest: file %q: bad chunk", f.Name)
			}
			n += c.Size
		}
		if n != f.Size {
			return nil, fmt.Errorf("backup: manifest: file %q: chunks do not add up to its size", f.Name)
		}
	}
	return &m, nil
}

// safeName reports whether name is a clean relative slash path inside
// the folder: no "..", no absolute path, no backslash, no empty part.
func safeName(name string) bool {
	return name != "" && name != "." && path.Clean(name) == name && !path.IsAbs(name) &&
		!strings.HasPrefix(name, "../") && name != ".." && !strings.ContainsAny(name, "\\\x00") &&
		!strings.Contains("/"+name+"/", "/../")
}

// isHex reports whether s is n bytes in lowercase hex.
func isHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	b, err := hex.DecodeString(s)
	return err == nil && hex.EncodeToString(b) == s
}
