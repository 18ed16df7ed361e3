package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

const honeytokenUsage = `Usage: phivault honeytoken COMMAND [flags]

Honeytokens are decoy patients: records that look like real patients'
through every API (names, addresses, history over years) and carry no
mark. Nobody has a reason to open one, so any touch by anyone is a
critical alert (docs/detection.md). Only privacy officers, security
admins and the operator may make or list them.

Commands:
  create   make decoy patients in a running server: phivault honeytoken create -n 20
  list     list the decoys' ids

Run "phivault honeytoken COMMAND -h" for a command's flags.
`

type honeytokenCommand struct {
	stdout, stderr io.Writer
}

func (c *honeytokenCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "honeytoken", honeytokenUsage, "phivault honeytoken help", args, subcommands{
		"create": c.create,
		"list":   c.list,
	})
}

func (c *honeytokenCommand) create(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "honeytoken", "create", "-n COUNT")
	n := fs.Int("n", 20, "how many decoy patients to make")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]int{"count": *n})
	out, err := securityCall(ctx, cf, http.MethodPost, "honeytokens", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	var res struct{ Honeytokens []string }
	if err := json.Unmarshal(out, &res); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	fmt.Fprintf(c.stdout, "made %d decoy patients; keep their ids to security staff:\n", len(res.Honeytokens))
	for _, id := range res.Honeytokens {
		fmt.Fprintln(c.stdout, id)
	}
	return nil
}

func (c *honeytokenCommand) list(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "honeytoken", "list", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	out, err := securityCall(ctx, cf, http.MethodGet, "honeytokens", "", nil)
	if err != nil {
		return err
	}
	var res struct{ Honeytokens []string }
	if err := json.Unmarshal(out, &res); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	for _, id := range res.Honeytokens {
		fmt.Fprintln(c.stdout, id)
	}
	return nil
}
