package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault"
)

func TestScimBase(t *testing.T) {
	tests := []struct{ give, want string }{
		{"https://vault.example.org/fhir", "https://vault.example.org/scim/v2"},
		{"https://vault.example.org/fhir/", "https://vault.example.org/scim/v2"},
		{"https://vault.example.org/api", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := scimBase(tt.give); got != tt.want {
			t.Errorf("scimBase(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestScimToken makes a SCIM token in a data folder and checks that the
// authenticator accepts it, refuses others, and refuses all without it.
func TestScimToken(t *testing.T) {
	ctx := context.Background()
	d := dataDir(t.TempDir())
	if err := os.WriteFile(d.tokenHashFile(), []byte(strings.Repeat("00", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := scimAuthenticator{d}
	if _, err := auth.Authenticate(ctx, "anything"); phivault.ErrorCode(err) != phivault.EUNAUTHORIZED {
		t.Fatalf("without a token file: %v, want unauthorized", err)
	}
	var out bytes.Buffer
	c := &usersCommand{stdout: &out, stderr: &out}
	if err := c.Run(ctx, []string{"scim-token", "-data", string(d)}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	token := lines[len(lines)-1]
	if _, err := auth.Authenticate(ctx, token); err != nil {
		t.Errorf("the new token is refused: %v", err)
	}
	if _, err := auth.Authenticate(ctx, token+"x"); phivault.ErrorCode(err) != phivault.EUNAUTHORIZED {
		t.Errorf("a wrong token: %v, want unauthorized", err)
	}
	if fi, err := os.Stat(filepath.Join(string(d), "scim-token.sha256")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token hash file: %v, mode %v", err, fi.Mode())
	}
	b, _ := os.ReadFile(filepath.Join(string(d), "scim-token.sha256"))
	if strings.Contains(string(b), token) {
		t.Error("the token itself was stored")
	}
}
