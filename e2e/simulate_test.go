package e2e_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimulateIngest sends a small simulated hospital to the real binary's
// ingestion API with "phivault simulate -ingest", and checks the report
// (every decoy touch caught) and that the made-up addresses and phones
// it sent are nowhere in the server's output, its log, or the client's.
func TestSimulateIngest(t *testing.T) {
	requireE2E(t)
	v, _, _ := startDemo(t, filepath.Join(t.TempDir(), "demo"), 1)
	files := t.TempDir()
	cmd := exec.Command(binary, "simulate", "-ingest", v.url, "-cacert", v.cacert, "-json", "-out", files,
		"-seed", "3", "-days", "8", "-staff", "70", "-patients", "400")
	cmd.Env = v.env("PHIVAULT_TOKEN=" + v.token)
	var stderr output
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("phivault simulate -ingest: %v\n%s", err, stderr.Bytes())
	}
	var rep struct {
		Through          string
		Alerts           int
		Events           int
		HoneytokenRecall float64
		Skipped          map[string]int
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	// An access log carries break-the-glass now; phivault's own control
	// changes (account, policy, key changes) it cannot.
	if rep.Through != "ingest" || rep.HoneytokenRecall != 1 || rep.Alerts == 0 || rep.Events == 0 ||
		rep.Skipped["break-glass"] != 0 || rep.Skipped["account-change"] == 0 {
		t.Errorf("report through %q, honeytoken recall %v, %d alerts, %d events, skipped %v; want ingest, 1, some, some, account changes but no break-glass",
			rep.Through, rep.HoneytokenRecall, rep.Alerts, rep.Events, rep.Skipped)
	}

	secrets := rosterValues(t, files)
	if len(secrets) < 100 {
		t.Fatalf("only %d addresses and phones in the rosters written", len(secrets))
	}
	logFile, err := os.ReadFile(filepath.Join(v.dir, "phivault.log"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"server stdout": v.stdout.Bytes(), "server stderr": v.stderr.Bytes(),
		"server log": logFile, "report": out, "client stderr": stderr.Bytes()} {
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds a roster's address or phone", name)
				break
			}
		}
	}
}

// rosterValues returns the address lines and phones of the rosters in dir.
func rosterValues(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*-staff.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(dir, "*-patients.ndjson"))
	var out []string
	for _, n := range append(names, more...) {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l struct{ Address, Phone string }
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				for _, s := range []string{l.Address, l.Phone} {
					if s != "" {
						out = append(out, s)
					}
				}
			}
		}
		f.Close()
	}
	return out
}
