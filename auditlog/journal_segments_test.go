package auditlog

import (
	"os"
	"strings"
	"testing"
)

// TestReadJournal_olderSegments: an older segment may end in the rest of
// its zero fill (the applier trims segments late, so a crash can leave
// several), but anything else after its last record is damage and stops
// the replay.
func TestReadJournal_olderSegments(t *testing.T) {
	write := func(t *testing.T, dir string, first int64, n int, tail []byte) {
		t.Helper()
		var b []byte
		for i := range n {
			b = appendRecord(b, first+int64(i), []byte(`{"entry":true}`))
		}
		if err := os.WriteFile(segmentPath(dir, first), append(b, tail...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("zero-tail", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, 0, 3, make([]byte, 4096))
		write(t, dir, 3, 2, make([]byte, 4096))
		data, err := readJournal(dir, 1)
		if err != nil || len(data) != 4 {
			t.Fatalf("readJournal = %d entries, %v; want 4 (indexes 1-4)", len(data), err)
		}
	})
	t.Run("garbage-tail", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, 0, 3, append([]byte{0, 0, 0, 9, 1, 2, 3}, make([]byte, 100)...))
		write(t, dir, 3, 2, nil)
		if _, err := readJournal(dir, 0); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("readJournal of a damaged older segment = %v, want damaged", err)
		}
	})
	t.Run("newest-torn", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, 0, 3, nil)
		write(t, dir, 3, 2, []byte{0, 0, 0, 40, 9, 9}) // a torn last record: never acknowledged
		data, err := readJournal(dir, 0)
		if err != nil || len(data) != 5 {
			t.Fatalf("readJournal = %d entries, %v; want 5", len(data), err)
		}
	})
}
