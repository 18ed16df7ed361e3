package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/backup"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
)

// BackupConfig is serve's backup schedule (docs/backup.md).
type BackupConfig struct {
	// To is the backup target the server backs up to on a schedule and
	// records every shred in at once (a tombstone, so no restore brings
	// the patient back); "" for none. The data folder must hold the
	// target's keys: one "phivault backup -to" run sets them up.
	To string
	// Every is the time between backups; default 24h.
	Every time.Duration
	// Stream is the backup target every committed change of the SQLite
	// databases streams to (continuous protection; see backupstream.go),
	// "" for none. Shreds are recorded in it too.
	Stream string
	// Keep is the retention of the target's snapshots, pruned after each
	// scheduled backup: "last=N,daily=N,weekly=N,monthly=N,within=DUR"
	// (any of them; backup.Policy). "" prunes nothing.
	Keep string
}

func (c *BackupConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.To, "backup-to", os.Getenv("PHIVAULT_BACKUP_TO"), "backup target to back up to on a schedule and to record every shred in at once; run phivault backup -to it once first (env PHIVAULT_BACKUP_TO)")
	c.Every = 24 * time.Hour
	if d, err := time.ParseDuration(os.Getenv("PHIVAULT_BACKUP_EVERY")); err == nil {
		c.Every = d
	}
	fs.DurationVar(&c.Every, "backup-every", c.Every, "time between scheduled backups to -backup-to (env PHIVAULT_BACKUP_EVERY)")
	fs.StringVar(&c.Stream, "backup-stream", os.Getenv("PHIVAULT_BACKUP_STREAM"),
		"stream every committed change of the SQLite databases to this backup target, which a \"phivault backup\" to it set up (RPO about a second; docs/backup.md; env PHIVAULT_BACKUP_STREAM)")
	fs.StringVar(&c.Keep, "backup-keep", os.Getenv("PHIVAULT_BACKUP_KEEP"), "snapshots of -backup-to to keep, pruning the rest after each scheduled backup: last=N,daily=N,weekly=N,monthly=N,within=DUR; the newest verified one always stays (env PHIVAULT_BACKUP_KEEP)")
}

// parseKeep parses -backup-keep into a retention policy; "" is nil.
func parseKeep(s string) (*backup.Policy, error) {
	if s == "" {
		return nil, nil
	}
	var p backup.Policy
	bad := func(part string) error {
		return errorWithHint(fmt.Sprintf("-backup-keep: %q is not a rule", part), "phivault serve -backup-keep last=3,daily=7,weekly=4,monthly=12,within=48h")
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, bad(part)
		}
		if k == "within" {
			d, err := parseDays(v)
			if err != nil || d <= 0 {
				return nil, bad(part)
			}
			p.KeepWithin = d
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, bad(part)
		}
		switch k {
		case "last":
			p.KeepLast = n
		case "daily":
			p.KeepDaily = n
		case "weekly":
			p.KeepWeekly = n
		case "monthly":
			p.KeepMonthly = n
		default:
			return nil, bad(part)
		}
	}
	return &p, nil
}

// backups are the server's scheduled backups to one target, and the
// tombstones of the shreds it runs. Each backup is an audit entry written
// before the snapshot is read, and another with its outcome.
type backups struct {
	data   dataDir
	to     string // the target as configured, for the trail (never a secret)
	target backup.Target
	keys   *backup.KeySet
	signer note.Signer
	log    *auditlog.Log
	logger *slog.Logger
	keep   *backup.Policy // nil: no pruning
	runs   *prometheus.CounterVec
	mu     sync.Mutex  // one backup at a time
	cache  statusCache // GET /security/vault's reading; see vaultstatus.go
}

// openBackups opens the backup targets of the configuration, if any: the
// scheduled backups' (-backup-to) and the stream's (-backup-stream). It
// wraps the admin API's shredder so that each shred is recorded in each
// of them as it happens. It runs after openAudit.
func (a *app) openBackups(ctx context.Context, adminOpts *admin.Options) error {
	c := a.cfg.Backup
	if c.To == "" && c.Stream == "" {
		return nil
	}
	if c.Every < time.Minute {
		return errorWithHint("-backup-every must be a minute or more", "phivault serve -backup-to /mnt/backup -backup-every 24h")
	}
	keep, err := parseKeep(c.Keep)
	if err != nil {
		return err
	}
	if kind, err := a.cfg.Data.storeKind(); err != nil {
		return err
	} else if kind != storeSQLite {
		return errors.New("-backup-to and -backup-stream cover the embedded (SQLite) store only; back up PostgreSQL with its own tools (docs/backup.md)")
	}
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phivault_backups_total",
		Help: "Scheduled backups and prunes, and shred tombstones recorded in the backup targets, by kind and result."}, []string{"kind", "result"})
	a.metrics.MustRegister(runs)
	tombstones := &tombstoneShredder{runs: runs, logger: a.logger}
	specs := []string{c.To}
	if c.Stream != c.To {
		specs = append(specs, c.Stream)
	}
	for _, spec := range specs {
		if spec == "" {
			continue
		}
		t, keys, err := openCachedTarget(ctx, a.cfg.Data, spec)
		if err != nil {
			return err
		}
		tombstones.targets = append(tombstones.targets, keyedTarget{t, keys})
		if spec != c.To {
			continue
		}
		signer, _, err := auditKeys(a.cfg.Data)
		if err != nil {
			return err
		}
		a.backups = &backups{data: a.cfg.Data, to: c.To, target: t, keys: keys, signer: signer, keep: keep, log: a.audit.log, logger: a.logger, runs: runs}
	}
	if adminOpts.Records != nil {
		tombstones.Shredder = adminOpts.Records
		adminOpts.Records = tombstones
	}
	return nil
}

// openCachedTarget opens the backup target spec with the keys the data
// folder d keeps for it (backup.key), which a "phivault backup" to it
// fetched.
func openCachedTarget(ctx context.Context, d dataDir, spec string) (backup.Target, *backup.KeySet, error) {
	t, err := openBackupTarget(spec, os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	hint := fmt.Sprintf("phivault backup -data %s -to %s -recipient age1... (once, to set up the target's keys)", d, spec)
	cache, err := os.ReadFile(d.backupKeyCache())
	if err != nil {
		return nil, nil, errorWithHint(fmt.Sprintf("backing up to %s needs the target's keys in the data folder (backup.key)", spec), hint)
	}
	keys, err := backup.CachedKeys(ctx, t, cache)
	if err != nil {
		return nil, nil, errorWithHint(fmt.Sprintf("backup target %s: %v", spec, err), hint)
	}
	return t, keys, nil
}

// run backs up every interval until ctx ends.
func (b *backups) run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := b.once(ctx); err != nil && ctx.Err() == nil {
			b.logger.Error("scheduled backup failed", "error", err.Error())
		}
	}
}

// once takes one backup, recorded in the trail before the snapshot is
// read and again with its outcome, records the shreds the target lacks,
// reads the new snapshot back whole (backup.Verify: an untested backup is
// not a backup), and prunes the target by the retention policy, if any.
func (b *backups) once(ctx context.Context) (*backup.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.forgetStatus()
	entry := func(outcome, decision string) error {
		return b.log.Append(ctx, &phivault.AuditEntry{Time: time.Now().UTC(), Actor: "phivault", Action: phivault.ActionBackup,
			TargetType: "Backup", Outcome: outcome, Decision: decision})
	}
	if err := entry("ok", "scheduled backup to "+b.to+" started"); err != nil {
		b.runs.WithLabelValues("backup", "error").Inc()
		return nil, fmt.Errorf("record the backup: %w", err)
	}
	res, err := backup.Backup(ctx, string(b.data), b.target, backup.Options{Keys: b.keys, Signer: b.signer})
	if err == nil {
		_, err = recordShreds(ctx, b.data, b.target, b.keys)
	}
	if err == nil {
		_, err = backup.Verify(ctx, b.target, b.keys, res.Snapshot, backup.VerifyOptions{MarkOptions: backup.MarkOptions{By: "phivault serve (scheduled backup)"}})
	}
	if err != nil {
		b.runs.WithLabelValues("backup", "error").Inc()
		entry(phivault.EUNAVAILABLE, "scheduled backup to "+b.to+" failed")
		return nil, err
	}
	b.runs.WithLabelValues("backup", "ok").Inc()
	b.logger.Info("backup", "snapshot", res.Snapshot, "files", res.Files, "bytes", res.Size, "written", res.BytesWritten)
	if err := entry("ok", fmt.Sprintf("snapshot %s: %d files, %d bytes; %d bytes written; verified", res.Snapshot, res.Files, res.Size, res.BytesWritten)); err != nil {
		return res, fmt.Errorf("record the backup: %w", err)
	}
	if b.keep == nil {
		return res, nil
	}
	pr, err := backup.Prune(ctx, b.target, b.keys, backup.PruneOptions{Policy: *b.keep})
	if err != nil {
		b.runs.WithLabelValues("prune", "error").Inc()
		entry(phivault.EUNAVAILABLE, "prune of "+b.to+" failed")
		return res, fmt.Errorf("prune: %w", err)
	}
	b.runs.WithLabelValues("prune", "ok").Inc()
	if err := entry("ok", fmt.Sprintf("pruned %s: %d snapshots removed, %d objects left under retention, %d chunks removed", b.to, len(pr.Removed), len(pr.Retained), pr.ChunksRemoved)); err != nil {
		return res, fmt.Errorf("record the prune: %w", err)
	}
	return res, nil
}

// tombstoneShredder records each shred it runs in every backup target as
// a tombstone at once, so that no restore from them, of any age or point
// in time, brings the patient back. If a target cannot be reached the
// shred still stands, the failure is logged and counted, and the next
// backup to that target records the tombstone.
type tombstoneShredder struct {
	admin.Shredder
	targets []keyedTarget
	runs    *prometheus.CounterVec
	logger  *slog.Logger
}

// A keyedTarget is a backup target with its key set.
type keyedTarget struct {
	target backup.Target
	keys   *backup.KeySet
}

func (s *tombstoneShredder) Shred(ctx context.Context, patientID string) (time.Time, error) {
	at, err := s.Shredder.Shred(ctx, patientID)
	if err != nil && !errors.Is(err, phivault.ErrErasePending) {
		return at, err
	}
	for _, kt := range s.targets {
		if _, terr := backup.RecordShreds(ctx, kt.target, kt.keys, rand.Reader, []backup.Shred{{Compartment: patientID, At: at}}); terr != nil {
			s.runs.WithLabelValues("tombstone", "error").Inc()
			s.logger.Error("shred tombstone not recorded in a backup target; the next backup to it records it", "error", terr.Error())
		} else {
			s.runs.WithLabelValues("tombstone", "ok").Inc()
		}
	}
	return at, err
}
