package restoredrill_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/restoredrill"
)

// TestServerEnv checks the scratch server's allow-list: the keyring's
// settings and the passphrase pass; the witness, forwarding, schedule and
// store settings, and names that only start like an allowed one, do not.
func TestServerEnv(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin", "HOME=/home/op", "PHIVAULT_PASSPHRASE=x", "PHIVAULT_KEYRING=kms",
		"PHIVAULT_KMS_KEY_ID=alias/v", "PHIVAULT_PKCS11_PIN=1234", "AWS_REGION=eu-west-2",
		"PHIVAULT_AUDIT_WITNESS_FILE=/live/cp.log", "PHIVAULT_AUDIT_WITNESS_URL=https://w", "PHIVAULT_SYSLOG_ADDR=s:514",
		"PHIVAULT_RESTORE_DRILL_EVERY=24h", "PHIVAULT_DRILL_EVERY=24h", "PHIVAULT_STORE_FILE=/pg", "PHIVAULT_DATA=/live",
		"PHIVAULT_KEYRINGX=1", "PATHX=1", "PHIVAULT_TOKEN=t",
	}
	got := restoredrill.ServerEnv(environ)
	want := []string{"PATH=/usr/bin", "HOME=/home/op", "PHIVAULT_PASSPHRASE=x", "PHIVAULT_KEYRING=kms",
		"PHIVAULT_KMS_KEY_ID=alias/v", "PHIVAULT_PKCS11_PIN=1234", "AWS_REGION=eu-west-2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ServerEnv (-want +got):\n%s", diff)
	}
}

// TestRun_refusals checks that a drill without a target, identity or
// scratch folder is refused, and that a drill of an empty backup folder
// fails at the restore step, skips the rest and leaves no scratch folder.
func TestRun_refusals(t *testing.T) {
	ctx := context.Background()
	id, _ := age.GenerateX25519Identity()
	dir := t.TempDir()
	if _, err := restoredrill.Run(ctx, restoredrill.Options{Target: &backup.Dir{Path: dir}, Identities: []age.Identity{id}}); err == nil {
		t.Errorf("Run without a scratch folder = nil, want an error")
	}
	if _, err := restoredrill.Run(ctx, restoredrill.Options{Target: &backup.Dir{Path: dir}, Scratch: dir}); err == nil {
		t.Errorf("Run without an identity = nil, want an error")
	}
	scratch := filepath.Join(dir, "restore-drills")
	rep, err := restoredrill.Run(ctx, restoredrill.Options{Target: &backup.Dir{Path: filepath.Join(dir, "none")}, Identities: []age.Identity{id}, Scratch: scratch})
	if err != nil {
		t.Fatalf("Run of an empty backup folder = %v, want a failed report", err)
	}
	if s, _ := rep.Step(restoredrill.StepRestore); rep.Pass || s.Outcome != restoredrill.OutcomeFailed || rep.RTOMS != -1 || rep.RPOMS != -1 {
		t.Errorf("report: pass %v, restore %+v, RTO %d, RPO %d; want failed at restore, neither measured", rep.Pass, s, rep.RTOMS, rep.RPOMS)
	}
	var skipped []string
	for _, s := range rep.Steps {
		if s.Outcome == restoredrill.OutcomeSkipped {
			skipped = append(skipped, s.Name)
		}
	}
	if !slices.Contains(skipped, restoredrill.StepStart) || !slices.Contains(skipped, restoredrill.StepAudit) {
		t.Errorf("skipped steps %v, want the server's and the audit's", skipped)
	}
	if s, _ := rep.Step(restoredrill.StepCleanup); s.Outcome != restoredrill.OutcomeDone {
		t.Errorf("cleanup = %+v, want done", s)
	}
	if entries, err := os.ReadDir(scratch); err != nil || len(entries) != 0 {
		t.Errorf("%s holds %v (%v), want nothing", scratch, entries, err)
	}
}
