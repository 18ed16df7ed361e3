package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAudit_exportArchive exports a running vault's trail with proofs, then
// verifies the archived segment with only the export, the saved checkpoint
// and the verifier key; an edited export fails.
func TestAudit_exportArchive(t *testing.T) {
	ctx := context.Background()
	a := mustAuditApp(t)
	for range 3 {
		if code, _ := a.do(t, "GET", "/fhir/Patient?name=x", ""); code != 200 {
			t.Fatalf("search: status %d", code)
		}
	}
	if _, err := a.audit.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := a.do(t, "GET", "/fhir/audit/export?from=2000-01-01T00:00:00Z", ""); code != 200 || bytes.Count(body, []byte("\n")) < 3 {
		t.Fatalf("GET /fhir/audit/export: status %d, %d lines", code, bytes.Count(body, []byte("\n")))
	}
	dir := t.TempDir()
	seg, cp := filepath.Join(dir, "seg.ndjson"), filepath.Join(dir, "seg.checkpoint")
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "export", "-data", string(a.cfg.Data), "-proofs", "-save-checkpoint", cp}, &out, io.Discard); err != nil {
		t.Fatalf("audit export: %v", err)
	}
	if err := os.WriteFile(seg, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	vk := filepath.Join(dir, "verifier.pub")
	b, err := os.ReadFile(a.cfg.Data.auditVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(vk, b, 0o600)
	verify := []string{"audit", "verify", "-export", seg, "-checkpoint", cp, "-verifier", vk}
	out.Reset()
	if err := run(ctx, verify, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit export OK") {
		t.Fatalf("audit verify -export: %v\n%s", err, out.String())
	}
	edited, _ := os.ReadFile(seg)
	edited = bytes.Replace(edited, []byte(`"action":"search"`), []byte(`"action":"read"`), 1)
	os.WriteFile(seg, edited, 0o600)
	if err := run(ctx, verify, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "FAILED") {
		t.Errorf("audit verify -export of an edited export = %v, want FAILED", err)
	}
}
