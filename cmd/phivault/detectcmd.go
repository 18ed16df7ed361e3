package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/envelope"
)

const detectUsage = `Usage: phivault detect COMMAND [flags]

The detectors read the audit trail, and access logs ingested from other
systems, and raise explained alerts (docs/detection.md). They run inside
"phivault serve"; these commands replay a data folder offline, ingest
files into a running server, and show its progress.

Commands:
  replay   run the detectors over a stopped vault's whole trail, offline,
           and print the alerts (nothing in the data folder changes)
  ingest   send an access log or a roster file to a running server
  status   show a running server's detector: cursor, lag, counts

Run "phivault detect COMMAND -h" for a command's flags.
`

type detectCommand struct {
	stdout, stderr io.Writer
}

func (c *detectCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "detect", detectUsage, "phivault detect help", args, subcommands{
		"replay": c.replay,
		"ingest": c.ingest,
		"status": c.status,
	})
}

// replay runs the detectors over the whole trail of a stopped vault, into
// a store in memory, with the same pipeline and rules as serve.
func (c *detectCommand) replay(ctx context.Context, args []string) error {
	fs, _ := newFlags(c.stderr, "detect", "replay", "-data DIR [-json]")
	var o offlineFlags
	o.register(fs)
	asJSON := fs.Bool("json", false, "print the alerts as JSON lines")
	var dc DetectConfig
	fs.StringVar(&dc.ChangeWindows, "detect-change-windows", os.Getenv("PHIVAULT_DETECT_CHANGE_WINDOWS"), "as for serve")
	fs.StringVar(&dc.Disabled, "detect-disable", os.Getenv("PHIVAULT_DETECT_DISABLE"), "as for serve")
	if err := fs.Parse(args); err != nil {
		return err
	}
	settings, err := dc.settings()
	if err != nil {
		return err
	}
	if o.data == "" {
		return errorWithHint("no -data", "phivault detect replay -data phivault-data")
	}
	logger := slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	off, err := o.open(ctx, logger)
	if err != nil {
		return err
	}
	defer off.Close()
	start := time.Now()
	store := detect.NewMemStore()
	engine := detect.NewEngineFor(settings, detect.NewDirectory(), nil)
	p := detect.NewPipeline(store, engine)
	p.Trail = trailReader{store: off.db}
	p.Loader = &detectContext{records: off.records, accounts: envelope.NewAccountStore(off.db, off.db, off.sealer),
		tokens: vaultTokens{store: off.db, sealer: off.sealer}}
	p.Logger = logger
	if err := p.Open(ctx); err != nil {
		return err
	}
	for {
		n, err := p.Step(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	alerts, err := store.Alerts(ctx, detect.AlertFilter{})
	if err != nil {
		return err
	}
	st := p.Status()
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, a := range alerts {
			if err := enc.Encode(a); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tSCORE\tRULE\tUSER\tEVENTS\tWHY")
	for _, a := range alerts {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\n", a.Severity, a.Score, a.Rule, a.User, a.Events, a.Why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%d trail entries replayed in %s; %d alerts\n", st.Events, time.Since(start).Round(time.Millisecond), len(alerts))
	return nil
}

// securityURL returns the URL of path under /security/ of the server
// whose FHIR base URL is base.
func securityURL(base, path string) string {
	return strings.TrimSuffix(strings.TrimSuffix(base, "/"), "/fhir") + "/security/" + path
}

// status prints GET /security/detector.
func (c *detectCommand) status(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "detect", "status", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := securityCall(ctx, cf, http.MethodGet, "detector", "", nil)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(body)
	return err
}

// ingest posts a file to /security/ingest/KIND.
func (c *detectCommand) ingest(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "detect", "ingest", "-kind access|staff|patients|relationships FILE")
	kind := fs.String("kind", "access", "what the file holds: access, staff, patients or relationships")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errorWithHint("ingest takes one file", "phivault detect ingest -kind access events.ndjson")
	}
	switch *kind {
	case "access", "staff", "patients", "relationships":
	default:
		return errorWithHint("unknown -kind "+*kind, "use access, staff, patients or relationships")
	}
	name := fs.Arg(0)
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	ctype := "application/x-ndjson"
	if strings.HasSuffix(strings.ToLower(name), ".csv") {
		ctype = "text/csv"
	}
	body, err := securityCall(ctx, cf, http.MethodPost, "ingest/"+*kind, ctype, f)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(body)
	return err
}

// securityCall sends a request to the security API (/security/path) of
// the server cf names, and returns the body of a 2xx answer (a 207 or
// 400 from ingest with per-line errors is returned too, as the body says
// what was kept); any other answer is an error with the
// OperationOutcome's message.
func securityCall(ctx context.Context, cf *clientFlags, method, path, ctype string, body io.Reader) ([]byte, error) {
	c, err := cf.client(1)
	if err != nil {
		return nil, err
	}
	return c.security(ctx, method, path, ctype, body)
}

// security is securityCall over c, to reuse its connection.
func (c *apiClient) security(ctx context.Context, method, path, ctype string, body io.Reader) ([]byte, error) {
	b, _, err := c.securityHeader(ctx, method, path, ctype, body, nil)
	return b, err
}

// securityHeader is security with more request headers, returning the
// answer's headers too.
func (c *apiClient) securityHeader(ctx context.Context, method, path, ctype string, body io.Reader, header http.Header) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, securityURL(c.base, path), body)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, errorWithHint(fmt.Sprintf("cannot reach %s: %v", c.base, err), "start the server, check -url and -cacert")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			return b, resp.Header, fmt.Errorf("server answered %d", resp.StatusCode)
		}
		return nil, resp.Header, fmt.Errorf("server answered %d: %s", resp.StatusCode, outcomeMessage(b))
	}
	return b, resp.Header, nil
}
