package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/backup/restoredrill"
	"github.com/phivault/phivault/internal/coredump"
)

const restoreDrillUsage = `Usage: phivault restore-drill -from FOLDER -identity FILE [-data DIR] [-snapshot ID] [-json]
       phivault restore-drill history [-data DIR] [-json] [-n N]

restore-drill proves that a backup can be brought back, and measures how
long it takes. It restores the latest snapshot (or -snapshot) into a
scratch folder (DATA/restore-drills/.scratch-*, or under -scratch),
checks every file against the signed manifest's SHA-256, runs quick_check
and counts the rows of every database, starts a real phivault server on
the scratch folder (127.0.0.1, a random port), reads a sample of patients
through the FHIR API, stops it, runs "phivault audit verify" on the
scratch folder, and deletes the scratch folder, even on failure. It
reports each step, the RTO (restore start to first API read) and the RPO
(snapshot time to drill start), appends the report to
DATA/restore-drills/history.jsonl, and fails if a step failed.

The scratch server gets a scratch audit witness file seeded from the
restored folder's own checkpoints (never the live witness file), a fresh
admin token that exists only in the scratch folder, and only the keyring
settings of the environment. It needs the key-file passphrase
(-passphrase-file, PHIVAULT_PASSPHRASE or PHIVAULT_PASSPHRASE_FILE) or the
KMS/HSM settings, as serve does.

When -data is the vault the backup was taken of, the manifest's audit
checkpoint must be one the vault published (in its audit-checkpoints.log),
and its audit-verifier.pub pins the backup's signer unless -verifier
names another.

"phivault serve -restore-drill-every 24h -restore-drill-from FOLDER
-restore-drill-identity FILE" runs it on a schedule.

history shows past restore drills, newest last.

Flags:
`

// restoreDrillCommand runs "phivault restore-drill".
type restoreDrillCommand struct {
	stdout, stderr io.Writer
	// command runs phivault with args; nil is this executable. Tests run
	// the test binary instead.
	command func(ctx context.Context, args ...string) *exec.Cmd
}

func (c *restoreDrillCommand) Run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "history" {
		return c.history(args[1:])
	}
	fs := flagSet(c.stderr, "restore-drill", restoreDrillUsage)
	d := dataFlag(fs)
	from := fs.String("from", os.Getenv("PHIVAULT_RESTORE_DRILL_FROM"), "backup folder (env PHIVAULT_RESTORE_DRILL_FROM)")
	identity := fs.String("identity", os.Getenv("PHIVAULT_RESTORE_DRILL_IDENTITY"), "age identity file of the backup (env PHIVAULT_RESTORE_DRILL_IDENTITY)")
	snapshot := fs.String("snapshot", "", "snapshot id (default the latest)")
	scratch := fs.String("scratch", "", "folder to make the scratch folder in (default DATA/restore-drills)")
	verifierFile := fs.String("verifier", "", "audit-verifier.pub pinning the backup's signer (default the data folder's, if any)")
	passFile := fs.String("passphrase-file", "", "file holding the key-file passphrase of the restored vault")
	asJSON := fs.Bool("json", false, "print the report as a JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *identity == "" || fs.NArg() > 0 {
		fs.Usage()
		return errorWithHint("restore-drill needs -from and -identity", "phivault restore-drill -data /var/lib/phivault -from /mnt/backup -identity backup-identity.txt")
	}
	if err := coredump.Disable(); err != nil { // the passphrase and backup keys
		return err
	}
	pass, err := passphrase(*passFile)
	if err != nil {
		return err
	}
	o, err := restoreDrillOptions(string(*d), *from, *identity, *verifierFile, pass)
	if err != nil {
		return err
	}
	o.Snapshot, o.Command = *snapshot, c.command
	if *scratch != "" {
		o.Scratch = *scratch
	}
	if o.Scratch == "" {
		return errorWithHint(fmt.Sprintf("%s is not a phivault data folder: give -data (the vault) or -scratch", *d),
			"phivault restore-drill -data /var/lib/phivault -from /mnt/backup -identity backup-identity.txt")
	}
	rep, err := restoredrill.Run(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintf(c.stdout, "%s\n", b)
	} else {
		rep.Text(c.stdout)
	}
	if d.initialized() {
		if err := restoredrill.NewHistory(string(*d)).Append(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stderr, "History not kept: %s is not a phivault data folder (give -data).\n", *d)
	}
	if !rep.Pass {
		return fmt.Errorf("restore drill failed: %s", strings.Join(rep.Failures, "; "))
	}
	return nil
}

// restoreDrillOptions builds a drill's options: the backup target from,
// the identity file, the verifier (the file, else the data folder's), the
// data folder as source and scratch parent when it is a vault.
func restoreDrillOptions(data, from, identity, verifierFile, pass string) (restoredrill.Options, error) {
	t, err := restoreDrillTarget(from)
	if err != nil {
		return restoredrill.Options{}, err
	}
	ids, err := readIdentities(identity)
	if err != nil {
		return restoredrill.Options{}, err
	}
	by := "phivault restore-drill"
	if host, _ := os.Hostname(); host != "" {
		by += " on " + host
	}
	var shredded int
	o := restoredrill.Options{Target: t, Identities: ids, Passphrase: pass, ApplyShreds: applyShreds(&shredded),
		Mark: &backup.MarkOptions{By: by}} // a drill's whole restore verifies the snapshot, as phivault restore's
	d := dataDir(data)
	if d.initialized() {
		o.Source, o.Scratch = data, filepath.Join(data, restoredrill.Folder)
		if _, err := os.Stat(d.auditVerifierKey()); err == nil && verifierFile == "" {
			verifierFile = d.auditVerifierKey() // made at the first start
		}
	}
	if verifierFile != "" {
		if o.Verifier, err = readVerifier(verifierFile); err != nil {
			return restoredrill.Options{}, err
		}
	}
	return o, nil
}

// restoreDrillTarget opens the backup target a restore drill reads.
func restoreDrillTarget(spec string) (backup.Target, error) {
	if spec == "" {
		return nil, errors.New("no backup target given")
	}
	return openBackupTarget(spec, os.Getenv)
}

func (c *restoreDrillCommand) history(args []string) error {
	fs := flagSet(c.stderr, "restore-drill history", "Usage: phivault restore-drill history [-data DIR] [-json] [-n N]\n\nShows past restore drills, newest last.\n\nFlags:\n")
	d := dataFlag(fs)
	asJSON := fs.Bool("json", false, "print the reports as JSON lines")
	n := fs.Int("n", 50, "show the last N drills (0: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reports, err := restoredrill.NewHistory(string(*d)).Read()
	if err != nil {
		return err
	}
	if *n > 0 && len(reports) > *n {
		reports = reports[len(reports)-*n:]
	}
	if *asJSON {
		for _, r := range reports {
			b, _ := json.Marshal(r)
			fmt.Fprintf(c.stdout, "%s\n", b)
		}
		return nil
	}
	ms := func(v int64) string {
		if v < 0 {
			return "-"
		}
		return (time.Duration(v) * time.Millisecond).Round(time.Millisecond).String()
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tSNAPSHOT\tRESULT\tRTO\tRPO\tPATIENTS\tFAILURES")
	for _, r := range reports {
		result := "pass"
		if !r.Pass {
			result = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Started.Format(time.RFC3339), r.Snapshot, result,
			ms(r.RTOMS), ms(r.RPOMS), r.Patients, strings.Join(r.Failures, "; "))
	}
	return tw.Flush()
}
