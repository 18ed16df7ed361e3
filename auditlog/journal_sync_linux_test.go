package auditlog

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

// TestSyncer_abi checks the sizes of the AIO structures against
// <linux/aio_abi.h>: 64 and 32 bytes.
func TestSyncer_abi(t *testing.T) {
	if n := unsafe.Sizeof(iocb{}); n != 64 {
		t.Errorf("sizeof(iocb) = %d, want 64", n)
	}
	if n := unsafe.Sizeof(ioEvent{}); n != 32 {
		t.Errorf("sizeof(io_event) = %d, want 32", n)
	}
	if off := unsafe.Offsetof(iocb{}.flags); off != 56 {
		t.Errorf("offsetof(iocb, aio_flags) = %d, want 56", off)
	}
	if off := unsafe.Offsetof(iocb{}.opcode); off != 16 {
		t.Errorf("offsetof(iocb, aio_lio_opcode) = %d, want 16", off)
	}
}

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
