package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/phivault/phivault/incident"
)

// TestIncidents drives the incidents CLI against a real server: open,
// list, show, a change, a stale change; the title and note are on disk
// only sealed.
func TestIncidents(t *testing.T) {
	url, token, cacert := startSecurityServer(t)
	t.Setenv("PHIVAULT_TOKEN", token)
	os.Unsetenv("PHIVAULT_TOKEN_FILE")
	ctx := context.Background()
	phivault := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append(append([]string{args[0], args[1]}, "-url", url, "-cacert", cacert), args[2:]...), &out, &errb)
		return out.String(), err
	}
	const title, note = "Porter opened Zebediah Quint's chart", "Quint's daughter phoned the ward"
	noteFile := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(noteFile, []byte(note), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := phivault("incidents", "open", "-title", title, "-severity", "high", "-user", "u-porter", "-patient", "p-9", "-note-file", noteFile)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	id := regexp.MustCompile(`inc-[0-9a-f]{32}`).FindString(out)
	if id == "" || !strings.Contains(out, "phase detect") || !strings.Contains(out, "clock notify") {
		t.Fatalf("open printed %q", out)
	}
	out, err = phivault("incidents", "list", "-open")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, title) {
		t.Fatalf("list = %q, %v", out, err)
	}
	out, err = phivault("incidents", "update", id, "-version", "1", "-phase", "contain", "-owner", "u-officer")
	if err != nil || !strings.Contains(out, "phase contain") || !strings.Contains(out, "version 2") {
		t.Fatalf("update = %q, %v", out, err)
	}
	// A change on a stale version is refused and says why.
	if _, err := phivault("incidents", "update", id, "-version", "1", "-phase", "eradicate"); err == nil || !strings.Contains(err.Error(), "412") {
		t.Fatalf("stale update = %v, want a 412", err)
	}
	out, err = phivault("incidents", "show", id, "-json")
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	var v incident.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.Phase != incident.PhaseContain || len(v.Timeline) != 3 || v.Timeline[0].Note != note || v.Acknowledged.IsZero() {
		t.Fatalf("show: %+v", v)
	}
	// Refusals name the fix.
	if _, err := phivault("incidents", "open", "-severity", "high"); err == nil || !strings.Contains(err.Error(), "-title") {
		t.Fatalf("open without a title = %v", err)
	}

	// Nothing of the title or the note is on disk in the clear.
	dir := filepath.Dir(filepath.Dir(cacert))
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range []string{"Zebediah", "Quint"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q", path, s)
			}
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(dir, "incidents.db")); err != nil {
		t.Fatalf("no incidents.db in the data folder: %v", err)
	}
}
