package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/sqlitestore"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/incident"
	incidentsqlite "github.com/phivault/phivault/incident/sqlitestore"
)

// DetectConfig configures the detectors and where their alerts go
// (docs/detection.md).
type DetectConfig struct {
	// Off stops the detectors from running in this server (on another
	// node of a PostgreSQL deployment, say: one node runs them).
	Off bool
	// ChangeWindows are when control changes are expected (comma-separated
	// detect.ParseChangeWindows declarations, local time); Disabled names
	// rules not to run (comma-separated).
	ChangeWindows, Disabled string
	// OCSFFile, if set, receives every alert that pages as an OCSF
	// Detection Finding, one JSON line each (appended; mode 0600).
	OCSFFile string
	// Webhook, if set, receives alerts as signed JSON POSTs; the signing
	// secret comes from PHIVAULT_DETECT_WEBHOOK_SECRET[_FILE].
	Webhook string
	// CEFSyslog, if set, is the host:port of a syslog-over-TLS server
	// that receives alerts as CEF lines; CEFSyslogCA its CA bundle.
	CEFSyslog, CEFSyslogCA string
	// SMTP, if set, is the host:port of the mail server alerts are sent
	// through, from MailFrom to MailTo (comma-separated); a password, if
	// needed, from PHIVAULT_DETECT_SMTP_PASSWORD[_FILE] for SMTPUser.
	SMTP, SMTPUser, MailFrom, MailTo string
	// Playbooks is a folder of the operator's playbooks beside the
	// built-in ones (reloaded on SIGHUP); RespondOff stops the responder
	// from opening incidents and taking actions by itself.
	Playbooks  string
	RespondOff bool
}

func (c *DetectConfig) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.Off, "detect-off", os.Getenv("PHIVAULT_DETECT_OFF") == "1",
		"do not run the detectors in this server; run them on one node only (env PHIVAULT_DETECT_OFF=1)")
	fs.StringVar(&c.ChangeWindows, "detect-change-windows", os.Getenv("PHIVAULT_DETECT_CHANGE_WINDOWS"),
		"when policy reloads, key operations and seal/unseal are expected, in local time, e.g. \"Sat 22:00-Sun 04:00,Tue 18:00-22:00\"; outside them they alert (env PHIVAULT_DETECT_CHANGE_WINDOWS)")
	fs.StringVar(&c.Playbooks, "playbooks", os.Getenv("PHIVAULT_PLAYBOOKS"), "folder of the operator's incident-response playbooks beside the built-in ones; reloaded on SIGHUP (env PHIVAULT_PLAYBOOKS)")
	fs.BoolVar(&c.RespondOff, "respond-off", os.Getenv("PHIVAULT_RESPOND_OFF") == "1",
		"do not answer alerts with playbooks: no incident opened and no account suspended by itself (env PHIVAULT_RESPOND_OFF=1)")
	fs.StringVar(&c.Disabled, "detect-disable", os.Getenv("PHIVAULT_DETECT_DISABLE"), "comma-separated rules not to run, e.g. new-source (env PHIVAULT_DETECT_DISABLE)")
	fs.StringVar(&c.OCSFFile, "detect-ocsf-file", os.Getenv("PHIVAULT_DETECT_OCSF_FILE"), "append alerts to this file as OCSF Detection Finding JSON lines (env PHIVAULT_DETECT_OCSF_FILE)")
	fs.StringVar(&c.Webhook, "detect-webhook", os.Getenv("PHIVAULT_DETECT_WEBHOOK"), "POST alerts as signed JSON to this https URL; secret from PHIVAULT_DETECT_WEBHOOK_SECRET[_FILE] (env PHIVAULT_DETECT_WEBHOOK)")
	fs.StringVar(&c.CEFSyslog, "detect-cef-syslog", os.Getenv("PHIVAULT_DETECT_CEF_SYSLOG"), "host:port of a syslog-over-TLS server to send alerts to as CEF (env PHIVAULT_DETECT_CEF_SYSLOG)")
	fs.StringVar(&c.CEFSyslogCA, "detect-cef-syslog-ca", os.Getenv("PHIVAULT_DETECT_CEF_SYSLOG_CA"), "PEM bundle of CAs for -detect-cef-syslog (default: the system's; env PHIVAULT_DETECT_CEF_SYSLOG_CA)")
	fs.StringVar(&c.SMTP, "detect-smtp", os.Getenv("PHIVAULT_DETECT_SMTP"), "host:port of the mail server to send alerts through (STARTTLS required unless on loopback; env PHIVAULT_DETECT_SMTP)")
	fs.StringVar(&c.SMTPUser, "detect-smtp-user", os.Getenv("PHIVAULT_DETECT_SMTP_USER"), "user for -detect-smtp; password from PHIVAULT_DETECT_SMTP_PASSWORD[_FILE] (env PHIVAULT_DETECT_SMTP_USER)")
	fs.StringVar(&c.MailFrom, "detect-mail-from", os.Getenv("PHIVAULT_DETECT_MAIL_FROM"), "sender of alert e-mails (env PHIVAULT_DETECT_MAIL_FROM)")
	fs.StringVar(&c.MailTo, "detect-mail-to", os.Getenv("PHIVAULT_DETECT_MAIL_TO"), "comma-separated recipients of alert e-mails (env PHIVAULT_DETECT_MAIL_TO)")
}

// settings returns the detectors' settings c declares.
func (c *DetectConfig) settings() (detect.Settings, error) {
	s, err := detect.ParseSettings(time.Local, c.ChangeWindows, c.Disabled)
	if err != nil {
		return s, errorWithHint(err.Error(), "phivault serve -detect-change-windows \"Sat 22:00-Sun 04:00\" -detect-disable new-source")
	}
	return s, nil
}

// notifiers returns the alert deliveries c configures.
func (c *DetectConfig) notifiers() (map[string]detect.Notifier, error) {
	out := map[string]detect.Notifier{}
	if c.OCSFFile != "" {
		f, err := os.OpenFile(c.OCSFFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("-detect-ocsf-file: %w", err)
		}
		out["ocsf"] = &detect.OCSFStream{W: f, Version: version}
	}
	if c.Webhook != "" {
		secret, err := secretFromEnv("PHIVAULT_DETECT_WEBHOOK_SECRET")
		if err != nil {
			return nil, err
		}
		if u, err := url.Parse(c.Webhook); err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, errorWithHint("-detect-webhook must be an https URL", "phivault serve -detect-webhook https://soc.example.org/hooks/phivault")
		}
		if len(secret) < 16 {
			return nil, errorWithHint("-detect-webhook needs a signing secret of at least 16 characters", "openssl rand -hex 32 > webhook-secret; PHIVAULT_DETECT_WEBHOOK_SECRET_FILE=webhook-secret")
		}
		out["webhook"] = &detect.Webhook{URL: c.Webhook, Secret: []byte(secret)}
	}
	if c.CEFSyslog != "" {
		cfg, err := syslogTLS(c.CEFSyslogCA)
		if err != nil {
			return nil, err
		}
		out["syslog"] = &detect.CEFStream{Sender: &auditlog.SyslogWitness{Addr: c.CEFSyslog, TLS: cfg}, Version: version}
	}
	if c.SMTP != "" {
		host, _, err := net.SplitHostPort(c.SMTP)
		if err != nil || c.MailFrom == "" || c.MailTo == "" {
			return nil, errorWithHint("-detect-smtp needs host:port, -detect-mail-from and -detect-mail-to", "phivault serve -detect-smtp mail.example.org:587 -detect-mail-from phivault@example.org -detect-mail-to privacy@example.org")
		}
		m := &detect.Mailer{Addr: c.SMTP, From: c.MailFrom, To: strings.Split(c.MailTo, ","), Hostname: "phivault"}
		ip := net.ParseIP(host)
		m.RequireTLS = !(host == "localhost" || (ip != nil && ip.IsLoopback()))
		if c.SMTPUser != "" {
			pass, err := secretFromEnv("PHIVAULT_DETECT_SMTP_PASSWORD")
			if err != nil {
				return nil, err
			}
			m.Auth = smtp.PlainAuth("", c.SMTPUser, pass, host)
		}
		out["email"] = m
	}
	return out, nil
}

// detectFile is the detectors' own database in the data folder: cursors,
// alerts, the ingest stream. It holds ids and tokens only.
func (d dataDir) detectFile() string { return d.path("detect.db") }

// incidentsFile is the incidents' own database in the data folder:
// incidents and their timelines, titles and notes sealed.
func (d dataDir) incidentsFile() string { return d.path("incidents.db") }

// detector runs the detectors inside serve: from the unsealed vault's
// trail and the ingest stream into the detect store.
type detector struct {
	store    detect.Store
	engine   *detect.Engine
	pipeline *detect.Pipeline
	dispatch *detect.Dispatcher
	handler  http.Handler

	incidents *incidentsqlite.Store
	playbooks *playbooks
	reports   io.Closer // reports.go

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// trailReader is the audit trail as the detectors read it: committed
// entries, decoded.
type trailReader struct {
	log   *auditlog.Log // the running log, or nil offline
	store auditlog.Storage
}

// Size returns the entries committed: those the running log made visible
// to readers, or offline those stored.
func (t trailReader) Size(ctx context.Context) (int64, error) {
	if t.log == nil {
		return t.store.AuditSize(ctx)
	}
	return t.log.Tree().N, nil
}

func (t trailReader) Entries(ctx context.Context, start, end int64) ([]*phivault.AuditEntry, error) {
	if t.log != nil {
		if entries, ok := t.log.Recent(start, end); ok {
			return entries, nil // what this server just appended: no read back, no decoding
		}
	}
	data, err := t.store.ReadAuditEntries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	out := make([]*phivault.AuditEntry, len(data))
	for i, d := range data {
		if d == nil {
			continue
		}
		if out[i], err = auditlog.Decode(d); err != nil {
			return nil, fmt.Errorf("audit entry %d: %w", start+int64(i), err)
		}
	}
	return out, nil
}

// vaultTokens computes comparison tokens with the vault's index key.
type vaultTokens struct {
	store  phivault.Store
	sealer *envelope.Sealer
}

func (v vaultTokens) Tokens(ctx context.Context, values []phivault.IndexValue) (tokens []phivault.Token, err error) {
	err = v.store.View(ctx, func(tx phivault.StoreTx) error {
		tokens, err = v.sealer.Tokens(ctx, tx, values)
		return err
	})
	return tokens, err
}

// openDetect opens the detectors' store and security API, and starts
// the pipeline once the vault is unsealed (now, or on unseal): loading
// the directory needs the keys. records is the vault below the access
// layer.
func (a *app) openDetect(ctx context.Context, records phivault.RecordService, auth detect.Authenticator) error {
	if a.cfg.Detect.Off {
		return nil
	}
	store, err := openDetectStore(ctx, a.cfg.Data)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fail := func(err error) error {
		cancel()
		store.Close()
		return err
	}
	settings, err := a.cfg.Detect.settings()
	if err != nil {
		return fail(err)
	}
	notifiers, err := a.cfg.Detect.notifiers()
	if err != nil {
		return fail(err)
	}
	tokens := vaultTokens{store: a.db, sealer: a.seal.sealer}
	engine := detect.NewEngineFor(settings, detect.NewDirectory(), storedAlert(runCtx, store))
	// Triage feedback silences a user's rule after repeated false
	// positives (it still counts; it does not page).
	triages, err := store.Triages(ctx, "")
	if err != nil {
		return fail(err)
	}
	sup := detect.NewTriageSuppressor(triages)
	engine.Suppressor = sup
	p := detect.NewPipeline(store, engine)
	p.Trail = trailReader{log: a.audit.log, store: a.db}
	p.Loader = &detectContext{records: records, accounts: a.accounts, tokens: tokens}
	p.Logger = a.logger
	a.audit.log.OnPublish(p.Wake) // an access becomes an alert without waiting for a poll
	metrics, err := detect.NewMetrics(a.metrics, func() int64 { return p.Status().Lag })
	if err != nil {
		return fail(err)
	}
	disp := detect.NewDispatcher()
	disp.Store, disp.Metrics, disp.Logger, disp.Notifiers = store, metrics, a.logger, notifiers
	if err := disp.Open(ctx); err != nil {
		return fail(err)
	}
	p.OnCommit = disp.OnCommit
	d := &detector{store: store, engine: engine, pipeline: p, dispatch: disp}
	d.handler = detect.NewHandler(detect.HandlerOptions{
		Store: store, Pipeline: p, Auth: auth, Log: a.audit.log, Tokenizer: tokens,
		Notes:    envelope.NewNoteSealer(a.db, a.seal.sealer, "triage"),
		OnTriage: sup.Observe,
		Decoys:   &decoyMaker{records: a.records, vault: records},
		Risk:     engine.Scorer.(detect.UserScorer),
	})
	a.routes["/security/"] = withClient(d.handler)
	if d.incidents, err = incidentsqlite.Open(ctx, a.cfg.Data.incidentsFile()); err != nil {
		disp.Close(ctx)
		return fail(fmt.Errorf("open the incidents' database: %w", err))
	}
	if d.playbooks, err = loadPlaybooks(a.cfg.Detect.Playbooks, a.audit.log, a.logger); err != nil {
		disp.Close(ctx)
		d.incidents.Close()
		return fail(err)
	}
	svc := incident.NewService(incident.Options{
		Store: d.incidents, Audit: a.audit.log, Sealer: envelope.NewNoteSealer(a.db, a.seal.sealer, "incident"),
	})
	ev, err := a.evidenceWriter(store)
	if err != nil {
		disp.Close(ctx)
		d.incidents.Close()
		return fail(err)
	}
	controls := a.controls() // see respond_block.go
	controls.rotator, controls.keys, controls.alerts, controls.notifiers = rotatorOf(records), sealedKeys{a.seal}, store, notifiers
	controls.containment = containment{access: a.access.rs, detail: a.detail}
	controls.evidence = &evidenceCollector{data: a.cfg.Data, service: svc, writer: ev, log: a.audit.log, logger: a.logger}
	responder := &incident.Responder{
		Service: svc, Playbooks: d.playbooks.current, Logger: a.logger, User: accountUser(a.accounts),
		Controls: controls,
	}
	if !a.cfg.Detect.RespondOff {
		// Alerts page and are answered; the responder never slows the
		// pipeline (its own queue).
		p.OnCommit = func(alerts []*detect.Alert) {
			disp.OnCommit(alerts)
			responder.OnCommit(alerts)
		}
		d.wg.Go(func() { responder.Run(runCtx) })
	}
	incidents := incident.NewHandler(incident.HandlerOptions{
		Service: svc, API: &detect.API{Auth: auth, Log: a.audit.log}, Alerts: store, Responder: responder,
		Trail: trailReader{log: a.audit.log, store: a.db}, Residences: vaultResidences{records: records}, Evidence: ev,
		Addressees: vaultAddressees{records: records, detect: store},
	})
	a.routes["GET /security/vault"] = withClient(a.vaultStatusRoute(auth)) // see vaultstatus.go
	a.routes["/security/incidents"] = withClient(incidents)
	a.routes["/security/incidents/"] = withClient(incidents)
	if d.reports, err = a.openReports(ctx, svc, auth); err != nil { // /security/reports; reports.go
		disp.Close(ctx)
		d.incidents.Close()
		return fail(err)
	}
	a.detect = d
	d.cancel = cancel
	start := func() {
		d.wg.Go(func() {
			if err := p.Open(runCtx); err != nil {
				if runCtx.Err() == nil {
					a.logger.Error("detectors did not start", "error", err.Error())
				}
				return
			}
			p.Run(runCtx)
		})
	}
	if a.seal.Sealed() {
		prev := a.seal.onUnseal
		var once sync.Once
		a.seal.onUnseal = func() {
			if prev != nil {
				prev()
			}
			once.Do(start)
		}
	} else {
		start()
	}
	return nil
}

// openDetectStore opens the detectors' database in the data folder.
func openDetectStore(ctx context.Context, data dataDir) (detect.Store, error) {
	s, err := sqlitestore.Open(ctx, data.detectFile())
	if err != nil {
		return nil, fmt.Errorf("open the detectors' database: %w", err)
	}
	return s, nil
}

// close stops the pipeline and closes the store.
func (d *detector) close() error {
	if d == nil {
		return nil
	}
	d.cancel()
	d.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(d.dispatch.Close(ctx), d.store.Close(), d.incidents.Close(), d.reports.Close())
}

// storedAlert returns the Engine's lookup of committed alerts in store.
// A read that fails for another reason than "no such alert" is retried
// until it succeeds or ctx (the pipeline's) ends: answering "none" would
// replace the stored alert with a fresh one and lose its count. Once ctx
// has ended nothing more is committed, so "none" is then harmless.
func storedAlert(ctx context.Context, store detect.Store) func(id string) *detect.Alert {
	return func(id string) *detect.Alert {
		for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
			al, err := store.Alert(ctx, id)
			if err == nil {
				return al
			}
			if errors.Is(err, phivault.ErrNotFound) {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}
