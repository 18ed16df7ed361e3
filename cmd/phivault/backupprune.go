package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault/backup"
	"golang.org/x/mod/sumdb/note"
)

// backupAccess is what "backup verify" and "backup prune" need to read a
// target: the target, its key set, and the verifier that pins the
// manifests' signer.
type backupAccess struct {
	target   backup.Target
	keys     *backup.KeySet
	verifier note.Verifier
}

// backupAccessFlags adds the flags that name a target and its keys.
func backupAccessFlags(fs *flag.FlagSet) (to, identity, verifierFile *string, d *dataDir) {
	d = dataFlag(fs)
	to = fs.String("to", "", "backup target (a folder)")
	identity = fs.String("identity", "", "age identity file (else the data folder's key cache is used)")
	verifierFile = fs.String("verifier", "", "the vault's audit-verifier.pub (default the data folder's, if it has one)")
	return
}

// openBackupAccess opens the target to, reads its keys with identity or
// from d's key cache, and pins the signer with verifierFile or d's
// audit-verifier.pub.
func openBackupAccess(ctx context.Context, to, identity, verifierFile string, d dataDir, cmd string) (*backupAccess, error) {
	t, err := openBackupTarget(to, os.Getenv)
	if err != nil {
		return nil, err
	}
	a := &backupAccess{target: t}
	if identity != "" {
		ids, err := readIdentities(identity)
		if err != nil {
			return nil, err
		}
		if a.keys, err = backup.OpenKeys(ctx, t, ids...); err != nil {
			return nil, err
		}
	} else {
		cache, err := os.ReadFile(d.backupKeyCache())
		if err != nil {
			return nil, errorWithHint("no backup keys in "+string(d)+"; give -identity", "phivault backup "+cmd+" -to TARGET -identity backup-identity.txt")
		}
		if a.keys, err = backup.CachedKeys(ctx, t, cache); err != nil {
			return nil, err
		}
	}
	if verifierFile == "" {
		if _, err := os.Stat(d.auditVerifierKey()); err == nil {
			verifierFile = d.auditVerifierKey()
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if verifierFile != "" {
		if a.verifier, err = readVerifier(verifierFile); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// verify runs "phivault backup verify".
func (c *backupCommand) verify(ctx context.Context, args []string) error {
	fs := c.flagSet("backup verify")
	to, identity, verifierFile, d := backupAccessFlags(fs)
	snapshot := fs.String("snapshot", "", "snapshot id (default the latest)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return errorWithHint("backup verify needs -to TARGET", "phivault backup verify -to /mnt/backup")
	}
	a, err := openBackupAccess(ctx, *to, *identity, *verifierFile, *d, "verify")
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	by := "phivault backup verify"
	if host != "" {
		by += " on " + host
	}
	mk, err := backup.Verify(ctx, a.target, a.keys, *snapshot, backup.VerifyOptions{Verifier: a.verifier, MarkOptions: backup.MarkOptions{By: by}})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "snapshot %s verified: %d files, %d chunks, %d bytes; marked verified at %s by %s\n",
		mk.Snapshot, mk.Files, mk.Chunks, mk.Bytes, mk.Time.Format(time.RFC3339), mk.By)
	return nil
}

// prune runs "phivault backup prune".
func (c *backupCommand) prune(ctx context.Context, args []string) error {
	fs := c.flagSet("backup prune")
	to, identity, verifierFile, d := backupAccessFlags(fs)
	var p backup.Policy
	fs.IntVar(&p.KeepLast, "keep-last", 0, "keep the newest N snapshots (-1: all)")
	fs.IntVar(&p.KeepDaily, "keep-daily", 0, "keep the newest snapshot of each of the newest N days with snapshots (UTC)")
	fs.IntVar(&p.KeepWeekly, "keep-weekly", 0, "keep the newest snapshot of each of the newest N ISO weeks with snapshots")
	fs.IntVar(&p.KeepMonthly, "keep-monthly", 0, "keep the newest snapshot of each of the newest N months with snapshots")
	within := fs.String("keep-within", "", "keep every snapshot less than DUR older than the newest (e.g. 36h, 14d)")
	fs.BoolVar(&p.AllowUnverified, "allow-unverified", false, "remove snapshots even though none is verified")
	grace := fs.Duration("grace", backup.DefaultPruneGrace, "leave unreferenced chunks younger than this (a running backup's)")
	dryRun := fs.Bool("dry-run", false, "print what would be kept and removed, and remove nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rules := 0
	fs.Visit(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "keep-") {
			rules++
		}
	})
	if *to == "" || fs.NArg() > 0 || rules == 0 {
		fs.Usage()
		return errorWithHint("backup prune needs -to TARGET and at least one -keep-* rule", "phivault backup prune -to /mnt/backup -keep-daily 7 -keep-weekly 5 -keep-monthly 12 -dry-run")
	}
	if *within != "" {
		dur, err := parseDays(*within)
		if err != nil || dur <= 0 {
			return fmt.Errorf("-keep-within %q: want a positive duration such as 36h or 14d", *within)
		}
		p.KeepWithin = dur
	}
	a, err := openBackupAccess(ctx, *to, *identity, *verifierFile, *d, "prune")
	if err != nil {
		return err
	}
	res, err := backup.Prune(ctx, a.target, a.keys, backup.PruneOptions{Policy: p, Verifier: a.verifier, Grace: *grace, DryRun: *dryRun})
	if res != nil {
		c.printPrune(res, *dryRun)
	}
	return err
}

// printPrune prints a prune's plan, newest first, and what it did.
func (c *backupCommand) printPrune(res *backup.PruneResult, dryRun bool) {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAPSHOT\tTIME\tVERIFIED\tACTION\tREASONS")
	for _, d := range res.Plan {
		action, reasons := "keep", strings.Join(d.Reasons, ", ")
		if !d.Keep {
			action, reasons = "remove", "no rule keeps it"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Time.UTC().Format(time.RFC3339), yesNo(d.Verified), action, reasons)
	}
	tw.Flush()
	if dryRun {
		removes := 0
		for _, d := range res.Plan {
			if !d.Keep {
				removes++
			}
		}
		fmt.Fprintf(c.stdout, "dry run: would remove %d snapshots and %d chunks (%d chunks younger than the grace period stay); removed nothing\n", removes, res.ChunksRemoved, res.ChunksYoung)
		return
	}
	fmt.Fprintf(c.stdout, "removed %d snapshots, %d verification marks and %d chunks; %d chunks in use, %d unreferenced left as younger than the grace period\n",
		len(res.Removed), res.MarksRemoved, res.ChunksRemoved, res.ChunksKept, res.ChunksYoung)
	if len(res.Retained) > 0 {
		fmt.Fprintf(c.stdout, "left under the target's retention (a later prune removes them): %d objects\n", len(res.Retained))
		for _, n := range res.Retained {
			fmt.Fprintf(c.stdout, "  %s\n", n)
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

// parseDays parses a Go duration, or a whole number of days ("14d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days > 100*365 {
			return 0, fmt.Errorf("bad number of days %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
