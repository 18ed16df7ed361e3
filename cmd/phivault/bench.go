package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault/detect"
)

// benchCommand is a load generator against a running server.
type benchCommand struct {
	stdout, stderr io.Writer
}

const benchUsage = `Usage: phivault bench [flags]

Puts load on a running phivault server and reports requests/s and latency
percentiles. It first creates its own small data set (patients with
observations, tagged so they are easy to tell apart), then runs one mode:

  console the console's pages as -user (PHIVAULT_PASSWORD and
          PHIVAULT_TOTP_SECRET in the environment): it signs in, finds the
          pages the navigation links and the first detail page of each
          list, loads each -n times one after another, and reports the
          server's time (Server-Timing) and the whole answer's, p50, p95
          and max. It creates no data and needs no token.
  read    GET Patient/{id}
  search  Patient?identifier= and Observation?patient=&code=, alternating
  create  POST Observation
  mixed   70% read, 20% search, 10% create
  ingest  POST /security/ingest/access: -events access lines of a generated
          log (-log sim: the simulator's hospital; -log random: random users
          on random patients, which makes nearly every user an alert) in
          requests of -batch lines, -c at a time (default 1); it reports each
          request's events/s and how long after its answer the detectors had
          examined its events (GET /security/detector). It creates no data.

Flags:
`

// benchCodes are the LOINC codes of the benchmark's observations.
var benchCodes = []string{"8867-4", "8480-6", "8462-4", "29463-7", "8302-2"}

// benchTarget is what the load refers to: created patient ids and their
// identifier values.
type benchTarget struct {
	patients    []string
	identifiers []string
}

func (c *benchCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	mode := fs.String("mode", "read", "read, search, create, mixed, ingest or console")
	user := fs.String("user", "", "console: the username to sign in as")
	pageLoads := fs.Int("n", 50, "console: loads of each page")
	var extraPages pathList
	fs.Var(&extraPages, "page", "console: also load this page (a path, e.g. /console/access/ID; repeatable)")
	var searches pathList
	fs.Var(&searches, "search", "console: also search the access report's patients by this name (a privacy officer; repeatable)")
	conc := fs.Int("c", 16, "concurrent connections (ingest: requests in flight, default 1)")
	dur := fs.Duration("d", 10*time.Second, "how long to run (at most 10m; not ingest)")
	patients := fs.Int("patients", 100, "patients to create for the run (ingest -log random: patients of the log, default 10000)")
	seed := fs.Uint64("seed", 1, "random seed")
	ingest := benchIngestOptions{}
	fs.StringVar(&ingest.log, "log", benchLogSim, "ingest: the access log, sim or random")
	fs.IntVar(&ingest.events, "events", 1_000_000, "ingest: access lines to send in all")
	fs.IntVar(&ingest.batch, "batch", detect.DefaultIngestMaxLines, "ingest: lines per request")
	fs.DurationVar(&ingest.wait, "wait", 5*time.Minute, "ingest: the longest wait for the detectors after the last request")
	fs.Usage = func() { fmt.Fprint(c.stderr, benchUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !slices.Contains([]string{"read", "search", "create", "mixed", "ingest", "console"}, *mode) {
		return errorWithHint("unknown -mode "+*mode, "use read, search, create, mixed, ingest or console")
	}
	if *mode == "console" {
		if *pageLoads < 1 {
			return errorWithHint("-n must be positive", "e.g. -n 50")
		}
		return c.runConsole(ctx, cf, *user, *pageLoads, extraPages, searches)
	}
	if *mode == "ingest" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		ingest.conns, ingest.patients, ingest.seed = *conc, *patients, *seed
		if !set["c"] {
			ingest.conns = 1
		}
		if !set["patients"] {
			ingest.patients = 10_000
		}
		if ingest.events < 1 || ingest.batch < 1 {
			return errorWithHint("-events and -batch must be positive", "e.g. -events 1000000 -batch 100000")
		}
		cl, err := cf.client(ingest.conns + 1) // and the status watcher
		if err != nil {
			return err
		}
		return c.runIngest(ctx, cl, ingest)
	}
	if *dur > 10*time.Minute {
		*dur = 10 * time.Minute
	}
	cl, err := cf.client(*conc)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(*seed, 0x9e3779b97f4a7c15))
	target, err := benchSetup(ctx, cl, rng, *patients)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(c.stderr, "created %d patients with %d observations each; running %s for %s with %d connections\n", *patients, len(benchCodes), *mode, *dur, *conc)

	deadline := time.Now().Add(*dur)
	results := make([][]time.Duration, *conc)
	errs := make([]int, *conc)
	var wg sync.WaitGroup
	for w := range *conc {
		r := rand.New(rand.NewPCG(*seed, uint64(w)))
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				method, path, body := benchRequest(*mode, r, target)
				t0 := time.Now()
				status, _, err := cl.do(ctx, method, path, body)
				results[w] = append(results[w], time.Since(t0))
				if err != nil || status/100 != 2 {
					errs[w]++
				}
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	nerr := 0
	for w := range results {
		all = append(all, results[w]...)
		nerr += errs[w]
	}
	slices.Sort(all)
	fmt.Fprintf(c.stdout, "mode=%s conns=%d requests=%d errors=%d rps=%.0f p50=%s p95=%s p99=%s\n",
		*mode, *conc, len(all), nerr, float64(len(all))/dur.Seconds(),
		pct(all, 50), pct(all, 95), pct(all, 99))
	if nerr > 0 {
		return fmt.Errorf("%d requests failed", nerr)
	}
	return nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100].Round(10 * time.Microsecond)
}

func benchRequest(mode string, r *rand.Rand, t *benchTarget) (method, path string, body []byte) {
	if mode == "mixed" {
		switch x := r.IntN(10); {
		case x < 7:
			mode = "read"
		case x < 9:
			mode = "search"
		default:
			mode = "create"
		}
	}
	i := r.IntN(len(t.patients))
	switch mode {
	case "read":
		return http.MethodGet, "/Patient/" + t.patients[i], nil
	case "search":
		if r.IntN(2) == 0 {
			return http.MethodGet, "/Patient?identifier=" + url.QueryEscape("urn:phivault:bench|"+t.identifiers[i]), nil
		}
		return http.MethodGet, "/Observation?patient=" + t.patients[i] + "&code=" + url.QueryEscape("http://loinc.org|"+benchCodes[r.IntN(len(benchCodes))]), nil
	}
	return http.MethodPost, "/Observation", benchObservation(t.patients[i], benchCodes[r.IntN(len(benchCodes))], r.Float64()*100)
}

func benchObservation(patient, code string, value float64) []byte {
	b, _ := json.Marshal(map[string]any{
		"resourceType":      "Observation",
		"status":            "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
		"subject":           map[string]any{"reference": "Patient/" + patient},
		"effectiveDateTime": "2026-01-01T10:00:00Z",
		"valueQuantity":     map[string]any{"value": float64(int(value*10)) / 10, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"},
	})
	return b
}

// benchSetup creates n patients, each with one observation per bench code,
// in transactions of 20 patients.
func benchSetup(ctx context.Context, cl *apiClient, r *rand.Rand, n int) (*benchTarget, error) {
	t := &benchTarget{}
	for start := 0; start < n; start += 20 {
		var entries []any
		for i := start; i < min(n, start+20); i++ {
			ident := fmt.Sprintf("B%08d", r.Uint32())
			full := fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", i)
			t.identifiers = append(t.identifiers, ident)
			entries = append(entries, map[string]any{
				"fullUrl": full,
				"resource": map[string]any{
					"resourceType": "Patient",
					"identifier":   []any{map[string]any{"system": "urn:phivault:bench", "value": ident}},
					"name":         []any{map[string]any{"family": "Bench", "given": []any{fmt.Sprintf("P%d", i)}}},
					"gender":       "unknown",
					"birthDate":    "1970-01-01",
				},
				"request": map[string]any{"method": "POST", "url": "Patient"},
			})
			for _, code := range benchCodes {
				var obs map[string]any
				_ = json.Unmarshal(benchObservation("x", code, r.Float64()*100), &obs)
				obs["subject"] = map[string]any{"reference": full}
				entries = append(entries, map[string]any{"resource": obs, "request": map[string]any{"method": "POST", "url": "Observation"}})
			}
		}
		body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
		status, resp, err := cl.do(ctx, http.MethodPost, "", body)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("HTTP %d: %s", status, outcomeMessage(resp))
		}
		var out struct {
			Entry []struct {
				Response struct {
					Location string `json:"location"`
				} `json:"response"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(resp, &out); err != nil {
			return nil, fmt.Errorf("decode transaction response: %w", err)
		}
		for _, e := range out.Entry {
			if id, ok := strings.CutPrefix(e.Response.Location, "Patient/"); ok {
				id, _, _ = strings.Cut(id, "/")
				t.patients = append(t.patients, id)
			}
		}
	}
	if len(t.patients) != len(t.identifiers) {
		return nil, fmt.Errorf("created %d patients, expected %d", len(t.patients), len(t.identifiers))
	}
	return t, nil
}
