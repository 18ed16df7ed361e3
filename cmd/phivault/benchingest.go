package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/simulate"
)

// Access logs that bench -mode ingest can send (-log).
const (
	// benchLogSim is the simulator's hospital (detect/simulate, default
	// size): staff reading their patients by the day's rhythm, and the
	// scenarios, repeated week after week.
	benchLogSim = "sim"
	// benchLogRandom is adversarial: random users opening random
	// patients, one event in six an update, so that nearly every user
	// becomes an alert the detectors keep merging into.
	benchLogRandom = "random"
)

// benchIngestOptions are the flags of bench -mode ingest.
type benchIngestOptions struct {
	log      string // benchLogSim or benchLogRandom
	events   int    // access lines in all
	batch    int    // lines per request
	conns    int    // requests in flight
	patients int    // patients of the random log
	seed     uint64
	wait     time.Duration // the longest wait for the detectors after the last request
}

// benchIngestRequest is what one request of the run measured.
type benchIngestRequest struct {
	lines     int
	took      time.Duration // sending it to the answer
	last      int64         // ingest sequence of its last record
	done      time.Time     // when it was answered
	processed time.Time     // when the detectors' cursor reached last
}

// runIngest posts opts.events access lines to /security/ingest/access in
// requests of opts.batch lines, opts.conns at a time, and reports each
// request's events/s and when the detectors had examined its events (GET
// /security/detector).
func (c *benchCommand) runIngest(ctx context.Context, cl *apiClient, opts benchIngestOptions) error {
	lines, err := benchAccessLog(ctx, opts)
	if err != nil {
		return err
	}
	bodies := benchBodies(lines, opts.batch)
	fmt.Fprintf(c.stderr, "sending %d access lines (%s log, %.1f MB) in %d requests of up to %d lines, %d at a time\n",
		len(lines), opts.log, float64(benchSize(bodies))/1e6, len(bodies), opts.batch, opts.conns)

	var (
		mu      sync.Mutex
		reqs    = make([]*benchIngestRequest, len(bodies))
		next    int
		failure error
	)
	watch, stop := context.WithCancel(ctx)
	defer stop()
	var watcher sync.WaitGroup
	watcher.Go(func() { benchWatchDetector(watch, cl, &mu, reqs) })

	start := time.Now()
	var wg sync.WaitGroup
	for range max(1, opts.conns) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stopNow := failure != nil || i >= len(bodies)
				mu.Unlock()
				if stopNow {
					return
				}
				r, err := benchPostIngest(ctx, cl, bodies[i])
				mu.Lock()
				if err != nil && failure == nil {
					failure = fmt.Errorf("request %d: %w", i+1, err)
				}
				reqs[i] = r
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failure != nil {
		return failure
	}
	sent := time.Since(start)
	deadline := time.Now().Add(opts.wait)
	for !benchAllProcessed(&mu, reqs) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	watcher.Wait()
	return c.reportIngest(opts, reqs, start, sent)
}

// reportIngest prints one line per request and a summary.
func (c *benchCommand) reportIngest(opts benchIngestOptions, reqs []*benchIngestRequest, start time.Time, sent time.Duration) error {
	var rates []float64
	var lags []time.Duration
	var last time.Time
	total := 0
	for i, r := range reqs {
		rate := float64(r.lines) / r.took.Seconds()
		rates = append(rates, rate)
		total += r.lines
		lag := "-"
		if !r.processed.IsZero() {
			lags = append(lags, r.processed.Sub(r.done))
			lag = r.processed.Sub(r.done).Round(time.Millisecond).String()
			last = r.processed
		}
		fmt.Fprintf(c.stdout, "request=%d lines=%d took=%s events/s=%.0f processed_after=%s\n",
			i+1, r.lines, r.took.Round(time.Millisecond), rate, lag)
	}
	slices.Sort(rates)
	slices.Sort(lags)
	all := "-"
	if len(lags) == len(reqs) {
		all = last.Sub(start).Round(time.Millisecond).String()
	}
	fmt.Fprintf(c.stdout, "mode=ingest log=%s conns=%d requests=%d lines=%d sent_events/s=%.0f median_request_events/s=%.0f min=%.0f max=%.0f median_processed_after=%s all_processed_after=%s\n",
		opts.log, opts.conns, len(reqs), total, float64(total)/sent.Seconds(),
		rates[len(rates)/2], rates[0], rates[len(rates)-1], pct(lags, 50), all)
	if len(lags) != len(reqs) {
		return fmt.Errorf("the detectors had not examined every request's events %s after the last (raise -wait)", opts.wait)
	}
	return nil
}

// benchPostIngest sends one request of access lines and returns what it
// measured; a refused line is an error, as the log is meant to be clean.
func benchPostIngest(ctx context.Context, cl *apiClient, body []byte) (*benchIngestRequest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, securityURL(cl.base, "ingest/access"), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	t0 := time.Now()
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	took := time.Since(t0)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, outcomeMessage(b))
	}
	var rep detect.IngestReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("decode the ingest report: %w", err)
	}
	if rep.Rejected > 0 {
		return nil, fmt.Errorf("%d lines refused (first: %+v)", rep.Rejected, rep.Errors[0])
	}
	return &benchIngestRequest{lines: rep.Accepted, took: took, last: rep.Last, done: t0.Add(took)}, nil
}

// benchWatchDetector polls GET /security/detector until ctx is done and
// stamps each answered request when the detectors' ingest cursor reaches
// its last record.
func benchWatchDetector(ctx context.Context, cl *apiClient, mu *sync.Mutex, reqs []*benchIngestRequest) {
	for ctx.Err() == nil {
		st, err := benchDetectorStatus(ctx, cl)
		now := time.Now()
		if err == nil {
			mu.Lock()
			for _, r := range reqs {
				if r != nil && r.processed.IsZero() && st.Cursor.Ingest >= r.last {
					r.processed = now
				}
			}
			mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func benchDetectorStatus(ctx context.Context, cl *apiClient) (*detect.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, securityURL(cl.base, "detector"), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /security/detector: HTTP %d", resp.StatusCode)
	}
	var st detect.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("decode the detector status: %w", err)
	}
	return &st, nil
}

func benchAllProcessed(mu *sync.Mutex, reqs []*benchIngestRequest) bool {
	mu.Lock()
	defer mu.Unlock()
	for _, r := range reqs {
		if r == nil || r.processed.IsZero() {
			return false
		}
	}
	return true
}

// benchAccessLog returns opts.events lines of the access log opts.log
// names, NDJSON without the newlines.
func benchAccessLog(ctx context.Context, opts benchIngestOptions) ([][]byte, error) {
	var lines []simulate.AccessLine
	switch opts.log {
	case benchLogRandom:
		lines = benchRandomLog(opts.events, opts.patients, opts.seed)
	case benchLogSim:
		var err error
		if lines, err = benchSimLog(ctx, opts.events, opts.seed); err != nil {
			return nil, err
		}
	default:
		return nil, errorWithHint("unknown -log "+opts.log, "use sim or random")
	}
	out := make([][]byte, len(lines))
	for i := range lines {
		b, err := json.Marshal(&lines[i])
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// benchRandomSpacing is the time between two events of the random log: a
// burst of a thousand events a second, so that each user (of some
// hundreds) writes to hundreds of patients within minutes, and the
// mass-change rule keeps an alert of every user growing.
const benchRandomSpacing = time.Millisecond

// benchRandomLog returns n events of random users (one per 40 patients,
// at least 10) on random patients, benchRandomSpacing apart, one in six
// an update.
func benchRandomLog(n, patients int, seed uint64) []simulate.AccessLine {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	patients = max(patients, 1)
	users := max(10, patients/40)
	start := simulate.DefaultStart.Add(8 * time.Hour)
	out := make([]simulate.AccessLine, n)
	for i := range out {
		action := "read"
		if r.IntN(6) == 0 {
			action = "update"
		}
		out[i] = simulate.AccessLine{
			Time:   start.Add(time.Duration(i) * benchRandomSpacing).Format(time.RFC3339Nano),
			System: "bench", User: fmt.Sprint("u", r.IntN(users)), Role: "nurse", Department: "ward",
			Patient: fmt.Sprint("p", r.IntN(patients)), Action: action, ResourceType: "Observation",
		}
	}
	return out
}

// benchSimLog returns n access events of the simulator's hospital
// (seeded), repeating its weeks as needed.
func benchSimLog(ctx context.Context, n int, seed uint64) ([]simulate.AccessLine, error) {
	w, err := simulate.Generate(ctx, simulate.Config{Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	var events []*detect.Event
	for i := range w.Records {
		if ev := w.Records[i].Event; w.Records[i].Kind == detect.RecordAccess && ev != nil {
			events = append(events, ev)
		}
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("simulate: no access events")
	}
	// Whole weeks, so that a repetition keeps the days of the week.
	const week = 7 * 24 * time.Hour
	span := (w.End.Sub(w.Start) + week - 1) / week * week
	out := make([]simulate.AccessLine, 0, n)
	for round := 0; len(out) < n; round++ {
		shift := time.Duration(round) * span
		for _, ev := range events {
			if len(out) == n {
				break
			}
			if l, ok := benchLineOf(ev, shift); ok {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// benchActions maps the simulator's actions to those of an access log;
// the others (changes of controls) have no line.
var benchActions = map[string]string{
	phivault.ActionRead: "read", phivault.ActionVRead: "read", phivault.ActionHistory: "read",
	phivault.ActionSearch: "search", phivault.ActionCreate: "create", phivault.ActionUpdate: "update",
	phivault.ActionDelete: "delete", phivault.ActionExport: "export", phivault.ActionEverything: "export",
	detect.ActionPrint: "print", phivault.ActionLogin: "login", detect.ActionLoginFailed: "login-failed",
}

// benchLineOf returns the access line of ev, shift later, or false if an
// access log has no line for its action.
func benchLineOf(ev *detect.Event, shift time.Duration) (simulate.AccessLine, bool) {
	action, ok := benchActions[ev.Action]
	if !ok {
		return simulate.AccessLine{}, false
	}
	sys, user, _ := strings.Cut(ev.User, ":")
	l := simulate.AccessLine{
		Time: ev.Time.Add(shift).Format(time.RFC3339Nano), System: sys, User: user,
		Department: ev.Department, Action: action, ResourceType: ev.ResourceType,
		Source: ev.Source, ResultCount: ev.Count, Outcome: ev.Outcome,
	}
	if len(ev.Roles) > 0 {
		l.Role = ev.Roles[0]
	}
	if len(ev.Patients) > 0 {
		_, l.Patient, _ = strings.Cut(ev.Patients[0], ":")
	}
	return l, true
}

// benchBodies cuts lines into NDJSON request bodies of up to batch lines.
func benchBodies(lines [][]byte, batch int) [][]byte {
	var out [][]byte
	for chunk := range slices.Chunk(lines, max(batch, 1)) {
		var b bytes.Buffer
		for _, l := range chunk {
			b.Write(l)
			b.WriteByte('\n')
		}
		out = append(out, b.Bytes())
	}
	return out
}

func benchSize(bodies [][]byte) int {
	n := 0
	for _, b := range bodies {
		n += len(b)
	}
	return n
}
