package console_test

import (
	"os"
	"os/exec"
	"testing"
)

// TestProofJS runs console/static/proof_test.mjs under Node: proof.js's
// own checks against testdata/proof_fixture.json, a real trail's proof
// data (made by TestConsoleAudit_proof in cmd/phivault).
func TestProofJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("PHIVAULT_E2E") == "1" {
			t.Fatal("node is needed to test static/proof.js: install Node.js 20 or later")
		}
		t.Skip("node is not installed: static/proof.js is not run (CI sets PHIVAULT_E2E=1 and has node)")
	}
	cmd := exec.Command(node, "--test", "static/proof_test.mjs")
	cmd.Env = append(os.Environ(), "PROOF_FIXTURE=testdata/proof_fixture.json")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test static/proof_test.mjs: %v\n%s", err, out)
	}
}
