package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
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
	cfg := simulate.Config{Seed: *seed, Days: *days, Staff: *staff, Patients: *patients}
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
	// The engine is serve's (simulate.Options: every rule, the learned
	// scoring, the simulated hospital's change windows).
	rep, err := simulate.Evaluate(ctx, w, simulate.Options{Threshold: cmp.Or(*threshold, -1), FalsePositives: max(*fps, 0)})
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printSimulation(c.stdout, rep)
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
	check(rep.MedianTTD >= 0 && rep.MedianTTD < 2*time.Second, "median time to detect < 2s:")
	return nil
}
