package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRunSubcommand(t *testing.T) {
	ctx := context.Background()
	var got []string
	run := subcommands{"list": func(_ context.Context, args []string) error {
		got = args
		return nil
	}}
	for _, tc := range []struct {
		args           []string
		wantErr        string
		stdout, stderr bool // usage printed there
	}{
		{args: []string{"list", "-json"}},
		{args: nil, wantErr: "no things subcommand", stderr: true},
		{args: []string{"help"}, stdout: true},
		{args: []string{"-h"}, stdout: true},
		{args: []string{"frobnicate"}, wantErr: "unknown things subcommand frobnicate", stderr: true},
	} {
		var stdout, stderr bytes.Buffer
		got = nil
		err := runSubcommand(ctx, &stdout, &stderr, "things", "USAGE\n", "phivault things list", tc.args, run)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.wantErr)
		}
		if (stdout.String() == "USAGE\n") != tc.stdout || (stderr.String() == "USAGE\n") != tc.stderr {
			t.Errorf("%q: stdout %q, stderr %q", tc.args, stdout.String(), stderr.String())
		}
	}
	var stderr bytes.Buffer
	if err := runSubcommand(ctx, io.Discard, &stderr, "things", "USAGE\n", "", []string{"list", "-json"}, run); err != nil || strings.Join(got, " ") != "-json" {
		t.Errorf("list got args %q, err %v", got, err)
	}
	want := errors.New("boom")
	if err := runSubcommand(ctx, io.Discard, io.Discard, "things", "", "", []string{"x"}, subcommands{"x": func(context.Context, []string) error { return want }}); err != want {
		t.Errorf("error of the subcommand: %v", err)
	}
}

// TestAdminList lists users and clients of a running server, as tables and
// as JSON, through adminList.
func TestAdminList(t *testing.T) {
	a := mustAuditApp(t)
	t.Setenv("PHIVAULT_TOKEN", a.token)
	t.Setenv("PHIVAULT_URL", a.url+"/fhir")
	ctx := context.Background()
	var out bytes.Buffer
	users := &usersCommand{stdout: &out, stderr: io.Discard}
	// A privacy officer: the bootstrap token creates it at once (a
	// physician would wait for two security admins; see TestUsers_approve).
	if err := users.Run(ctx, []string{"add", "-username", "dr.grey", "-role", "privacy-officer", "-department", "cardiology"}); err != nil {
		t.Fatalf("users add: %v", err)
	}

	out.Reset()
	if err := users.Run(ctx, []string{"list"}); err != nil {
		t.Fatalf("users list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "MFA") ||
		!strings.Contains(lines[1], "dr.grey") || !strings.Contains(lines[1], "cardiology") {
		t.Errorf("users list:\n%s", out.String())
	}

	out.Reset()
	if err := users.Run(ctx, []string{"list", "-json"}); err != nil {
		t.Fatalf("users list -json: %v", err)
	}
	var list struct {
		Users []struct{ Username string } `json:"users"`
	}
	if err := json.Unmarshal(out.Bytes(), &list); err != nil || len(list.Users) != 1 || list.Users[0].Username != "dr.grey" {
		t.Errorf("users list -json: %v\n%s", err, out.String())
	}

	out.Reset()
	clients := &clientsCommand{stdout: &out, stderr: io.Discard}
	if err := clients.Run(ctx, []string{"list"}); err != nil {
		t.Fatalf("clients list: %v", err)
	}
	if !strings.HasPrefix(out.String(), "CLIENT_ID ") {
		t.Errorf("clients list:\n%s", out.String())
	}

	t.Setenv("PHIVAULT_TOKEN", "not-the-token")
	if err := users.Run(ctx, []string{"list"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("users list with a wrong token: %v", err)
	}
}
