package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/phivault/phivault/backup"
)

func TestBackupVerifyPrune_help(t *testing.T) {
	for _, sub := range []string{"verify", "prune"} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"backup", sub, "-h"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "backup "+sub) || stderr.Len() > 0 {
			t.Errorf("phivault backup %s -h = %v, stdout %q, stderr %q; want the usage", sub, err, stdout.String(), stderr.String())
		}
	}
}

// TestBackupVerifyPrune backs up a vault three times, and checks that
// prune refuses while nothing is verified, that verify marks a snapshot
// (shown by list), that a dry run and a prune print the plan with its
// reasons, and that objects under the folder's retention (30 days here:
// all of them) are left and reported, every snapshot still verifying.
func TestBackupVerifyPrune(t *testing.T) {
	ctx := context.Background()
	d, _ := initTestData(t)
	root := t.TempDir()
	bk := filepath.Join(root, "backups")
	identity, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(root, "backup-identity.txt")
	os.WriteFile(idFile, []byte(identity.String()+"\n"), 0o600)
	var ids []string
	for i := range 3 {
		args := []string{"-data", string(d), "-to", bk}
		if i == 0 {
			args = append(args, "-recipient", identity.Recipient().String())
		}
		os.WriteFile(filepath.Join(string(d), "note.txt"), []byte(strings.Repeat("x", i+1)), 0o600)
		id, _, _ := backupRun(t, args...)
		ids = append(ids, id)
	}
	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append([]string{"backup"}, args...), &out, io.Discard)
		return out.String(), err
	}

	if _, err := cmd("prune", "-data", string(d), "-to", bk); err == nil || !strings.Contains(err.Error(), "-keep-") {
		t.Errorf("prune without rules = %v, want refused asking for a -keep-* rule", err)
	}
	if _, err := cmd("prune", "-data", string(d), "-to", bk, "-keep-last", "1"); !errors.Is(err, backup.ErrNothingVerified) {
		t.Errorf("prune with nothing verified = %v, want %v", err, backup.ErrNothingVerified)
	}

	out, err := cmd("verify", "-to", bk, "-identity", idFile, "-verifier", d.auditVerifierKey(), "-snapshot", ids[1])
	if err != nil || !strings.HasPrefix(out, "snapshot "+ids[1]+" verified: ") || !strings.Contains(out, "by phivault backup verify") {
		t.Fatalf("backup verify = %q, %v; want snapshot %s verified", out, err, ids[1])
	}
	out, err = cmd("list", "-data", string(d), "-to", bk)
	if err != nil || !regexp.MustCompile(ids[1]+`.*\byes\n`).MatchString(out) || regexp.MustCompile(ids[2]+`.*\byes\n`).MatchString(out) {
		t.Errorf("backup list = %q, %v; want snapshot %s (only) shown verified", out, err, ids[1])
	}

	out, err = cmd("prune", "-data", string(d), "-to", bk, "-keep-last", "1", "-dry-run")
	if err != nil {
		t.Fatalf("prune -dry-run = %v", err)
	}
	for _, want := range []string{
		ids[2] + `\s.*\s-\s+keep\s+last 1\n`,
		ids[1] + `\s.*\syes\s+keep\s+newest verified\n`,
		ids[0] + `\s.*\s-\s+remove\s+no rule keeps it\n`,
		`dry run: would remove 1 snapshots`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("prune -dry-run printed\n%s\nwant a line matching %q", out, want)
		}
	}

	if _, err := cmd("prune", "-data", string(d), "-to", bk, "-keep-within", "1w"); err == nil || !strings.Contains(err.Error(), "-keep-within") {
		t.Errorf("prune -keep-within 1w = %v, want refused naming the flag", err)
	}
	if out, err := cmd("prune", "-data", string(d), "-to", bk, "-keep-within", "14d", "-dry-run"); err != nil || !strings.Contains(out, "within 336h0m0s") {
		t.Errorf("prune -keep-within 14d -dry-run = %q, %v; want every snapshot kept within 336h", out, err)
	}
	out, err = cmd("prune", "-data", string(d), "-to", bk, "-keep-last", "1")
	if err != nil {
		t.Fatalf("prune = %v", err)
	}
	if !strings.Contains(out, "removed 0 snapshots") || !strings.Contains(out, "snapshots/"+ids[0]) {
		t.Errorf("prune printed\n%s\nwant nothing removed and snapshot %s left under retention", out, ids[0])
	}
	for _, id := range ids { // restorable: every check a restore makes
		if out, err := cmd("verify", "-data", string(d), "-to", bk, "-snapshot", id); err != nil {
			t.Errorf("verify %s after prune = %q, %v", id, out, err)
		}
	}

	// A changed chunk: verify refuses, naming it.
	chunks, _ := os.ReadDir(filepath.Join(bk, "chunks"))
	for _, c := range chunks {
		p := filepath.Join(bk, "chunks", c.Name())
		b, _ := os.ReadFile(p)
		b[len(b)-1] ^= 0x80
		os.Chmod(p, 0o600)
		os.WriteFile(p, b, 0o400)
	}
	if _, err := cmd("verify", "-data", string(d), "-to", bk); err == nil || !regexp.MustCompile(`chunks/[0-9a-f]{64}: corrupt`).MatchString(err.Error()) {
		t.Errorf("verify of a backup with changed chunks = %v, want refused naming a chunk", err)
	}
}
