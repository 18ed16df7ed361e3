package jsonl_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/jsonl"
)

type entry struct {
	N int `json:"n"`
}

// TestAppendRead appends values to a new file in a new folder, checks the
// modes and reads them back in order; no file reads as none, and a line
// that is not a value is an error naming its line.
func TestAppendRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "history.jsonl")
	if got, err := jsonl.Read[entry](path); got != nil || err != nil {
		t.Fatalf("Read of no file = %v, %v; want none", got, err)
	}
	for i := range 3 {
		if err := jsonl.Append(path, entry{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v; want 0600", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("folder mode = %v, %v; want 0700", st.Mode(), err)
	}
	got, err := jsonl.Read[entry](path)
	if err != nil || len(got) != 3 || got[0].N != 0 || got[2].N != 2 {
		t.Fatalf("Read = %v, %v; want 0, 1, 2", got, err)
	}

	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not json\n")
	f.Close()
	if _, err := jsonl.Read[entry](path); err == nil || !strings.Contains(err.Error(), ":4: not a report") {
		t.Errorf("Read of a bad line = %v, want an error naming line 4", err)
	}
}
