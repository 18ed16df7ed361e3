package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/sqlite"
	"github.com/prometheus/client_golang/prometheus"
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

// auditWitnessRecord is the file in which init records the path of the
// witness file outside the data folder. It is a cross-check, never the
// source of the path: see witnessFile.
func (d dataDir) auditWitnessRecord() string { return d.path("audit-witness-file") }

// AuditConfig names the checkpoint witnesses outside the data folder; the
// file witness audit-checkpoints.log is always on.
type AuditConfig struct {
	// WitnessFile is a file outside the data folder (another disk, a
	// mount of another host) that receives every checkpoint, like
	// audit-checkpoints.log, and that the server checks the log against
	// at start. Required: the server refuses to start without it, or with
	// a path other than the one init recorded in the data folder.
	WitnessFile string
	// VerifyInterval is the time between the running server's checks of
	// the trail (auditlog.Monitor); every 60th is a full pass. Default
	// auditlog.DefaultMonitorInterval.
	VerifyInterval time.Duration
	// Recover, if not zero, is the size of the audit log (its entries)
	// that the operator accepts without a checkpoint: the server starts
	// although the log holds entries and the outside witness file holds no
	// checkpoint of it, which is what a log cut together with its
	// checkpoints looks like. The start is recorded in the trail (action
	// audit-recover). A log of any other size is refused, so the override
	// works once: the recorded start itself grows the log.
	Recover int64

	Webhook  string // https URL that receives every checkpoint by POST
	Syslog   string // host:port of a syslog server speaking TLS (RFC 5425)
	SyslogCA string // PEM bundle of CAs for the syslog server (default: the system's)

	// CEFSyslog is the host:port of a syslog server speaking TLS that
	// receives every new entry as a CEF line; CEFSyslogCA its CA bundle.
	CEFSyslog, CEFSyslogCA string
}

func (c *AuditConfig) register(fs *flag.FlagSet) {
	registerWitnessFile(fs, &c.WitnessFile, "receives every signed audit checkpoint and is checked at start; required, the path given to init")
	c.VerifyInterval = auditlog.DefaultMonitorInterval
	if v, err := time.ParseDuration(os.Getenv("PHIVAULT_AUDIT_VERIFY_INTERVAL")); err == nil && v > 0 {
		c.VerifyInterval = v
	}
	fs.DurationVar(&c.VerifyInterval, "audit-verify-interval", c.VerifyInterval, fmt.Sprintf("time between the server's checks of the audit trail against its tree; every %dth checks every entry and the index (env PHIVAULT_AUDIT_VERIFY_INTERVAL)", auditlog.DefaultMonitorFullEvery))
	fs.Int64Var(&c.Recover, "audit-recover", 0, "start once although the outside witness file holds no checkpoint of the audit log, if the log holds exactly this many `entries` (the number the refusal names); only after an investigation (recorded in the trail)")
	c.Webhook = os.Getenv("PHIVAULT_AUDIT_WEBHOOK")
	fs.Var(secretFlag{&c.Webhook}, "audit-webhook", "https URL to POST every signed audit checkpoint to (env PHIVAULT_AUDIT_WEBHOOK)")
	fs.StringVar(&c.Syslog, "audit-syslog", os.Getenv("PHIVAULT_AUDIT_SYSLOG"), "host:port of a syslog-over-TLS server (RFC 5424/5425) to send every audit checkpoint to (env PHIVAULT_AUDIT_SYSLOG)")
	fs.StringVar(&c.SyslogCA, "audit-syslog-ca", os.Getenv("PHIVAULT_AUDIT_SYSLOG_CA"), "PEM bundle of CAs for the audit syslog server (default: the system's; env PHIVAULT_AUDIT_SYSLOG_CA)")
	fs.StringVar(&c.CEFSyslog, "audit-cef-syslog", os.Getenv("PHIVAULT_AUDIT_CEF_SYSLOG"), "host:port of a syslog-over-TLS server (RFC 5424/5425) to stream every new audit entry to as CEF (env PHIVAULT_AUDIT_CEF_SYSLOG)")
	fs.StringVar(&c.CEFSyslogCA, "audit-cef-syslog-ca", os.Getenv("PHIVAULT_AUDIT_CEF_SYSLOG_CA"), "PEM bundle of CAs for the CEF syslog server (default: the system's; env PHIVAULT_AUDIT_CEF_SYSLOG_CA)")
}

// registerWitnessFile registers -audit-witness-file on fs, for serve, demo,
// init and audit verify; usage says what the command does with the file.
func registerWitnessFile(fs *flag.FlagSet, p *string, usage string) {
	fs.StringVar(p, "audit-witness-file", os.Getenv("PHIVAULT_AUDIT_WITNESS_FILE"),
		"file outside the data folder (another disk or host) that "+usage+" (env PHIVAULT_AUDIT_WITNESS_FILE)")
}

// outsideWitnessPath checks that path names a file outside the data folder
// d and returns it made absolute.
func outsideWitnessPath(d dataDir, path string) (string, error) {
	hint := "-audit-witness-file /var/lib/phivault-witness/audit-checkpoints.log (on another disk or host mount)"
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", errorWithHint(fmt.Sprintf("audit witness file %s: %v", path, err), hint)
	}
	dir, err := filepath.Abs(string(d))
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(dir, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", errorWithHint(fmt.Sprintf("the audit witness file %s is inside the data folder %s: whoever can change the folder could change it too", path, d), hint)
	}
	return abs, nil
}

// createWitnessFile makes the outside witness file path (and its folder)
// for a new data folder d and records its path in d. It refuses a file
// that already holds checkpoints: they belong to another vault.
func createWitnessFile(d dataDir, path string) (string, error) {
	abs, err := outsideWitnessPath(d, path)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return "", fmt.Errorf("create audit witness folder: %w", err)
	}
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("create audit witness file: %w", err)
	}
	info, err := f.Stat()
	f.Close()
	if err != nil {
		return "", fmt.Errorf("create audit witness file: %w", err)
	}
	if info.Size() > 0 {
		return "", errorWithHint(fmt.Sprintf("the audit witness file %s already holds checkpoints (of another vault?)", abs), "name a new file with -audit-witness-file")
	}
	if err := writeFileAtomic(d.auditWitnessRecord(), []byte(abs+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("record audit witness file: %w", err)
	}
	return abs, nil
}

var (
	// errNoWitnessFile is the refusal to start, or to verify, without the
	// outside witness file named by the operator.
	errNoWitnessFile = errors.New("no audit witness file named")
	// errWitnessMismatch is the refusal of a witness file other than the
	// one the data folder records.
	errWitnessMismatch = errors.New("the audit witness file is not the one the data folder records")
)

// witnessFile checks the outside witness file path that the operator named
// (flag or environment) for the data folder d, and returns it made
// absolute. cmd is the command to show in hints.
//
// The path is never taken from the data folder: whoever holds the folder
// holds the checkpoint signing key too, so a path read from the folder
// could point at checkpoints they signed for a log they cut. init's record
// of the path in the folder serves as a cross-check only: a path that
// differs from it is refused, since either the record was changed or the
// operator named another file.
func witnessFile(d dataDir, path, cmd string) (string, error) {
	recorded, err := os.ReadFile(d.auditWitnessRecord())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read audit witness record: %w", err)
	}
	rec := strings.TrimSpace(string(recorded))
	if path == "" {
		hint := cmd + " -audit-witness-file /var/lib/phivault-witness/audit-checkpoints.log (the file given to init), or set PHIVAULT_AUDIT_WITNESS_FILE in the service's configuration"
		if rec != "" {
			hint = cmd + " -audit-witness-file " + rec + " (the path the data folder records: check that it is the file given to init), or set PHIVAULT_AUDIT_WITNESS_FILE in the service's configuration"
		}
		return "", &hintError{
			err:  fmt.Errorf("%w: the audit witness file outside the data folder must be named each time; the folder's own record of its path is not used, since whoever can change the folder could point it elsewhere", errNoWitnessFile),
			hint: hint,
		}
	}
	abs, err := outsideWitnessPath(d, path)
	if err != nil {
		return "", err
	}
	if rec != "" && filepath.Clean(rec) != abs {
		return "", &hintError{
			err: fmt.Errorf("%w: %s was named, the data folder records %s; the record was changed, or the wrong file was named",
				errWitnessMismatch, abs, rec),
			hint: "name the file given to init; if it moved, find out who changed the record, then write its new path to " + d.auditWitnessRecord(),
		}
	}
	return abs, nil
}

// secretFlag is a string flag whose value, which may hold a secret (a
// webhook's token), is never shown: usage messages print no default.
type secretFlag struct{ p *string }

func (f secretFlag) String() string { return "" }

func (f secretFlag) Set(v string) error {
	*f.p = v
	return nil
}

// auditTrail is the running audit log and its endpoints for verifiers and
// SIEMs.
type auditTrail struct {
	log     *auditlog.Log
	monitor *auditlog.Monitor        // verifies the stored trail while the server runs
	queues  []*auditlog.WitnessQueue // witnesses outside the data folder
	cef     *auditlog.CEFForwarder   // the CEF syslog stream, or nil
	handler http.Handler
}

// witnessCloseWait bounds how long Close keeps delivering checkpoints to
// remote witnesses.
const witnessCloseWait = 5 * time.Second

// remoteWitnesses returns a queue for each configured remote witness, and
// exports each queue's counters as metrics.
func (a *app) remoteWitnesses(c AuditConfig) ([]*auditlog.WitnessQueue, error) {
	var ws []*auditlog.WitnessQueue
	add := func(name string, w auditlog.Witness) {
		q := auditlog.NewWitnessQueue(name, w, auditlog.WitnessQueueOptions{Logger: a.logger})
		ws = append(ws, q)
		labels := prometheus.Labels{"witness": name}
		counter := func(metric, help string, f func(auditlog.WitnessStats) int64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: metric, Help: help, ConstLabels: labels},
				func() float64 { return float64(f(q.Stats())) })
		}
		a.metrics.MustRegister(
			counter("phivault_audit_witness_published_total", "Audit checkpoints the witness acknowledged.", func(s auditlog.WitnessStats) int64 { return s.Published }),
			counter("phivault_audit_witness_failures_total", "Failed deliveries of audit checkpoints to the witness.", func(s auditlog.WitnessStats) int64 { return s.Failures }),
			counter("phivault_audit_witness_dropped_total", "Audit checkpoints never delivered to the witness.", func(s auditlog.WitnessStats) int64 { return s.Dropped }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phivault_audit_witness_latency_seconds", Help: "Time from signing to acknowledgment of the last audit checkpoint delivered.", ConstLabels: labels},
				func() float64 { return q.Stats().LastLatency.Seconds() }),
		)
	}
	if c.Webhook != "" {
		if !strings.HasPrefix(c.Webhook, "https://") {
			return nil, errorWithHint("the audit webhook must be an https:// URL", "-audit-webhook https://siem.example.org/phivault")
		}
		add("webhook", &auditlog.WebhookWitness{URL: c.Webhook})
	}
	if c.Syslog != "" {
		cfg, err := syslogTLS(c.SyslogCA)
		if err != nil {
			return nil, err
		}
		add("syslog", &auditlog.SyslogWitness{Addr: c.Syslog, TLS: cfg})
	}
	return ws, nil
}

// syslogTLS returns the TLS configuration for a syslog server whose
// certificate a CA in the PEM file caFile signed, or the system's CAs if
// caFile is "".
func syslogTLS(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("audit syslog CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("audit syslog CA %s holds no PEM certificates", caFile)
		}
	}
	return cfg, nil
}

// startCEF starts streaming every new entry of l to the CEF syslog server,
// if one is configured, and exports its counters as metrics. Starting the
// stream is itself recorded: from then on the trail leaves the server.
func (a *app) startCEF(ctx context.Context, l *auditlog.Log) (*auditlog.CEFForwarder, error) {
	c := a.cfg.Audit
	if c.CEFSyslog == "" {
		return nil, nil
	}
	cfg, err := syslogTLS(c.CEFSyslogCA)
	if err != nil {
		return nil, err
	}
	start := l.Tree().N
	e := &phivault.AuditEntry{Time: time.Now().UTC(), Actor: "phivault", Action: phivault.ActionExport,
		TargetType: "AuditEvent", Client: "cef-syslog", Outcome: "ok"}
	if err := l.Append(ctx, e); err != nil {
		return nil, fmt.Errorf("record the CEF stream: %w", err)
	}
	f := auditlog.NewCEFForwarder(l, &auditlog.SyslogWitness{Addr: c.CEFSyslog, TLS: cfg}, start,
		auditlog.CEFOptions{Version: version, Logger: a.logger})
	counter := func(metric, help string, v func(auditlog.CEFStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: metric, Help: help}, func() float64 { return float64(v(f.Stats())) })
	}
	a.metrics.MustRegister(
		counter("phivault_audit_cef_sent_total", "Audit entries sent to the CEF syslog server.", func(s auditlog.CEFStats) int64 { return s.Sent }),
		counter("phivault_audit_cef_failures_total", "Failed writes to the CEF syslog server (each retried).", func(s auditlog.CEFStats) int64 { return s.Failures }),
		counter("phivault_audit_cef_dropped_total", "Audit entries never sent as CEF: the server was away too long.", func(s auditlog.CEFStats) int64 { return s.Dropped }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phivault_audit_cef_lag_entries", Help: "Audit entries not yet sent to the CEF syslog server."},
			func() float64 { return float64(f.Stats().Lag) }),
	)
	return f, nil
}

// openAudit opens the audit trail on a's database, with the data folder's
// checkpoint key (made on first use), and wraps a.records and the admin
// API's shredder so that every call is recorded before data leaves
// (api → auditlog → vault). It refuses to start if the database no longer
// extends the last checkpoint in the witness file.
func (a *app) openAudit(ctx context.Context, adminOpts *admin.Options) error {
	signer, verifier, err := auditKeys(a.cfg.Data)
	if err != nil {
		return err
	}
	c := a.cfg.Audit
	outside, err := witnessFile(a.cfg.Data, c.WitnessFile, "phivault serve")
	if err != nil {
		return err
	}
	queues, err := a.remoteWitnesses(c)
	if err != nil {
		return err
	}
	l := auditlog.New(a.db, signer.Name(), signer)
	// The file witnesses are written before the queues are handed the
	// checkpoint: they are what the next start checks the database against.
	files := []string{a.cfg.Data.auditCheckpoints(), outside}
	for _, f := range files {
		l.Witnesses = append(l.Witnesses, &auditlog.FileWitness{Path: f})
	}
	for _, q := range queues {
		l.Witnesses = append(l.Witnesses, q)
	}
	l.Logger = a.logger
	t := &auditTrail{log: l, queues: queues}
	// Check the log against the witnesses with a Log that signs nothing
	// (it replays the journal first), so that a refused start publishes no
	// checkpoint of a log that was cut or rewritten.
	probe := auditlog.New(a.db, signer.Name(), nil)
	probe.CheckpointInterval = -1
	probe.Logger = a.logger
	if err := probe.Open(ctx); err != nil {
		t.closeQueues()
		return fmt.Errorf("open audit log: %w", err)
	}
	gap, err := publishRestoreGap(ctx, a.cfg.Data, probe, verifier, files)
	if err != nil {
		probe.Close()
		t.closeQueues()
		return err
	}
	recovering, err := a.checkWitnesses(ctx, probe, files, gap != nil)
	if cerr := probe.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close audit log: %w", cerr)
	}
	if err != nil {
		t.closeQueues()
		return err
	}
	if err := l.Open(ctx); err != nil {
		t.closeQueues()
		return fmt.Errorf("open audit log: %w", err)
	}
	if gap != nil {
		a.logger.Warn("audit log restored from a backup, shorter than its witnesses saw: the gap is recorded", "restored", gap.Restored, "lost", gap.Lost())
		if err := recordGapEntry(ctx, l, gap); err != nil {
			t.Close()
			return err
		}
	}
	if err := recordRestore(ctx, a.cfg.Data, l); err != nil {
		t.Close()
		return err
	}
	if recovering {
		a.logger.Warn("audit log started without a checkpoint (-audit-recover)", "entries", l.Tree().N)
		e := &phivault.AuditEntry{Time: time.Now().UTC(), Actor: "phivault", Action: phivault.ActionAuditRecover, TargetType: "AuditEvent",
			Outcome: "ok", Decision: fmt.Sprintf("started with -audit-recover=%d: no checkpoint found", l.Tree().N)}
		if err := l.Append(ctx, e); err != nil {
			t.Close()
			return fmt.Errorf("record the audit recovery: %w", err)
		}
	}
	// A checkpoint of the log as it starts, in every witness: a crash
	// before the next one still leaves a checkpoint to check against.
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Close()
		return fmt.Errorf("audit checkpoint at start: %w", err)
	}
	if gap != nil {
		// Recorded and checkpointed: the next start finds the trail past
		// the gap and removes the record if this fails.
		if err := os.Remove(a.cfg.Data.auditGapRecord()); err != nil {
			a.logger.Warn("remove the audit gap record", "err", err)
		}
	}
	t.monitor = a.startMonitor(l)
	if t.cef, err = a.startCEF(ctx, l); err != nil {
		t.Close()
		return err
	}
	a.audit = t
	audited := auditlog.NewRecordService(a.records, l)
	a.detail = newRaisedDetail(a.access.rs, a.db, a.seal.sealer) // raise-detail; see respond_restrict.go
	audited.Detail = a.detail
	a.records = audited
	if adminOpts.Records != nil {
		adminOpts.Records = auditlog.NewShredder(adminOpts.Records, l)
	}
	return nil
}

// startMonitor starts verifying the stored trail of l while the server
// runs, and exports the outcome as metrics; health reports it too.
func (a *app) startMonitor(l *auditlog.Log) *auditlog.Monitor {
	m := auditlog.NewMonitor(a.db, l)
	m.Logger = a.logger
	if a.cfg.Audit.VerifyInterval != 0 {
		m.Interval = a.cfg.Audit.VerifyInterval
	}
	m.Start()
	gauge := func(name, help string, v func(auditlog.MonitorStatus) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(m.Status()) })
	}
	counter := func(name, help string, v func(auditlog.MonitorStatus) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(m.Status())) })
	}
	a.metrics.MustRegister(
		gauge("phivault_audit_verify_ok", "1 if the last check of the stored audit trail found it intact (or none ran yet), 0 if it found a mismatch.",
			func(s auditlog.MonitorStatus) float64 {
				if s.OK {
					return 1
				}
				return 0
			}),
		counter("phivault_audit_verify_passes_total", "Checks of the stored audit trail run.", func(s auditlog.MonitorStatus) int64 { return s.Passes }),
		counter("phivault_audit_verify_failures_total", "Checks of the stored audit trail that found a mismatch or could not read it.", func(s auditlog.MonitorStatus) int64 { return s.Failures }),
		gauge("phivault_audit_verify_last_success_timestamp_seconds", "When a check of the stored audit trail last succeeded, Unix seconds (0: none yet).",
			func(s auditlog.MonitorStatus) float64 {
				if s.LastSuccess.IsZero() {
					return 0
				}
				return float64(s.LastSuccess.UnixNano()) / 1e9
			}),
		gauge("phivault_audit_verified_entries", "Entries covered by the last successful check of the stored audit trail.", func(s auditlog.MonitorStatus) float64 { return float64(s.Verified) }),
	)
	return m
}

// health answers GET /healthz with 503 and status "audit-integrity" once
// the monitor found the stored trail changed, until a check passes again;
// otherwise next answers.
func (t *auditTrail) health(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t.monitor != nil && !t.monitor.Status().OK {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"status":"audit-integrity"}`+"\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// routes builds the handlers of /fhir/audit/ (checkpoint, proofs, export,
// stream) and of the AuditEvent view and access reports. They read the
// audit store only, so they answer while sealed; each read is recorded.
func (a *app) auditRoutes(auth api.Authenticator) {
	l := a.audit.log
	mux := http.NewServeMux()
	siem := auditlog.NewSIEMHandler(l, auditActor{auth}, auditlog.SIEMOptions{})
	mux.Handle("/audit/export", siem)
	mux.Handle("/audit/stream", siem)
	mux.Handle("POST /audit/token", a.auditTokenRoute(auth)) // raise-detail; see respond_restrict.go
	mux.Handle("/", auditlog.NewHandler(l, auditActor{auth}))
	a.audit.handler = mux
	a.auditView = auditlog.NewViewHandler(auditlog.ViewOptions{Store: a.db, Auth: auditActor{auth}, Log: l, BaseURL: a.cfg.BaseURL})
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

// Close publishes a last checkpoint, stops the log, and delivers the
// checkpoints still queued for remote witnesses for up to witnessCloseWait.
func (t *auditTrail) Close() error {
	if t == nil {
		return nil
	}
	if t.monitor != nil {
		t.monitor.Close()
	}
	err := t.log.Close()
	if t.cef != nil {
		ctx, cancel := context.WithTimeout(context.Background(), witnessCloseWait)
		defer cancel()
		err = errors.Join(err, t.cef.Close(ctx))
	}
	return errors.Join(err, t.closeQueues())
}

func (t *auditTrail) closeQueues() error {
	ctx, cancel := context.WithTimeout(context.Background(), witnessCloseWait)
	defer cancel()
	var errs []error
	for _, q := range t.queues {
		errs = append(errs, q.Close(ctx))
	}
	return errors.Join(errs...)
}

var (
	// errNoCheckpoint is the refusal to start a non-empty log with no
	// checkpoint to check it against.
	errNoCheckpoint = errors.New("no audit checkpoint found")
	// errRecoverMismatch is the refusal of -audit-recover for a log of
	// another size than the one the operator accepted.
	errRecoverMismatch = errors.New("-audit-recover does not match the audit log")
)

// checkWitnesses checks the log of l against the last checkpoint in each
// witness file. A log shorter than a checkpoint, or not extending it,
// stops the start. So does a log with entries when the last of files, the
// outside witness file, holds no checkpoint: deleted or replaced, perhaps
// to hide a cut tail. If a.cfg.Audit.Recover is the log's size it reports
// instead that the start recovers, to be recorded in the trail; any other
// non-zero value stops the start, whatever the witnesses hold, so that the
// flag left in a service's configuration is noticed at the next start.
func (a *app) checkWitnesses(ctx context.Context, l *auditlog.Log, files []string, gapped bool) (recovering bool, err error) {
	d := a.cfg.Data
	verify := "phivault audit verify -data " + string(d)
	hint := verify + " -audit-witness-file " + files[len(files)-1]
	_, verifier, err := auditKeys(d)
	if err != nil {
		return false, err
	}
	found := false // in the last file
	for i, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return false, fmt.Errorf("read audit checkpoints: %w", err)
		}
		notes, err := auditlog.SplitCheckpoints(b)
		if err == nil {
			notes, _, err = auditlog.ResolveGaps(notes, verifier, "")
		}
		if err != nil {
			return false, errorWithHint(fmt.Sprintf("audit checkpoints file %s: %v", f, err), hint)
		}
		if len(notes) == 0 {
			continue
		}
		c, err := auditlog.OpenCheckpoint(notes[len(notes)-1], verifier, "")
		if err != nil {
			return false, errorWithHint(fmt.Sprintf("audit checkpoints file %s: %v", f, err), hint)
		}
		if err := l.CheckConsistent(ctx, c); err != nil {
			return false, errorWithHint(fmt.Sprintf("audit log tampered with or rolled back (checked against %s): %v", f, err), hint)
		}
		found = i == len(files)-1
	}
	n := l.Tree().N
	if accept := a.cfg.Audit.Recover; accept != 0 && accept != n {
		return false, &hintError{
			err: fmt.Errorf("%w: -audit-recover=%d, but the audit log holds %d entries; the flag accepts the log of that size once, not any later one",
				errRecoverMismatch, accept, n),
			hint: "remove -audit-recover from the server's configuration: it was for one start",
		}
	}
	if found || gapped || n == 0 {
		return false, nil
	}
	if a.cfg.Audit.Recover == 0 {
		return false, &hintError{
			err: fmt.Errorf("%w: the audit log holds %d entries but the witness file %s holds no checkpoint of it; it was deleted or replaced, or the log's tail was cut with it",
				errNoCheckpoint, n, files[len(files)-1]),
			hint: fmt.Sprintf("restore the witness files from their copies, or check the log with: %s -checkpoint FILE (a checkpoint kept elsewhere), then start once with -audit-recover=%d", verify, n),
		}
	}
	return true, nil
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

// auditCommand runs "phivault audit ...".
type auditCommand struct {
	stdout, stderr io.Writer
}

const auditUsage = `Usage: phivault audit verify -audit-witness-file FILE [flags]
       phivault audit verify -checkpoint FILE [flags]
       phivault audit verify -export FILE -checkpoint FILE -verifier KEY
       phivault audit export [flags] > FILE.ndjson
       phivault audit archive [-from-index A] (-before DATE | -to-index B) -out FILE
       phivault audit verify-archive -verifier KEY FILE
       phivault audit verify-evidence -key KEY FILE
       phivault audit token -param NAME VALUE

verify checks the audit trail of a data folder, offline: every entry and
tree hash, the checkpoints' signatures, and that the log still extends every
checkpoint, and that the audit index matches the entries. The checkpoints
are those of the folder's audit-checkpoints.log and of the outside witness
file, which must be named (-audit-witness-file or
PHIVAULT_AUDIT_WITNESS_FILE, as to serve) and hold a checkpoint, or else
those in the -checkpoint file alone: the folder's own checkpoints prove
nothing against whoever holds the folder. Keep a copy of a checkpoint
outside the server and pass it with -checkpoint to detect a database
rewritten together with the witness files. On failure it names the first
bad entry. With -export it needs no data folder: it checks an archived
export made with -proofs against the last checkpoint in -checkpoint and the
verifier key alone.

export writes the entries made in [-from, -to) as NDJSON, one per line in
index order, each with its index and leaf hash. With -proofs each line also
carries its inclusion proof in the tree of the folder's last witnessed
checkpoint, which -save-checkpoint writes out, and entries after that
checkpoint are left out: keep the two files and the verifier key together
and the segment verifies on its own.

archive writes the entries with indexes [A, B) to one self-verifying file:
a header with the folder's last witnessed checkpoint, then every entry with
its inclusion proof. B is -to-index, or the first entry at or after -before
(at most the checkpoint's size). verify-archive checks such a file with the
verifier key alone: the signature, every proof, and that no index in [A, B)
is missing, repeated or moved. Archiving copies: the log keeps every entry.

verify-evidence checks an incident's evidence archive (phivault incidents
evidence) with the verifier key alone: the manifest's signature, every
member's SHA-256, the checkpoint's signature, every entry's inclusion proof,
and that every event of the incident's timeline has its entry. On failure it
names the first bad member.

token asks the running server (-url, PHIVAULT_TOKEN of a privacy officer
or security admin) for the keyed token of VALUE as a search value of
parameter NAME: while an incident raised the detail recorded of a user
(raise-detail), the trail's search_values hold such tokens, never values,
so "name=TOKEN" there means the user searched name for VALUE. Asking is
recorded; the value is not.

verify, export and archive read the trail from the folder's database: its
SQLite files, or the PostgreSQL database the folder was made for by
"phivault init" with a postgres:// URL; give the same URL again, as to serve
(PHIVAULT_STORE_FILE, PHIVAULT_STORE or -store, and -postgres-schema).

Flags:
`

func (c *auditCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "verify" && args[0] != "export" && args[0] != "archive" && args[0] != "verify-archive" && args[0] != "verify-evidence" && args[0] != "token" {
		fmt.Fprint(c.stderr, auditUsage)
		return errorWithHint("audit needs a subcommand", "phivault audit verify -data DIR")
	}
	switch args[0] {
	case "export":
		return c.export(ctx, args[1:])
	case "archive":
		return c.archive(ctx, args[1:])
	case "verify-archive":
		return c.verifyArchive(args[1:])
	case "verify-evidence":
		return c.verifyEvidence(args[1:])
	case "token":
		return c.auditToken(ctx, args[1:])
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var folder auditFolder
	folder.register(fs)
	cpFile := fs.String("checkpoint", "", "file of saved signed checkpoints (default: the folder's audit-checkpoints.log and the outside witness file)")
	var witness string
	registerWitnessFile(fs, &witness, "receives the audit checkpoints, named to init and serve; required unless -checkpoint is given")
	vkFile := fs.String("verifier", "", "note verifier key (default: the folder's audit-verifier.pub)")
	exportFile := fs.String("export", "", "check this export (made with -proofs) instead of a data folder")
	fs.Usage = func() { fmt.Fprint(c.stderr, auditUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *exportFile != "" {
		return c.verifyExport(*exportFile, *cpFile, *vkFile)
	}
	d, err := folder.dir("phivault audit verify -data DIR")
	if err != nil {
		return err
	}
	if *vkFile == "" {
		*vkFile = d.auditVerifierKey()
	}
	verifier, err := readVerifier(*vkFile)
	if err != nil {
		return err
	}
	var notes [][]byte
	var gaps []auditlog.Gap
	if *cpFile != "" {
		if notes, gaps, err = readCheckpoints(*cpFile, verifier); err != nil {
			return err
		}
	} else if notes, gaps, err = folderCheckpoints(d, witness, verifier); err != nil {
		return err
	}
	db, err := openStore(ctx, d, folder.store)
	if err != nil {
		return err
	}
	defer db.Close()
	tree, err := auditlog.Verify(ctx, db, verifier, verifier.Name(), notes)
	if err != nil {
		return fmt.Errorf("verification FAILED: %w", err)
	}
	// The index behind the AuditEvent search and the access reports is
	// not in the tree: rebuild it from the verified entries and compare.
	if err := auditlog.VerifyIndex(ctx, db); err != nil {
		return errorWithHint(fmt.Sprintf("verification FAILED: %v", err),
			"the entries are intact; to rebuild the index, stop the server, run: "+emptyIndexCommand(d, folder.store)+", and start it again")
	}
	if err := checkGapEntries(ctx, db, gaps); err != nil {
		return fmt.Errorf("verification FAILED: %w", err)
	}
	fmt.Fprintf(c.stdout, "audit log OK: %d entries, root %s, consistent with %d checkpoints; audit index matches the entries\n", tree.N, tree.Hash, len(notes))
	for _, g := range gaps {
		fmt.Fprintf(c.stdout, "GAP: restored from backup snapshot %s of %s on %s: %d entries the witnesses saw (up to %d) are lost; the log goes on from entry %d\n",
			g.Snapshot, g.SnapshotTime.Format(time.RFC3339), g.Time.Format(time.RFC3339), g.Lost(), g.Witnessed.N, g.Restored)
	}
	return nil
}

// auditFolder selects the data folder an offline audit subcommand reads,
// and its database with the store settings serve takes (see store.go), so
// that a vault on PostgreSQL is verified, exported and archived like one on
// SQLite.
type auditFolder struct {
	data  string
	store StoreConfig
}

func (f *auditFolder) register(fs *flag.FlagSet) {
	fs.StringVar(&f.data, "data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder (env PHIVAULT_DATA)")
	f.store.register(fs)
}

// dir resolves the store settings and returns the data folder, or an error
// with hint if it is not one.
func (f *auditFolder) dir(hint string) (dataDir, error) {
	if err := f.store.resolve(); err != nil {
		return "", err
	}
	d := dataDir(f.data)
	if !d.initialized() {
		return "", errorWithHint(fmt.Sprintf("%s is not a phivault data folder", d), hint)
	}
	return d, nil
}

// emptyIndexCommand is a shell command that empties the audit index of d's
// database, which the server then rebuilds from the entries.
func emptyIndexCommand(d dataDir, c StoreConfig) string {
	if c.kind() == storePostgres {
		table := pgx.Identifier{"audit_index"}
		if c.Schema != "" {
			table = pgx.Identifier{c.Schema, "audit_index"}
		}
		return "psql -c 'DELETE FROM " + table.Sanitize() + "' on the database of PHIVAULT_STORE_FILE"
	}
	return "sqlite3 " + sqlite.DefaultAuditPath(d.database()) + " 'DELETE FROM audit_index'"
}

// folderCheckpoints reads the checkpoints of the data folder's witness file,
// if it exists, and of the outside witness file witness, which the
// operator named (see witnessFile). It fails if the outside file holds
// none: whoever holds the folder can sign the folder's.
func folderCheckpoints(d dataDir, witness string, verifier note.Verifier) ([][]byte, []auditlog.Gap, error) {
	outside, err := witnessFile(d, witness, "phivault audit verify -data "+string(d))
	if err != nil {
		return nil, nil, err
	}
	notes, gaps, err := readCheckpoints(d.auditCheckpoints(), verifier)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	n, g, err := readCheckpoints(outside, verifier)
	if err != nil {
		return nil, nil, &hintError{err: fmt.Errorf("%w in the audit witness file: %v", errNoCheckpoint, err),
			hint: "phivault audit verify -data " + string(d) + " -checkpoint FILE (a checkpoint kept elsewhere)"}
	}
	return append(notes, n...), append(gaps, g...), nil
}

// readCheckpoints reads a file of signed checkpoints (a witness file) and
// returns the checkpoints that bind the log and the gaps that restores
// recorded among them (auditlog.ResolveGaps), each gap checked with
// verifier.
func readCheckpoints(path string, verifier note.Verifier) ([][]byte, []auditlog.Gap, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoints: %w", err)
	}
	notes, err := auditlog.SplitCheckpoints(b)
	if err != nil {
		return nil, nil, err
	}
	notes, gaps, err := auditlog.ResolveGaps(notes, verifier, verifier.Name())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(notes) == 0 {
		return nil, nil, fmt.Errorf("%s holds no checkpoints", path)
	}
	return notes, gaps, nil
}

// checkGapEntries checks that the log records each gap where it begins:
// the entry at index Restored is the server's record of it
// (phivault.ActionAuditGap), naming the same sizes.
func checkGapEntries(ctx context.Context, s auditlog.Storage, gaps []auditlog.Gap) error {
	for _, g := range gaps {
		data, err := s.ReadAuditEntries(ctx, g.Restored, g.Restored+1)
		if err != nil {
			return fmt.Errorf("read the entry of the gap at %d: %w", g.Restored, err)
		}
		if len(data) != 1 || data[0] == nil {
			continue // the server has not started on the restored trail yet
		}
		e, err := auditlog.Decode(data[0])
		if err != nil || e.Action != phivault.ActionAuditGap || !strings.Contains(e.Decision, gapDecision(g)) {
			return fmt.Errorf("the witnesses hold a gap at entry %d (restored from snapshot %s) but the log does not record it there", g.Restored, g.Snapshot)
		}
	}
	return nil
}

// verifyExport checks an archived export against the last checkpoint in
// cpFile with the verifier key in vkFile, without a data folder.
func (c *auditCommand) verifyExport(exportFile, cpFile, vkFile string) error {
	if cpFile == "" || vkFile == "" {
		return errorWithHint("verifying an export needs -checkpoint and -verifier", "phivault audit verify -export seg.ndjson -checkpoint seg.checkpoint -verifier audit-verifier.pub")
	}
	verifier, err := readVerifier(vkFile)
	if err != nil {
		return err
	}
	notes, _, err := readCheckpoints(cpFile, verifier)
	if err != nil {
		return err
	}
	f, err := os.Open(exportFile)
	if err != nil {
		return err
	}
	defer f.Close()
	cp, n, err := auditlog.VerifyExport(f, notes[len(notes)-1], verifier, verifier.Name())
	if err != nil {
		return fmt.Errorf("verification FAILED: %w", err)
	}
	fmt.Fprintf(c.stdout, "audit export OK: %d entries included in the checkpoint of size %d, root %s\n", n, cp.N, cp.Hash)
	return nil
}

// export writes an NDJSON export of a time window to stdout.
func (c *auditCommand) export(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var folder auditFolder
	folder.register(fs)
	from := fs.String("from", "", "first time to include, RFC 3339 (default: the first entry)")
	to := fs.String("to", "", "time to stop before, RFC 3339 (default: after the last entry)")
	proofs := fs.Bool("proofs", false, "add inclusion proofs against the folder's last witnessed checkpoint")
	saveCP := fs.String("save-checkpoint", "", "with -proofs, write that checkpoint to this file")
	fs.Usage = func() { fmt.Fprint(c.stderr, auditUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := folder.dir("phivault audit export -data DIR -from 2025-01-01T00:00:00Z")
	if err != nil {
		return err
	}
	var opts auditlog.ExportOptions
	for _, t := range []struct {
		s   string
		dst *time.Time
	}{{*from, &opts.From}, {*to, &opts.To}} {
		if t.s == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.s)
		if err != nil {
			return errorWithHint("-from and -to take RFC 3339 times", "-from 2025-01-01T00:00:00Z")
		}
		*t.dst = v
	}
	if *proofs {
		last, cp, _, err := lastCheckpoint(d)
		if err != nil {
			return err
		}
		// Entries after the checkpoint have no proof yet: the next
		// checkpoint covers them.
		opts.ProofSize, opts.End = cp.N, cp.N
		if *saveCP != "" {
			if err := writeFileAtomic(*saveCP, append(append([]byte(nil), last...), '\n'), 0o644); err != nil {
				return err
			}
		}
	}
	db, err := openStore(ctx, d, folder.store)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := auditlog.Export(ctx, db, c.stdout, opts)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	fmt.Fprintf(c.stderr, "exported %d audit entries\n", n)
	return nil
}

// lastCheckpoint returns the last checkpoint in d's witness file, checked
// with d's verifier key, and the verifier.
func lastCheckpoint(d dataDir) ([]byte, auditlog.Checkpoint, note.Verifier, error) {
	verifier, err := readVerifier(d.auditVerifierKey())
	if err != nil {
		return nil, auditlog.Checkpoint{}, nil, err
	}
	notes, _, err := readCheckpoints(d.auditCheckpoints(), verifier)
	if err != nil {
		return nil, auditlog.Checkpoint{}, nil, err
	}
	last := notes[len(notes)-1]
	cp, err := auditlog.OpenCheckpoint(last, verifier, verifier.Name())
	if err != nil {
		return nil, cp, nil, err
	}
	return last, cp, verifier, nil
}

// archive writes a self-verifying archive of a range of entries.
func (c *auditCommand) archive(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit archive", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var folder auditFolder
	folder.register(fs)
	from := fs.Int64("from-index", 0, "first entry index to archive (the end of the previous archive)")
	to := fs.Int64("to-index", -1, "entry index to stop before")
	before := fs.String("before", "", "stop before the first entry at or after this RFC 3339 time")
	out := fs.String("out", "", "archive file to write")
	fs.Usage = func() { fmt.Fprint(c.stderr, auditUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	hint := "phivault audit archive -data DIR -before 2025-01-01T00:00:00Z -out 2024.archive"
	if *out == "" || (*to < 0) == (*before == "") || *from < 0 {
		return errorWithHint("archive needs -out and one of -before or -to-index", hint)
	}
	d, err := folder.dir(hint)
	if err != nil {
		return err
	}
	signed, cp, verifier, err := lastCheckpoint(d)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, d, folder.store)
	if err != nil {
		return err
	}
	defer db.Close()
	end := *to
	if *before != "" {
		t, err := time.Parse(time.RFC3339Nano, *before)
		if err != nil {
			return errorWithHint("-before takes an RFC 3339 time", hint)
		}
		if end, err = auditlog.IndexAt(ctx, db, *from, t); err != nil {
			return err
		}
		if end > cp.N {
			fmt.Fprintf(c.stderr, "the last checkpoint covers %d entries; archiving up to there\n", cp.N)
			end = cp.N
		}
	}
	if end < *from || end > cp.N {
		return errorWithHint(fmt.Sprintf("entries [%d, %d) are not within the last checkpoint's %d", *from, end, cp.N), hint)
	}
	n, err := writeStreamAtomic(*out, 0o600, func(w io.Writer) (int64, error) {
		return auditlog.WriteArchive(ctx, db, w, signed, verifier, *from, end)
	})
	if err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	fmt.Fprintf(c.stdout, "archived %d audit entries [%d, %d) against the checkpoint of size %d to %s\n", n, *from, end, cp.N, *out)
	return nil
}

// writeStreamAtomic writes what write produces to a temporary file next to
// path, syncs it and renames it to path, so path holds all or nothing.
func writeStreamAtomic(path string, perm os.FileMode, write func(io.Writer) (int64, error)) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriter(f)
	n, err := write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	return n, os.Rename(f.Name(), path)
}

// verifyArchive checks an archive file with a verifier key alone.
func (c *auditCommand) verifyArchive(args []string) error {
	fs := flag.NewFlagSet("audit verify-archive", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	vkFile := fs.String("verifier", "", "note verifier key (audit-verifier.pub)")
	fs.Usage = func() { fmt.Fprint(c.stderr, auditUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	file := fs.Arg(0)
	if err := fs.Parse(fs.Args()[min(1, fs.NArg()):]); err != nil { // flags after FILE
		return err
	}
	hint := "phivault audit verify-archive -verifier audit-verifier.pub 2024.archive"
	if file == "" || *vkFile == "" || fs.NArg() > 0 {
		return errorWithHint("verify-archive needs -verifier and one archive file", hint)
	}
	verifier, err := readVerifier(*vkFile)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h, cp, err := auditlog.VerifyArchive(bufio.NewReader(f), verifier)
	if err != nil {
		return fmt.Errorf("verification FAILED: %w", err)
	}
	fmt.Fprintf(c.stdout, "audit archive OK: entries [%d, %d), %d in all, included in the checkpoint of size %d, root %s\n", h.Start, h.End, h.End-h.Start, cp.N, cp.Hash)
	return nil
}
