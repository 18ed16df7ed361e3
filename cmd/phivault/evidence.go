package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/phivault/phivault/incident/evidence"
)

// evidence saves the evidence archive of an incident, made by the
// running server, to a file.
func (c *incidentsCommand) evidence(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "incidents", "evidence", "ID -out FILE")
	out := fs.String("out", "", "file to write the archive to (0600)")
	hint := "phivault incidents evidence inc-… -out inc.phivault-evidence"
	id, err := parseWithID(fs, args, "evidence", hint)
	if err != nil {
		return err
	}
	if id == "" || *out == "" {
		return errorWithHint("evidence needs an incident id and -out", hint)
	}
	cl, err := cf.client(1)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, securityURL(cl.base, "incidents/"+url.PathEscape(id)+"/evidence"), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	resp, err := cl.http.Do(req)
	if err != nil {
		return errorWithHint(fmt.Sprintf("cannot reach %s: %v", cl.base, err), "start the server, check -url and -cacert")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("server answered %d: %s", resp.StatusCode, outcomeMessage(b))
	}
	n, err := writeStreamAtomic(*out, 0o600, func(w io.Writer) (int64, error) { return io.Copy(w, resp.Body) })
	if err != nil {
		return fmt.Errorf("save the evidence archive: %w", err)
	}
	fmt.Fprintf(c.stdout, "wrote the evidence archive of %s (%d bytes) to %s\ncheck it with: phivault audit verify-evidence %s -key audit-verifier.pub\n", id, n, *out, *out)
	return nil
}

// verifyEvidence checks an evidence archive with a verifier key alone.
func (c *auditCommand) verifyEvidence(args []string) error {
	fs := flag.NewFlagSet("audit verify-evidence", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	key := fs.String("key", "", "note verifier key (the data folder's audit-verifier.pub)")
	fs.StringVar(key, "verifier", "", "the same as -key")
	fs.Usage = func() { fmt.Fprint(c.stderr, auditUsage); fs.PrintDefaults() }
	hint := "phivault audit verify-evidence inc.phivault-evidence -key audit-verifier.pub"
	var file string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		if file != "" {
			return errorWithHint("verify-evidence takes one archive file", hint)
		}
		file, rest = fs.Arg(0), fs.Args()[1:]
	}
	if file == "" || *key == "" {
		return errorWithHint("verify-evidence needs -key and one archive file", hint)
	}
	verifier, err := readVerifier(*key)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := evidence.Verify(bufio.NewReader(f), verifier)
	if err != nil {
		return fmt.Errorf("verification FAILED: %w", err)
	}
	w := c.stdout
	fmt.Fprintf(w, "evidence archive OK: incident %s, made %s\n", s.Incident, s.Created.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  manifest signed by %s\n", verifier.Name())
	fmt.Fprintf(w, "  %d audit entries, %d inclusion proofs verified against the checkpoint of size %d, root %s\n", s.Entries, s.Entries, s.Checkpoint.N, s.Checkpoint.Hash)
	fmt.Fprintf(w, "  %d timeline events, each backed by an entry; %d alerts; %d actions\n", s.Timeline, s.Alerts, s.Actions)
	return nil
}
