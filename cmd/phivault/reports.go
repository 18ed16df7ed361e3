package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/report"
	reportsqlite "github.com/phivault/phivault/incident/report/sqlitestore"
)

// reportsFile is the staff reports' own database in the data folder:
// reports, their descriptions and anonymous reporters sealed, their
// receipts hashed.
func (d dataDir) reportsFile() string { return d.path("reports.db") }

// openReports opens the staff reporting channel beside the incidents it
// triages into, and serves it under /security/reports. It returns the
// store for serve to close.
func (a *app) openReports(ctx context.Context, incidents *incident.Service, auth detect.Authenticator) (io.Closer, error) {
	store, err := reportsqlite.Open(ctx, a.cfg.Data.reportsFile())
	if err != nil {
		return nil, fmt.Errorf("open the reports' database: %w", err)
	}
	svc := report.NewService(report.Options{
		Store: store, Audit: a.audit.log, Incidents: incidents,
		Sealer:    envelope.NewNoteSealer(a.db, a.seal.sealer, "report"),
		Reporters: envelope.NewNoteSealer(a.db, a.seal.sealer, "reporter"),
	})
	h := withClient(report.NewHandler(report.HandlerOptions{Service: svc, API: &detect.API{Auth: auth, Log: a.audit.log}}))
	a.routes["/security/reports"] = h
	a.routes["/security/reports/"] = h
	return store, nil
}

const reportsUsage = `Usage: phivault reports COMMAND [flags]

Any staff member reports something suspicious: a phishing e-mail, a lost
device, an odd access, a record sent to the wrong person. The answer is
a receipt to follow the report with; it is shown once. An anonymous
report names nobody to the investigators; opening its reporter takes two
officers, and the reporter sees it. Privacy officers and security admins
list and read reports (docs/incident-response.md, "Staff reports").

Commands:
  submit   report: phivault reports submit -kind phishing -description-file mail.txt [-anonymous]
  list     reports, newest first (officers); -mine: your own named reports
  show     one report: officers; or its reporter with -receipt-file

Run "phivault reports COMMAND -h" for a command's flags.
`

type reportsCommand struct {
	stdout, stderr io.Writer
	stdin          io.Reader
}

func (c *reportsCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "reports", reportsUsage, "phivault reports help", args, subcommands{
		"submit": c.submit,
		"list":   c.list,
		"show":   c.show,
	})
}

// readSecretFile reads a file given to a flag, "-" for standard input, at
// most limit bytes.
func readSecretFile(stdin io.Reader, name string, limit int64) (string, error) {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return "", err
	}
	if int64(len(b)) > limit {
		return "", fmt.Errorf("longer than %d bytes", limit)
	}
	return string(b), nil
}

func (c *reportsCommand) submit(ctx context.Context, args []string) error {
	const hint = "phivault reports submit -kind phishing -description-file mail.txt"
	fs, cf := newFlags(c.stderr, "reports", "submit", "-kind K -description-file F [-anonymous] [-patient P] [-user U]")
	kind := fs.String("kind", "", "what happened: "+strings.Join(report.Kinds, ", "))
	descFile := fs.String("description-file", "", `file describing what happened ("-" for standard input); sealed at rest, never in the process list`)
	patient := fs.String("patient", "", "the id of a patient it concerns, if any")
	user := fs.String("user", "", "the id of a user it concerns, if any")
	occurred := fs.String("occurred", "", "when it happened, RFC 3339 (default: not said)")
	anonymous := fs.Bool("anonymous", false, "name nobody to the investigators: your account is sealed, opened only with two officers' approval (and you see it)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kind == "" || *descFile == "" {
		return errorWithHint("submit needs -kind and -description-file", hint)
	}
	desc, err := readSecretFile(c.stdin, *descFile, 4*report.MaxDescription)
	if err != nil {
		return fmt.Errorf("read -description-file: %w", err)
	}
	req := map[string]any{"kind": *kind, "description": desc, "anonymous": *anonymous}
	for k, v := range map[string]string{"patient": *patient, "user": *user} {
		if v != "" {
			req[k] = v
		}
	}
	if *occurred != "" {
		t, err := time.Parse(time.RFC3339, *occurred)
		if err != nil {
			return errorWithHint("-occurred is not an RFC 3339 time", hint+" -occurred 2026-12-06T08:30:00Z")
		}
		req["occurred"] = t
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	out, err := securityCall(ctx, cf, http.MethodPost, "reports", "application/json", bytes.NewReader(b))
	if err != nil {
		if len(out) > 0 {
			return fmt.Errorf("%w: %s", err, outcomeMessage(out))
		}
		return err
	}
	if *asJSON {
		_, err := c.stdout.Write(out)
		return err
	}
	var ack report.Ack
	if err := json.Unmarshal(out, &ack); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	who := "in your name"
	if ack.Anonymous {
		who = "anonymously"
	}
	fmt.Fprintf(c.stdout, "report %s received (%s, %s)\n", ack.ID, ack.Kind, who)
	fmt.Fprintf(c.stdout, "receipt: %s\n", ack.Receipt)
	fmt.Fprintf(c.stdout, "Keep the receipt: it is shown only now. Follow the report with\n  phivault reports show %s -receipt-file FILE\n", ack.ID)
	return nil
}

func (c *reportsCommand) list(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "reports", "list", "[-mine] [-state S] [-kind K] [-limit N]")
	mine := fs.Bool("mine", false, "your own reports made in your name (anonymous ones are followed by receipt only)")
	state := fs.String("state", "", "only reports in this state: "+strings.Join(report.States, ", "))
	kind := fs.String("kind", "", "only reports of this kind")
	limit := fs.Int("limit", 0, "at most this many")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"state": *state, "kind": *kind} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *mine {
		q.Set("mine", "true")
	}
	path := "reports"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	body, err := securityCall(ctx, cf, http.MethodGet, path, "", nil)
	if err != nil {
		if len(body) > 0 {
			return fmt.Errorf("%w: %s", err, outcomeMessage(body))
		}
		return err
	}
	if *asJSON {
		_, err := c.stdout.Write(body)
		return err
	}
	var res struct{ Reports []report.View }
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tSUBMITTED\tREPORTER\tINCIDENT")
	for _, v := range res.Reports {
		reporter := v.Reporter
		if *mine {
			reporter = "you"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Kind, v.State, v.Submitted.Format(time.DateTime), orDash(reporter), orDash(v.Incident))
	}
	return tw.Flush()
}

func (c *reportsCommand) show(ctx context.Context, args []string) error {
	const hint = "phivault reports show rep-… [-receipt-file FILE]"
	fs, cf := newFlags(c.stderr, "reports", "show", "ID [-receipt-file F]")
	receiptFile := fs.String("receipt-file", "", `file holding the report's receipt ("-" for standard input): follow your own report`)
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	id, err := parseWithID(fs, args, "show", hint)
	if err != nil {
		return err
	}
	if id == "" {
		return errorWithHint("show takes one report id", hint)
	}
	var header http.Header
	if *receiptFile != "" {
		receipt, err := readSecretFile(c.stdin, *receiptFile, 1024)
		if err != nil {
			return fmt.Errorf("read -receipt-file: %w", err)
		}
		header = http.Header{report.ReceiptHeader: {strings.TrimSpace(receipt)}}
	}
	cl, err := cf.client(1)
	if err != nil {
		return err
	}
	body, _, err := cl.securityHeader(ctx, http.MethodGet, "reports/"+url.PathEscape(id), "", nil, header)
	if err != nil {
		if len(body) > 0 {
			return fmt.Errorf("%w: %s", err, outcomeMessage(body))
		}
		return err
	}
	if *asJSON {
		_, err := c.stdout.Write(body)
		return err
	}
	w := c.stdout
	if header != nil {
		var v report.ReceiptView
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("read the answer: %w", err)
		}
		fmt.Fprintf(w, "%s  %s, %s\n", v.ID, v.Kind, v.State)
		fmt.Fprintf(w, "submitted %s, updated %s\n", v.Submitted.Format(time.DateTime), v.Updated.Format(time.DateTime))
		if v.Anonymous {
			fmt.Fprintln(w, "anonymous")
		}
		if !v.IdentityRequested.IsZero() {
			fmt.Fprintf(w, "an officer asked to open your identity: %s\n", v.IdentityRequested.Format(time.DateTime))
		}
		if !v.IdentityOpened.IsZero() {
			fmt.Fprintf(w, "your identity was opened to two officers: %s\n", v.IdentityOpened.Format(time.DateTime))
		}
		return nil
	}
	var v report.View
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	fmt.Fprintf(w, "%s  %s, %s, version %d\n", v.ID, v.Kind, v.State, v.Version)
	fmt.Fprintf(w, "reporter %s, submitted %s\n", v.Reporter, v.Submitted.Format(time.DateTime))
	if v.Patient != "" || v.User != "" {
		fmt.Fprintf(w, "concerns: patient %s, user %s\n", orDash(v.Patient), orDash(v.User))
	}
	if v.Incident != "" {
		fmt.Fprintf(w, "incident %s\n", v.Incident)
	}
	if o := v.Identity; o != nil {
		state := "awaiting a second officer"
		if !o.Approved.IsZero() {
			state = "opened, approved by " + o.ApprovedBy
		}
		fmt.Fprintf(w, "identity asked by %s: %s\n", o.RequestedBy, state)
	}
	fmt.Fprintf(w, "description: %s\n", v.Description)
	for _, ev := range v.History {
		line := fmt.Sprintf("%s  %-18s %-18s %s", ev.At.Format(time.DateTime), ev.Actor, ev.Kind, ev.Detail)
		if ev.Note != "" {
			line += "  note: " + ev.Note
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	return nil
}
