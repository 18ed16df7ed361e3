package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault/policy"
)

// TestAccess drives the access layer through the real binary: the
// bootstrap token as a system client, "phivault policy explain" against
// the running server, and reloading -policy-dir on SIGHUP, keeping the old
// set when the new one is invalid.
func TestAccess(t *testing.T) {
	requireE2E(t)
	polDir := t.TempDir()
	defaults := string(policy.DefaultPolicies())
	writePolicies := func(text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(polDir, "site.cedar"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePolicies(defaults)
	v := newVault(t, "PHIVAULT_POLICY_DIR="+polDir)
	v.start()

	r := v.do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","active":true}`))
	if r.status != http.StatusCreated {
		t.Fatalf("create Patient = %d %s", r.status, r.body)
	}
	var pat struct{ ID string }
	json.Unmarshal(r.body, &pat)
	r = v.do(http.MethodPost, "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+pat.ID+`"}}`))
	if r.status != http.StatusCreated {
		t.Fatalf("create Observation = %d %s", r.status, r.body)
	}
	var obs struct{ ID string }
	json.Unmarshal(r.body, &obs)

	cli := func(wantErr bool, args ...string) string {
		t.Helper()
		return v.cli(wantErr, nil, args...)
	}
	// A physician: asked for by one security admin, approved by another.
	out := newAdmins(t, v, "Lattice-Orchard-Beacon-3318").granted("users", "add", "-username", "dr.access", "-role", "physician")
	id := regexp.MustCompile(`\(id (\S+)\)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("users add printed %q", out)
	}
	out = cli(false, "policy", "explain", "-user", id[1], "-action", "read", "-resource", "Observation/"+obs.ID)
	if byName := cli(false, "policy", "explain", "--user", "dr.access", "--action", "read", "--resource", "Observation/"+obs.ID); !strings.Contains(byName, "by dr.access") || byName[strings.Index(byName, "\n"):] != out[strings.Index(out, "\n"):] {
		t.Fatalf("explain by username printed:\n%s\nby id:\n%s", byName, out)
	}
	// No training date yet: the expired-training rule decides; breaking
	// the glass stays possible.
	if !strings.Contains(out, "DENY read") || !strings.Contains(out, "forbid-expired-training") ||
		!strings.Contains(out, "care relationship: false") || !strings.Contains(out, "break-the-glass possible") {
		t.Fatalf("policy explain printed:\n%s", out)
	}
	out = cli(true, "policy", "explain", "-user", "nobody", "-resource", "Observation/"+obs.ID)
	if !strings.Contains(out, "No such user") {
		t.Fatalf("policy explain for an unknown user printed:\n%s", out)
	}

	// A site set without the system client policy: the bootstrap token
	// no longer reads clinical data once the server reloads.
	start := strings.Index(defaults, `@id("system-client-scope")`)
	end := strings.Index(defaults, `// Shared resources`)
	if start < 0 || end < start {
		t.Fatal("default policies changed shape")
	}
	writePolicies(defaults[:start] + defaults[end:])
	hup := func() {
		t.Helper()
		if err := v.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	hup()
	waitStatus := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := v.do(http.MethodGet, "/Observation/"+obs.ID, nil)
			if r.status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET Observation = %d %s, want %d", r.status, r.body, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitStatus(http.StatusNotFound)

	// An invalid set is refused and the last good one stays in force.
	writePolicies(defaults + "\n@id(\"broken\") permit (principal, action, resource) when { principal.nosuch };\n")
	from := v.stderr.Len()
	hup()
	deadline := time.Now().Add(30 * time.Second)
	for !bytes.Contains(v.stderr.Bytes()[from:], []byte("reload refused")) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload refusal logged:\n%s", tail(v.stderr.Bytes(), 10))
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitStatus(http.StatusNotFound)
	writePolicies(defaults)
	hup()
	waitStatus(http.StatusOK)
	v.stop()
}
