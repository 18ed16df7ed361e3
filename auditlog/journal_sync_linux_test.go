package auditlog

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSyncer_aio checks that the journal's flushes go through Linux AIO on
// this kernel (CI's), that they succeed on a real file many times over,
// and that a flush of a file that cannot be synced reports the error.
func TestSyncer_aio(t *testing.T) {
	s := newSyncer()
	defer s.close()
	if s.ctx == 0 {
		t.Fatal("no AIO context: the kernel refused io_setup or eventfd")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "seg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 200 {
		if _, err := f.Write([]byte("record\n")); err != nil {
			t.Fatal(err)
		}
		if err := s.datasync(f); err != nil {
			t.Fatalf("flush %d: %v", i, err)
		}
	}
	if s.ctx == 0 {
		t.Fatal("AIO was turned off after flushes of a regular file")
	}
	closed, err := os.Create(filepath.Join(t.TempDir(), "closed"))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if err := s.datasync(closed); err == nil {
		t.Error("flush of a closed file = nil, want an error")
	}
}

// TestSyncer_fallback: a file whose fsync the kernel refuses through AIO
// (a pipe) turns AIO off for good, and regular files are then flushed with
// fdatasync.
func TestSyncer_fallback(t *testing.T) {
	s := newSyncer()
	defer s.close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := s.datasync(w); err == nil {
		t.Error("flush of a pipe = nil, want an error")
	}
	if s.ctx != 0 {
		t.Error("AIO still on after the kernel refused a request")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "seg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.datasync(f); err != nil {
		t.Fatalf("flush with fdatasync: %v", err)
	}
}
