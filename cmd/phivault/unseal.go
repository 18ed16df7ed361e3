package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/internal/coredump"
	"github.com/phivault/phivault/keyring"
)

// keyringProbeTimeout bounds the call that checks a KMS or HSM at start and
// on unseal.
const keyringProbeTimeout = 15 * time.Second

// errNoSecret means the keyring's secret (the key-file passphrase) is not
// at hand: the server starts sealed.
var errNoSecret = errors.New("no keyring secret")

// sealState holds a running server's keyring, which is sealed while it is
// unavailable. It implements admin.Unsealer. Its methods are safe for
// concurrent use.
type sealState struct {
	data   dataDir
	cfg    KeyringConfig
	keys   *keyring.Sealable
	sealer *envelope.Sealer
	store  phivault.Store
	logger *slog.Logger
	ctx    context.Context // the server's lifetime
	now    func() time.Time

	mu     sync.Mutex // serializes Unseal, Seal and close
	closer io.Closer  // releases the inner keyring; nil while sealed
	keyMgr *keyManager
	cancel context.CancelFunc // stops keyMgr's rewrap

	// onUnseal, if set, is called (holding mu, so it must not block)
	// after Unseal unseals the vault; see openApp.
	onUnseal func()
}

// newSealState returns a sealed sealState whose Sealer forgets every cached
// key when it is sealed.
func newSealState(ctx context.Context, d dataDir, cfg KeyringConfig, store phivault.Store, logger *slog.Logger) *sealState {
	keys := keyring.NewSealable(nil)
	sealer := envelope.New(keys, envelope.Options{})
	keys.OnSeal(sealer.ForgetAll)
	return &sealState{data: d, cfg: cfg, keys: keys, sealer: sealer, store: store, logger: logger, ctx: ctx, now: time.Now}
}

// start unseals with what the process has: the passphrase for the file
// keyring, the environment's secrets for a KMS or HSM. A missing passphrase
// or an unreachable KMS or HSM leaves it sealed; a wrong passphrase or a
// configuration error is returned.
func (s *sealState) start(ctx context.Context, passphrase string) error {
	if err := s.cfg.check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.unseal(ctx, []byte(passphrase))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNoSecret):
		s.logger.Warn("starting sealed: no key-file passphrase; unseal with \"phivault unseal\"", "keyring", s.cfg.Kind)
		return nil
	case errors.Is(err, keyring.ErrWrongPassphrase):
		return errorWithHint("wrong passphrase for the key file", "check PHIVAULT_PASSPHRASE_FILE")
	case s.cfg.Kind == keyringKMS || s.cfg.Kind == keyringPKCS11:
		s.logger.Warn("starting sealed: keyring unavailable; unseal with \"phivault unseal -no-passphrase\"",
			"keyring", s.cfg.Kind, "code", phivault.ErrorCode(err), "reason", phivault.ErrorMessage(err), "error_type", errorType(err))
		return nil
	}
	return err
}

// check reports configuration errors, which no unsealing can fix.
func (c KeyringConfig) check() error {
	switch c.Kind {
	case keyringFile, "":
		return nil
	case keyringKMS:
		if c.KMSKeyID == "" {
			return errorWithHint("no KMS key", "set PHIVAULT_KMS_KEY_ID")
		}
		return nil
	case keyringPKCS11:
		if c.PKCS11Token == "" {
			return errorWithHint("no PKCS#11 token", "set PHIVAULT_PKCS11_TOKEN")
		}
		return nil
	}
	return errorWithHint("unknown -keyring "+c.Kind, "use file, kms or pkcs11")
}

// errorType names the innermost error's type, or its API error code (KMS),
// for logs: the reason, without messages that might carry anything else.
func errorType(err error) string {
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		return coded.ErrorCode()
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return fmt.Sprintf("%T", err)
		}
		err = next
	}
}

// Sealed reports whether the vault is sealed.
func (s *sealState) Sealed() bool { return s.keys.Sealed() }

// Unseal opens the keyring: with secret as the key-file passphrase, or, for
// a KMS or HSM, with the secrets in the environment (secret must be empty).
func (s *sealState) Unseal(ctx context.Context, secret []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.keys.Sealed() {
		return nil
	}
	file := s.cfg.Kind == keyringFile || s.cfg.Kind == ""
	switch {
	case file && len(secret) == 0:
		return phivault.Errorf(phivault.EINVALID, `The key file needs its passphrase: send {"passphrase": "..."}.`)
	case !file && len(secret) != 0:
		return phivault.Errorf(phivault.EINVALID, "This server's keyring takes no passphrase: send an empty body.")
	}
	err := s.unseal(ctx, secret)
	if errors.Is(err, keyring.ErrWrongPassphrase) {
		return err
	} else if err != nil {
		s.logger.Warn("unseal: keyring unavailable", "keyring", s.cfg.Kind, "code", phivault.ErrorCode(err), "reason", phivault.ErrorMessage(err), "error_type", errorType(err))
		return phivault.Errorf(phivault.EUNAVAILABLE, "The keyring could not be opened; the server log says why.")
	}
	s.logger.Info("unsealed", "keyring", s.cfg.Kind)
	if s.onUnseal != nil {
		s.onUnseal()
	}
	return nil
}

// unseal opens and checks the inner keyring, creates the vault's shared and
// index keys if they are missing, and starts the keyring's manager.
// s.mu is held.
func (s *sealState) unseal(ctx context.Context, secret []byte) error {
	inner, closer, err := s.openInner(ctx, secret)
	if err != nil {
		return err
	}
	s.keys.Unseal(inner)
	fail := func(err error) error {
		s.keys.Seal()
		closer.Close()
		return err
	}
	if err := s.store.Update(ctx, func(tx phivault.StoreTx) error { return s.sealer.Init(ctx, tx) }); err != nil {
		return fail(fmt.Errorf("create vault keys: %w", err))
	}
	if rk := newRotator(inner, bytes.Clone(secret)); rk != nil { // every keyring rotates online
		mctx, cancel := context.WithCancel(s.ctx)
		m := &keyManager{keys: rk, store: s.store, logger: s.logger, ctx: mctx, now: s.now}
		// A rewrap cut short resumes now, and keys stored before wraps
		// were bound to key ids are bound, after which the keyring
		// refuses unbound wraps; for a KMS, stored keys under another
		// KMS key wait for keys rotate, which switches keys on purpose
		// rather than because of a mistyped key id.
		resume := m.resumeIfNeeded
		if _, kms := rk.(kmsRotator); kms {
			resume = m.bindIfNeeded
		}
		if err := resume(ctx); err != nil {
			cancel()
			return fail(fmt.Errorf("key status: %w", err))
		}
		s.keyMgr, s.cancel = m, cancel
	}
	s.closer = closer
	return nil
}

// openInner opens the configured keyring and, for a KMS or HSM, checks
// that it answers by wrapping a throwaway key.
func (s *sealState) openInner(ctx context.Context, secret []byte) (phivault.Keyring, io.Closer, error) {
	if s.cfg.Kind == keyringFile || s.cfg.Kind == "" {
		if len(secret) == 0 {
			return nil, nil, errNoSecret
		}
		keys, err := keyring.OpenReloading(s.data.keyFile(), secret, keyFileOptions)
		if errors.Is(err, keyring.ErrWrongPassphrase) {
			return nil, nil, keyring.ErrWrongPassphrase
		} else if err != nil {
			return nil, nil, fmt.Errorf("open key file: %w", err)
		}
		return keys, noClose, nil
	}
	keys, closer, err := openKeyring(s.data, s.cfg, "")
	if err != nil {
		return nil, nil, err
	}
	probe := make([]byte, envelope.KeySize)
	rand.Read(probe)
	pctx, cancel := context.WithTimeout(ctx, keyringProbeTimeout)
	defer cancel()
	if _, _, err := keys.WrapKey(pctx, "probe", probe); err != nil {
		closer.Close()
		return nil, nil, fmt.Errorf("keyring check: %w", err)
	}
	return keys, closer, nil
}

// Seal drops the keyring and every cached key at once, then stops the key
// manager's background work.
func (s *sealState) Seal(ctx context.Context) error {
	err := s.close()
	s.logger.Warn("sealed", "keyring", s.cfg.Kind)
	return err
}

// close seals and releases the inner keyring.
func (s *sealState) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys.Seal() // the Sealer's cache is purged here
	if s.keyMgr != nil {
		s.cancel() // a rewrap stops; it resumes on the next unseal
		s.keyMgr.Wait()
		if f, ok := s.keyMgr.keys.(*fileRotator); ok {
			f.wipe()
		}
		s.keyMgr, s.cancel = nil, nil
	}
	if s.closer == nil {
		return nil
	}
	err := s.closer.Close()
	s.closer = nil
	return err
}

// manager returns the keyring's manager, or nil while sealed.
func (s *sealState) manager() *keyManager {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyMgr
}

// sealedKeys is the admin API's view of the keyring's manager, which
// exists only while unsealed. It implements admin.Keys.
type sealedKeys struct{ s *sealState }

func (k sealedKeys) Rotate(ctx context.Context) (phivault.KeyID, error) {
	if m := k.s.manager(); m != nil {
		return m.Rotate(ctx)
	}
	return "", keyring.ErrSealed
}

func (k sealedKeys) MarkCompromised(ctx context.Context, id phivault.KeyID) error {
	if m := k.s.manager(); m != nil {
		return m.MarkCompromised(ctx, id)
	}
	return keyring.ErrSealed
}

func (k sealedKeys) Status(ctx context.Context) (any, error) {
	if m := k.s.manager(); m != nil {
		return m.Status(ctx)
	}
	return nil, keyring.ErrSealed
}

// health serves GET /healthz: 200 {"status":"ok"}, or 503
// {"status":"sealed"} while sealed.
func (s *sealState) health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if s.keys.Sealed() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"status":"sealed"}`+"\n")
			return
		}
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
}

// gate answers every FHIR request but GET /fhir/metadata with 503 and an
// OperationOutcome while sealed. (The Sealer refuses to decrypt anyway; the
// gate also keeps counts and other answers that need no key from leaking.)
func (s *sealState) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.keys.Sealed() && r.URL.Path != "/fhir/metadata" {
			status, body := fhir.OutcomeJSON(keyring.ErrSealed)
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(status)
			w.Write(body)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sealCommand is "phivault unseal" (unseal true) or "phivault seal".
type sealCommand struct {
	unseal         bool
	stdin          *os.File // a terminal to prompt on, if it is one
	stdout, stderr io.Writer
}

const unsealUsage = `Usage: phivault unseal [flags]

Unseals a running server that started sealed (or was sealed), over its
admin API. The key-file passphrase comes from -passphrase-file,
PHIVAULT_PASSPHRASE or PHIVAULT_PASSPHRASE_FILE, or is asked for on the
terminal. For a KMS or HSM keyring, pass -no-passphrase: the server opens
it again with the secrets it was started with. The admin token comes from
PHIVAULT_TOKEN or PHIVAULT_TOKEN_FILE.

Flags:
`

const sealUsage = `Usage: phivault seal [flags]

Seals a running server at once: it drops its keyring and every cached key,
and answers every FHIR request with 503 until "phivault unseal". The admin
token comes from PHIVAULT_TOKEN or PHIVAULT_TOKEN_FILE.

Flags:
`

func (c *sealCommand) Run(ctx context.Context, args []string) error {
	name, usage := "seal", sealUsage
	if c.unseal {
		name, usage = "unseal", unsealUsage
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	var passFile *string
	var noPass *bool
	if c.unseal {
		passFile = fs.String("passphrase-file", "", "file holding the key-file passphrase")
		noPass = fs.Bool("no-passphrase", false, "send no passphrase: the server's keyring is a KMS or HSM")
	}
	fs.Usage = func() { fmt.Fprint(c.stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errorWithHint("unexpected arguments", "phivault "+name+" -h")
	}
	if c.unseal {
		if err := coredump.Disable(); err != nil { // the passphrase it sends
			return err
		}
	}
	client, err := cf.client(1)
	if err != nil {
		return err
	}
	var body []byte
	if c.unseal && !*noPass {
		pass, err := passphrase(*passFile)
		if err != nil {
			return err
		}
		if pass == "" {
			if pass, err = c.prompt(); err != nil {
				return err
			}
		}
		if body, err = json.Marshal(map[string]string{"passphrase": pass}); err != nil {
			return err
		}
		defer clear(body)
	}
	status, resp, err := client.do(ctx, http.MethodPost, "/admin/$"+name, body)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", name, status, outcomeMessage(resp))
	}
	fmt.Fprintln(c.stdout, outcomeMessage(resp))
	return nil
}

// prompt reads the passphrase from the terminal without echoing it.
func (c *sealCommand) prompt() (string, error) {
	if c.stdin == nil || !term.IsTerminal(int(c.stdin.Fd())) {
		return "", errorWithHint("no passphrase and no terminal to ask on",
			"set PHIVAULT_PASSPHRASE_FILE, or pass -no-passphrase for a KMS or HSM keyring")
	}
	fmt.Fprint(c.stderr, "Key-file passphrase: ")
	b, err := term.ReadPassword(int(c.stdin.Fd()))
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	defer clear(b)
	return string(b), nil
}
