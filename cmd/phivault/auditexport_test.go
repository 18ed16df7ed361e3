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

// TestAudit_postgres runs the offline audit commands on a vault whose trail
// is in PostgreSQL: verify, export with proofs (checked by verify -export)
// and archive (checked by verify-archive), with the store given as serve
// takes it, by PHIVAULT_STORE_FILE or by -store. Without it they refuse
// the folder rather than read an empty SQLite file.
func TestAudit_postgres(t *testing.T) {
	ctx := context.Background()
	sc := testPostgres(t)
	setStoreEnv(t, sc)
	d, _ := initTestData(t)
	a := mustServeTestApp(t, d, sc)
	for range 3 {
		if code, _ := a.do(t, "GET", "/fhir/Patient?name=x", ""); code != 200 {
			t.Fatalf("search: status %d", code)
		}
	}
	if _, err := a.audit.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "verify", "-data", string(d), "-audit-witness-file", testWitness(d)}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit log OK") {
		t.Fatalf("audit verify: %v\n%s", err, out.String())
	}

	dir := t.TempDir()
	seg, cp, vk := filepath.Join(dir, "seg.ndjson"), filepath.Join(dir, "seg.checkpoint"), filepath.Join(dir, "verifier.pub")
	b, err := os.ReadFile(d.auditVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vk, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"audit", "export", "-data", string(d), "-proofs", "-save-checkpoint", cp}, &out, io.Discard); err != nil {
		t.Fatalf("audit export: %v", err)
	}
	if n := bytes.Count(out.Bytes(), []byte(`"action":"search"`)); n < 3 {
		t.Fatalf("audit export holds %d searches, want 3:\n%s", n, out.String())
	}
	if err := os.WriteFile(seg, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"audit", "verify", "-export", seg, "-checkpoint", cp, "-verifier", vk}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit export OK") {
		t.Fatalf("audit verify -export: %v\n%s", err, out.String())
	}

	// The same store by flags alone.
	os.Unsetenv("PHIVAULT_STORE_FILE")
	os.Unsetenv("PHIVAULT_POSTGRES_SCHEMA")
	archive := filepath.Join(dir, "all.archive")
	out.Reset()
	if err := run(ctx, []string{"audit", "archive", "-data", string(d), "-store", sc.URL, "-postgres-schema", sc.Schema,
		"-before", "2100-01-01T00:00:00Z", "-out", archive}, &out, io.Discard); err != nil {
		t.Fatalf("audit archive: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"audit", "verify-archive", "-verifier", vk, archive}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit archive OK") {
		t.Fatalf("audit verify-archive: %v\n%s", err, out.String())
	}

	for _, args := range [][]string{
		{"audit", "verify", "-data", string(d), "-audit-witness-file", testWitness(d)},
		{"audit", "export", "-data", string(d)},
		{"audit", "archive", "-data", string(d), "-to-index", "1", "-out", filepath.Join(dir, "x.archive")},
	} {
		err := run(ctx, args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "keeps its records in postgres") {
			t.Errorf("%s without the store setting = %v, want a refusal naming postgres", strings.Join(args[:2], " "), err)
		}
	}
	if _, err := os.Stat(d.database()); err == nil {
		t.Error("an audit command made an SQLite file in a PostgreSQL data folder")
	}
}
