package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/backup"
)

// TestBackupSchedule checks serve's -backup-to: a scheduled backup is a
// snapshot in the target and two audit entries (before and after); a
// shred is a tombstone in the target at once, before any next backup; and
// a target whose keys the folder lacks is refused at start.
func TestBackupSchedule(t *testing.T) {
	ctx := context.Background()
	f := newBackupFixture(t)
	d, witness, root, bk, identity := f.d, f.witness, f.root, f.bk, f.identity
	cfg := Config{Data: d, Passphrase: "correct horse battery staple", Audit: AuditConfig{WitnessFile: witness},
		Backup: BackupConfig{To: filepath.Join(root, "elsewhere"), Every: time.Hour}}
	if a, err := openApp(ctx, cfg, slog.New(slog.DiscardHandler)); err == nil {
		a.Close()
		t.Fatal("openApp with -backup-to a target without keys succeeded; want a refusal")
	} else if !strings.Contains(err.Error(), "backup.key") {
		t.Errorf("openApp with -backup-to a target without keys = %v, want it to name backup.key", err)
	}
	backupRun(t, "-data", string(d), "-to", bk, "-recipient", identity.Recipient().String())

	cfg.Backup.To, cfg.Backup.Keep = bk, "last=1"
	token, err := newAdminToken(d)
	if err != nil {
		t.Fatal(err)
	}
	app, err := openApp(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp with -backup-to: %v", err)
	}
	defer app.Close()
	srv := httptest.NewServer(app.fhirAndAdmin())
	defer srv.Close()
	a := &auditApp{app: app, url: srv.URL, token: token}
	status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"Schedule"}]}`)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %s", status, body)
	}
	var p struct{ ID string }
	json.Unmarshal(body, &p)

	res, err := app.backups.once(ctx)
	if err != nil {
		t.Fatalf("scheduled backup: %v", err)
	}
	keys, err := backup.OpenKeys(ctx, &backup.Dir{Path: bk}, identity)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := backup.List(ctx, &backup.Dir{Path: bk}, keys, nil)
	if err != nil || len(ms) != 2 || ms[1].Snapshot != res.Snapshot {
		t.Errorf("the target's snapshots = %d, %v; want the scheduled one last", len(ms), err)
	}
	var entries []*phivault.AuditEntry
	if err := app.audit.log.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	n := app.audit.log.Tree().N
	data, err := app.db.ReadAuditEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range data {
		if e, err := auditlog.Decode(b); err == nil && e.Action == phivault.ActionBackup {
			entries = append(entries, e)
		}
	}
	if len(entries) != 3 || !strings.Contains(entries[0].Decision, "started") || !strings.Contains(entries[1].Decision, res.Snapshot+": ") ||
		!strings.Contains(entries[2].Decision, "0 snapshots removed, 1 objects left under retention") {
		var ds []string
		for _, e := range entries {
			ds = append(ds, e.Decision)
		}
		t.Errorf("audit entries of the backup = %q, want one before, one naming the snapshot, one of the prune (the older snapshot is under the folder's retention)", ds)
	}
	if mk, err := backup.ReadMark(ctx, &backup.Dir{Path: bk}, keys, res.Snapshot); err != nil || mk == nil {
		t.Errorf("the scheduled snapshot carries no verification mark: %v", err)
	}

	if status, body := a.do(t, "POST", "/fhir/admin/patients/"+p.ID+"/$shred", ""); status != http.StatusOK {
		t.Fatalf("shred = %d %s", status, body)
	}
	shreds, err := backup.Shreds(ctx, &backup.Dir{Path: bk}, keys)
	if err != nil || len(shreds) != 1 || shreds[0].Compartment != p.ID {
		t.Errorf("tombstones in the target after the shred = %v, %v; want the patient's, before any backup", shreds, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(bk, "shreds")); len(entries) != 1 {
		t.Errorf("shreds/ holds %d objects, want 1", len(entries))
	}
}

// TestParseKeep checks -backup-keep: each rule, and the near misses.
func TestParseKeep(t *testing.T) {
	p, err := parseKeep("last=3, daily=7,weekly=4,monthly=12,within=2d")
	if err != nil || *p != (backup.Policy{KeepLast: 3, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepWithin: 48 * time.Hour}) {
		t.Errorf("parseKeep() = %+v, %v", p, err)
	}
	if p, err := parseKeep(""); p != nil || err != nil {
		t.Errorf("parseKeep(\"\") = %+v, %v; want nil, nil", p, err)
	}
	for _, bad := range []string{"last", "last=-1", "hourly=3", "within=0", "within=soon", "daily=7,,"} {
		if _, err := parseKeep(bad); err == nil {
			t.Errorf("parseKeep(%q) succeeded; want an error", bad)
		}
	}
}
