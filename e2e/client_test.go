package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestFHIRKitClient drives the server with fhir-kit-client, a widely used
// JavaScript FHIR client, through client/client-test.mjs (node:test): CRUD,
// vread, If-Match, paging, history, transactions with urn:uuid references,
// delete and validation errors. TLS is verified against the data folder's
// certificate. It runs on SQLite and on PostgreSQL.
func TestFHIRKitClient(t *testing.T) {
	requireE2E(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found in PATH; install Node.js 20 or later to run the fhir-kit-client test")
	}
	dir, err := filepath.Abs("client")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fhir-kit-client")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Fatal("npm not found in PATH and e2e/client/node_modules is missing; install npm, or run npm ci in e2e/client")
		}
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in e2e/client: %v\n%s", err, out)
		}
	}

	forEachStore(t, func(t *testing.T, pg *pgStore) {
		v := newVault(t, pg.env(t)...)
		v.start()

		cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "client-test.mjs")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"PHIVAULT_URL="+v.url,
			"PHIVAULT_TOKEN="+v.token,
			"NODE_EXTRA_CA_CERTS="+v.cacert,
		)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node --test client-test.mjs: %v\n%s", err, out)
		}
		t.Logf("node --test client-test.mjs:\n%s", out)
		v.stop()
	})
}
