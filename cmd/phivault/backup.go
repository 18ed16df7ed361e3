package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/backup"
	"github.com/phivault/phivault/sqlite"
)

const backupUsage = `Usage: phivault backup [-data DIR] -to TARGET [-recipient age1...] [-recipients-file FILE]
       phivault backup list -to TARGET [-data DIR | -identity FILE]
       phivault backup verify -to TARGET [-snapshot ID] [-data DIR | -identity FILE] [-verifier FILE]
       phivault backup prune -to TARGET -keep-last N -keep-daily D -keep-weekly W -keep-monthly M
                             [-keep-within DUR] [-dry-run] [-allow-unverified] [-data DIR | -identity FILE]

TARGET is a folder or s3://BUCKET/PREFIX.

backup writes an encrypted, deduplicated, signed snapshot of a data folder
to a backup folder (another disk, a mounted share), with the server running
or stopped: the SQLite databases are copied with SQLite's online backup
API, consistently (docs/backup.md). Each backup also records in the folder a
tombstone of every patient shredded since, so that no restore brings them
back. Only what changed since the last backup to the folder is
written.

The first backup to a folder makes its keys and encrypts them to the age
recipients (-recipient, repeatable, or -recipients-file with one per line;
make one with age-keygen and keep the identity offline): restoring needs one
of their identities. The data folder keeps the keys in backup.key (0600) for
the next backups; a data folder without them (or a folder set up by another
vault) needs -identity to read the folder's keys.

Snapshots are signed with the audit checkpoint key: audit-verifier.pub
verifies them. Restore with "phivault restore".

list shows the snapshots in a backup folder, oldest first: id, time, files,
size, the audit trail's checkpointed size, and whether it was verified.

verify reads a snapshot (the latest without -snapshot) back whole through
every check a restore makes, writing no file, and records the success in
the backup folder (verified/<id>).

prune removes the snapshots no -keep-* rule keeps (like restic's forget:
buckets in UTC, the newest snapshot of each kept), then the chunks no
remaining snapshot needs. It never removes the newest verified snapshot,
and removes nothing while no snapshot is verified (unless
-allow-unverified). Objects still under the folder's retention are left
for a later prune. Do not run it while a backup to the folder runs.
-dry-run prints the plan and removes nothing.
` + backupTargetUsage + `
Flags:
`

const restoreUsage = `Usage: phivault restore -from FOLDER|s3://BUCKET/PREFIX [-snapshot ID | -at TIME] -identity FILE -data NEWDIR -audit-witness-file FILE [-verifier FILE]

restore restores a snapshot (the latest without -snapshot) from a backup
folder into a new data folder, which must not exist or be empty. It checks
the manifest's signature and every chunk, writing into a temporary folder
beside NEWDIR that it renames at the end: a backup that fails any check
(wrong identity, a missing, changed or truncated object, a replaced
manifest) is refused and nothing is left at NEWDIR.

If the folder holds streams ("phivault serve -backup-stream"), the
databases are restored from them as of -at (RFC 3339; default the latest)
and the other files from the latest snapshot taken at or before it.

-identity is an age identity file of one of the recipients the backup
folder was made for. -verifier, the vault's audit-verifier.pub kept outside
the backup, pins the signer; without it the key in the backup is trusted.

Patients shredded after the snapshot was taken are shredded again in the
restored folder (the backup folder's tombstones). The restored audit trail
is checked against the outside witness file (-audit-witness-file): if the
witnesses saw more of it, restore records the gap, which the server
publishes and enters in the trail when it starts (docs/backup.md).

To serve the restored folder you also need the key-file passphrase (or the
KMS or HSM), and the same outside audit witness file.
` + backupTargetUsage + `
Flags:
`

// backupCommand runs "phivault backup" and "phivault backup list".
type backupCommand struct {
	stdout, stderr io.Writer
}

func (c *backupCommand) Run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "list" {
		return c.list(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "verify" {
		return c.verify(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "prune" {
		return c.prune(ctx, args[1:])
	}
	fs := c.flagSet("backup")
	d := dataFlag(fs)
	to := fs.String("to", "", "backup folder")
	var recipients stringList
	fs.Var(&recipients, "recipient", "age recipient (age1...) to encrypt a new backup folder's keys to; repeatable")
	recipientsFile := fs.String("recipients-file", "", "file of age recipients, one per line")
	identity := fs.String("identity", "", "age identity file, to read the keys of a folder this data folder has none of")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return errorWithHint("backup needs -to FOLDER", "phivault backup -data /var/lib/phivault -to /mnt/backup -recipient age1...")
	}
	if !d.initialized() {
		return errorWithHint(fmt.Sprintf("%s is not a phivault data folder", *d), "phivault backup -data /var/lib/phivault -to /mnt/backup")
	}
	kind, err := d.storeKind()
	if err != nil {
		return err
	}
	if kind == storePostgres {
		if _, err := postgresStore(*d); err != nil {
			return err
		}
	}
	signer, _, err := auditKeys(*d)
	if err != nil {
		return err
	}
	vkey, err := os.ReadFile(d.auditVerifierKey())
	if err != nil {
		return fmt.Errorf("read audit verifier key: %w", err)
	}
	t, err := openBackupTarget(*to, os.Getenv)
	if err != nil {
		return err
	}
	keys, err := c.keys(ctx, *d, t, strings.TrimSpace(string(vkey)), recipients, *recipientsFile, *identity)
	if err != nil {
		return err
	}
	res, err := backup.Backup(ctx, string(*d), t, backup.Options{Keys: keys, Signer: signer})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "snapshot %s: %d files, %d bytes; wrote %d bytes (%d of %d chunks new)\n",
		res.Snapshot, res.Files, res.Size, res.BytesWritten, res.NewChunks, res.Chunks)
	n, err := recordShreds(ctx, *d, t, keys)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(c.stdout, "recorded %d new shred tombstones\n", n)
	}
	if kind == storePostgres {
		postgresNote(c.stdout)
	}
	return nil
}

// recordShreds records in t a tombstone of every patient shredded in the
// data folder d that t holds none of yet, so that no restore from t brings
// them back (backup.RecordShreds). It runs after each backup: the backup
// holds no shred its tombstones lack.
func recordShreds(ctx context.Context, d dataDir, t backup.Target, keys *backup.KeySet) (int, error) {
	var shredded map[string]time.Time
	var err error
	if isPostgresFolder(string(d)) {
		shredded, err = postgresStoreShreds(ctx, d)
	} else if _, serr := os.Stat(d.database()); errors.Is(serr, fs.ErrNotExist) {
		return 0, nil // a folder never served holds no records
	} else {
		shredded, err = sqlite.ReadShredded(ctx, d.database())
	}
	if err != nil {
		return 0, err
	}
	shreds := make([]backup.Shred, 0, len(shredded))
	for c, at := range shredded {
		shreds = append(shreds, backup.Shred{Compartment: c, At: at})
	}
	return backup.RecordShreds(ctx, t, keys, rand.Reader, shreds)
}

// applyShreds is backup.RestoreOptions.ApplyShreds for a data folder on
// the embedded store: it shreds the tombstones' patients again in the
// restored store, and counts those it shredded in *n.
func applyShreds(n *int) func(ctx context.Context, dir string, shreds []backup.Shred) error {
	return func(ctx context.Context, dir string, shreds []backup.Shred) error {
		m := make(map[string]time.Time, len(shreds))
		for _, s := range shreds {
			m[s.Compartment] = s.At
		}
		done, err := sqlite.ApplyShreds(ctx, dataDir(dir).database(), m)
		*n = len(done)
		return err
	}
}

// keys returns the key set of the backup folder t: from the data folder's
// cache if it is t's, else read with the identity, else made for the
// recipients if t has none; the cache is written for next time.
func (c *backupCommand) keys(ctx context.Context, d dataDir, t backup.Target, verifier string, recipients []string, recipientsFile, identity string) (*backup.KeySet, error) {
	has, err := backup.HasKeys(ctx, t)
	if err != nil {
		return nil, err
	}
	var keys *backup.KeySet
	switch {
	case has:
		if cache, err := os.ReadFile(d.backupKeyCache()); err == nil {
			if keys, err = backup.CachedKeys(ctx, t, cache); err != nil && !errors.Is(err, backup.ErrNotFound) {
				return nil, err
			}
		}
		if keys != nil {
			return keys, nil
		}
		if identity == "" {
			return nil, errorWithHint("the backup folder has keys this data folder does not hold; give -identity to read them", "phivault backup -to FOLDER -identity backup-identity.txt")
		}
		ids, err := readIdentities(identity)
		if err != nil {
			return nil, err
		}
		if keys, err = backup.OpenKeys(ctx, t, ids...); err != nil {
			return nil, err
		}
	default:
		rs, err := readRecipients(recipients, recipientsFile)
		if err != nil {
			return nil, err
		}
		if len(rs) == 0 {
			return nil, errorWithHint("a new backup folder needs -recipient or -recipients-file: the age recipients its keys are encrypted to", "age-keygen -o backup-identity.txt; phivault backup -to FOLDER -recipient age1...")
		}
		if keys, err = backup.Init(ctx, t, rand.Reader, verifier, rs...); err != nil {
			return nil, err
		}
	}
	if err := writeFileAtomic(d.backupKeyCache(), keys.MarshalCache(), 0o600); err != nil {
		return nil, fmt.Errorf("write backup key cache: %w", err)
	}
	return keys, nil
}

// backupKeyCache is the data folder's copy of its backup folder's keys.
func (d dataDir) backupKeyCache() string { return d.path("backup.key") }

func (c *backupCommand) list(ctx context.Context, args []string) error {
	fs := c.flagSet("backup list")
	d := dataFlag(fs)
	to := fs.String("to", "", "backup folder")
	identity := fs.String("identity", "", "age identity file (else the data folder's key cache is used)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return errorWithHint("backup list needs -to FOLDER", "phivault backup list -to /mnt/backup")
	}
	t, err := openBackupTarget(*to, os.Getenv)
	if err != nil {
		return err
	}
	var keys *backup.KeySet
	if *identity != "" {
		ids, err := readIdentities(*identity)
		if err != nil {
			return err
		}
		if keys, err = backup.OpenKeys(ctx, t, ids...); err != nil {
			return err
		}
	} else {
		cache, err := os.ReadFile(d.backupKeyCache())
		if err != nil {
			return errorWithHint("no backup keys in "+string(*d)+"; give -identity", "phivault backup list -to FOLDER -identity backup-identity.txt")
		}
		if keys, err = backup.CachedKeys(ctx, t, cache); err != nil {
			return err
		}
	}
	ms, err := backup.List(ctx, t, keys, nil)
	if err != nil {
		return err
	}
	marks, err := backup.Marks(ctx, t, keys)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAPSHOT\tTIME\tFILES\tSIZE\tAUDIT-CHECKPOINT\tVERIFIED")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", m.Snapshot, m.Time.Format(time.RFC3339), len(m.Files), m.Size(), checkpointSize(m.Checkpoint), yesNo(marks[m.Snapshot] != nil))
	}
	return tw.Flush()
}

// checkpointSize returns the tree size of a signed checkpoint, "-" if none.
func checkpointSize(cp string) string {
	lines := strings.SplitN(cp, "\n", 3)
	if len(lines) < 3 {
		return "-"
	}
	if _, err := strconv.ParseInt(lines[1], 10, 64); err != nil {
		return "-"
	}
	return lines[1]
}

func (c *backupCommand) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(c.stderr, backupUsage)
		fs.PrintDefaults()
	}
	return fs
}

func dataFlag(fs *flag.FlagSet) *dataDir {
	d := new(dataDir)
	fs.StringVar((*string)(d), "data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder (env PHIVAULT_DATA)")
	return d
}

// restoreCommand runs "phivault restore".
type restoreCommand struct {
	stdout, stderr io.Writer
}

func (c *restoreCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(c.stderr, restoreUsage)
		fs.PrintDefaults()
	}
	from := fs.String("from", "", "backup folder")
	snapshot := fs.String("snapshot", "", "snapshot id (default the latest)")
	identity := fs.String("identity", "", "age identity file")
	data := fs.String("data", "", "the new data folder to restore into")
	verifierFile := fs.String("verifier", "", "the vault's audit-verifier.pub, kept outside the backup")
	var witness string
	registerWitnessFile(fs, &witness, "the vault's witnesses saw: the restored audit trail is checked against it, and a gap recorded if it saw more; a file that does not exist checks nothing")
	at := fs.String("at", "", "point in time to restore (RFC 3339) from the folder's streams and snapshots; default the latest (docs/backup.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *identity == "" || *data == "" || witness == "" || fs.NArg() > 0 {
		fs.Usage()
		return errorWithHint("restore needs -from, -identity, -data and -audit-witness-file", "phivault restore -from /mnt/backup -identity backup-identity.txt -data /var/lib/phivault-restored -audit-witness-file /var/lib/phivault-witness/audit-checkpoints.log")
	}
	ids, err := readIdentities(*identity)
	if err != nil {
		return err
	}
	var shredded int
	var gap *auditlog.Gap
	var pgShreds []string
	pgFolder := false
	opt := backup.RestoreOptions{Identities: ids,
		ApplyShreds: func(ctx context.Context, dir string, shreds []backup.Shred) error {
			if pgFolder = isPostgresFolder(dir); pgFolder {
				return postgresShreds(&pgShreds)(ctx, dir, shreds)
			}
			return applyShreds(&shredded)(ctx, dir, shreds)
		},
		Prepare: func(ctx context.Context, dir string, m *backup.Manifest) error {
			if pgFolder = isPostgresFolder(dir); pgFolder {
				return writeRestoreRecord(dataDir(dir), m, time.Now())
			}
			w, err := witnessFile(dataDir(dir), witness, "phivault restore")
			if err != nil {
				return err
			}
			if gap, err = recordRestoreGap(ctx, dataDir(dir), w, m, time.Now()); err != nil {
				return err
			}
			return writeRestoreRecord(dataDir(dir), m, time.Now())
		}}
	if *verifierFile != "" {
		if opt.Verifier, err = readVerifier(*verifierFile); err != nil {
			return err
		}
	}
	t, err := openBackupTarget(*from, os.Getenv)
	if err != nil {
		return err
	}
	by := "phivault restore"
	if host, _ := os.Hostname(); host != "" {
		by += " on " + host
	}
	opt.Mark = &backup.MarkOptions{By: by}                           // a whole restore verifies the snapshot
	m, dbs, err := restoreStream(ctx, t, *at, *snapshot, *data, opt) // see backupstream.go
	if m == nil && err == nil {
		m, err = backup.Restore(ctx, t, *snapshot, *data, opt)
	}
	if err != nil && m != nil { // restored; the mark could not be written (a read-only copy)
		fmt.Fprintf(c.stderr, "warning: %v\n", err)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "restored snapshot %s of %s into %s: %d files, %d bytes; audit checkpoint size %s\n",
		m.Snapshot, m.Time.Format(time.RFC3339), *data, len(m.Files), m.Size(), checkpointSize(m.Checkpoint))
	for _, db := range dbs {
		if db.TXID == 0 {
			fmt.Fprintf(c.stdout, "  %s: the snapshot's copy (its stream has nothing newer)\n", db.Name)
			continue
		}
		fmt.Fprintf(c.stdout, "  %s: from its stream, transaction %d of %s\n", db.Name, db.TXID, db.Time.Format(time.RFC3339Nano))
	}
	if shredded > 0 {
		fmt.Fprintf(c.stdout, "shredded again %d patients shredded after the snapshot (the backup's tombstones)\n", shredded)
	}
	if pgFolder {
		printPostgresRestore(c.stdout, *data, pgShreds)
	}
	if gap != nil {
		fmt.Fprintf(c.stdout, "GAP: the restored audit trail holds %d entries, the witnesses saw %d: %d entries are lost. The server publishes the gap to the witnesses and records it in the trail when it starts on %s.\n",
			gap.Restored, gap.Witnessed.N, gap.Lost(), *data)
	}
	return nil
}

// readIdentities reads an age identity file.
func readIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read -identity: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("read -identity %s: %v", path, err)
	}
	return ids, nil
}

// readRecipients parses the -recipient flags and the -recipients-file.
func readRecipients(flags []string, file string) ([]age.Recipient, error) {
	var rs []age.Recipient
	for _, s := range flags {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, fmt.Errorf("-recipient %q: %v", s, err)
		}
		rs = append(rs, r)
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read -recipients-file: %w", err)
		}
		defer f.Close()
		more, err := age.ParseRecipients(f)
		if err != nil {
			return nil, fmt.Errorf("read -recipients-file %s: %v", file, err)
		}
		rs = append(rs, more...)
	}
	return rs, nil
}
