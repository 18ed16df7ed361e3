//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/phivault/phivault/keyring"
)

// helperArgsEnv carries the phivault arguments (JSON) to the helper process
// of TestCommands_DisableCoreDumps.
const helperArgsEnv = "PHIVAULT_TEST_COREDUMP_ARGS"

// TestCoreDumpHelper is not a test: run by TestCommands_DisableCoreDumps
// in a child process, it runs one phivault command in-process and prints
// whether the process is still dumpable and its core-file limit.
func TestCoreDumpHelper(t *testing.T) {
	raw := os.Getenv(helperArgsEnv)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	// The command may fail (no server, no such patient): what counts is
	// the state it left the process in.
	run(context.Background(), args, io.Discard, io.Discard)
	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("dumpable=%d core=%d/%d\n", dumpable, lim.Cur, lim.Max)
}

// TestCommands_DisableCoreDumps runs every command that reads a key-file
// passphrase or loads keys in a child process and checks that it made the
// process undumpable with a zero core-file limit, as serve does; a command
// that touches no secret (version) is the control.
func TestCommands_DisableCoreDumps(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pass := "correct horse battery staple"
	passFile := filepath.Join(dir, "pass")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passFile, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	// A data folder with a cheap key file, so the children really open it.
	if err := keyring.CreateFile(dataDir(data).keyFile(), []byte(pass), keyring.FileOptions{WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dataDir(data).tokenHashFile(), []byte(strings.Repeat("00", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	offline := []string{"-data", data, "-passphrase-file", passFile}
	tests := []struct {
		args     []string
		dumpable bool
	}{
		{[]string{"version"}, true},
		{append([]string{"keys", "status"}, offline...), false},
		{append([]string{"keys", "shred", "--patient", "nope"}, offline...), false},
		{append([]string{"keys", "rotate-patient", "--patient", "nope"}, offline...), false},
		{append([]string{"keys", "compromised", "--kek", "file:9"}, offline...), false},
		{[]string{"keys", "shred", "--patient", "nope", "-url", "https://127.0.0.1:1"}, false},
		{[]string{"unseal", "-url", "https://127.0.0.1:1", "-passphrase-file", passFile}, false},
		{[]string{"init", "-data", data, "-passphrase-file", passFile}, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:min(2, len(tt.args))], " "), func(t *testing.T) {
			args, err := json.Marshal(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestCoreDumpHelper$")
			cmd.Env = append(os.Environ(), helperArgsEnv+"="+string(args))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %v\n%s", tt.args, err, out.String())
			}
			var dumpable int
			var cur, max uint64
			line := out.String()
			if i := strings.Index(line, "dumpable="); i >= 0 {
				line = line[i:]
			}
			if _, err := fmt.Sscanf(line, "dumpable=%d core=%d/%d", &dumpable, &cur, &max); err != nil {
				t.Fatalf("%v: helper printed %q", tt.args, out.String())
			}
			if tt.dumpable {
				if dumpable != 1 {
					t.Errorf("%v left the process dumpable=%d; want 1 (the control)", tt.args, dumpable)
				}
				return
			}
			if dumpable != 0 || cur != 0 || max != 0 {
				t.Errorf("%v left dumpable=%d, RLIMIT_CORE=%d/%d; want 0, 0/0", tt.args, dumpable, cur, max)
			}
		})
	}
}
