//go:build linux

package coredump

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Disable sets the core-file size limit (RLIMIT_CORE) to zero and marks the
// process not dumpable (PR_SET_DUMPABLE 0), which also keeps other
// processes of the same user from attaching to it or reading its memory
// through /proc. Unwrapped keys and passphrases then never land in a core
// file, even with a system-wide core handler such as systemd-coredump.
func Disable() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("coredump: set RLIMIT_CORE: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("coredump: prctl PR_SET_DUMPABLE: %w", err)
	}
	return nil
}
