package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePolicyFile(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

const policyCases = `[
 {"name": "care team reads", "principal": {"id": "u1", "kind": "staff", "roles": ["physician"], "trainingValidUntil": "2030-01-01T00:00:00Z"},
  "action": "read", "resource": {"type": "Observation", "id": "o1", "category": "patient"},
  "patient": {"id": "p1", "careTeam": ["u1"]}, "context": {"time": "2026-01-01T00:00:00Z"},
  "expect": "permit", "policies": ["clinical-read-care-team"]},
 {"name": "stranger", "principal": {"id": "u2", "kind": "staff", "roles": ["physician"], "trainingValidUntil": "2030-01-01T00:00:00Z"},
  "action": "read", "resource": {"type": "Observation", "id": "o1", "category": "patient"},
  "patient": {"id": "p1", "careTeam": ["u1"]}, "context": {"time": "2026-01-01T00:00:00Z"}, "expect": "deny"}
]`

func TestPolicyTest(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "cases.json", policyCases)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"policy", "test", dir}, &out, &errOut); err != nil {
		t.Fatalf("policy test: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "2 cases, 0 failed, against the built-in policies") {
		t.Fatalf("output:\n%s", out.String())
	}

	// A site policy set that lets nobody read: the first case fails.
	writePolicyFile(t, dir, "site.cedar", `@id("audit-only") permit (principal, action == Action::"readAudit", resource);`)
	out.Reset()
	err := run(context.Background(), []string{"policy", "test", dir}, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "FAIL care team reads") || !strings.Contains(out.String(), "1 failed") {
		t.Fatalf("policy test with a site set: %v\n%s", err, out.String())
	}

	// Wrong expected policies fail too.
	dir2 := t.TempDir()
	writePolicyFile(t, dir2, "one.json", strings.Replace(policyCases[2:strings.Index(policyCases, "},\n {")+1], `"clinical-read-care-team"`, `"front-desk-department"`, 1))
	out.Reset()
	if err := run(context.Background(), []string{"policy", "test", dir2}, &out, &errOut); err == nil || !strings.Contains(out.String(), "want policies front-desk-department") {
		t.Fatalf("policy test with wrong policies: %v\n%s", err, out.String())
	}
}

func TestPolicyValidate(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "bad.cedar", `@id("bad") permit (principal, action, resource) when { principal.nosuch == "x" };`)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"policy", "validate", dir}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "bad.cedar") {
		t.Fatalf("validate bad policy: %v", err)
	}
	writePolicyFile(t, dir, "bad.cedar", `@id("ok") permit (principal, action == Action::"readAudit", resource);`)
	if err := run(context.Background(), []string{"policy", "validate", dir}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
}
