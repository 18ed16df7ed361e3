//go:build linux

package coredump_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/phivault/phivault/internal/coredump"
)

func TestDisable(t *testing.T) {
	if err := coredump.Disable(); err != nil {
		t.Fatal(err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != 0 || lim.Max != 0 {
		t.Errorf("RLIMIT_CORE = %d/%d after Disable, want 0/0", lim.Cur, lim.Max)
	}
	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if dumpable != 0 {
		t.Errorf("PR_GET_DUMPABLE = %d after Disable, want 0", dumpable)
	}
	// A second call (serve after demo's set-up, say) still succeeds: a hard
	// limit of zero may be set again.
	if err := coredump.Disable(); err != nil {
		t.Errorf("second Disable = %v", err)
	}
}
