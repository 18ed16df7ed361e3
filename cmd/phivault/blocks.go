package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault/block"
	"github.com/phivault/phivault/server"
)

const blocksUsage = `Usage: phivault blocks COMMAND [flags]

A block refuses every request from an address or network with 403, on
every route, before anything else is done (docs/incident-response.md,
"Blocks"). The incident responder adds blocks (block-source) and removes
them when the action is undone; operators list, add and remove them here.

These commands work on the data folder's blocks.db (-data), with the
server running or not. A running server takes up what add and remove
changed on SIGHUP (kill -HUP PID), recording the reload in the audit
trail, and on every start.

Commands:
  list    the blocks in force: id, network, until, origin
  add     block addresses or networks:
          phivault blocks add [-for 72h] 203.0.113.7 10.1.0.0/16
  remove  remove a block by its id, or every block of an incident action
          by the action's id: phivault blocks remove ID

Run "phivault blocks COMMAND -h" for a command's flags.
`

// blocksCommand manages the network blocks of a data folder.
type blocksCommand struct {
	stdout, stderr io.Writer
}

func (c *blocksCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "blocks", blocksUsage, "phivault blocks help", args, subcommands{
		"list":   c.list,
		"add":    c.add,
		"remove": c.remove,
	})
}

// flags returns the flag set of "phivault blocks name" with -data.
func (c *blocksCommand) flags(name, usage string) (*flag.FlagSet, *dataDir) {
	fs := flag.NewFlagSet("blocks "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	d := new(dataDir)
	fs.StringVar((*string)(d), "data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder (env PHIVAULT_DATA)")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: phivault blocks %s %s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs, d
}

// openBlocksOf opens the blocks of the data folder d.
func openBlocksOf(ctx context.Context, d dataDir) (*block.List, error) {
	if !d.initialized() {
		return nil, errorWithHint(fmt.Sprintf("%s is not a phivault data folder", d), "phivault blocks list -data /var/lib/phivault")
	}
	l, err := block.Open(ctx, d.blocksFile())
	if err != nil {
		return nil, fmt.Errorf("open the blocks' database: %w", err)
	}
	return l, nil
}

func (c *blocksCommand) list(ctx context.Context, args []string) error {
	fs, d := c.flags("list", "[-data DIR] [-json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := openBlocksOf(ctx, *d)
	if err != nil {
		return err
	}
	defer l.Close()
	list, err := l.Blocks(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		type row struct {
			ID      string    `json:"id"`
			Network string    `json:"network"`
			Created time.Time `json:"created"`
			Until   time.Time `json:"until,omitzero"`
			Origin  string    `json:"origin"`
		}
		out := make([]row, len(list))
		for i, b := range list {
			out[i] = row{b.ID, b.Prefix.String(), b.Created, b.Until, b.Origin}
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Blocks []row `json:"blocks"`
		}{out})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNETWORK\tCREATED\tUNTIL\tORIGIN")
	for _, b := range list {
		until := "undone"
		if !b.Until.IsZero() {
			until = b.Until.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.ID, b.Prefix, b.Created.Format(time.RFC3339), until, b.Origin)
	}
	return tw.Flush()
}

func (c *blocksCommand) add(ctx context.Context, args []string) error {
	fs, d := c.flags("add", "[-data DIR] [-for DURATION] ADDRESS-OR-NETWORK...")
	dur := fs.Duration("for", 0, "how long the block lasts, e.g. 72h; 0 until removed")
	proxies := fs.String("trusted-proxies", os.Getenv("PHIVAULT_TRUSTED_PROXIES"), "the server's -trusted-proxies, which no block may overlap (env PHIVAULT_TRUSTED_PROXIES)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errorWithHint("no address or network to block", "phivault blocks add -for 72h 203.0.113.7 10.1.0.0/16")
	}
	if *dur < 0 {
		return errorWithHint("-for is negative", "phivault blocks add -for 72h 203.0.113.7")
	}
	protected, err := server.ParsePrefixes(*proxies)
	if err != nil {
		return errorWithHint(err.Error(), "phivault blocks add -trusted-proxies 10.0.0.0/8 203.0.113.7")
	}
	prefixes := make([]netip.Prefix, fs.NArg())
	for i, s := range fs.Args() {
		if prefixes[i], err = block.ParsePrefix(s); err != nil {
			return err
		}
	}
	l, err := openBlocksOf(ctx, *d)
	if err != nil {
		return err
	}
	defer l.Close()
	l.Protected = protected
	var until time.Time
	if *dur > 0 {
		until = time.Now().Add(*dur)
	}
	added, err := l.Add(ctx, prefixes, until, block.OriginOperator)
	if err != nil {
		return err
	}
	for _, b := range added {
		fmt.Fprintf(c.stdout, "Blocked %s (id %s).\n", b.Prefix, b.ID)
	}
	fmt.Fprintln(c.stdout, "A running server enforces it after SIGHUP (kill -HUP PID) or a restart.")
	return nil
}

func (c *blocksCommand) remove(ctx context.Context, args []string) error {
	fs, d := c.flags("remove", "[-data DIR] ID")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errorWithHint("give one block id or incident action id", "phivault blocks list; phivault blocks remove blk-0123456789abcdef")
	}
	l, err := openBlocksOf(ctx, *d)
	if err != nil {
		return err
	}
	defer l.Close()
	n, err := l.Remove(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if n == 0 {
		return errorWithHint("no block has this id or origin (an expired block is gone already)", "phivault blocks list")
	}
	fmt.Fprintf(c.stdout, "Removed %d block(s). A running server lifts them after SIGHUP (kill -HUP PID) or a restart.\n", n)
	return nil
}
