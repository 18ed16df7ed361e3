package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/internal/coredump"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/vault"
)

// keysCommand manages keys: shred a patient, rotate the KEK, show status.
type keysCommand struct {
	stdout, stderr io.Writer
}

const keysUsage = `Usage: phivault keys SUBCOMMAND [flags]

Subcommands:
  shred        crypto-shred one patient: destroy its key and search tokens
  rotate       make a new key-encryption key version and rewrap every key
  rotate-patient  new data key for one patient; re-encrypt its records
  status       KEK versions, age, rotation due, keys per version
  compromised  mark a KEK version compromised (forces rotation)

Each subcommand talks to the running server's admin API (-url, PHIVAULT_TOKEN)
unless -data names a data folder, which it then opens itself: do that only
while no server runs on that folder.
`

func (c *keysCommand) Run(ctx context.Context, args []string) error {
	// With -data the subcommands open the key file and unwrap keys, and
	// every one of them reads a passphrase: keep both out of core files.
	if err := coredump.Disable(); err != nil {
		return err
	}
	return runSubcommand(ctx, c.stdout, c.stderr, "keys", keysUsage, "phivault keys status", args, subcommands{
		"shred": c.shred, "rotate": c.rotate, "rotate-patient": c.rotatePatient,
		"status": c.status, "compromised": c.compromised,
	})
}

// offlineFlags select a data folder to open directly instead of calling a
// server.
type offlineFlags struct {
	data     string
	passFile string
	store    StoreConfig // the data folder's database; see store.go
}

func (o *offlineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.data, "data", "", "data folder to open directly, when no server runs on it (default: call the server)")
	fs.StringVar(&o.passFile, "passphrase-file", "", "file holding the key-file passphrase (with -data; or PHIVAULT_PASSPHRASE[_FILE])")
	o.store.register(fs)
}

// offline is a data folder opened by a keys subcommand.
type offline struct {
	data    dataDir
	pass    []byte
	keys    *keyring.Reloading
	db      appStore
	sealer  *envelope.Sealer
	records *vault.Service
}

func (o *offlineFlags) open(ctx context.Context, logger *slog.Logger) (*offline, error) {
	d := dataDir(o.data)
	if !d.initialized() {
		return nil, errorWithHint(fmt.Sprintf("%s is not a phivault data folder", d), "check -data")
	}
	if err := o.store.resolve(); err != nil {
		return nil, err
	}
	pass, err := passphrase(o.passFile)
	if err != nil {
		return nil, err
	}
	if pass == "" {
		return nil, errorWithHint("no key-file passphrase", "set PHIVAULT_PASSPHRASE_FILE (or PHIVAULT_PASSPHRASE) or pass -passphrase-file")
	}
	keys, err := keyring.OpenReloading(d.keyFile(), []byte(pass), keyFileOptions)
	if errors.Is(err, keyring.ErrWrongPassphrase) {
		return nil, errorWithHint("wrong passphrase for the key file", "check PHIVAULT_PASSPHRASE_FILE")
	} else if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	db, err := openStore(ctx, d, o.store)
	if err != nil {
		return nil, err
	}
	sealer := envelope.New(keys, envelope.Options{})
	records := vault.New(db, sealer)
	records.Logger = logger
	return &offline{data: d, pass: []byte(pass), keys: keys, db: db, sealer: sealer, records: records}, nil
}

func (o *offline) Close() error { return o.db.Close() }

// adminCall sends a request to the admin API under the FHIR base URL and
// returns the body of a 2xx answer; any other answer is an error carrying
// the OperationOutcome's message.
func adminCall(ctx context.Context, cf *clientFlags, method, path string) ([]byte, error) {
	c, err := cf.client(1)
	if err != nil {
		return nil, err
	}
	status, body, err := c.do(ctx, method, adminPrefix+path, []byte{})
	if err != nil {
		return nil, errorWithHint(fmt.Sprintf("cannot reach %s: %v", cf.url, err), "start the server, check -url and -cacert, or use -data while no server runs")
	}
	if status < 200 || status > 299 {
		return nil, fmt.Errorf("server answered %d: %s", status, outcomeMessage(body))
	}
	return body, nil
}

// adminPrefix is where the admin API is mounted, relative to the FHIR base
// URL: the server package routes only /fhir and below to handlers, so the
// admin handler lives at /fhir/admin/.
const adminPrefix = "/admin"

func (c *keysCommand) shred(ctx context.Context, args []string) error {
	return c.patientOp(ctx, args, "shred", "/$shred",
		"Destroys the patient's data key and search tokens. Every version of the patient's\n"+
			"records stays as ciphertext nobody can read; reads answer 410, writes are refused.\n"+
			"This cannot be undone.",
		func(ctx context.Context, o *offline, patient string) error {
			at, err := o.records.Shred(ctx, patient)
			pending := errors.Is(err, phivault.ErrErasePending)
			if phivault.ErrorCode(err) == phivault.ENOTFOUND {
				return fmt.Errorf("no Patient %s in %s", patient, o.data)
			} else if err != nil && !pending {
				return fmt.Errorf("shred: %w", err)
			}
			fmt.Fprintf(c.stdout, "Patient/%s was crypto-shredded at %s.\n", patient, at.Format("2006-01-02T15:04:05.000000Z07:00"))
			if pending {
				// The shred is done (exit status 0); the erasure is
				// retried at the next shred and when the server starts.
				fmt.Fprintf(c.stderr, "warning: %v\n", err)
			}
			return nil
		})
}

// adminPost runs an admin operation on the running server and prints the
// OperationOutcome's message.
func (c *keysCommand) adminPost(ctx context.Context, cf *clientFlags, path string) error {
	body, err := adminCall(ctx, cf, http.MethodPost, path)
	if err != nil {
		return err
	}
	var p userResult // a shred or compromise mark that waits for a second admin answers the change
	if json.Unmarshal(body, &p) == nil && awaitsApproval(c.stdout, p.Change) {
		return nil
	}
	fmt.Fprintln(c.stdout, outcomeMessage(body))
	return nil
}

// patientOp runs a keys subcommand on one patient (--patient ID): through
// the running server's admin API at /patients/ID + op, or, with -data,
// offline through run.
func (c *keysCommand) patientOp(ctx context.Context, args []string, name, op, about string, run func(context.Context, *offline, string) error) error {
	fs := flag.NewFlagSet("keys "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	var of offlineFlags
	of.register(fs)
	patient := fs.String("patient", "", "id of the Patient (required)")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: phivault keys %s --patient ID [-data DIR | -url URL]\n\n%s\n\nFlags:\n", name, about)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *patient == "" || strings.ContainsAny(*patient, "/?#") {
		return errorWithHint("no valid --patient id", "phivault keys "+name+" --patient ID")
	}
	if of.data == "" {
		return c.adminPost(ctx, &cf, "/patients/"+url.PathEscape(*patient)+"/"+strings.TrimPrefix(op, "/"))
	}
	o, err := of.open(ctx, slog.New(slog.NewJSONHandler(c.stderr, nil)))
	if err != nil {
		return err
	}
	defer o.Close()
	return run(ctx, o, *patient)
}
