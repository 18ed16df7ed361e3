package restoredrill

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/phivault/phivault/backup"
	"golang.org/x/mod/sumdb/note"
)

// Defaults of Options.
const (
	DefaultSample       = 5
	DefaultStartTimeout = 2 * time.Minute
	DefaultStopTimeout  = 30 * time.Second
)

// Options configure a drill.
type Options struct {
	// Target is the backup to restore from.
	Target backup.Target
	// Identities open the target's key set.
	Identities []age.Identity
	// Verifier, if not nil, pins the manifests' signer (the live vault's
	// audit-verifier.pub); nil trusts the key set's.
	Verifier note.Verifier
	// Snapshot is the snapshot to restore; "" is the latest.
	Snapshot string
	// Scratch is the folder the scratch folder is made in (hidden, named
	// .scratch-*), typically DATA/restore-drills. Required.
	Scratch string
	// Source is the live data folder the backup was taken of, if it is
	// local: its audit-checkpoints.log must hold the manifest's
	// checkpoint. "" skips that step.
	Source string
	// Passphrase opens the restored key file; it reaches the server in
	// its environment (PHIVAULT_PASSPHRASE), never in its arguments. ""
	// for a vault whose keys are in a KMS or an HSM (set up through
	// Environ).
	Passphrase string
	// Environ is the environment the server's is taken from, through
	// ServerEnv. Nil means os.Environ().
	Environ []string
	// Command returns the command that runs phivault with args. Nil
	// means this executable (os.Executable).
	Command func(ctx context.Context, args ...string) *exec.Cmd
	// ApplyShreds shreds again in the restored folder the patients the
	// target holds tombstones of (backup.RestoreOptions.ApplyShreds): a
	// drill restores what a real restore would. Nil refuses a target
	// with tombstones, as Restore does.
	ApplyShreds func(ctx context.Context, dir string, shreds []backup.Shred) error
	// Mark, if not nil, records the drill's successful restore as a
	// verification of the snapshot (backup.RestoreOptions.Mark).
	Mark *backup.MarkOptions
	// Sample is how many patients to read through the API. Zero means
	// DefaultSample.
	Sample int
	// StartTimeout bounds the server's start and first read; zero means
	// DefaultStartTimeout. StopTimeout bounds its stop; zero means
	// DefaultStopTimeout.
	StartTimeout, StopTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	if o.Command == nil {
		o.Command = func(ctx context.Context, args ...string) *exec.Cmd {
			exe, err := os.Executable()
			if err != nil {
				exe = os.Args[0]
			}
			return exec.CommandContext(ctx, exe, args...)
		}
	}
	if o.Sample <= 0 {
		o.Sample = DefaultSample
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Run runs a restore drill and reports it. A drill that fails at a step
// is a report that does not pass, with the step's reason; the error is
// for options it cannot run with (no target, no identity, no scratch
// folder) or a scratch folder it cannot make. The scratch folder is
// removed in every case.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Target == nil || len(o.Identities) == 0 || o.Scratch == "" {
		return nil, errors.New("restore drill: needs a backup target, an identity and a scratch folder")
	}
	o = o.withDefaults()
	// Absolute, since the scratch folder records its witness file's path
	// and the server resolves paths against its own working folder.
	var err error
	if o.Scratch, err = filepath.Abs(o.Scratch); err != nil {
		return nil, fmt.Errorf("restore drill: %w", err)
	}
	if err := os.MkdirAll(o.Scratch, 0o700); err != nil {
		return nil, fmt.Errorf("restore drill: %w", err)
	}
	scratch, err := os.MkdirTemp(o.Scratch, ".scratch-*")
	if err != nil {
		return nil, fmt.Errorf("restore drill: %w", err)
	}
	d := &drill{o: o, data: filepath.Join(scratch, "data"), witness: filepath.Join(scratch, "witness", "audit-checkpoints.log"),
		rep: &Report{Started: o.Now().UTC(), RTOMS: -1, RPOMS: -1}}
	d.run(ctx)
	start := o.Now()
	if err := os.RemoveAll(scratch); err != nil {
		d.rep.step(StepCleanup, OutcomeFailed, err.Error(), o.Now().Sub(start))
	} else {
		d.rep.step(StepCleanup, OutcomeDone, "", o.Now().Sub(start))
	}
	d.rep.Finished = o.Now().UTC()
	d.rep.Pass = len(d.rep.Failures) == 0
	return d.rep, nil
}

// drill is one run: its options, scratch paths and report.
type drill struct {
	o             Options
	data, witness string // the scratch data folder and witness file
	rep           *Report
	m             *backup.Manifest
}

// run runs the steps in order; a failed step skips the steps that need
// it.
func (d *drill) run(ctx context.Context) {
	o := d.o
	t0 := o.Now()
	ropt := backup.RestoreOptions{Identities: o.Identities, Verifier: o.Verifier, Mark: o.Mark}
	if o.ApplyShreds != nil {
		ropt.ApplyShreds = func(ctx context.Context, dir string, shreds []backup.Shred) error {
			d.rep.Shreds = len(shreds)
			return o.ApplyShreds(ctx, dir, shreds)
		}
	}
	m, err := backup.Restore(ctx, o.Target, o.Snapshot, d.data, ropt)
	reason := ""
	if err != nil && m != nil { // restored; the verification mark was not written
		reason, err = err.Error(), nil
	}
	if err != nil {
		d.rep.step(StepRestore, OutcomeFailed, err.Error(), o.Now().Sub(t0))
		d.skip(StepFiles, StepCount, StepSource, StepStart, StepRead, StepStop, StepAudit)
		return
	}
	d.m = m
	d.rep.step(StepRestore, OutcomeDone, reason, o.Now().Sub(t0))
	d.rep.Snapshot, d.rep.SnapshotTime, d.rep.Files, d.rep.Bytes = m.Snapshot, m.Time, len(m.Files), m.Size()
	d.rep.RPOMS = d.rep.Started.Sub(m.Time).Milliseconds()
	d.rep.AuditCheckpoint = checkpointSize(m.Checkpoint)

	if !d.timed(StepFiles, d.verifyFiles) {
		d.skip(StepCount, StepSource, StepStart, StepRead, StepStop, StepAudit)
		return
	}
	d.timed(StepCount, d.countRecords)
	if o.Source == "" {
		d.rep.step(StepSource, OutcomeSkipped, "no local source data folder", 0)
	} else {
		d.timed(StepSource, d.sourceCheckpoint)
	}

	var srv *server
	if !d.timed(StepStart, func() error {
		var err error
		srv, err = d.startServer(ctx)
		return err
	}) {
		d.skip(StepRead, StepStop, StepAudit)
		return
	}
	d.timed(StepRead, func() error {
		n, err := srv.readSample(ctx, o.Sample, func() {
			if d.rep.RTOMS < 0 {
				d.rep.RTOMS = o.Now().Sub(t0).Milliseconds()
			}
		})
		d.rep.Patients = n
		return err
	})
	if !d.timed(StepStop, func() error { return srv.stop(o.StopTimeout) }) {
		d.skip(StepAudit)
		return
	}
	d.timed(StepAudit, func() error { return d.verifyAudit(ctx) })
}

// timed runs step f and records it; it reports whether it was done.
func (d *drill) timed(name string, f func() error) bool {
	start := d.o.Now()
	if err := f(); err != nil {
		d.rep.step(name, OutcomeFailed, err.Error(), d.o.Now().Sub(start))
		return false
	}
	d.rep.step(name, OutcomeDone, "", d.o.Now().Sub(start))
	return true
}

func (d *drill) skip(names ...string) {
	for _, n := range names {
		d.rep.step(n, OutcomeSkipped, "an earlier step failed", 0)
	}
}

// shreddedFile is the file that shredding again changes after the
// restore checked it: the records database.
const shreddedFile = "phivault.db"

// verifyFiles re-reads every restored file from disk and compares it with
// the manifest's size and SHA-256. When the restore shred patients again
// (tombstones newer than the snapshot), the records database may have
// changed since Restore checked it against the manifest, and only it may
// differ. (Today the shreds land in its WAL file, which no manifest
// lists, so it still matches; a store that checkpoints on close would
// change it.)
func (d *drill) verifyFiles() error {
	for _, f := range d.m.Files {
		sum, size, err := hashFile(filepath.Join(d.data, filepath.FromSlash(f.Name)))
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		if (size != f.Size || sum != f.SHA256) && (d.rep.Shreds == 0 || f.Name != shreddedFile) {
			return fmt.Errorf("%s: does not match the manifest's size and SHA-256", f.Name)
		}
		if isDatabase(f.Name) {
			d.rep.Databases = append(d.rep.Databases, Database{Name: f.Name, SHA256: sum, Size: size})
		}
	}
	return nil
}

// isDatabase reports whether the manifest's file name is one of the data
// folder's SQLite databases.
func isDatabase(name string) bool { return path.Dir(name) == "." && strings.HasSuffix(name, ".db") }

func hashFile(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// sourceCheckpoint checks that the manifest's audit checkpoint is one the
// live vault in o.Source published to its checkpoint log: the snapshot's
// trail is on the live trail's line, not a fork of it.
func (d *drill) sourceCheckpoint() error {
	if d.m.Checkpoint == "" {
		return errors.New("the snapshot holds no audit checkpoint")
	}
	log, err := os.ReadFile(filepath.Join(d.o.Source, "audit-checkpoints.log"))
	if err != nil {
		return fmt.Errorf("read the live checkpoint log: %w", err)
	}
	if !bytes.Contains(log, []byte(d.m.Checkpoint)) {
		return fmt.Errorf("the snapshot's audit checkpoint (size %d) is not in the live vault's audit-checkpoints.log", d.rep.AuditCheckpoint)
	}
	return nil
}

// verifyAudit runs "phivault audit verify" on the scratch folder against
// its scratch witness file, which holds the restored checkpoints and the
// manifest's, and those the scratch server added.
func (d *drill) verifyAudit(ctx context.Context) error {
	cmd := d.o.Command(ctx, "audit", "verify", "-data", d.data, "-audit-witness-file", d.witness)
	cmd.Env = ServerEnv(d.o.Environ)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("phivault audit verify: %v: %s", err, lastLine(errOut.Bytes()))
	}
	// "audit log OK: N entries, ..."
	if _, rest, ok := strings.Cut(out.String(), "audit log OK: "); ok {
		if n, _, ok := strings.Cut(rest, " "); ok {
			d.rep.AuditEntries, _ = strconv.ParseInt(n, 10, 64)
		}
	}
	if d.rep.AuditEntries < d.rep.AuditCheckpoint {
		return fmt.Errorf("the restored trail has %d entries, fewer than the snapshot's checkpoint's %d", d.rep.AuditEntries, d.rep.AuditCheckpoint)
	}
	return nil
}

// checkpointSize returns the tree size of a signed checkpoint note, 0 if
// none.
func checkpointSize(cp string) int64 {
	lines := strings.SplitN(cp, "\n", 3)
	if len(lines) < 3 {
		return 0
	}
	n, _ := strconv.ParseInt(lines[1], 10, 64)
	return n
}

// lastLine returns the error a phivault command printed in b: its last
// line starting "phivault: ", else its last line, cut to 300 bytes.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	s := lines[len(lines)-1]
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "phivault: ") {
			s = lines[i]
			break
		}
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
