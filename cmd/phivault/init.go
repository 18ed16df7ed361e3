package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/internal/coredump"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/server"
	"golang.org/x/term"
)

// initCommand creates a data folder.
type initCommand struct {
	stdin          *os.File // asked for the audit witness file if it is a terminal
	stdout, stderr io.Writer
}

const initUsage = `Usage: phivault init [flags]

Creates a data folder: a key file protected by a passphrase, a self-signed
TLS certificate, and a bootstrap admin API token. The token is shown once and
only its hash is kept.

The passphrase comes from -passphrase-file, PHIVAULT_PASSPHRASE or
PHIVAULT_PASSPHRASE_FILE (at least 12 characters). If none is given, init
makes a strong one and shows it once. Keep it safe and apart from the key
file: without both, no record can ever be read again.

Records go to the folder's SQLite file, or to PostgreSQL when a postgres://
URL is given in PHIVAULT_STORE_FILE or PHIVAULT_STORE (which may carry a
password) or -store (which may not). A database on another machine must be
reached over verified TLS: sslmode=verify-full and sslrootcert=CA.pem. init
refuses a database that already holds a vault.

The audit witness file (-audit-witness-file or PHIVAULT_AUDIT_WITNESS_FILE;
asked for on a terminal) receives every signed checkpoint of the audit
trail. Put it outside the data folder, on another disk or a mount of
another host, ideally append-only: the server checks the trail against it
at every start, so a rewritten or cut trail is noticed even by someone who
cannot trust the data folder. Name the same file to every "phivault serve"
and "phivault audit verify" (put PHIVAULT_AUDIT_WITNESS_FILE in the
service's configuration): the path init records in the data folder is only
checked against the one named, never used in its place, since whoever can
change the folder could point it elsewhere.

Flags:
`

// initResult is what init created, for demo to reuse.
type initResult struct {
	passphrase string
	token      string
	generated  bool   // the passphrase was generated
	witness    string // the audit witness file, absolute
}

// askWitness asks for the audit witness file on a terminal, or explains
// that it is required.
func (c *initCommand) askWitness() (string, error) {
	err := errorWithHint("init needs an audit witness file outside the data folder",
		"phivault init -audit-witness-file /var/lib/phivault-witness/audit-checkpoints.log (on another disk or host mount), or set PHIVAULT_AUDIT_WITNESS_FILE")
	if c.stdin == nil || !term.IsTerminal(int(c.stdin.Fd())) {
		return "", err
	}
	fmt.Fprint(c.stderr, "Audit witness file, outside the data folder (another disk or host mount): ")
	line, rerr := bufio.NewReader(c.stdin).ReadString('\n')
	if line = strings.TrimSpace(line); line == "" || rerr != nil && line == "" {
		return "", err
	}
	return line, nil
}

func (c *initCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	data := fs.String("data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder to create (env PHIVAULT_DATA)")
	passFile := fs.String("passphrase-file", "", "file holding the key-file passphrase")
	hosts := fs.String("hosts", "", "extra comma-separated DNS names or IPs for the certificate (localhost is always included)")
	var witness string
	registerWitnessFile(fs, &witness, "will receive every signed audit checkpoint; required, and to be named again to serve")
	var kc KeyringConfig
	kc.register(fs)
	var sc StoreConfig
	sc.register(fs)
	fs.Usage = func() { fmt.Fprint(c.stderr, initUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := coredump.Disable(); err != nil { // the passphrase and the new KEK
		return err
	}
	if err := sc.resolve(); err != nil {
		return err
	}
	if witness == "" {
		var err error
		if witness, err = c.askWitness(); err != nil {
			return err
		}
	}
	pass, err := passphrase(*passFile)
	if err != nil {
		return err
	}
	res, err := initData(ctx, dataDir(*data), kc, sc, pass, splitList(*hosts), witness)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Created %s.\n", *data)
	fmt.Fprintf(c.stdout, "\nAudit checkpoints are also written to %s, outside the data folder.\n", res.witness)
	if res.generated && kc.Kind == keyringFile {
		fmt.Fprintf(c.stdout, "\nKey-file passphrase (shown once; store it apart from the data folder):\n  %s\n", res.passphrase)
	}
	fmt.Fprintf(c.stdout, "\nAdmin API token (shown once; only its hash is kept):\n  %s\n", res.token)
	fmt.Fprintf(c.stdout, "\nStart the server with (the witness file is needed on every start):\n  PHIVAULT_PASSPHRASE_FILE=... phivault serve -data %s -audit-witness-file %s\n", *data, res.witness)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// initData creates the data folder d for records in the database sc names,
// with witness as the audit witness file outside it. It refuses to touch
// an existing folder or a database that holds a vault.
func initData(ctx context.Context, d dataDir, kc KeyringConfig, sc StoreConfig, pass string, hosts []string, witness string) (*initResult, error) {
	if d.initialized() {
		return nil, errorWithHint(fmt.Sprintf("%s is already initialized", d), "use another -data folder, or serve this one")
	}
	if _, err := outsideWitnessPath(d, witness); err != nil {
		return nil, err
	}
	res := &initResult{passphrase: pass}
	var err error
	if pass == "" {
		res.passphrase, res.generated = randomPassphrase(), true
	}
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return nil, err
	}
	if err := initStore(ctx, d, sc); err != nil {
		return nil, err
	}
	if _, err := d.installID(); err != nil {
		return nil, err
	}
	if err := createSignInKey(d.signInKeyFile()); err != nil { // kept if already there, e.g. copied from another node
		return nil, err
	}
	if res.witness, err = createWitnessFile(d, witness); err != nil {
		return nil, err
	}
	if err := initKeyring(d, kc, res.passphrase); err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := server.SelfSigned(hosts, time.Now(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	if err := writeFileAtomic(d.certFile(), certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(d.certKeyFile(), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if res.token, err = newAdminToken(d); err != nil {
		return nil, err
	}
	return res, nil
}

// newAdminToken makes a new admin token, stores its hash and returns it.
// Any earlier admin token stops working.
func newAdminToken(d dataDir) (string, error) {
	token, hash, err := api.NewToken(rand.Reader)
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(d.tokenHashFile(), []byte(hex.EncodeToString(hash)+"\n"), 0o600); err != nil {
		return "", err
	}
	return token, nil
}

// initKeyring prepares the key-encryption keys: a new key file, or a first
// KEK in the HSM if it has none. A KMS key is made by the KMS's operator;
// init checks that it can use it.
func initKeyring(d dataDir, kc KeyringConfig, pass string) error {
	switch kc.Kind {
	case keyringFile, "":
		if err := keyring.CreateFile(d.keyFile(), []byte(pass), keyFileOptions); err != nil {
			return fmt.Errorf("create key file: %w", err)
		}
		return nil
	case keyringPKCS11:
		pin, err := secretFromEnv("PHIVAULT_PKCS11_PIN")
		if err != nil {
			return err
		}
		cfg := keyring.PKCS11Config{Module: kc.PKCS11Module, TokenLabel: kc.PKCS11Token, PIN: pin}
		k, err := keyring.OpenPKCS11(cfg)
		if errors.Is(err, keyring.ErrNoKEK) {
			_, err = keyring.GeneratePKCS11Key(cfg)
			return err
		} else if err != nil {
			return fmt.Errorf("open PKCS#11 keyring: %w", err)
		}
		return k.Close()
	}
	keys, closer, err := openKeyring(d, kc, pass)
	if err != nil {
		return err
	}
	defer closer.Close()
	if _, _, err := keys.WrapKey(context.Background(), "probe", make([]byte, 32)); err != nil {
		return fmt.Errorf("check the KMS key: %w", err)
	}
	return nil
}
