package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// browserDir holds the browser scenarios (node:test files), their helpers
// (browser/lib.mjs) and their pinned npm packages.
const browserDir = "browser"

// TestBrowser_login drives phivault's sign-in page in Debian's chromium
// through browser/login.mjs: it passes axe-core with no serious or
// critical violation, the physician signs in by keyboard alone and is
// redirected to the demo app with a code, and a wrong authenticator code
// shows an alert on the page and does not redirect.
func TestBrowser_login(t *testing.T) {
	requireE2E(t)
	requireBrowser(t)
	v, people, _ := startDemo(t, filepath.Join(t.TempDir(), "demo"), 4)
	runBrowserScenario(t, v, map[string]person{"dr.demo": people["dr.demo"]}, "login.mjs",
		"PHIVAULT_CLIENT_ID=demo-app",
		"PHIVAULT_REDIRECT_URI=http://127.0.0.1:8400/callback",
		"PHIVAULT_USERNAME=dr.demo",
	)
}

// runBrowserScenario runs the node:test file script in browser/ against v
// with `node --test` and fails with its output if any test in it fails.
// The scenario gets v's FHIR base URL (PHIVAULT_URL) and certificate
// (PHIVAULT_CACERT), people, those it may sign in as (PHIVAULT_PEOPLE,
// JSON by username), the chromium to drive (PHIVAULT_CHROMIUM, default
// /usr/bin/chromium) and extraEnv (NAME=value). When PHIVAULT_SCREENSHOTS
// names a folder (relative to the repository root), the scenario's
// screenshots are written there. It runs npm ci in browser/ when
// browser/node_modules is missing.
func runBrowserScenario(t *testing.T, v *vault, people map[string]person, script string, extraEnv ...string) {
	t.Helper()
	node, chromium := requireBrowser(t)
	dir, err := filepath.Abs(browserDir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]string{}
	for name, p := range people {
		if p.username != name {
			t.Fatalf("runBrowserScenario: person %q has username %q (not one of the demo's people?)", name, p.username)
		}
		byName[p.username] = map[string]string{"username": p.username, "password": p.password, "totpSecret": p.totpSecret}
	}
	peopleJSON, err := json.Marshal(byName)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"PHIVAULT_URL="+v.url,
		"PHIVAULT_CACERT="+v.cacert,
		"PHIVAULT_PEOPLE="+string(peopleJSON),
		"PHIVAULT_CHROMIUM="+chromium,
	)
	if shots := os.Getenv("PHIVAULT_SCREENSHOTS"); shots != "" {
		if !filepath.IsAbs(shots) {
			shots = filepath.Join("..", shots) // go test runs in e2e/
		}
		if shots, err = filepath.Abs(shots); err != nil {
			t.Fatal(err)
		}
		env = append(env, "PHIVAULT_SCREENSHOTS="+shots)
	}
	env = append(env, extraEnv...)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", script)
	cmd.Dir = dir
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test %s: %v\n%s", script, err, out)
	}
	t.Logf("node --test %s (%.1fs):\n%s", script, time.Since(start).Seconds(), out)
}

// requireBrowser returns node and chromium, and runs npm ci in browser/
// when its node_modules is missing. It fails the test, never skips it,
// when one is missing: CI installs them (.ci/run). Call it before starting
// a server, to fail fast.
func requireBrowser(t *testing.T) (node, chromium string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found in PATH; install Node.js 20.19 or later to run the browser tests")
	}
	chromium = os.Getenv("PHIVAULT_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium not found at %s; apt-get install chromium, or set PHIVAULT_CHROMIUM (.ci/run installs it)", chromium)
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core")); err == nil {
		return node, chromium
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm not found in PATH and e2e/browser/node_modules is missing; install npm, or run npm ci in e2e/browser")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = browserDir
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in e2e/browser: %v\n%s", err, out)
	}
	t.Logf("npm ci in e2e/browser: %.1fs", time.Since(start).Seconds())
	return node, chromium
}
