package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/sqlite"
	"golang.org/x/mod/sumdb/note"
)

// The audit trail's files in the data folder:
//
//	audit-signer.key       the Ed25519 note key that signs checkpoints (0600)
//	audit-verifier.pub     its verifier key; give it to outside verifiers
//	audit-checkpoints.log  the file witness: every signed checkpoint, appended
func (d dataDir) auditSignerKey() string   { return d.path("audit-signer.key") }
func (d dataDir) auditVerifierKey() string { return d.path("audit-verifier.pub") }
func (d dataDir) auditCheckpoints() string { return d.path("audit-checkpoints.log") }

// auditTrail is the running audit log and its endpoints for verifiers.
type auditTrail struct {
	log     *auditlog.Log
	handler http.Handler
}

// openAudit opens the audit trail on a's database, with the data folder's
// checkpoint key (made on first use), and wraps a.records and the admin
// API's shredder so that every call is recorded before data leaves
// (api → auditlog → vault). It refuses to start if the database no longer
// extends the last checkpoint in the witness file.
func (a *app) openAudit(ctx context.Context, adminOpts *admin.Options, auth api.Authenticator) error {
	signer, _, err := auditKeys(a.cfg.Data)
	if err != nil {
		return err
	}
	l := auditlog.New(a.db, signer.Name(), signer)
	l.Witnesses = []auditlog.Witness{fileWitness(a.cfg.Data.auditCheckpoints())}
	l.Logger = a.logger
	if err := l.Open(ctx); err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	if err := checkWitness(ctx, a.cfg.Data, l); err != nil {
		l.Close()
		return errorWithHint(err.Error(), "phivault audit verify -data "+string(a.cfg.Data))
	}
	a.audit = &auditTrail{log: l, handler: auditlog.NewHandler(l, auth)}
	a.records = auditlog.NewRecordService(a.records, l)
	if adminOpts.Records != nil {
		adminOpts.Records = auditlog.NewShredder(adminOpts.Records, l)
	}
	if adminOpts.Authenticator != nil {
		adminOpts.Authenticator = auditActor{adminOpts.Authenticator}
	}
	return nil
}

// auditActor puts the authenticated actor of an admin request in the
// context's RequestInfo, which the api package does for FHIR requests.
type auditActor struct{ api.Authenticator }

func (a auditActor) Authenticate(ctx context.Context, token string) (context.Context, error) {
	ctx, err := a.Authenticator.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	info, _ := phivault.RequestInfoFromContext(ctx)
	info.Actor = api.ActorFromContext(ctx)
	return phivault.WithRequestInfo(ctx, info), nil
}

// Close publishes a last checkpoint and stops the log.
func (t *auditTrail) Close() error {
	if t == nil {
		return nil
	}
	return t.log.Close()
}

// checkWitness checks the log against the witness file's last checkpoint.
func checkWitness(ctx context.Context, d dataDir, l *auditlog.Log) error {
	b, err := os.ReadFile(d.auditCheckpoints())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read audit checkpoints: %w", err)
	}
	notes, err := auditlog.SplitCheckpoints(b)
	if err != nil || len(notes) == 0 {
		return fmt.Errorf("audit checkpoints file: %v", err)
	}
	_, verifier, err := auditKeys(d)
	if err != nil {
		return err
	}
	c, err := auditlog.OpenCheckpoint(notes[len(notes)-1], verifier, "")
	if err != nil {
		return err
	}
	if err := l.CheckConsistent(ctx, c); err != nil {
		return fmt.Errorf("audit log tampered with or rolled back: %w", err)
	}
	return nil
}

// auditKeys reads the checkpoint key pair, creating it if the data folder
// has none (folders made before the audit trail existed).
func auditKeys(d dataDir) (note.Signer, note.Verifier, error) {
	skey, err := os.ReadFile(d.auditSignerKey())
	if errors.Is(err, fs.ErrNotExist) {
		var suffix [4]byte
		rand.Read(suffix[:])
		s, v, err := note.GenerateKey(rand.Reader, "phivault-audit-"+hex.EncodeToString(suffix[:]))
		if err != nil {
			return nil, nil, fmt.Errorf("generate audit key: %w", err)
		}
		if err := writeFileAtomic(d.auditVerifierKey(), []byte(v+"\n"), 0o644); err != nil {
			return nil, nil, fmt.Errorf("write audit verifier key: %w", err)
		}
		if err := writeFileAtomic(d.auditSignerKey(), []byte(s+"\n"), 0o600); err != nil {
			return nil, nil, fmt.Errorf("write audit signer key: %w", err)
		}
		skey = []byte(s)
	} else if err != nil {
		return nil, nil, fmt.Errorf("read audit signer key: %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, errors.New("audit-signer.key is corrupt")
	}
	verifier, err := readVerifier(d.auditVerifierKey())
	if err != nil {
		return nil, nil, err
	}
	return signer, verifier, nil
}

func readVerifier(path string) (note.Verifier, error) {
	vkey, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit verifier key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		return nil, fmt.Errorf("%s is not a note verifier key", path)
	}
	return v, nil
}

// fileWitness appends each checkpoint, then an empty line, to a file and
// syncs it.
type fileWitness string

func (w fileWitness) Publish(ctx context.Context, cp []byte) error {
	f, err := os.OpenFile(string(w), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(append([]byte{}, cp...), '\n'))
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// auditCommand runs "phivault audit ...".
type auditCommand struct {
	stdout, stderr io.Writer
}

const auditUsage = `Usage: phivault audit verify [flags]

Verifies the audit trail of a data folder, offline: every entry and tree
hash, the checkpoints' signatures, and that the log still extends every
checkpoint in FILE (default: the folder's audit-checkpoints.log). Keep a copy
of a checkpoint outside the server and pass it with -checkpoint to detect a
rewritten database. On failure it names the first bad entry.

Flags:
`

func (c *auditCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprint(c.stderr, auditUsage)
		return errorWithHint("audit needs a subcommand", "phivault audit verify -data DIR")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	data := fs.String("data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder (env PHIVAULT_DATA)")
	cpFile := fs.String("checkpoint", "", "file of saved signed checkpoints (default: the folder's audit-checkpoints.log)")
	vkFile := fs.String("verifier", "", "note verifier key (default: the folder's audit-verifier.pub)")
	fs.Usage = func() { fmt.Fprint(c.stderr, auditUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	d := dataDir(*data)
	if !d.initialized() {
		return errorWithHint(fmt.Sprintf("%s is not a phivault data folder", d), "phivault audit verify -data DIR")
	}
	if *cpFile == "" {
		*cpFile = d.auditCheckpoints()
	}
	if *vkFile == "" {
		*vkFile = d.auditVerifierKey()
	}
	verifier, err := readVerifier(*vkFile)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(*cpFile)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	notes, err := auditlog.SplitCheckpoints(b)
	if err != nil {
		return err
	}
	db, err := sqlite.Open(ctx, d.database())
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	tree, err := auditlog.Verify(ctx, db, verifier, verifier.Name(), notes)
	if err != nil {
		return fmt.Errorf("verification FAILED: %w", err)
	}
	fmt.Fprintf(c.stdout, "audit log OK: %d entries, root %s, consistent with %d checkpoints\n", tree.N, tree.Hash, len(notes))
	return nil
}
