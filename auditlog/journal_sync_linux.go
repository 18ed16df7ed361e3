package auditlog

import (
	"os"
	"syscall"
)

// datasync flushes f's data to stable storage. The journal's segments are
// zero-filled in advance, so writing a record changes no metadata and
// fdatasync does not wait for a file system journal commit.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
