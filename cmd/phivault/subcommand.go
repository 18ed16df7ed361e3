package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
)

// subcommands maps the names of a group's subcommands ("phivault GROUP
// NAME") to the functions that run them on the remaining arguments.
type subcommands map[string]func(context.Context, []string) error

// runSubcommand runs the subcommand args[0] of "phivault group" from run.
// With no subcommand, or an unknown one, it prints usage to stderr and
// fails, hinting at hint or at "phivault group help"; help prints usage to
// stdout.
func runSubcommand(ctx context.Context, stdout, stderr io.Writer, group, usage, hint string, args []string, run subcommands) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errorWithHint("no "+group+" subcommand", hint)
	}
	if f := run[args[0]]; f != nil {
		return f(ctx, args[1:])
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return errorWithHint("unknown "+group+" subcommand "+args[0], "phivault "+group+" help")
}

// adminList runs "phivault GROUP list [-json]": it reads path from the
// admin API into list and prints it, as indented JSON with -json, else as
// a table: header and the rows table writes, tab-separated.
func adminList(ctx context.Context, stdout, stderr io.Writer, group, path string, args []string, list any, header string, table func(w io.Writer)) error {
	fs, cf := newFlags(stderr, group, "list", "[-json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := adminJSON(ctx, cf, http.MethodGet, path, nil, list); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	table(tw)
	return tw.Flush()
}
