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

func TestPlaybook(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	alert := filepath.Join(dir, "alert.json")
	// The security API's view of an alert.
	if err := os.WriteFile(alert, []byte(`{"id":"0123456789abcdef","rule":"bulk-access","severity":"high","score":80,"user":"u-7","patients":["p-1"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	phivault := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, args, &out, io.Discard)
		return out.String(), err
	}
	out, err := phivault("playbook", "test", "-alert", alert, "-staff", "-roles", "clerk")
	if err != nil || !strings.Contains(out, "playbook bulk-export") || !strings.Contains(out, "suspend-account at once, can be undone") ||
		!strings.Contains(out, `opens an incident (or joins the user's open one): high, "Bulk access by u-7"`) {
		t.Fatalf("test = %q, %v", out, err)
	}
	// The near miss: the same alert about a system client.
	if out, err := phivault("playbook", "test", "-alert", alert); err != nil || !strings.Contains(out, "no playbook answers") {
		t.Fatalf("test of a system client's alert = %q, %v", out, err)
	}
	// The stored form (severity a number) reads the same.
	if err := os.WriteFile(alert, []byte(`{"ID":"x","Rule":"honeytoken","Severity":4,"Score":100,"User":"u-8"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := phivault("playbook", "test", "-alert", alert); err != nil || !strings.Contains(out, "playbook honeytoken-touch") {
		t.Fatalf("test of a stored alert = %q, %v", out, err)
	}

	own := filepath.Join(dir, "playbooks")
	os.Mkdir(own, 0o700)
	os.WriteFile(filepath.Join(own, "vip.yaml"), []byte("name: vip\ntrigger:\n  rules: [vip-access]\nsteps:\n  - action: notify\n"), 0o600)
	if out, err := phivault("playbook", "check", "-playbooks", own); err != nil || !strings.Contains(out, "5 playbooks, all valid") {
		t.Fatalf("check = %q, %v", out, err)
	}
	if out, err := phivault("playbook", "list", "-playbooks", own); err != nil || !strings.Contains(out, "vip") || !strings.Contains(out, "honeytoken-touch") {
		t.Fatalf("list = %q, %v", out, err)
	}
	os.WriteFile(filepath.Join(own, "bad.yaml"), []byte("name: bad\nsteps:\n  - action: notify\n    approval: later\n"), 0o600)
	if _, err := phivault("playbook", "check", "-playbooks", own); err == nil || !strings.Contains(err.Error(), "bad.yaml:4: approval is auto or two-person") {
		t.Fatalf("check of a bad folder = %v", err)
	}
	if _, err := phivault("playbook", "test", "-alert", filepath.Join(dir, "playbooks", "vip.yaml")); err == nil {
		t.Fatal("a YAML file was read as an alert")
	}
}
