package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	stdmaps "maps" // package main has a func maps
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/simulate"
)

// simulateCommand runs a simulated hospital through the detectors.
type simulateCommand struct {
	stdout, stderr io.Writer
}

const simulateUsage = `Usage: phivault simulate [flags]

Simulates a hospital for some days (staff on shifts, admissions, clinics,
emergencies, billing, sign-ins), injects labelled scenarios (snooping,
stolen accounts, exports, decoys touched, ...), runs it all through the
detectors in process, in simulated live mode, and prints, per detector,
precision, recall and median time to detect, then the overall ROC AUC of
the risk score, all at the user-patient pair level. The same seed gives
the same hospital. Nothing leaves the process; no server is needed.

With -ingest URL, the hospital is sent instead to a running server's
ingestion API (POST /security/ingest/..., with the token of
PHIVAULT_TOKEN or PHIVAULT_TOKEN_FILE, as "phivault detect ingest"), and
the server's alerts about the simulated system are scored the same way.
Through a server, time to detect is not measured (alerts carry the
server's clock, events the simulated one): the latency of the detector
is printed instead. Role grants, policy reloads, key operations, seal
and unseal cannot be sent in an access log: their rules' targets are
reported as not measurable and left out of precision, recall and AUC.
Use a server, or a -system, of its own per run.

With -out DIR (a new or empty folder), the workload is also written
there in the ingestion formats, one file per request in sending order
(0001-staff.ndjson, ...), and its ground truth as truth.json. The
rosters hold made-up names, addresses and phones.

Scenarios: %s

Flags:
`

func (c *simulateCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	seed := fs.Uint64("seed", 1, "random seed: the same seed simulates the same hospital")
	days := fs.Int("days", simulate.DefaultDays, "simulated days (scenarios run in the last third)")
	staff := fs.Int("staff", simulate.DefaultStaff, "staff accounts (at least 60)")
	patients := fs.Int("patients", simulate.DefaultPatients, "patients (at least 300)")
	scenarios := fs.String("scenarios", "all", `comma-separated scenarios to inject, "all" or "none"`)
	threshold := fs.Int("threshold", detect.DefaultPageScore, "alert score below which an alert does not count as raised (default: the score from which serve pages)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fps := fs.Int("fp", 0, "also list up to this many false alarms per detector, for tuning")
	system := fs.String("system", simulate.DefaultSystem, "name of the simulated system: users and patients are SYSTEM:id")
	out := fs.String("out", "", "also write the workload in the ingestion formats into this folder")
	var cf clientFlags
	fs.StringVar(&cf.url, "ingest", "", "send the workload to the server at this URL and score its alerts")
	fs.StringVar(&cf.cacert, "cacert", os.Getenv("PHIVAULT_CACERT"), "with -ingest: PEM file of the CA to trust, as for detect ingest (env PHIVAULT_CACERT)")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, simulateUsage, strings.Join(simulate.ScenarioNames(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errorWithHint("unexpected argument "+fs.Arg(0), "phivault simulate -h")
	}
	cfg := simulate.Config{Seed: *seed, Days: *days, Staff: *staff, Patients: *patients, System: *system}
	switch *scenarios {
	case "all":
	case "none", "":
		cfg.Scenarios = []string{}
	default:
		for _, s := range strings.Split(*scenarios, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cfg.Scenarios = append(cfg.Scenarios, s)
			}
		}
	}
	if *days < 2 || *days > 366 {
		return errorWithHint(fmt.Sprintf("-days %d out of range", *days), "use 2 to 366 days")
	}
	if *staff > 100000 || *patients > 10000000 {
		return errorWithHint("-staff or -patients too large", "use at most 100000 staff and 10000000 patients")
	}
	w, err := simulate.Generate(ctx, cfg)
	if err != nil {
		return errorWithHint(err.Error(), "phivault simulate -h lists the scenarios")
	}
	if *out != "" {
		x, err := w.Export(0)
		if err != nil {
			return err
		}
		if err := x.WriteDir(*out, w.Truth); err != nil {
			return err
		}
	}
	// The engine is serve's (simulate.Options: every rule, the learned
	// scoring, the simulated hospital's change windows).
	opts := simulate.Options{Threshold: cmp.Or(*threshold, -1), FalsePositives: max(*fps, 0)}
	var rep *simulate.Report
	if cf.url != "" {
		c, err := cf.client(1)
		if err != nil {
			return err
		}
		rep, err = simulate.EvaluateServer(ctx, w, securityServer{c}, simulate.ServerOptions{Options: opts})
		if err != nil {
			return err // "simulate: …" already
		}
	} else if rep, err = simulate.Evaluate(ctx, w, opts); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if err := printSimulation(c.stdout, rep); err != nil {
		return err
	}
	printThrough(c.stdout, rep)
	return nil
}

// printSimulation prints rep as tables.
func printSimulation(out io.Writer, rep *simulate.Report) error {
	fmt.Fprintf(out, "simulated %d days: %d staff, %d patients, %d events, %d scenarios (seed %d); %d alerts in %s\n\n",
		rep.Days, rep.Staff, rep.Patients, rep.Events, len(rep.Scenarios), rep.Seed, rep.Alerts, rep.Elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DETECTOR\tALERTS\tALERT PREC\tPAIRS\tPRECISION\tRECALL\tTARGETS\tNEAR-MISS FP\tMEDIAN TTD")
	for _, d := range rep.Detectors {
		name := d.Rule
		if !d.Present {
			name += " (absent)"
		}
		if d.NotMeasurable {
			name += " (not measurable)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%d\t%d\t%s\n", name, d.Alerts, simulate.FormatRatio(d.AlertPrecision), d.Pairs,
			simulate.FormatRatio(d.Precision), simulate.FormatRatio(d.Recall), d.Targets, d.NearMisses, simulate.FormatDuration(d.MedianTTD))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tTARGETS\tCAUGHT\tRECALL\tTTD\tLOOK-ALIKES ALERTED")
	for _, s := range rep.ByScenario {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d/%d\n", s.Name, s.Targets, s.Caught, simulate.FormatRatio(s.Recall),
			simulate.FormatDuration(s.TTD), s.NearMissesAlerted, s.NearMisses)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\noverall: precision %s, recall %s, median time to detect %s, ROC AUC %s over %d pairs\n",
		simulate.FormatRatio(rep.Precision), simulate.FormatRatio(rep.Recall), simulate.FormatDuration(rep.MedianTTD),
		simulate.FormatRatio(rep.AUC), rep.Pairs)
	if len(rep.FalsePositives) > 0 {
		fmt.Fprintln(out, "\nfalse alarms (look-alikes marked *):")
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, f := range rep.FalsePositives {
			mark := ""
			if f.NearMiss {
				mark = "*"
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", mark, f.Rule, f.User, f.Role, f.Department, f.First.Format("Mon 02 Jan 15:04"), f.Why)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	check := func(ok bool, what string) {
		mark := "MISSED"
		if ok {
			mark = "met"
		}
		fmt.Fprintf(out, "target %-38s %s\n", what, mark)
	}
	check(rep.HoneytokenRecall == 1, "honeytoken recall 1.0:")
	check(rep.AUC >= 0.95, "ROC AUC ≥ 0.95:")
	check(rep.Precision >= 0.8, "precision ≥ 0.8:")
	if rep.Through == "" {
		check(rep.MedianTTD >= 0 && rep.MedianTTD < 2*time.Second, "median time to detect < 2s:")
	}
	return nil
}

// printThrough says how a run through a server differs from one in
// process.
func printThrough(out io.Writer, rep *simulate.Report) {
	if rep.Through == "" {
		return
	}
	var skipped []string
	for _, a := range slices.Sorted(stdmaps.Keys(rep.Skipped)) {
		skipped = append(skipped, fmt.Sprintf("%s %d", a, rep.Skipped[a]))
	}
	fmt.Fprintf(out, "through the server's ingestion API: the detector caught up %s after the last request; time to detect not measured (server clock)\n",
		rep.Latency.Round(time.Millisecond))
	if len(skipped) > 0 {
		fmt.Fprintf(out, "events the access log format cannot carry, not sent: %s\n", strings.Join(skipped, ", "))
	}
	if nm := rep.NotMeasurable; nm != nil {
		fmt.Fprintf(out, "not measurable through ingestion (%s watch only phivault's own trail): %d scenarios (%s), %d labels, %d targets, %d pairs and %d alerts left out of precision, recall and AUC\n",
			strings.Join(nm.Rules, ", "), len(nm.Scenarios), strings.Join(nm.Scenarios, ", "), nm.Labels, nm.Targets, nm.Pairs, nm.Alerts)
	}
}

// securityServer is simulate.Server over a server's security API.
type securityServer struct{ c *apiClient }

func (s securityServer) Ingest(ctx context.Context, kind string, body []byte) (*detect.IngestReport, error) {
	b, err := s.c.security(ctx, http.MethodPost, "ingest/"+kind, detect.ContentNDJSON, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	var rep detect.IngestReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("ingest answer: %w", err)
	}
	return &rep, nil
}

func (s securityServer) Processed(ctx context.Context) (int64, error) {
	b, err := s.c.security(ctx, http.MethodGet, "detector", "", nil)
	if err != nil {
		return 0, err
	}
	var st detect.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, fmt.Errorf("detector status: %w", err)
	}
	return st.Cursor.Ingest, nil
}

func (s securityServer) Alerts(ctx context.Context, since time.Time) ([]*detect.Alert, error) {
	path := "alerts?" + url.Values{"since": {since.UTC().Format(time.RFC3339)}, "limit": {strconv.Itoa(detect.MaxAlertPage)}}.Encode()
	var out []*detect.Alert
	for path != "" {
		b, err := s.c.security(ctx, http.MethodGet, path, "", nil)
		if err != nil {
			return nil, err
		}
		var page detect.AlertPage
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, fmt.Errorf("alerts page: %w", err)
		}
		for _, a := range page.Alerts {
			out = append(out, a.Alert())
		}
		path = strings.TrimPrefix(page.Next, "/security/")
	}
	return out, nil
}
