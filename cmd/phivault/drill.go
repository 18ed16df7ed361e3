package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/drill"
	"github.com/phivault/phivault/incident/evidence"
	"github.com/phivault/phivault/internal/coredump"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
)

const drillUsage = `Usage: phivault drill COMMAND [flags]

A drill plays an attack and measures the response: whether an alert is
raised and how fast, whether the playbook's steps are carried out and the
attacker stopped, and whether the incident's evidence verifies. By default
each scenario is played against a throw-away vault (a new data folder in a
temporary directory with a synthetic hospital, served in-process on
127.0.0.1 and deleted after); -live plays against a running server with
drill accounts (usernames starting "drill.") and decoy patients only.
Reports are appended to DATA/drills/history.jsonl.

Commands:
  run SCENARIO|all   play a scenario, or every one; print the report
  list               list the scenarios and what each expects
  history            show past drills

Scenarios: ` + "snooping, stolen-credentials, bulk-export, mass-update, lost-device, compromised-key" + `

"phivault serve -drill-every 24h" plays every scenario, isolated, on a
ticker and keeps the history (see "phivault serve -h").

Run "phivault drill COMMAND -h" for a command's flags.
`

type drillCommand struct {
	stdout, stderr io.Writer
}

func (c *drillCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "drill", drillUsage, "phivault drill run all", args, subcommands{
		"run":     c.run,
		"list":    c.list,
		"history": c.history,
	})
}

const drillRunUsage = `Usage: phivault drill run [flags] SCENARIO|all

Plays SCENARIO (or every scenario) and prints its report; fails if a
drill failed. Isolated by default. With -live URL it plays against that
server: the officer's token (a security admin's) comes from PHIVAULT_TOKEN
or PHIVAULT_TOKEN_FILE, the drill accounts from -accounts, a JSON list of
{"username", "password", "totp_secret"} whose usernames all start with
"drill." (any other is refused), and only the server's honeytoken patients
are read. Scenarios that would harm a live server (stolen-credentials,
compromised-key) are skipped there; each drill account a live drill
suspended is set active again after it, and its incidents closed.

Flags:
`

func (c *drillCommand) run(ctx context.Context, args []string) error {
	fs := flagSet(c.stderr, "drill run", drillRunUsage)
	data := fs.String("data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder whose drills/ keeps the history (env PHIVAULT_DATA)")
	live := fs.String("live", "", "FHIR base URL of a running server to drill, e.g. https://vault.example.org/fhir")
	cacert := fs.String("cacert", os.Getenv("PHIVAULT_CACERT"), "with -live: PEM file of the CA to trust (env PHIVAULT_CACERT)")
	accounts := fs.String("accounts", "", "with -live: JSON file of the drill accounts")
	app := fs.String("app", demoAppID, "with -live: the public OAuth client drill accounts sign in through")
	redirect := fs.String("redirect", demoAppRedirect, "with -live: that client's redirect URI")
	key := fs.String("key", "", "with -live: the server's audit verifier key (its data folder's audit-verifier.pub), to verify the evidence archives")
	asJSON := fs.Bool("json", false, "print the reports as JSON lines")
	timeout := fs.Duration("timeout", drill.DefaultTimeout, "how long to wait for detection, and for containment")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errorWithHint("name one scenario, or all", "phivault drill run all")
	}
	scenarios, err := pickScenarios(fs.Arg(0))
	if err != nil {
		return err
	}
	if err := coredump.Disable(); err != nil { // a throw-away vault's keys are keys too
		return err
	}
	opts := drill.Options{Timeout: *timeout}
	var reports []*drill.Report
	if *live != "" {
		if *key != "" {
			v, err := readVerifier(*key)
			if err != nil {
				return err
			}
			opts.Evidence = drill.HTTPEvidence(verifyEvidence(v))
		}
		target, err := liveTarget(ctx, *live, *cacert, *accounts, *app, *redirect)
		if err != nil {
			return err
		}
		for _, s := range scenarios {
			rep, err := drill.Run(ctx, target, s, opts)
			if err != nil {
				return errorWithHint(err.Error(), "phivault drill run -h")
			}
			reports = append(reports, rep)
		}
	} else if reports, err = runIsolated(ctx, scenarios, opts); err != nil {
		return err
	}
	return c.finish(reports, *data, *asJSON)
}

// finish prints the reports, keeps them in the history and fails if any
// drill failed.
func (c *drillCommand) finish(reports []*drill.Report, data string, asJSON bool) error {
	failed := 0
	if st, err := os.Stat(data); err != nil || !st.IsDir() {
		fmt.Fprintf(c.stderr, "History not kept: %s is not a folder (give -data).\n", data)
		data = ""
	}
	for _, r := range reports {
		if asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintf(c.stdout, "%s\n", b)
		} else {
			r.Text(c.stdout)
		}
		if !r.Pass {
			failed++
		}
		if data != "" {
			if err := drill.NewHistory(data).Append(r); err != nil {
				return err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d drills failed", failed, len(reports))
	}
	return nil
}

func pickScenarios(name string) ([]*drill.Scenario, error) {
	if name == "all" {
		return drill.Scenarios(), nil
	}
	s, ok := drill.Lookup(name)
	if !ok {
		return nil, errorWithHint("no scenario "+name+"; scenarios: "+strings.Join(drill.Names(), ", "), "phivault drill list")
	}
	return []*drill.Scenario{s}, nil
}

// flagSet is a drill subcommand's flag set, with its usage text.
func flagSet(stderr io.Writer, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	return fs
}

func (c *drillCommand) list(ctx context.Context, args []string) error {
	fs := flagSet(c.stderr, "drill list", "Usage: phivault drill list\n\nLists the scenarios and what each expects.\n\nFlags:\n")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range drill.Scenarios() {
		fmt.Fprintf(c.stdout, "%s\n  %s\n", s.Name, s.Description)
		if len(s.Rules) > 0 {
			fmt.Fprintf(c.stdout, "  detected by: %s\n", strings.Join(s.Rules, ", "))
		}
		if len(s.Playbooks) > 0 {
			fmt.Fprintf(c.stdout, "  playbooks:   %s\n", strings.Join(s.Playbooks, ", "))
		}
		fmt.Fprintf(c.stdout, "  contained:   %s\n", s.Containment)
		if len(s.Required) > 0 {
			fmt.Fprintf(c.stdout, "  required:    %s\n", strings.Join(s.Required, ", "))
		}
		if len(s.Expected) > 0 {
			fmt.Fprintf(c.stdout, "  expected:    %s\n", strings.Join(s.Expected, ", "))
		}
		if s.IsolatedOnly != "" {
			fmt.Fprintf(c.stdout, "  isolated only: %s\n", s.IsolatedOnly)
		}
	}
	return nil
}

func (c *drillCommand) history(ctx context.Context, args []string) error {
	fs := flagSet(c.stderr, "drill history", "Usage: phivault drill history [-data DIR] [-json] [-n N]\n\nShows past drills, newest last.\n\nFlags:\n")
	data := fs.String("data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder (env PHIVAULT_DATA)")
	asJSON := fs.Bool("json", false, "print the reports as JSON lines")
	n := fs.Int("n", 50, "show the last N drills (0: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reports, err := drill.NewHistory(*data).Read()
	if err != nil {
		return err
	}
	if *n > 0 && len(reports) > *n {
		reports = reports[len(reports)-*n:]
	}
	if *asJSON {
		for _, r := range reports {
			b, _ := json.Marshal(r)
			fmt.Fprintf(c.stdout, "%s\n", b)
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tSCENARIO\tWHERE\tRESULT\tDETECT\tCONTAIN\tFAILURES")
	for _, r := range reports {
		where, result := "isolated", "pass"
		if r.Live {
			where = "live"
		}
		switch {
		case r.Skipped != "":
			result = "skipped"
		case !r.Pass:
			result = "FAIL"
		}
		ms := func(v int64) string {
			if v < 0 {
				return "never"
			}
			return (time.Duration(v) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Started.Format(time.RFC3339), r.Scenario, where, result,
			ms(r.DetectMS), ms(r.ContainMS), strings.Join(r.Failures, "; "))
	}
	return tw.Flush()
}

// liveTarget builds the target of a live drill: the server at base, the
// officer's token from PHIVAULT_TOKEN[_FILE], the drill accounts of the
// file, the server's decoys.
func liveTarget(ctx context.Context, base, cacert, accountsFile, app, redirect string) (*drill.Target, error) {
	if accountsFile == "" {
		return nil, errorWithHint("-live needs -accounts, a JSON file of drill accounts", "phivault drill run -h")
	}
	b, err := os.ReadFile(accountsFile)
	if err != nil {
		return nil, err
	}
	var accounts []drill.Account
	if err := json.Unmarshal(b, &accounts); err != nil {
		return nil, fmt.Errorf("-accounts %s: not a JSON list of accounts", accountsFile)
	}
	cf := clientFlags{url: base, cacert: cacert}
	c, err := cf.client(4)
	if err != nil {
		return nil, err
	}
	t := &drill.Target{Base: c.base, HTTP: c.http, Token: c.token, App: app, Redirect: redirect, Accounts: accounts, Live: true}
	if t.Decoys, err = decoys(ctx, c); err != nil {
		return nil, err
	}
	return t, nil
}

// decoys lists the server's honeytoken patients.
func decoys(ctx context.Context, c *apiClient) ([]string, error) {
	out, err := c.security(ctx, http.MethodGet, "honeytokens", "", nil)
	if err != nil {
		return nil, err
	}
	var res struct{ Honeytokens []string }
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("read the honeytokens: %w", err)
	}
	return res.Honeytokens, nil
}

// Throw-away vaults: sizes of the synthetic hospital and the decoys.
const (
	drillPatients = 2
	drillDecoys   = 2
)

// runIsolated plays the scenarios against a throw-away vault: a new data
// folder in a temporary directory, the demo's synthetic hospital, two
// decoys and a drill nurse for each scenario, so that no drill's alerts
// and incidents (which are per user) meet another's; served in-process
// on 127.0.0.1 and deleted after. compromised-key, whose key rotation
// is the vault's, is played last.
func runIsolated(ctx context.Context, scenarios []*drill.Scenario, opts drill.Options) ([]*drill.Report, error) {
	dir, err := os.MkdirTemp("", "phivault-drill-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	t, stop, err := openDrillVault(ctx, dir, len(scenarios))
	if err != nil {
		return nil, fmt.Errorf("throw-away vault: %w", err)
	}
	defer stop()
	if opts.Evidence == nil {
		v, err := readVerifier(dataDir(filepath.Join(dir, "data")).auditVerifierKey())
		if err != nil {
			return nil, err
		}
		opts.Evidence = drill.HTTPEvidence(verifyEvidence(v))
	}
	accounts := t.Accounts
	var reports []*drill.Report
	for i, s := range scenarios {
		t.Accounts = accounts[i : i+1]
		rep, err := drill.Run(ctx, t, s, opts)
		if err != nil {
			return nil, fmt.Errorf("drill %s: %w", s.Name, err)
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

// openDrillVault makes and serves a throw-away vault in dir with n drill
// accounts.
func openDrillVault(ctx context.Context, dir string, n int) (*drill.Target, func(), error) {
	// Loopback is a trusted proxy: the stolen-credentials drill signs in
	// "from" a far network with X-Forwarded-For.
	cfg := Config{Data: dataDir(filepath.Join(dir, "data")), Addr: "127.0.0.1:0", TrustedProxies: "127.0.0.1/32"}
	// Alerts page to a file, so that the playbooks' notify steps have a
	// notifier to deliver to.
	cfg.Detect.OCSFFile = filepath.Join(dir, "alerts.ocsf.jsonl")
	if err := prepareDemoData(ctx, &cfg, io.Discard); err != nil {
		return nil, nil, err
	}
	token, err := newAdminToken(cfg.Data)
	if err != nil {
		return nil, nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "phivault.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, err
	}
	a, err := openApp(ctx, cfg, slog.New(slog.NewJSONHandler(logFile, nil)))
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	stop := func() { a.Close(); logFile.Close() }
	accounts, err := a.drillAccounts(ctx, n)
	if err != nil {
		stop()
		return nil, nil, err
	}
	if err := a.listen(ctx); err != nil {
		stop()
		return nil, nil, err
	}
	client, err := trustingClient(cfg.Data.certFile())
	if err != nil {
		stop()
		return nil, nil, err
	}
	c := &apiClient{base: a.server.URL() + "/fhir", token: token, http: client}
	body, _ := json.Marshal(map[string]int{"count": drillDecoys})
	out, err := c.security(ctx, http.MethodPost, "honeytokens", "application/json", bytes.NewReader(body))
	var made struct{ Honeytokens []string }
	if err == nil {
		err = json.Unmarshal(out, &made)
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("make decoys: %w", err)
	}
	return &drill.Target{Base: c.base, HTTP: client, Token: token, App: demoAppID, Redirect: demoAppRedirect,
		Accounts: accounts, Decoys: made.Honeytokens}, stop, nil
}

// drillAccounts loads the synthetic hospital and the demo's people and
// app into a throw-away vault, and makes n drill nurses: of the demo
// patient's department, with no care relationship.
func (a *app) drillAccounts(ctx context.Context, n int) ([]drill.Account, error) {
	loader := phivault.WithPrincipal(ctx, access.BootstrapPrincipal("drill"))
	if err := loadHospital(loader, a.records, drillPatients, 1, io.Discard); err != nil {
		return nil, err
	}
	if _, err := a.demoAccounts(ctx, a.cfg.Data.path("demo-accounts.json")); err != nil {
		return nil, err
	}
	_, _, dept, err := demoPatient(loader, a.records)
	if err != nil {
		return nil, err
	}
	var accounts []drill.Account
	for i := range max(n, 1) {
		p, err := a.newSignInAccount(loader, admin.UserCreate{Username: fmt.Sprintf("%snurse-%d", drill.AccountPrefix, i+1),
			Roles: []string{"nurse"}, Department: dept, TrainingValidUntil: time.Now().AddDate(1, 0, 0).Format(time.DateOnly)}, "drill")
		if err != nil {
			return nil, err
		}
		accounts = append(accounts, drill.Account{Username: p.Username, Password: p.Password, TOTP: p.TOTP})
	}
	return accounts, nil
}

// trustingClient is an HTTPS client that trusts the certificate in file.
func trustingClient(file string) (*http.Client, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("the throw-away vault's certificate is not PEM")
	}
	return &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, MaxIdleConnsPerHost: 4}}, nil
}

// registerDrillEvery registers serve's -drill-every flag, whose default is
// PHIVAULT_DRILL_EVERY, and returns the function that reads it after
// parsing: 0 for none.
func registerDrillEvery(fs *flag.FlagSet) func() (time.Duration, error) {
	every := fs.String("drill-every", os.Getenv("PHIVAULT_DRILL_EVERY"),
		"play every drill against a throw-away vault this often, e.g. 24h; history in DATA/drills (see phivault drill; env PHIVAULT_DRILL_EVERY)")
	return func() (time.Duration, error) {
		if *every == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(*every)
		if err != nil || d < time.Minute {
			return 0, errorWithHint("-drill-every must be a duration of a minute or more", "phivault serve -drill-every 24h")
		}
		return d, nil
	}
}

// drillSchedule plays every scenario, isolated, every interval until ctx
// ends, keeping the history in the data folder. A failed drill is logged
// (scenario and reasons: no PHI) and counted in phivault_drills_total.
type drillSchedule struct {
	every     time.Duration
	data      string
	logger    *slog.Logger
	runs      *prometheus.CounterVec
	scenarios []*drill.Scenario // default every one
	opts      drill.Options
}

func newDrillSchedule(every time.Duration, data string, logger *slog.Logger, reg prometheus.Registerer) *drillSchedule {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phivault_drills_total",
		Help: "Scheduled drills played, by scenario and result (pass, fail, error)."}, []string{"scenario", "result"})
	reg.MustRegister(runs)
	return &drillSchedule{every: every, data: data, logger: logger, runs: runs, scenarios: drill.Scenarios()}
}

func (d *drillSchedule) run(ctx context.Context) {
	tick := time.NewTicker(d.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		reports, err := runIsolated(ctx, d.scenarios, d.opts)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.runs.WithLabelValues("all", "error").Inc()
			d.logger.Error("drills could not be played", "error", err.Error())
			continue
		}
		for _, rep := range reports {
			switch {
			case rep.Pass:
				d.runs.WithLabelValues(rep.Scenario, "pass").Inc()
			default:
				d.runs.WithLabelValues(rep.Scenario, "fail").Inc()
				d.logger.Error("drill failed", "scenario", rep.Scenario, "failures", rep.Failures)
			}
			if err := drill.NewHistory(d.data).Append(rep); err != nil {
				d.logger.Error("drill history not kept", "error", err.Error())
			}
		}
	}
}

// verifyEvidence returns the check of an evidence archive against the
// audit verifier key v, as phivault audit verify-evidence does.
func verifyEvidence(v note.Verifier) func(context.Context, []byte) error {
	return func(_ context.Context, archive []byte) error {
		_, err := evidence.Verify(bytes.NewReader(archive), v)
		return err
	}
}
