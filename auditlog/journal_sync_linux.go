package auditlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
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

// A syncer fdatasyncs journal segments without holding a Go processor
// while the disk flushes.
//
// A plain fdatasync is a blocking system call: its thread keeps its
// processor (P) until the runtime's monitor takes it back, tens of
// microseconds later, and after the call the goroutine must win a
// processor again, behind every runnable request. On a server with two
// cores that fsyncs a few thousand times a second, that idles a core for a
// fifth of the time (measured: docs/PERFORMANCE.md). So the syncer hands
// the flush to the kernel with Linux AIO (io_submit of IOCB_CMD_FDSYNC,
// run by a kernel worker since Linux 4.18) and parks on an eventfd through
// the Go netpoller, like a goroutine waiting for a socket. If the kernel
// or file system refuses AIO fsync, it falls back to fdatasync for good.
//
// The AIO ABI is not in golang.org/x/sys, so its two structures are
// declared here, as in <linux/aio_abi.h>.
type syncer struct {
	mu     sync.Mutex // one flush at a time; the journal has one writer anyway
	ctx    uintptr    // aio_context_t, 0 once AIO is off
	event  *os.File   // eventfd, non-blocking, in the netpoller
	cookie uint64     // aio_data of the request in flight
}

// iocb is struct iocb of <linux/aio_abi.h> on little-endian machines; the
// blank fields are those an fsync leaves zero (aio_key, aio_rw_flags,
// aio_reqprio, aio_buf, aio_nbytes, aio_offset, aio_reserved2).
type iocb struct {
	data   uint64
	_      uint32
	_      int32
	opcode uint16
	_      int16
	fildes uint32
	_      uint64
	_      uint64
	_      int64
	_      uint64
	flags  uint32
	resfd  uint32
}

// ioEvent is struct io_event of <linux/aio_abi.h>: aio_data, the iocb's
// address, and the results.
type ioEvent struct {
	data uint64
	_    uint64
	res  int64
	_    int64
}

const (
	iocbCmdFdsync = 3 // IOCB_CMD_FDSYNC
	iocbFlagResfd = 1 // IOCB_FLAG_RESFD: signal completion on resfd
)

// littleEndian reports whether the machine stores the low byte first, the
// only layout iocb declares.
func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// newSyncer returns a syncer that uses AIO if the kernel offers it.
func newSyncer() *syncer {
	s := &syncer{}
	if !littleEndian() {
		return s
	}
	var ctx uintptr
	if _, _, errno := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); errno != 0 {
		return s
	}
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0)
		return s
	}
	s.ctx, s.event = ctx, os.NewFile(uintptr(fd), "audit-journal-eventfd")
	return s
}

// datasync flushes f's data to stable storage, as fdatasync does.
func (s *syncer) datasync(f *os.File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx != 0 {
		err := s.aio(f)
		if !errors.Is(err, errNoAIO) {
			return err
		}
		s.stop()
	}
	return datasync(f)
}

// errNoAIO means the kernel refused the AIO request itself: nothing was
// flushed, and fdatasync should be used instead.
var errNoAIO = errors.New("auditlog: AIO fsync not supported")

// aio submits an IOCB_CMD_FDSYNC for f and waits for its completion.
func (s *syncer) aio(f *os.File) error {
	s.cookie++
	cb := iocb{data: s.cookie, opcode: iocbCmdFdsync, flags: iocbFlagResfd}
	if err := withFd(s.event, func(fd uintptr) { cb.resfd = uint32(fd) }); err != nil {
		return err
	}
	var submitted uintptr
	var errno syscall.Errno
	err := withFd(f, func(fd uintptr) {
		cb.fildes = uint32(fd)
		cbs := [1]*iocb{&cb}
		for {
			// The kernel copies the iocb during io_submit; FDSYNC has no
			// buffer that must outlive the call.
			submitted, _, errno = unix.Syscall(unix.SYS_IO_SUBMIT, s.ctx, 1, uintptr(unsafe.Pointer(&cbs[0])))
			if errno != syscall.EINTR && errno != syscall.EAGAIN {
				return
			}
		}
	})
	switch {
	case err != nil:
		return err
	case errno == syscall.EINVAL || errno == syscall.ENOSYS || errno == syscall.EOPNOTSUPP:
		return errNoAIO
	case errno != 0:
		return fmt.Errorf("auditlog: io_submit: %w", errno)
	case submitted != 1:
		return errNoAIO
	}
	var count [8]byte
	if _, err := io.ReadFull(s.event, count[:]); err != nil {
		// The request is in flight and cannot be waited for: stop using
		// AIO (io_destroy waits for it) and report the failure.
		s.stop()
		return fmt.Errorf("auditlog: wait for fsync: %w", err)
	}
	var ev ioEvent
	for {
		// The event is in the ring before the eventfd is signaled: this
		// returns at once.
		_, _, errno := unix.Syscall6(unix.SYS_IO_GETEVENTS, s.ctx, 1, 1, uintptr(unsafe.Pointer(&ev)), 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 || ev.data != s.cookie {
			s.stop()
			return fmt.Errorf("auditlog: io_getevents: %v, event %d for request %d", errno, ev.data, s.cookie)
		}
		break
	}
	if ev.res < 0 {
		return fmt.Errorf("auditlog: fdatasync: %w", syscall.Errno(-ev.res))
	}
	return nil
}

// withFd runs fn with f's descriptor, without the side effects of f.Fd.
func withFd(f *os.File, fn func(fd uintptr)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(fn)
}

// stop turns AIO off; the caller holds s.mu.
func (s *syncer) stop() {
	if s.ctx == 0 {
		return
	}
	unix.Syscall(unix.SYS_IO_DESTROY, s.ctx, 0, 0) // waits for a request in flight
	s.event.Close()
	s.ctx, s.event = 0, nil
}

// close releases the AIO context.
func (s *syncer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop()
}
