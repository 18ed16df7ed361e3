package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/block"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/internal/coredump"
	"github.com/phivault/phivault/oauth"
	"github.com/phivault/phivault/scim"
	"github.com/phivault/phivault/server"
	"github.com/phivault/phivault/vault"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveCommand runs the server until interrupted.
type serveCommand struct {
	stdout, stderr io.Writer
}

const serveUsage = `Usage: phivault serve [flags]

Serves the FHIR R4 API over HTTPS from a data folder made by "phivault init".
The key-file passphrase comes from -passphrase-file, PHIVAULT_PASSPHRASE or
PHIVAULT_PASSPHRASE_FILE. Without it (or with a KMS or HSM that cannot be
reached) the server starts sealed: /healthz says so, every FHIR request is
answered with 503, and "phivault unseal" unseals it. Core dumps are off.
Logs are JSON lines on stderr and carry ids only.

The audit witness file outside the data folder that was given to "phivault
init" must be named on every start (-audit-witness-file or
PHIVAULT_AUDIT_WITNESS_FILE): the server checks the audit trail against it
and refuses a path other than the one init recorded in the folder.

Records live in the data folder's SQLite file, or in the PostgreSQL database
the folder was made for by "phivault init" with a postgres:// URL: give the
same URL again (PHIVAULT_STORE_FILE, PHIVAULT_STORE or -store).
GET /metrics (Prometheus) is served only with a scrape token, from
PHIVAULT_METRICS_TOKEN or PHIVAULT_METRICS_TOKEN_FILE (at least 32
characters, e.g. "openssl rand -hex 32"); Prometheus sends it as a bearer
token (authorization: credentials_file).

Flags:
`

// Config is what a running vault needs. Fields are copied into components by
// openApp; nothing reads flags or the environment after parsing.
type Config struct {
	Data          dataDir
	Addr          string
	CertFile      string // default: the data folder's certificate
	KeyFile       string
	ClientCAFile  string // PEM bundle of CAs for client certificates (mutual TLS)
	ClientCertMap string // file of "fingerprint-or-URI client-id" lines
	Insecure      bool   // plain HTTP, loopback only
	BaseURL       string
	// SignInKeyFile is the file of the key that seals sign-in state into
	// what browsers carry (see signInKeys); nodes behind one load balancer
	// share it. "" means the data folder's signin.key, made if absent.
	SignInKeyFile string
	// TrustedProxies is a comma-separated list of the networks of reverse
	// proxies in front of the server (server.ParsePrefixes); only requests
	// from them are read for X-Forwarded-For. "" for none.
	TrustedProxies string
	Keyring        KeyringConfig
	Audit          AuditConfig // remote checkpoint witnesses; see audit.go
	Login          LoginConfig // passkeys and OpenID providers; see login.go
	Passphrase     string
	Store          StoreConfig // SQLite in the data folder, or PostgreSQL; see store.go
	// MetricsToken is the bearer token GET /metrics requires (at least
	// minMetricsToken characters), from PHIVAULT_METRICS_TOKEN or
	// PHIVAULT_METRICS_TOKEN_FILE. If "", /metrics is not served.
	MetricsToken string
	// ApproveKeyActions makes a shred and a compromise mark wait for a
	// second security admin (admin.Options.ApproveKeyActions).
	ApproveKeyActions bool

	Policy PolicyConfig // Cedar policy directory; see policy.go
	Detect DetectConfig // the detectors; see detect.go
	Backup BackupConfig // scheduled backups and shred tombstones; see backupschedule.go
}

// LogValue redacts the passphrase, so a Config can be logged safely.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("data", string(c.Data)),
		slog.String("addr", c.Addr),
		slog.Bool("insecure", c.Insecure),
		slog.String("base_url", c.BaseURL),
		slog.String("trusted_proxies", c.TrustedProxies),
		slog.String("signin_key_file", c.SignInKeyFile),
		slog.String("keyring", c.Keyring.Kind),
		slog.String("client_ca", c.ClientCAFile),
		slog.Any("store", c.Store),
		slog.Bool("metrics", c.MetricsToken != ""),
		slog.Bool("approve_key_actions", c.ApproveKeyActions),
	)
}

func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar((*string)(&c.Data), "data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder (env PHIVAULT_DATA)")
	fs.StringVar(&c.Addr, "addr", envOr("PHIVAULT_ADDR", server.DefaultAddr), "listen address (env PHIVAULT_ADDR)")
	fs.StringVar(&c.CertFile, "tls-cert", os.Getenv("PHIVAULT_TLS_CERT"), "TLS certificate PEM (default: the data folder's self-signed one; env PHIVAULT_TLS_CERT)")
	fs.StringVar(&c.KeyFile, "tls-key", os.Getenv("PHIVAULT_TLS_KEY"), "TLS private key PEM (env PHIVAULT_TLS_KEY)")
	fs.StringVar(&c.ClientCAFile, "tls-client-ca", os.Getenv("PHIVAULT_TLS_CLIENT_CA"), "PEM bundle of CAs whose client certificates system clients may present (env PHIVAULT_TLS_CLIENT_CA)")
	fs.StringVar(&c.ClientCertMap, "tls-client-map", os.Getenv("PHIVAULT_TLS_CLIENT_MAP"), "file of \"sha256-fingerprint-or-URI client-id\" lines mapping client certificates to clients (env PHIVAULT_TLS_CLIENT_MAP)")
	fs.BoolVar(&c.Insecure, "insecure-http", false, "serve plain HTTP (only on a loopback address; for local testing)")
	fs.StringVar(&c.SignInKeyFile, "signin-key-file", os.Getenv("PHIVAULT_SIGNIN_KEY_FILE"), "file of the key that seals sign-in steps in browsers; give every node behind one load balancer the same file (default: the data folder's signin.key; env PHIVAULT_SIGNIN_KEY_FILE)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", os.Getenv("PHIVAULT_TRUSTED_PROXIES"), "comma-separated networks or addresses of reverse proxies in front of the server; X-Forwarded-For is read only from them (env PHIVAULT_TRUSTED_PROXIES)")
	fs.BoolVar(&c.ApproveKeyActions, "approve-key-actions", false, "make crypto-shredding a patient and marking a key compromised wait for a second security admin, and refuse them to the bootstrap token (env PHIVAULT_APPROVE_KEY_ACTIONS=true)")
	c.Keyring.register(fs)
	c.Store.register(fs)
	c.Audit.register(fs)
	c.Policy.register(fs)
	c.Login.register(fs)
	c.Detect.register(fs)
	c.Backup.register(fs)
	fs.StringVar(&c.BaseURL, "base-url", os.Getenv("PHIVAULT_BASE_URL"), "public FHIR base URL, e.g. https://vault.example.org/fhir (env PHIVAULT_BASE_URL)")
}

// resolve reads what comes after the flags, from the environment or the
// files it names: the store's URL and the metrics scrape token.
func (c *Config) resolve() error {
	if err := c.Store.resolve(); err != nil {
		return err
	}
	if c.Backup.Stream != "" {
		c.Store.SQLiteShredEraseWait = streamShredEraseWait // see backupstream.go
	}
	// The environment can only turn the rule on, and a value that is not
	// a boolean stops the start rather than leaving it off.
	if v := os.Getenv("PHIVAULT_APPROVE_KEY_ACTIONS"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return errorWithHint("PHIVAULT_APPROVE_KEY_ACTIONS is not true or false", "PHIVAULT_APPROVE_KEY_ACTIONS=true, or -approve-key-actions")
		}
		c.ApproveKeyActions = c.ApproveKeyActions || on
	}
	var err error
	c.MetricsToken, err = metricsToken()
	return err
}

func (c *serveCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cfg Config
	cfg.register(fs)
	passFile := fs.String("passphrase-file", "", "file holding the key-file passphrase")
	drillEvery := registerDrillEvery(fs) // see drill.go
	restoreDrills := registerRestoreDrillFlags(fs)
	fs.Usage = func() { fmt.Fprint(c.stderr, serveUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.resolve(); err != nil {
		return err
	}
	if err := coredump.Disable(); err != nil { // keep keys out of core files
		return err
	}
	var err error
	if cfg.Passphrase, err = passphrase(*passFile); err != nil {
		return err
	}
	every, err := drillEvery()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(c.stderr, nil))
	a, err := openApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	stopStream, err := startBackupStream(ctx, cfg.Data, cfg.Backup.Stream, logger) // see backupstream.go
	if err != nil {
		return err
	}
	defer stopStream()
	if err := a.listen(ctx); err != nil {
		return err
	}
	logger.Info("serving", "url", a.server.URL(), "config", cfg)
	fmt.Fprintf(c.stdout, "phivault serving %s/fhir\n", a.server.URL())
	if every > 0 { // see drill.go
		go newDrillSchedule(every, string(cfg.Data), logger, a.metrics).run(ctx)
	}
	if a.backups != nil { // see backupschedule.go
		go a.backups.run(ctx, cfg.Backup.Every)
	}
	if err := restoreDrills.start(ctx, cfg, logger, a.metrics); err != nil { // see restoredrillserve.go
		return err
	}
	// SIGHUP reloads the TLS certificate at once; the server also notices
	// changed files by itself within a minute.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			logger.Info("shutting down")
			return nil
		case <-hup:
			if err := a.server.ReloadCertificate(); err != nil {
				logger.Error("certificate reload", "error", err.Error())
			}
			a.access.reload(ctx) // SIGHUP reloads -policy-dir too; see policy.go
			if a.detect != nil {
				a.detect.playbooks.reload(ctx) // and -playbooks; see respond.go
			}
			a.reloadBlocks(ctx) // and blocks.db; see respond_block.go
		}
	}
}

// minMetricsToken is the shortest metrics scrape token accepted.
const minMetricsToken = 32

// metricsToken reads the /metrics scrape token from PHIVAULT_METRICS_TOKEN
// or PHIVAULT_METRICS_TOKEN_FILE; "" if neither is set.
func metricsToken() (string, error) {
	tok, err := secretFromEnv("PHIVAULT_METRICS_TOKEN")
	if err != nil {
		return "", err
	}
	if tok != "" && len(tok) < minMetricsToken {
		return "", errorWithHint(fmt.Sprintf("the metrics token is shorter than %d characters", minMetricsToken),
			"openssl rand -hex 32 > metrics-token; PHIVAULT_METRICS_TOKEN_FILE=metrics-token phivault serve")
	}
	return tok, nil
}

// app is a running vault: store, keys, record service and HTTPS server.
type app struct {
	cfg     Config
	logger  *slog.Logger
	db      appStore   // SQLite or PostgreSQL; see store.go
	seal    *sealState // the keyring, which may be sealed
	records phivault.RecordService
	// accounts seals TOTP secrets and WebAuthn credentials at rest
	// (envelope.AccountStore); every account reader and writer uses it.
	accounts phivault.AccountStore
	handler  *api.Handler
	admin    *admin.Handler
	metrics  *prometheus.Registry
	audit    *auditTrail // records every request; see audit.go
	// auditView serves GET /fhir/AuditEvent and the access reports.
	auditView http.Handler
	// routes are served next to /fhir: OAuth sign-in, SCIM provisioning.
	routes map[string]http.Handler
	signIn *oauth.Server // OAuth sign-in; its sessions authenticate every API
	// bearer accepts session tokens and the bootstrap token: every API's
	// authenticator (wrapped in auditActor).
	bearer bearerChain
	// vault is the record service as vault.New made it, below the access
	// and audit layers: for the few readers that record their own entries
	// (the privacy officers' patient lookup, patientfind.go).
	vault  *vault.Service
	server *server.Server
	// access is the policy enforcement point; see policy.go.
	access *accessState
	// reindex recomputes tokens after an upgrade; see reindex.go.
	reindex *reindexer
	// hasher hashes every password (sign-in, admin API, SCIM) in one
	// memory-bounded pool of argon2id hashes.
	hasher *identity.Hasher
	// proxies are the trusted reverse proxies (Config.TrustedProxies).
	proxies []netip.Prefix
	// signInKeys seal sign-in state into what browsers carry; see
	// signinkey.go.
	signInKeys signInKeys
	// detect runs the detectors and serves /security/; see detect.go.
	detect *detector
	// blocks are the sources refused on every route; see respond_block.go.
	blocks *block.List
	// detail is the incident responder's raised detail; see respond_restrict.go.
	detail *raisedDetail
	// backups are the scheduled backups (-backup-to), or nil; see backupschedule.go.
	backups *backups
}

// openApp opens the data folder and wires the request path. It does not
// listen yet.
func openApp(ctx context.Context, cfg Config, logger *slog.Logger) (*app, error) {
	proxies, err := server.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, errorWithHint(err.Error(), "phivault serve -trusted-proxies 10.0.0.0/8,2001:db8:1::/48")
	}
	if !cfg.Data.initialized() {
		return nil, errorWithHint(fmt.Sprintf("%s is not a phivault data folder", cfg.Data), "phivault init -data "+string(cfg.Data))
	}
	tokenHash, err := cfg.Data.tokenHash()
	if err != nil {
		return nil, err
	}
	signInKeys, err := loadSignInKeys(cfg.Data, cfg.SignInKeyFile)
	if err != nil {
		return nil, err
	}
	installID, err := cfg.Data.installID()
	if err != nil {
		return nil, err
	}
	db, err := openStore(ctx, cfg.Data, cfg.Store)
	if err != nil {
		return nil, err
	}
	// A shred stands even if the old bytes of its key could not be erased
	// after its commit; the start erases them. If that fails too, the next
	// shred or start tries again.
	if err := db.EraseShredded(ctx); err != nil {
		logger.Warn("erasing the old bytes of shredded keys is still pending", "cause", err.Error())
	}
	// Without its keyring the vault starts sealed; the shared and index
	// keys are created on unsealing.
	seal := newSealState(ctx, cfg.Data, cfg.Keyring, db, logger)
	if err := seal.start(ctx, cfg.Passphrase); err != nil {
		db.Close()
		return nil, err
	}
	sealer := seal.sealer
	a := &app{cfg: cfg, logger: logger, db: db, seal: seal, metrics: prometheus.NewRegistry(), hasher: identity.NewHasher(), proxies: proxies, signInKeys: signInKeys}
	a.accounts = envelope.NewAccountStore(db, db, sealer)
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	records := vault.New(db, sealer)
	a.vault = records
	records.Logger = logger
	// Every write is decided by the access layer's guard on its stored
	// form; one that arrives without it is refused (fail closed).
	records.RequireGuard, records.BaseURL = true, cfg.BaseURL
	// Tokens an upgrade indexes anew are recomputed before the server
	// listens, or once a vault that started sealed is unsealed.
	a.reindex = &reindexer{records: records, logger: logger, ctx: ctx}
	seal.onUnseal = a.reindex.background
	if !seal.Sealed() {
		a.reindex.run(ctx)
	}
	if a.records, err = a.openAccess(records); err != nil { // api → auditlog → access → vault; see policy.go
		seal.close()
		db.Close()
		return nil, err
	}
	auth := &api.TokenAuthenticator{Hash: tokenHash, Actor: "admin", Principal: access.BootstrapPrincipal("admin")}
	// Every keyring rotates online (a KMS explains why it needs no rotation).
	adminOpts := admin.Options{Authenticator: auth, Records: records, Rotator: records, Logger: logger, Unsealer: seal, Keys: sealedKeys{seal},
		ApproveKeyActions: cfg.ApproveKeyActions}
	if err := a.openAudit(ctx, &adminOpts); err != nil { // api → auditlog → vault
		seal.close()
		db.Close()
		return nil, err
	}
	if err := a.openBackups(ctx, &adminOpts); err != nil { // see backupschedule.go
		a.Close()
		return nil, err
	}
	adminOpts.Accounts, adminOpts.Clients, adminOpts.Audit = a.accounts, db, a.audit.log // users, clients, training
	adminOpts.Hasher = a.hasher
	// Passkeys and OpenID providers, read once; see login.go.
	login, err := cfg.Login.resolve(cfg.BaseURL)
	if err != nil {
		a.Close()
		return nil, err
	}
	// OAuth sign-in and SMART tokens (oauth.go); its sessions also
	// authenticate the FHIR API next to the bootstrap token.
	signIn, err := a.openOAuth(login)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.signIn = signIn
	adminOpts.Revoker = signIn.Sessions() // suspending an account ends its sessions at once
	// Session tokens and the bootstrap token reach every API; each route
	// authorizes by role (admin.MayManage, the access layer, the trail's
	// readers).
	bearer := bearerChain{signIn.Sessions(), auth}
	a.bearer = bearer
	adminOpts.Authenticator = auditActor{bearer}
	a.auditRoutes(bearer)
	// Break-the-glass and explain take OAuth sessions and the bootstrap token.
	a.access.wire(a.audit.log, a.accounts, auditActor{bearer})
	// Passkeys and OpenID providers complete signIn's logins; see login.go.
	if err := a.openLogins(signIn, login); err != nil {
		a.Close()
		return nil, err
	}
	a.admin = admin.NewHandler(adminOpts)
	if err := a.openBlocks(ctx); err != nil { // see respond_block.go
		a.Close()
		return nil, err
	}
	// The detectors read the trail and the vault below access and audit.
	if err := a.openDetect(ctx, records, auditActor{bearer}); err != nil {
		a.Close()
		return nil, err
	}
	// SCIM provisioning (scim package; token from "phivault users scim-token").
	a.routes["/scim/v2/"] = withClient(scim.NewHandler(scim.Options{Authenticator: auditActor{scimAuthenticator{cfg.Data}},
		Accounts: a.accounts, Audit: a.audit.log, Revoker: adminOpts.Revoker, BaseURL: scimBase(cfg.BaseURL), Logger: logger, Hasher: a.hasher}))
	a.handler = api.NewHandler(a.records, api.Options{
		BaseURL:       cfg.BaseURL,
		Authenticator: bearer,
		Registerer:    a.metrics,
		Logger:        logger,
		Version:       version,
		InstallID:     installID,
	})
	if err := a.openConsole(ctx, auditActor{bearer}); err != nil { // /console/; see console.go
		a.Close()
		return nil, err
	}
	return a, nil
}

// listen starts the HTTPS server.
func (a *app) listen(ctx context.Context) error {
	cert, key := a.cfg.CertFile, a.cfg.KeyFile
	if cert == "" && key == "" {
		cert, key = a.cfg.Data.certFile(), a.cfg.Data.certKeyFile()
	}
	var clientMap map[string]string
	if a.cfg.ClientCertMap != "" {
		f, err := os.Open(a.cfg.ClientCertMap)
		if err != nil {
			return fmt.Errorf("client certificate map: %w", err)
		}
		clientMap, err = server.ParseClientCertMap(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("client certificate map %s: %w", a.cfg.ClientCertMap, err)
		}
	}
	a.server = server.New(server.Config{
		Addr:           a.cfg.Addr,
		CertFile:       cert,
		KeyFile:        key,
		ClientCAFile:   a.cfg.ClientCAFile,
		ClientCertMap:  clientMap,
		Insecure:       a.cfg.Insecure,
		TrustedProxies: a.proxies,
		Blocks:         a.blocks,
		FHIR:           a.fhirAndAdmin(),
		Routes:         a.routes,
		Health:         a.audit.health(a.seal.health()),
		Metrics:        promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}),
		MetricsToken:   a.cfg.MetricsToken, // "" leaves /metrics unserved
		Logger:         a.logger,
	})
	return a.server.Open(ctx)
}

// fhirAndAdmin routes /fhir/admin/ to the admin API and the rest of /fhir
// to the FHIR API, which answers 503 while sealed: the server package
// mounts its FHIR handler at /fhir only.
func (a *app) fhirAndAdmin() http.Handler {
	mux := http.NewServeMux()
	fhirAPI := a.seal.gate(a.handler)
	mux.Handle("/fhir", fhirAPI)
	mux.Handle("/fhir/", fhirAPI)
	mux.Handle("/fhir"+adminPrefix+"/", http.StripPrefix("/fhir", a.admin))
	mux.Handle("/fhir/audit/", http.StripPrefix("/fhir", a.audit.handler))
	mux.Handle("GET /fhir/AuditEvent", a.auditView) // writes go on to the FHIR API, which refuses them
	mux.Handle("GET /fhir/AuditEvent/{index}", a.auditView)
	mux.Handle("/fhir/admin/reports/", a.auditView)
	mux.Handle("GET /fhir/admin/reports/patients", a.patientFind())
	a.access.mount(mux) // /fhir/admin/break-glass, /fhir/admin/policy/; see policy.go
	return withClient(mux)
}

// withClient records, for the audit trail, the client id that mutual TLS
// mapped the request's client certificate to.
func withClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := server.ClientFromContext(r.Context()); ok {
			info, _ := phivault.RequestInfoFromContext(r.Context())
			info.Client = id
			r = r.WithContext(phivault.WithRequestInfo(r.Context(), info))
		}
		next.ServeHTTP(w, r)
	})
}

// Close stops the server and closes the database.
func (a *app) Close() error {
	var errs []error
	if a.server != nil {
		errs = append(errs, a.server.Close())
	}
	// Sealing stops a rewrap (it resumes on the next start) and a
	// reindex (it starts over), and releases the keyring.
	errs = append(errs, a.detect.close(), a.closeBlocks())
	errs = append(errs, a.seal.close())
	a.reindex.wait()
	errs = append(errs, a.audit.Close(), a.db.Close())
	return errors.Join(errs...)
}
