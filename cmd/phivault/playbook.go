package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/incident/playbook"
)

const playbookUsage = `Usage: phivault playbook COMMAND [flags]

Playbooks say what happens when an alert arrives: whether to open an
incident and which containment steps to take (suspend the account, revoke
its tokens, block a source, ...). The defaults are built in; a folder of
the operator's own (-playbooks DIR) adds to them and replaces those of the
same name. Every file is checked when loaded: a mistake is refused with
its file, line and reason (docs/incident-response.md).

Commands:
  check   check the defaults and a folder: phivault playbook check -playbooks DIR
  test    dry run: which playbooks an alert would trigger and the steps they
          would take, without doing anything:
          phivault playbook test -playbooks DIR -alert alert.json [-roles nurse -staff]
  list    list the playbooks of the set

Run "phivault playbook COMMAND -h" for a command's flags.
`

type playbookCommand struct {
	stdout, stderr io.Writer
}

func (c *playbookCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "playbook", playbookUsage, "phivault playbook help", args, subcommands{
		"check": c.check,
		"test":  c.test,
		"list":  c.list,
	})
}

// playbookDirFlag is the -playbooks flag, as serve has it.
func playbookDirFlag(fs interface {
	String(name, value, usage string) *string
}) *string {
	return fs.String("playbooks", os.Getenv("PHIVAULT_PLAYBOOKS"), "folder of the operator's own playbooks (env PHIVAULT_PLAYBOOKS)")
}

// loadSet parses the -playbooks flag of a command that takes no other
// and loads the set it names.
func (c *playbookCommand) loadSet(name string, args []string) (*playbook.Set, error) {
	fs, _ := newFlags(c.stderr, "playbook", name, "[-playbooks DIR]")
	dir := playbookDirFlag(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return playbook.Load(*dir)
}

func (c *playbookCommand) check(ctx context.Context, args []string) error {
	set, err := c.loadSet("check", args)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%d playbooks, all valid\n", len(set.Playbooks))
	return nil
}

func (c *playbookCommand) list(ctx context.Context, args []string) error {
	set, err := c.loadSet("list", args)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tRULES\tSTEPS\tFILE")
	for _, p := range set.Playbooks {
		var steps []string
		for _, s := range p.Steps {
			steps = append(steps, s.Action)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, orDash(strings.Join(p.Trigger.Rules, ",")), strings.Join(steps, ","), p.File)
	}
	return tw.Flush()
}

// test plans the response to a recorded alert (the JSON of GET
// /security/alerts/{id}, or of phivault detect replay -json) and prints
// it; nothing is carried out.
func (c *playbookCommand) test(ctx context.Context, args []string) error {
	fs, _ := newFlags(c.stderr, "playbook", "test", "-alert FILE [-playbooks DIR] [-roles R,R] [-staff]")
	dir := playbookDirFlag(fs)
	alertFile := fs.String("alert", "", `a recorded alert as JSON ("-" for standard input)`)
	roles := fs.String("roles", "", "comma-separated roles of the alert's user")
	staff := fs.Bool("staff", false, "the alert's user is a staff account")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *alertFile == "" {
		return errorWithHint("test needs -alert", "phivault playbook test -alert alert.json -staff")
	}
	set, err := playbook.Load(*dir)
	if err != nil {
		return err
	}
	var b []byte
	if *alertFile == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	} else {
		b, err = os.ReadFile(*alertFile)
	}
	if err != nil {
		return fmt.Errorf("read -alert: %w", err)
	}
	a, err := readAlert(b)
	if err != nil {
		return err
	}
	u := playbook.User{Staff: *staff}
	if *roles != "" {
		u.Roles = strings.Split(*roles, ",")
	}
	matched := set.Match(a, u)
	if len(matched) == 0 {
		fmt.Fprintf(c.stdout, "no playbook answers this alert (%s, %s, score %d)\n", a.Rule, a.Severity, a.Score)
		return nil
	}
	for _, p := range matched {
		fmt.Fprintf(c.stdout, "playbook %s (%s)\n", p.Name, p.File)
		sev := p.Incident.Severity
		if sev == 0 {
			sev = a.Severity
		}
		fmt.Fprintf(c.stdout, "  opens an incident (or joins the user's open one): %s, %q\n", sev, p.Incident.TitleFor(a))
		for _, s := range p.Steps {
			when := "at once"
			if s.Approval == playbook.ApprovalTwoPerson {
				when = "after a second person approves"
			}
			undo := ""
			if playbook.Undoable(s.Action) {
				undo = ", can be undone"
			}
			fmt.Fprintf(c.stdout, "  %s %s%s\n", s.Action, when, undo)
		}
	}
	return nil
}

// readAlert reads a recorded alert: the security API's view (severity
// named) or the stored form (severity a number).
func readAlert(b []byte) (*detect.Alert, error) {
	var v struct {
		Rule     string          `json:"rule"`
		User     string          `json:"user"`
		Severity json.RawMessage `json:"severity"`
		Score    int             `json:"score"`
		Patients []string        `json:"patients"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Rule == "" {
		return nil, errorWithHint("-alert is not an alert as JSON", "save one with: curl …/security/alerts/ID > alert.json")
	}
	a := &detect.Alert{Rule: v.Rule, User: v.User, Score: v.Score, Patients: v.Patients}
	var name string
	if json.Unmarshal(v.Severity, &name) == nil {
		s, ok := detect.ParseSeverity(name)
		if !ok {
			return nil, errorWithHint("the alert's severity is not low, medium, high or critical", "check -alert")
		}
		a.Severity = s
	} else if json.Unmarshal(v.Severity, &a.Severity) != nil {
		return nil, errorWithHint("the alert has no severity", "check -alert")
	}
	return a, nil
}
