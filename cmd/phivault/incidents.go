package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault/incident"
)

const incidentsUsage = `Usage: phivault incidents COMMAND [flags]

Incidents gather what happened (alerts, scope), who owns the response,
where it stands (detect, analyse, contain, eradicate, recover,
post-incident, closed) and the clocks that run: the organisation's own
deadlines to acknowledge and contain, and HIPAA's 60 days from discovery
to notify. Every change is an audit entry. Only privacy officers and
security admins may use them (docs/incident-response.md).

Commands:
  list     incidents, newest first: phivault incidents list -open
  show     one incident with its clocks and timeline
  open     open one: phivault incidents open -title "..." -severity high [-alert ID ...]
  update   change one: phivault incidents update ID -version 3 -phase contain
  notices  breach notices (privacy officers): phivault incidents notices ID -format pdf -org org.json -out FILE
  evidence save its signed evidence archive: phivault incidents evidence ID -out FILE

Run "phivault incidents COMMAND -h" for a command's flags.
`

type incidentsCommand struct {
	stdout, stderr io.Writer
	stdin          io.Reader
}

func (c *incidentsCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "incidents", incidentsUsage, "phivault incidents help", args, subcommands{
		"list":     c.list,
		"show":     c.show,
		"open":     c.open,
		"update":   c.update,
		"notices":  c.notices,
		"evidence": c.evidence,
	})
}

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (c *incidentsCommand) list(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "incidents", "list", "[-open] [-phase P] [-user U] [-patient P] [-alert A]")
	open := fs.Bool("open", false, "only incidents not closed")
	q := url.Values{}
	for _, name := range []string{"phase", "owner", "user", "patient", "alert"} {
		fs.Func(name, "only incidents with this "+name, func(v string) error { q.Set(name, v); return nil })
	}
	limit := fs.Int("limit", 0, "at most this many")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *open {
		q.Set("open", "true")
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	path := "incidents"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	body, err := securityCall(ctx, cf, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := c.stdout.Write(body)
		return err
	}
	var res struct{ Incidents []incident.View }
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tPHASE\tOWNER\tOPENED\tOVERDUE\tTITLE")
	for _, v := range res.Incidents {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Severity, v.Phase, orDash(v.Owner),
			v.Opened.Format(time.DateTime), overdueNames(v), v.Title)
	}
	return tw.Flush()
}

func overdueNames(v incident.View) string {
	var names []string
	for _, c := range v.Clocks {
		if c.Overdue && c.Done.IsZero() {
			names = append(names, c.Name)
		}
	}
	return orDash(strings.Join(names, ","))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *incidentsCommand) show(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "incidents", "show", "ID")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	id, err := parseWithID(fs, args, "show", "phivault incidents show inc-…")
	if err != nil {
		return err
	}
	if id == "" {
		return errorWithHint("show takes one incident id", "phivault incidents show inc-…")
	}
	body, err := securityCall(ctx, cf, http.MethodGet, "incidents/"+url.PathEscape(id), "", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := c.stdout.Write(body)
		return err
	}
	return c.printAnswer(body)
}

// printAnswer prints an answer holding one incident.
func (c *incidentsCommand) printAnswer(b []byte) error {
	var v incident.View
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	c.print(v)
	return nil
}

func (c *incidentsCommand) print(v incident.View) {
	w := c.stdout
	fmt.Fprintf(w, "%s  %s\n", v.ID, v.Title)
	fmt.Fprintf(w, "severity %s, phase %s, owner %s, source %s, version %d\n", v.Severity, v.Phase, orDash(v.Owner), v.Source, v.Version)
	fmt.Fprintf(w, "discovered %s, opened %s\n", v.Discovered.Format(time.DateTime), v.Opened.Format(time.DateTime))
	if len(v.Alerts) > 0 {
		fmt.Fprintf(w, "alerts: %s\n", strings.Join(v.Alerts, " "))
	}
	s := v.Scope
	fmt.Fprintf(w, "scope: %d users, %d clients, %d sources, %d patients\n", len(s.Users), len(s.Clients), len(s.Sources), len(s.Patients))
	for _, cl := range v.Clocks {
		state := "due"
		switch {
		case !cl.Done.IsZero() && cl.Overdue:
			state = "met late"
		case !cl.Done.IsZero():
			state = "met"
		case cl.Overdue:
			state = "OVERDUE"
		}
		fmt.Fprintf(w, "clock %-12s %s %s\n", cl.Name, cl.Due.Format(time.DateTime), state)
	}
	for _, a := range v.Actions {
		line := fmt.Sprintf("action %s %-20s %s", a.ID, a.Kind, a.State)
		if a.Reason != "" {
			line += " (" + a.Reason + ")"
		}
		fmt.Fprintln(w, line)
	}
	for _, ev := range v.Timeline {
		line := fmt.Sprintf("%s  %-10s %-8s %s", ev.At.Format(time.DateTime), ev.Actor, ev.Kind, ev.Detail)
		if ev.Note != "" {
			line += "  note: " + ev.Note
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// parseWithID parses args with fs, taking one incident id before, between
// or after the flags; "" if there is none.
func parseWithID(fs *flag.FlagSet, args []string, command, hint string) (string, error) {
	var id string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			return id, nil
		}
		if id != "" {
			return "", errorWithHint(command+" takes one incident id", hint)
		}
		id, args = fs.Arg(0), fs.Args()[1:]
	}
}

// changeFlags are the flags open and update share.
type changeFlags struct {
	severity, owner, title, noteFile string
	alerts, users, patients, sources stringList
}

func (f *changeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.severity, "severity", "", "low, medium, high or critical")
	fs.StringVar(&f.owner, "owner", "", "user id of the person who owns the response")
	fs.StringVar(&f.title, "title", "", "a short title; ids, not names (it shows in the process list)")
	fs.StringVar(&f.noteFile, "note-file", "", `file of a note for the timeline ("-" for standard input); sealed at rest`)
	fs.Var(&f.alerts, "alert", "an alert id (repeatable)")
	fs.Var(&f.users, "user", "a user id in scope (repeatable)")
	fs.Var(&f.patients, "patient", "a patient id in scope (repeatable)")
	fs.Var(&f.sources, "source", "an IP address or CIDR network in scope (repeatable)")
}

func (f *changeFlags) note(stdin io.Reader) (string, error) {
	switch f.noteFile {
	case "":
		return "", nil
	case "-":
		b, err := io.ReadAll(io.LimitReader(stdin, incident.MaxNote*4+1))
		return string(b), err
	}
	b, err := os.ReadFile(f.noteFile)
	return string(b), err
}

func (f *changeFlags) body(stdin io.Reader, extra map[string]any) (*bytes.Reader, error) {
	note, err := f.note(stdin)
	if err != nil {
		return nil, fmt.Errorf("read -note-file: %w", err)
	}
	m := map[string]any{}
	for k, v := range map[string]string{"severity": f.severity, "owner": f.owner, "title": f.title, "note": note} {
		if v != "" {
			m[k] = v
		}
	}
	if len(f.alerts) > 0 {
		m["alerts"] = f.alerts
	}
	if len(f.users)+len(f.patients)+len(f.sources) > 0 {
		m["scope"] = incident.Scope{Users: f.users, Patients: f.patients, Sources: f.sources}
	}
	for k, v := range extra {
		if v != "" {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	return bytes.NewReader(b), err
}

func (c *incidentsCommand) open(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "incidents", "open", `-title "..." -severity S [-alert ID ...]`)
	var f changeFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.title == "" {
		return errorWithHint("open needs -title", `phivault incidents open -title "decoy touched by u-123" -severity high -alert 0123456789abcdef`)
	}
	body, err := f.body(c.stdin, nil)
	if err != nil {
		return err
	}
	out, err := securityCall(ctx, cf, http.MethodPost, "incidents", "application/json", body)
	if err != nil {
		return err
	}
	return c.printAnswer(out)
}

func (c *incidentsCommand) update(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "incidents", "update", "ID -version N [-phase P] [-owner U] ...")
	var f changeFlags
	f.register(fs)
	version := fs.Int64("version", 0, "the version the change is made on (from show); a change made meanwhile refuses it")
	phase := fs.String("phase", "", "the new phase: "+strings.Join(incident.Phases, ", "))
	reason := fs.String("reason", "", "why (required to reopen, or to move -discovered earlier)")
	discovered := fs.String("discovered", "", "an earlier discovery date, RFC 3339")
	id, err := parseWithID(fs, args, "update", "phivault incidents update inc-… -version 3 -phase contain")
	if err != nil {
		return err
	}
	if id == "" || *version < 1 {
		return errorWithHint("update needs an incident id and -version", "phivault incidents update inc-… -version 3 -phase contain")
	}
	body, err := f.body(c.stdin, map[string]any{"phase": *phase, "reason": *reason, "discovered": *discovered})
	if err != nil {
		return err
	}
	cl, err := cf.client(1)
	if err != nil {
		return err
	}
	out, _, err := cl.securityHeader(ctx, http.MethodPatch, "incidents/"+url.PathEscape(id), "application/json", body,
		http.Header{"If-Match": {`W/"` + strconv.FormatInt(*version, 10) + `"`}})
	if err != nil {
		if len(out) > 0 {
			return fmt.Errorf("%w: %s", err, outcomeMessage(out))
		}
		return err
	}
	return c.printAnswer(out)
}
