package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// drillReport is the part of a drill report (phivault drill run -json)
// the test reads.
type drillReport struct {
	Scenario  string
	Skipped   string
	DetectMS  int64 `json:"detect_ms"`
	ContainMS int64 `json:"contain_ms"`
	Steps     []struct {
		Action, Outcome string
		Required        bool
	}
	Evidence *struct{ Status, Detail string }
	Pass     bool
	Failures []string
}

// TestDrills plays every drill scenario through the real binary, each
// with a drill account of its own in a throw-away vault at small scale: each must be
// detected and contained, every required step done, the reports kept in
// the history (0600) and the throw-away vaults deleted. Against a running
// demo, -live with an account that is not a drill account is refused
// before anything is played: the account stays active, no incident is
// opened, and neither its password nor its TOTP secret is printed.
func TestDrills(t *testing.T) {
	requireE2E(t)
	tmp, hist := t.TempDir(), t.TempDir()
	drill := func(wantErr bool, env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"drill"}, args...)...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "PHIVAULT_") && !strings.HasPrefix(kv, "TMPDIR=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(append(cmd.Env, "TMPDIR="+tmp), env...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); (err != nil) != wantErr {
			t.Fatalf("phivault drill %s: err %v, want error %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantErr, out.Bytes(), errOut.Bytes())
		}
		return out.String() + errOut.String()
	}

	out := drill(false, nil, "run", "-data", hist, "-json", "all")
	var reports []drillReport
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r drillReport
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("drill run printed a line that is not a report: %q", line)
		}
		reports = append(reports, r)
	}
	want := []string{"snooping", "stolen-credentials", "bulk-export", "mass-update", "lost-device", "compromised-key"}
	if len(reports) != len(want) {
		t.Fatalf("drill run all printed %d reports, want %d:\n%s", len(reports), len(want), out)
	}
	for i, r := range reports {
		if r.Scenario != want[i] || !r.Pass || r.Skipped != "" || r.DetectMS < 0 || r.ContainMS < 0 {
			t.Errorf("drill %s: %+v", want[i], r)
		}
		// Every incident's evidence archive verifies offline (with the
		// throw-away vault's audit verifier key); the playbooks' drills
		// have one.
		if hasIncident := i >= 1 && i <= 4; hasIncident && r.Evidence == nil || r.Evidence != nil && r.Evidence.Status != "verified" {
			t.Errorf("drill %s: evidence %+v, want verified", r.Scenario, r.Evidence)
		}
		for _, s := range r.Steps {
			if s.Required && s.Outcome != "done" {
				t.Errorf("drill %s: required step %s %s", r.Scenario, s.Action, s.Outcome)
			}
		}
		t.Logf("drill %s: detected in %d ms, contained in %d ms", r.Scenario, r.DetectMS, r.ContainMS)
	}
	st, err := os.Stat(filepath.Join(hist, "drills", "history.jsonl"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("history file: %v %v, want mode 0600", st, err)
	}
	out = drill(false, nil, "history", "-data", hist)
	for _, name := range want {
		if !strings.Contains(out, name) {
			t.Errorf("drill history does not list %s:\n%s", name, out)
		}
	}
	if regexp.MustCompile(`\bFAIL\b`).MatchString(out) {
		t.Errorf("drill history shows a failure:\n%s", out)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "phivault-drill-*")); len(left) > 0 {
		t.Errorf("throw-away vaults left behind: %v", left)
	}

	// -live with a real person's account: refused before anything.
	v, people, _ := startDemo(t, filepath.Join(t.TempDir(), "demo"), 2)
	v.cli(false, nil, "honeytoken", "create", "-n", "1")
	nurse := people["nurse.demo"]
	accounts := filepath.Join(t.TempDir(), "accounts.json")
	b, _ := json.Marshal([]map[string]string{{"username": nurse.username, "password": nurse.password, "totp_secret": nurse.totpSecret}})
	if err := os.WriteFile(accounts, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out = drill(true, []string{"PHIVAULT_TOKEN=" + v.token}, "run", "-data", hist, "-live", v.url, "-cacert", v.cacert, "-accounts", accounts, "bulk-export")
	if !strings.Contains(out, `"nurse.demo" is not a drill account`) || strings.Contains(out, nurse.password) || strings.Contains(out, nurse.totpSecret) {
		t.Fatalf("drill run -live as nurse.demo printed:\n%s", out)
	}
	status, body := securityGet(t, v, v.token, "incidents")
	if status != http.StatusOK || strings.Contains(string(body), "inc-") {
		t.Fatalf("incidents after the refused drill: %d %s", status, body)
	}
	if r := v.do(http.MethodGet, "/admin/users?username=nurse.demo", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"active"`) {
		t.Fatalf("nurse.demo after the refused drill: %d %s", r.status, r.body)
	}
}
