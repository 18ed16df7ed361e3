package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/backup"
	"golang.org/x/mod/sumdb/note"
)

// A restore that rolls the audit trail back says so: "phivault restore"
// compares the restored trail with the outside witness file and, if the
// witnesses saw more, writes a signed gap record (auditlog.Gap) into the
// restored folder; the server's first start on the folder publishes it to
// the file witnesses, in place of the checkpoints it supersedes, and makes
// it the trail's next entry (phivault.ActionAuditGap). "phivault audit
// verify" then reports the gap and checks that entry (docs/backup.md).

// auditGapRecord is the data folder's pending gap record: written by
// restore, removed once the server has published and recorded it.
func (d dataDir) auditGapRecord() string { return d.path("audit-gap.note") }

// gapDecision is the part of the audit-gap entry's decision that names
// the gap; checkGapEntries looks for it.
func gapDecision(g auditlog.Gap) string {
	return fmt.Sprintf("restored from backup snapshot %s: the audit log was rolled back from %d to %d entries", g.Snapshot, g.Witnessed.N, g.Restored)
}

// recordRestoreGap checks the audit trail of the restored folder d against
// the outside witness file witness and, if the witness saw a longer trail,
// writes the signed gap record into d and returns the gap. The restored
// trail must extend every checkpoint of the witness that it is long
// enough to cover: a trail that does not is another vault's, or altered,
// and is refused. A witness file that does not exist (a restore on a new
// host that lost it) checks nothing.
func recordRestoreGap(ctx context.Context, d dataDir, witness string, m *backup.Manifest, now time.Time) (*auditlog.Gap, error) {
	// A record the snapshot itself carried (a backup of a restored folder
	// taken before it was served) is of another restore.
	if err := os.Remove(d.auditGapRecord()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove a stale audit gap record: %w", err)
	}
	signer, verifier, err := auditKeys(d)
	if err != nil {
		return nil, err
	}
	notes, _, err := readCheckpoints(witness, verifier)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	db, err := openStore(ctx, d, StoreConfig{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	probe := auditlog.New(db, signer.Name(), nil)
	probe.CheckpointInterval = -1
	if err := probe.Open(ctx); err != nil {
		return nil, fmt.Errorf("open the restored audit log: %w", err)
	}
	defer probe.Close()
	n := probe.Tree().N
	var last auditlog.Checkpoint
	for _, signed := range notes {
		c, err := auditlog.OpenCheckpoint(signed, verifier, signer.Name())
		if err != nil {
			return nil, fmt.Errorf("audit witness file %s: %w", witness, err)
		}
		if c.N <= n {
			if err := probe.CheckConsistent(ctx, c); err != nil {
				return nil, fmt.Errorf("the restored audit trail is not the one the witness file %s saw (%v): a backup of another vault, or altered", witness, err)
			}
		}
		last = c
	}
	if last.N <= n {
		return nil, nil
	}
	g := auditlog.Gap{Origin: signer.Name(), Restored: n, Witnessed: last.Tree, Snapshot: m.Snapshot, SnapshotTime: m.Time, Time: now.UTC()}
	signed, err := auditlog.SignGap(g, signer)
	if err != nil {
		return nil, fmt.Errorf("sign the audit gap: %w", err)
	}
	if err := writeFileAtomic(d.auditGapRecord(), signed, 0o600); err != nil {
		return nil, fmt.Errorf("write the audit gap: %w", err)
	}
	return &g, nil
}

// publishRestoreGap publishes the data folder's pending gap record, if
// any, to the file witnesses files (the folder's own, then the outside
// one, last), before the server checks its trail against them. It returns
// the gap, for the caller to record as the trail's next entry, or nil if
// there is none or it was recorded by an earlier start (then the record
// is removed).
//
// The record must be signed by the folder's audit key and match the trail
// as restored; and the outside witness must still end at the checkpoint
// the restore saw: one that went on (the old server still running, or
// another restore) is refused, for the rollback would hide its entries.
func publishRestoreGap(ctx context.Context, d dataDir, probe *auditlog.Log, verifier note.Verifier, files []string) (*auditlog.Gap, error) {
	signed, err := os.ReadFile(d.auditGapRecord())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read the audit gap record: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		return nil, fmt.Errorf("the audit gap record %s does not verify: %v", d.auditGapRecord(), err)
	}
	g, err := auditlog.ParseGap(n.Text)
	if err != nil {
		return nil, fmt.Errorf("the audit gap record %s: %w", d.auditGapRecord(), err)
	}
	size := probe.Tree().N
	published := func(f string) bool {
		b, err := os.ReadFile(f)
		return err == nil && bytes.Contains(b, signed)
	}
	outside := files[len(files)-1]
	switch {
	case size < g.Restored:
		return nil, fmt.Errorf("the audit log holds %d entries, fewer than the %d the restore left: entries were removed since", size, g.Restored)
	case size > g.Restored:
		if !published(outside) {
			return nil, fmt.Errorf("the audit log grew past the restore's %d entries but the witness file %s does not hold its gap record", g.Restored, outside)
		}
		if err := os.Remove(d.auditGapRecord()); err != nil {
			return nil, fmt.Errorf("remove the audit gap record: %w", err)
		}
		return nil, nil
	}
	if !published(outside) {
		notes, _, err := readCheckpoints(outside, verifier)
		if err != nil {
			return nil, err
		}
		c, err := auditlog.OpenCheckpoint(notes[len(notes)-1], verifier, g.Origin)
		if err != nil {
			return nil, fmt.Errorf("audit witness file %s: %w", outside, err)
		}
		if c.Tree != g.Witnessed {
			return nil, errorWithHint(fmt.Sprintf("the audit witness file %s went on since the restore (a checkpoint of %d entries, the restore saw %d): a server still runs on the old folder, or the witness file is another vault's", outside, c.N, g.Witnessed.N),
				"stop the old server, then restore again so the gap covers every entry it wrote")
		}
	}
	for _, f := range files {
		if published(f) {
			continue
		}
		if err := (&auditlog.FileWitness{Path: f}).Publish(ctx, signed); err != nil {
			return nil, fmt.Errorf("publish the audit gap to %s: %w", f, err)
		}
	}
	return &g, nil
}

// recordGapEntry appends the trail's record of the gap g: the first entry
// after the restored ones.
func recordGapEntry(ctx context.Context, l *auditlog.Log, g *auditlog.Gap) error {
	e := &phivault.AuditEntry{Time: time.Now().UTC(), Actor: "phivault", Action: phivault.ActionAuditGap, TargetType: "AuditEvent",
		Outcome: "ok", Decision: fmt.Sprintf("%s; %d entries the witnesses saw are lost (snapshot of %s)", gapDecision(*g), g.Lost(), g.SnapshotTime.Format(time.RFC3339))}
	if err := l.Append(ctx, e); err != nil {
		return fmt.Errorf("record the audit gap: %w", err)
	}
	return nil
}

// restoreRecord is the data folder's note that it was restored from a
// backup, written by restore: the server's first start records it in the
// trail (recordRestore) and removes it.
func (d dataDir) restoreRecord() string { return d.path("restored-from") }

// writeRestoreRecord notes in the restored folder d which snapshot it
// holds and when it was restored.
func writeRestoreRecord(d dataDir, m *backup.Manifest, now time.Time) error {
	text := fmt.Sprintf("snapshot %s of %s restored at %s\n", m.Snapshot, m.Time.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	return writeFileAtomic(d.restoreRecord(), []byte(text), 0o600)
}

// recordRestore appends the trail's record of the restore noted in d, if
// any, and removes the note.
func recordRestore(ctx context.Context, d dataDir, l *auditlog.Log) error {
	b, err := os.ReadFile(d.restoreRecord())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read the restore record: %w", err)
	}
	line := string(bytes.TrimSpace(b))
	if len(line) > 200 || !isPrintable(line) {
		line = "(unreadable restore record)"
	}
	e := &phivault.AuditEntry{Time: time.Now().UTC(), Actor: "phivault", Action: phivault.ActionBackup, TargetType: "Backup",
		Outcome: "ok", Decision: "started on a data folder restored from a backup: " + line}
	if err := l.Append(ctx, e); err != nil {
		return fmt.Errorf("record the restore: %w", err)
	}
	return os.Remove(d.restoreRecord())
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r < ' ' || r > '~' {
			return false
		}
	}
	return true
}
