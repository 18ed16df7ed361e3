package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/keyring"
	"github.com/phivault/phivault/server"
	"github.com/phivault/phivault/sqlite"
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
PHIVAULT_PASSPHRASE_FILE. Logs are JSON lines on stderr and carry ids only.

Flags:
`

// Config is what a running vault needs. Fields are copied into components by
// openApp; nothing reads flags or the environment after parsing.
type Config struct {
	Data       dataDir
	Addr       string
	CertFile   string // default: the data folder's certificate
	KeyFile    string
	Insecure   bool // plain HTTP, loopback only
	BaseURL    string
	Passphrase string
}

// LogValue redacts the passphrase, so a Config can be logged safely.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("data", string(c.Data)),
		slog.String("addr", c.Addr),
		slog.Bool("insecure", c.Insecure),
		slog.String("base_url", c.BaseURL),
	)
}

func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar((*string)(&c.Data), "data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder (env PHIVAULT_DATA)")
	fs.StringVar(&c.Addr, "addr", envOr("PHIVAULT_ADDR", server.DefaultAddr), "listen address (env PHIVAULT_ADDR)")
	fs.StringVar(&c.CertFile, "tls-cert", os.Getenv("PHIVAULT_TLS_CERT"), "TLS certificate PEM (default: the data folder's self-signed one; env PHIVAULT_TLS_CERT)")
	fs.StringVar(&c.KeyFile, "tls-key", os.Getenv("PHIVAULT_TLS_KEY"), "TLS private key PEM (env PHIVAULT_TLS_KEY)")
	fs.BoolVar(&c.Insecure, "insecure-http", false, "serve plain HTTP (only on a loopback address; for local testing)")
	fs.StringVar(&c.BaseURL, "base-url", os.Getenv("PHIVAULT_BASE_URL"), "public FHIR base URL, e.g. https://vault.example.org/fhir (env PHIVAULT_BASE_URL)")
}

func (c *serveCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cfg Config
	cfg.register(fs)
	passFile := fs.String("passphrase-file", "", "file holding the key-file passphrase")
	fs.Usage = func() { fmt.Fprint(c.stderr, serveUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.Passphrase, err = passphrase(*passFile); err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(c.stderr, nil))
	a, err := openApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.listen(ctx); err != nil {
		return err
	}
	logger.Info("serving", "url", a.server.URL(), "config", cfg)
	fmt.Fprintf(c.stdout, "phivault serving %s/fhir\n", a.server.URL())
	<-ctx.Done()
	logger.Info("shutting down")
	return nil
}

// app is a running vault: store, keys, record service and HTTPS server.
type app struct {
	cfg     Config
	logger  *slog.Logger
	db      *sqlite.DB
	records phivault.RecordService
	handler *api.Handler
	admin   *admin.Handler
	metrics *prometheus.Registry
	server  *server.Server
}

// openApp opens the data folder and wires the request path. It does not
// listen yet.
func openApp(ctx context.Context, cfg Config, logger *slog.Logger) (*app, error) {
	if !cfg.Data.initialized() {
		return nil, errorWithHint(fmt.Sprintf("%s is not a phivault data folder", cfg.Data), "phivault init -data "+string(cfg.Data))
	}
	if cfg.Passphrase == "" {
		return nil, errorWithHint("no key-file passphrase", "set PHIVAULT_PASSPHRASE_FILE (or PHIVAULT_PASSPHRASE) or pass -passphrase-file")
	}
	keys, err := keyring.OpenFile(cfg.Data.keyFile(), []byte(cfg.Passphrase), keyring.FileOptions{})
	if errors.Is(err, keyring.ErrWrongPassphrase) {
		return nil, errorWithHint("wrong passphrase for the key file", "check PHIVAULT_PASSPHRASE_FILE")
	} else if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	tokenHash, err := cfg.Data.tokenHash()
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, cfg.Data.database())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sealer := envelope.New(keys, envelope.Options{})
	if err := db.Update(ctx, func(tx phivault.StoreTx) error { return sealer.Init(ctx, tx) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("create vault keys: %w", err)
	}
	a := &app{cfg: cfg, logger: logger, db: db, metrics: prometheus.NewRegistry()}
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	records := vault.New(db, sealer)
	records.Logger = logger
	a.records = records
	auth := &api.TokenAuthenticator{Hash: tokenHash, Actor: "admin"}
	a.admin = admin.NewHandler(admin.Options{Authenticator: auth, Records: records, Logger: logger})
	a.handler = api.NewHandler(a.records, api.Options{
		BaseURL:       cfg.BaseURL,
		Authenticator: auth,
		Registerer:    a.metrics,
		Logger:        logger,
		Version:       version,
	})
	return a, nil
}

// listen starts the HTTPS server.
func (a *app) listen(ctx context.Context) error {
	cert, key := a.cfg.CertFile, a.cfg.KeyFile
	if cert == "" && key == "" {
		cert, key = a.cfg.Data.certFile(), a.cfg.Data.certKeyFile()
	}
	a.server = server.New(server.Config{
		Addr:     a.cfg.Addr,
		CertFile: cert,
		KeyFile:  key,
		Insecure: a.cfg.Insecure,
		FHIR:     a.fhirAndAdmin(),
		Metrics:  promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}),
		Logger:   a.logger,
	})
	return a.server.Open(ctx)
}

// fhirAndAdmin routes /fhir/admin/ to the admin API and the rest of /fhir
// to the FHIR API: the server package mounts its FHIR handler at /fhir only.
func (a *app) fhirAndAdmin() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/fhir", a.handler)
	mux.Handle("/fhir/", a.handler)
	mux.Handle("/fhir"+adminPrefix+"/", http.StripPrefix("/fhir", a.admin))
	return mux
}

// Close stops the server and closes the database.
func (a *app) Close() error {
	var errs []error
	if a.server != nil {
		errs = append(errs, a.server.Close())
	}
	errs = append(errs, a.db.Close())
	return errors.Join(errs...)
}
