package keyringtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/testenv"
)

// TestSetupKMSPin checks that .ci/setup-kms.sh installs the local-kms that
// LocalKMSModule names, so CI tests against the pinned server.
func TestSetupKMSPin(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), ".ci", "setup-kms.sh"))
	if err != nil {
		t.Fatal(err)
	}
	module, version, ok := strings.Cut(LocalKMSModule, "@")
	if !ok {
		t.Fatalf("LocalKMSModule = %q, want module@version", LocalKMSModule)
	}
	for _, line := range []string{"module=" + module, "version=" + version} {
		if !strings.Contains("\n"+string(script), "\n"+line+"\n") {
			t.Errorf(".ci/setup-kms.sh lacks the line %q", line)
		}
	}
}
