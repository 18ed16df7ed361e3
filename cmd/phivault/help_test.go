package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestHelp checks that every command and subcommand answers -h the same
// way: its usage on stdout, nothing on stderr, and success (exit 0).
func TestHelp(t *testing.T) {
	t.Setenv("PHIVAULT_TOKEN", "")
	commands := [][]string{
		{"init"}, {"serve"}, {"demo"}, {"import"}, {"bench"}, {"training"}, {"audit"}, {"unseal"}, {"seal"},
		{"keys"}, {"policy"}, {"users"}, {"clients"},
		{"keys", "shred"}, {"keys", "rotate"}, {"keys", "rotate-patient"}, {"keys", "status"}, {"keys", "compromised"},
		{"users", "add"}, {"users", "list"}, {"users", "update"}, {"users", "suspend"}, {"users", "activate"},
		{"users", "set-password"}, {"users", "set-training"}, {"users", "enroll-totp"}, {"users", "scim-token"},
		{"users", "remove-totp"}, {"users", "changes"}, {"users", "approve"}, {"users", "reject"},
		{"clients", "add-public"}, {"clients", "add-backend"}, {"clients", "list"}, {"clients", "suspend"}, {"clients", "activate"},
		{"policy", "explain"}, {"policy", "test"}, {"policy", "validate"},
		{"audit", "verify"}, {"audit", "export"}, {"audit", "archive"}, {"audit", "verify-archive"}, {"audit", "verify-evidence"},
		{"training", "import"},
		{"detect"}, {"detect", "replay"}, {"detect", "ingest"}, {"detect", "status"},
		{"honeytoken"}, {"honeytoken", "create"}, {"honeytoken", "list"},
		{"blocks"}, {"blocks", "list"}, {"blocks", "add"}, {"blocks", "remove"},
		{"drill"}, {"drill", "run"}, {"drill", "list"}, {"drill", "history"},
		{"backup"}, {"backup", "list"}, {"restore"},
		{"restore-drill"}, {"restore-drill", "history"},
	}
	for _, c := range commands {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, c...), h)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, &stdout, &stderr)
			name := strings.Join(args, " ")
			if err != nil {
				t.Errorf("phivault %s = %v, want nil (exit 0)", name, err)
			}
			if !strings.Contains(stdout.String(), "Usage") {
				t.Errorf("phivault %s: stdout %q, want the usage", name, stdout.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("phivault %s: stderr %q, want nothing", name, stderr.String())
			}
		}
	}
}

// TestDemoHelp_dataDefault checks that demo -h shows the folder demo uses.
func TestDemoHelp_dataDefault(t *testing.T) {
	t.Setenv("PHIVAULT_DATA", "")
	os.Unsetenv("PHIVAULT_DATA")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"demo", "-h"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), `(default "phivault-demo")`) {
		t.Errorf("demo -h does not show -data's default phivault-demo:\n%s", stdout.String())
	}
}
