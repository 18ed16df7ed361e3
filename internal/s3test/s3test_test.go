package s3test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/testenv"
)

// TestSetupS3Pin checks that .ci/setup-s3.sh installs the versitygw that
// Module names, so CI tests against the pinned server.
func TestSetupS3Pin(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), ".ci", "setup-s3.sh"))
	if err != nil {
		t.Fatal(err)
	}
	pkg, version, ok := strings.Cut(Module, "@")
	module, found := strings.CutSuffix(pkg, "/cmd/versitygw")
	if !ok || !found {
		t.Fatalf("Module = %q, want github.com/versity/versitygw/cmd/versitygw@version", Module)
	}
	for _, line := range []string{"module=" + module, "version=" + version} {
		if !strings.Contains("\n"+string(script), "\n"+line+"\n") {
			t.Errorf(".ci/setup-s3.sh lacks the line %q", line)
		}
	}
}

// TestStart checks that a started server answers on loopback and holds
// its buckets in Root.
func TestStart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Endpoint, "127.0.0.1:") {
		t.Errorf("Endpoint = %q, want loopback", s.Endpoint)
	}
	if fi, err := os.Stat(s.Root); err != nil || !fi.IsDir() {
		t.Errorf("Root %s: %v", s.Root, err)
	}
	s.Stop()
	s.Stop() // twice is fine
}
