package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/api"
	"github.com/phivault/phivault/internal/coredump"
	"github.com/phivault/phivault/synth"
)

// demoData is the demo's data folder unless -data or PHIVAULT_DATA says
// otherwise.
const demoData = "phivault-demo"

// demoCommand starts a working vault with a synthetic hospital in one step.
type demoCommand struct {
	stdout, stderr io.Writer
}

const demoUsage = `Usage: phivault demo [flags]

Starts a demo vault: creates the data folder on first run (keys, a
self-signed certificate, an admin token), loads a synthetic hospital made by
phivault's own generator (no real person's data), serves HTTPS on localhost,
and prints how to make a first request and how to read its Prometheus
metrics at /metrics. Each run prints a fresh admin token, and a fresh
metrics scrape token unless PHIVAULT_METRICS_TOKEN or
PHIVAULT_METRICS_TOKEN_FILE gives one (see "phivault serve -h").

The demo keeps its key-file passphrase in the data folder so it can restart
by itself, and names its audit witness file itself on every start: a folder
next to the data folder (<data>-witness/), unless -audit-witness-file names
another. That is for demos only: a real vault keeps the passphrase apart,
and the witness file on another disk or host.

Flags:
`

func (c *demoCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cfg Config
	cfg.register(fs)
	if _, ok := os.LookupEnv("PHIVAULT_DATA"); !ok {
		// The demo has its own folder, and -h says so.
		data := fs.Lookup("data")
		data.DefValue = demoData
		data.Value.Set(demoData)
	}
	patients := fs.Int("patients", synth.DefaultPatients, "patients in the synthetic hospital")
	seed := fs.Uint64("seed", 1, "generator seed")
	fs.Usage = func() { fmt.Fprint(c.stderr, demoUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.resolve(); err != nil {
		return err
	}
	if err := coredump.Disable(); err != nil { // keep keys out of core files
		return err
	}
	if err := prepareDemoData(ctx, &cfg, c.stderr); err != nil {
		return err
	}
	token, err := newAdminToken(cfg.Data)
	if err != nil {
		return err
	}
	// /metrics is served as by serve, to the scrape token given in
	// PHIVAULT_METRICS_TOKEN[_FILE] or else to a new one, printed below.
	metricsShown := "YOUR-METRICS-TOKEN"
	if cfg.MetricsToken == "" {
		if cfg.MetricsToken, _, err = api.NewToken(rand.Reader); err != nil {
			return err
		}
		metricsShown = cfg.MetricsToken
	}
	logFile, err := os.OpenFile(cfg.Data.path("phivault.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	a, err := openApp(ctx, cfg, slog.New(slog.NewJSONHandler(logFile, nil)))
	if err != nil {
		return err
	}
	defer a.Close()
	// The demo loads as the bootstrap system client, as "phivault import"
	// does with the admin token.
	loader := phivault.WithPrincipal(ctx, access.BootstrapPrincipal("demo"))
	if err := loadHospital(loader, a.records, *patients, *seed, c.stderr); err != nil {
		return err
	}
	people, err := a.demoAccounts(ctx, cfg.Data.path("demo-accounts.json"))
	if err != nil {
		return err
	}
	if err := a.listen(ctx); err != nil {
		return errorWithHint(err.Error(), "another -addr, e.g. phivault demo -addr localhost:9443")
	}
	base := a.server.URL() + "/fhir"
	fmt.Fprintf(c.stdout, `
phivault demo is running at %[1]s (logs: %[4]s)

Admin token (new on every demo start; only its hash is stored):
  %[2]s

Try:
  export PHIVAULT_TOKEN=%[2]s
  curl --cacert %[3]s -H "Authorization: Bearer $PHIVAULT_TOKEN" '%[1]s/Patient?_count=2'
  curl --cacert %[3]s '%[1]s/metadata'

Console (officers and staff sign in there with the people below; see docs/console.md):
  %[9]s/console/

Metrics (Prometheus; a new scrape token on every demo start, unless
PHIVAULT_METRICS_TOKEN or PHIVAULT_METRICS_TOKEN_FILE gives one):
  curl --cacert %[3]s -H "Authorization: Bearer %[8]s" '%[9]s/metrics'

People who sign in with the SMART authorization code flow (password and
TOTP code; app client_id %[6]s, redirect %[7]s; see docs/identity.md):
`, base, token, cfg.Data.certFile(), cfg.Data.path("phivault.log"), cfg.Data, demoAppID, demoAppRedirect, metricsShown, a.server.URL())
	printDemoPeople(c.stdout, people)
	fmt.Fprintf(c.stdout, `
Stop with Ctrl-C. Start again with the same command: the data stays in %s.
`, cfg.Data)
	<-ctx.Done()
	return nil
}

// prepareDemoData makes cfg's data folder a demo vault on first use (a key
// file whose passphrase is kept in the folder, an audit witness file next
// to it) and fills in cfg's keyring, witness file and passphrase, so that
// openApp can open it. Drills make their throw-away vaults with it too.
func prepareDemoData(ctx context.Context, cfg *Config, progress io.Writer) error {
	cfg.Keyring = KeyringConfig{Kind: keyringFile} // the demo keeps its own key file
	passPath := cfg.Data.path("demo-passphrase")
	if cfg.Audit.WitnessFile == "" {
		// The demo names its own outside witness file on every start, as
		// an operator names theirs to serve: not from the data folder.
		cfg.Audit.WitnessFile = demoWitnessFile(cfg.Data)
	}
	if !cfg.Data.initialized() {
		res, err := initData(ctx, cfg.Data, KeyringConfig{Kind: keyringFile}, cfg.Store, "", nil, cfg.Audit.WitnessFile)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(passPath, []byte(res.passphrase), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(progress, "Created demo data folder %s.\n", cfg.Data)
		fmt.Fprintf(progress, "Audit checkpoints are also written to %s, a folder next to the data folder;\na real vault names one on another disk or host (phivault init -audit-witness-file).\n", res.witness)
	}
	pass, err := os.ReadFile(passPath)
	if err != nil {
		return errorWithHint(fmt.Sprintf("%s was not made by demo (no demo-passphrase)", cfg.Data), "phivault serve -data "+string(cfg.Data))
	}
	cfg.Passphrase = string(pass)
	return nil
}

// loadHospital loads the synthetic hospital unless patients are there already.
func loadHospital(ctx context.Context, records phivault.RecordService, patients int, seed uint64, progress io.Writer) error {
	q := &phivault.Query{Type: "Patient", Summary: "count"}
	res, err := records.Search(ctx, q)
	if err != nil {
		return fmt.Errorf("count patients: %w", err)
	}
	if res.Total > 0 {
		fmt.Fprintf(progress, "Demo data present: %d patients.\n", res.Total)
		return nil
	}
	start := time.Now()
	// The first bundle holds the shared Practitioners and Organizations that
	// the patient bundles reference conditionally; load it first, then the
	// patients four at a time so that their commits are grouped.
	var (
		n    atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, 1)
		work = make(chan []byte)
	)
	load := func(bundle []byte) {
		if _, err := records.Bundle(ctx, bundle, ""); err != nil {
			select {
			case errs <- fmt.Errorf("load synthetic bundle: %w", err):
			default:
			}
			return
		}
		done := n.Add(1)
		fmt.Fprintf(progress, "\rLoading synthetic hospital: %s %d/%d bundles", bar(done, int64(patients+1)), done, patients+1)
	}
	first := true
	for bundle, err := range synth.Bundles(synth.Options{Seed: seed, Patients: patients}) {
		if err != nil {
			return err
		}
		if first {
			load(bundle)
			first = false
			for range 4 {
				wg.Go(func() {
					for b := range work {
						load(b)
					}
				})
			}
			continue
		}
		work <- bundle
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Fprintf(progress, "\nLoaded %d bundles in %s.\n", n.Load(), time.Since(start).Round(time.Millisecond))
	return nil
}

// demoWitnessFile is the demo's audit witness file: in a folder next to the
// data folder d, "<d>-witness/audit-checkpoints.log", so that the demo
// starts with no questions.
func demoWitnessFile(d dataDir) string {
	dir := filepath.Clean(string(d))
	return filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-witness", "audit-checkpoints.log")
}
