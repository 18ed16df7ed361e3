package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/phivault/phivault"
)

// TestBlocksCommand adds, lists and removes blocks on the data folder of
// a running vault with "phivault blocks", and checks that the server
// enforces and lifts them on reload (SIGHUP), recording the reload.
func TestBlocksCommand(t *testing.T) {
	ctx := context.Background()
	b := mustBlockApp(t, "")
	blocks := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := run(ctx, append(append([]string{"blocks"}, args...), "-data", b.dir), &out, io.Discard)
		return out.String(), err
	}
	// flags come before the addresses
	cli := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := run(ctx, append([]string{"blocks"}, args...), &out, io.Discard)
		return out.String(), err
	}
	if out, err := cli("add", "-data", b.dir, "-for", "72h", "198.51.100.7", "10.9.0.0/16"); err != nil || !strings.Contains(out, "Blocked 198.51.100.7/32") {
		t.Fatalf("blocks add = %q, %v", out, err)
	}
	if status, _ := b.call(t, "GET", "/healthz", "198.51.100.7", "", nil); status != 200 {
		t.Errorf("before the reload: %d, want 200 (the server takes changes up on SIGHUP)", status)
	}
	b.reloadBlocks(ctx)
	if status, _ := b.call(t, "GET", "/healthz", "10.9.3.4", "", nil); status != 403 {
		t.Errorf("after the reload: %d, want 403", status)
	}
	if !hasEntry(b.trail(t), phivault.ActionIncident, "Block", "", "reload blocks.db") {
		t.Error("no audit entry of the reload")
	}
	out, err := blocks("list", "-json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Blocks []struct{ ID, Network, Origin, Until string }
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Blocks) != 2 || list.Blocks[0].Origin != "operator" || list.Blocks[0].Until == "" {
		t.Fatalf("blocks list -json = %s (%v), want the two operator blocks with their end", out, err)
	}
	if out, err := blocks("list"); err != nil || !strings.Contains(out, "10.9.0.0/16") {
		t.Errorf("blocks list = %q, %v", out, err)
	}
	// Refused: everyone, the trusted proxy, nonsense.
	for _, give := range [][]string{{"0.0.0.0/0"}, {"-trusted-proxies", "192.0.2.0/24", "192.0.2.1"}, {"proxy.example"}, {}} {
		if out, err := cli(append([]string{"add", "-data", b.dir}, give...)...); err == nil {
			t.Errorf("blocks add %v = %q, want an error", give, out)
		}
	}
	for _, bl := range list.Blocks {
		if out, err := cli("remove", "-data", b.dir, bl.ID); err != nil || !strings.Contains(out, "Removed 1") {
			t.Errorf("blocks remove %s = %q, %v", bl.ID, out, err)
		}
	}
	if _, err := cli("remove", "-data", b.dir, "blk-none"); err == nil {
		t.Error("blocks remove of an unknown id succeeded")
	}
	b.reloadBlocks(ctx)
	if status, _ := b.call(t, "GET", "/healthz", "10.9.3.4", "", nil); status != 200 {
		t.Errorf("after removal and reload: %d, want 200", status)
	}
	if _, err := cli("list", "-data", t.TempDir()); err == nil {
		t.Error("blocks list on a folder that is not a data folder succeeded")
	}
}
