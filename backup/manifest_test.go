package backup_test

import (
	"bytes"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/backup"
)

func validManifest() *backup.Manifest {
	return &backup.Manifest{
		Snapshot:   "00112233445566778899aabbccddeeff",
		Time:       time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC),
		Checkpoint: "origin\n1\nhash\n\n— key sig\n",
		Dirs:       []string{"tls"},
		Files: []backup.File{{
			Name: "tls/key.pem", Mode: 0o600, Size: 3, SHA256: strings.Repeat("ab", 32),
			Chunks: []backup.Chunk{{ID: strings.Repeat("cd", 32), Size: 3}},
		}},
	}
}

func TestParseManifest(t *testing.T) {
	good := validManifest().Marshal()
	if m, err := backup.ParseManifest(good); err != nil || m.Files[0].Name != "tls/key.pem" {
		t.Fatalf("ParseManifest(valid) = %v, %v", m, err)
	}
	bad := map[string]func(m *backup.Manifest){
		"dot-dot":       func(m *backup.Manifest) { m.Files[0].Name = "../key.pem" },
		"inner dot-dot": func(m *backup.Manifest) { m.Files[0].Name = "tls/../../key.pem" },
		"absolute":      func(m *backup.Manifest) { m.Files[0].Name = "/etc/key.pem" },
		"no parent":     func(m *backup.Manifest) { m.Dirs = nil },
		"duplicate":     func(m *backup.Manifest) { m.Files = append(m.Files, m.Files[0]) },
		"size":          func(m *backup.Manifest) { m.Files[0].Size = 4 },
		"chunk id":      func(m *backup.Manifest) { m.Files[0].Chunks[0].ID = "../../keys" },
		"mode":          func(m *backup.Manifest) { m.Files[0].Mode = 0o4755 },
		"snapshot id":   func(m *backup.Manifest) { m.Snapshot = "x" },
		"not UTC":       func(m *backup.Manifest) { m.Time = m.Time.In(time.FixedZone("X", 3600)) },
	}
	for name, edit := range bad {
		m := validManifest()
		edit(m)
		if _, err := backup.ParseManifest(m.Marshal()); err == nil {
			t.Errorf("ParseManifest(%s) = nil error, want refused", name)
		}
	}
	spaced := bytes.Replace(good, []byte(`{"snapshot"`), []byte(`{ "snapshot"`), 1)
	if _, err := backup.ParseManifest(spaced); err == nil {
		t.Errorf("ParseManifest(non-canonical) = nil error, want refused")
	}
}

// FuzzParseManifest checks that ParseManifest never panics, and that what
// it accepts is canonical and names only files inside the folder.
func FuzzParseManifest(f *testing.F) {
	f.Add(validManifest().Marshal())
	f.Add([]byte("phivault backup manifest v1\n{}\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		m, err := backup.ParseManifest(text)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Marshal(), text) {
			t.Fatalf("accepted a non-canonical manifest")
		}
		for _, f := range m.Files {
			if path.IsAbs(f.Name) || strings.HasPrefix(path.Clean(f.Name), "..") {
				t.Fatalf("accepted file name %q outside the folder", f.Name)
			}
		}
	})
}
