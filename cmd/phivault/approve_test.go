package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/sqlite"
)

// twoAdmins authenticates two security admins by token, mgr1 and mgr2,
// and the bootstrap token.
type twoAdmins struct{}

func (twoAdmins) Authenticate(ctx context.Context, token string) (context.Context, error) {
	switch token {
	case "token-mgr1", "token-mgr2":
		id := strings.TrimPrefix(token, "token-")
		return phivault.WithPrincipal(ctx, &phivault.Principal{ID: id, Kind: phivault.PrincipalStaff, Roles: []string{admin.AdminRole}}), nil
	case "token-boot":
		return phivault.WithPrincipal(ctx, access.BootstrapPrincipal("admin")), nil
	}
	return nil, &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "no"}
}

// adminCLI serves the admin API on a fresh store with o, its
// authenticator (twoAdmins), stores, audit trail and a fast hasher filled
// in, and returns the store, its audit trail and a function that runs the
// CLI against the API with token.
func adminCLI(t *testing.T, o admin.Options) (*sqlite.DB, *auditlog.Log, func(token string, args ...string) (string, error)) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := storetest.OpenAuditLog(t, db)
	o.Authenticator, o.Accounts, o.Clients, o.Audit = twoAdmins{}, db, db, log
	o.Hasher = &identity.Hasher{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}
	srv := httptest.NewServer(http.StripPrefix("/fhir", admin.NewHandler(o)))
	t.Cleanup(srv.Close)
	return db, log, func(token string, args ...string) (string, error) {
		t.Setenv("PHIVAULT_TOKEN", token)
		var out bytes.Buffer
		err := run(ctx, append(args, "-url", srv.URL+"/fhir"), &out, io.Discard)
		return out.String(), err
	}
}

// TestUsers_approve drives "users update", "users changes" and "users
// approve" against the admin API: an admin's change to their own roles
// waits, the same admin cannot approve it, and a second admin can.
func TestUsers_approve(t *testing.T) {
	ctx := context.Background()
	db, _, cli := adminCLI(t, admin.Options{})
	if err := db.CreateAccount(ctx, &phivault.Account{ID: "mgr1", Username: "mgr.one", Kind: phivault.PrincipalStaff,
		Roles: []string{admin.AdminRole}, Status: phivault.AccountActive}); err != nil {
		t.Fatal(err)
	}
	out, err := cli("token-mgr1", "users", "update", "-user", "mgr1", "-role", "security-admin,physician")
	if err != nil {
		t.Fatalf("users update: %v", err)
	}
	m := regexp.MustCompile(`approve -change ([0-9a-f]{32})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("users update printed %q, want the approve command", out)
	}
	if out, err := cli("token-mgr2", "users", "changes"); err != nil || !strings.Contains(out, m[1]) {
		t.Errorf("users changes = %q, %v; want the change listed", out, err)
	}
	if _, err := cli("token-mgr1", "users", "approve", "-change", m[1]); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("self-approval: %v, want a 403", err)
	}
	if _, err := cli("token-mgr2", "users", "approve", "-change", m[1]); err != nil {
		t.Fatalf("approval by mgr2: %v", err)
	}
	a, err := db.AccountByID(ctx, "mgr1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Roles, []string{admin.AdminRole, "physician"}) {
		t.Errorf("roles after approval %v", a.Roles)
	}
}

// TestUsers_approveGrants drives the CLI through the bypasses of finding
// 15's follow-up: a new physician, another person's password and TOTP,
// each asked for by one admin, refused to the same admin and the
// bootstrap token, and applied when a second admin approves.
func TestUsers_approveGrants(t *testing.T) {
	ctx := context.Background()
	db, _, cli := adminCLI(t, admin.Options{})
	pwFile := filepath.Join(t.TempDir(), "pw.txt")
	if err := os.WriteFile(pwFile, []byte("Harbor-Lantern-Quiet-4471\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	changeID := regexp.MustCompile(`approve -change ([0-9a-f]{32})`)
	// asked runs a command as mgr1 that must wait, checks that mgr1 and
	// the bootstrap token cannot approve it, approves it as mgr2 and
	// returns what that printed.
	asked := func(args ...string) string {
		t.Helper()
		out, err := cli("token-mgr1", args...)
		m := changeID.FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("%v = %q, %v; want a change that waits, and the approve command", args, out, err)
		}
		for _, token := range []string{"token-mgr1", "token-boot"} {
			if _, err := cli(token, "users", "approve", "-change", m[1]); err == nil || !strings.Contains(err.Error(), "403") {
				t.Errorf("approval of %v with %s: %v, want a 403", args, token, err)
			}
		}
		out, err = cli("token-mgr2", "users", "approve", "-change", m[1])
		if err != nil {
			t.Fatalf("approval of %v by mgr2: %v", args, err)
		}
		return out
	}

	if _, err := cli("token-boot", "users", "add", "-username", "dr.boot", "-role", "physician"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("users add of a physician with the bootstrap token: %v, want a 403", err)
	}
	t.Setenv("PHIVAULT_USER_PASSWORD_FILE", pwFile)
	out := asked("users", "add", "-username", "dr.new", "-role", "physician", "-clearance", "PSY")
	if !strings.Contains(out, "User dr.new") || !strings.Contains(out, "roles physician") || !strings.Contains(out, "clearances PSY") {
		t.Errorf("approval printed %q, want the new physician", out)
	}
	a, err := db.AccountByUsername(ctx, "dr.new")
	if err != nil {
		t.Fatalf("the approved account: %v", err)
	}
	a.TOTPSecret, a.Version = []byte("12345678901234567890"), a.Version+1
	if err := db.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	asked("users", "set-password", "-user", "dr.new")
	asked("users", "remove-totp", "-user", "dr.new")
	if a, err = db.AccountByID(ctx, a.ID); err != nil || len(a.TOTPSecret) != 0 {
		t.Errorf("TOTP after an approved removal: %v, %v", a, err)
	}
	if out, err := cli("token-mgr1", "users", "changes"); err != nil || !strings.Contains(out, "No changes await") {
		t.Errorf("users changes = %q, %v; want none left", out, err)
	}
}

// TestClients_approve drives "clients add-backend" as one security admin:
// a system/*.rs client waits, "users changes" shows it, the same admin and
// the bootstrap token (two admins being active) cannot approve it, and a
// second admin's approval registers it with the client_id it was given. A
// client that reaches only shared resources is registered at once.
func TestClients_approve(t *testing.T) {
	ctx := context.Background()
	db, _, cli := adminCLI(t, admin.Options{})
	for _, id := range []string{"mgr1", "mgr2"} {
		if err := db.CreateAccount(ctx, &phivault.Account{ID: id, Username: id, Kind: phivault.PrincipalStaff,
			Roles: []string{admin.AdminRole}, Status: phivault.AccountActive}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "lab-2026", Algorithm: "ES384", Use: "sig"}}})
	jwksFile := filepath.Join(t.TempDir(), "lab.jwks.json")
	if err := os.WriteFile(jwksFile, set, 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"clients", "add-backend", "-name", "lab system", "-jwks", jwksFile, "-scope", "system/*.rs"}

	if out, err := cli("token-boot", add...); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("clients add-backend with the bootstrap token = %q, %v; want a 403", out, err)
	}
	out, err := cli("token-mgr1", add...)
	m := regexp.MustCompile(`approve -change ([0-9a-f]{32})(?s:.*)client_id is ([0-9a-f]{32})`).FindStringSubmatch(out)
	if err != nil || m == nil || strings.Contains(out, "client_id:") {
		t.Fatalf("clients add-backend = %q, %v; want a change that waits, and no client_id: line", out, err)
	}
	if _, err := db.ClientByID(ctx, m[2]); !errors.Is(err, phivault.ErrNotFound) {
		t.Fatalf("the client before approval: %v, want not found", err)
	}
	if out, err := cli("token-mgr2", "users", "changes"); err != nil || !strings.Contains(out, m[1]) ||
		!strings.Contains(out, "client-create") || !strings.Contains(out, "system/*.rs") || !strings.Contains(out, "lab-2026") {
		t.Errorf("users changes = %q, %v; want the registration with its scope and kid", out, err)
	}
	for _, token := range []string{"token-mgr1", "token-boot"} {
		if _, err := cli(token, "users", "approve", "-change", m[1]); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("approval with %s: %v, want a 403", token, err)
		}
	}
	out, err = cli("token-mgr2", "users", "approve", "-change", m[1])
	if err != nil || !strings.Contains(out, "client_id: "+m[2]) || !strings.Contains(out, "scopes: system/*.rs") {
		t.Fatalf("approval by mgr2 = %q, %v; want the client", out, err)
	}
	if c, err := db.ClientByID(ctx, m[2]); err != nil || c.Status != phivault.AccountActive {
		t.Fatalf("the approved client: %v, %v", c, err)
	}

	out, err = cli("token-mgr1", "clients", "add-backend", "-name", "directory", "-jwks", jwksFile, "-scope", "system/Practitioner.rs")
	if err != nil || !strings.Contains(out, "client_id: ") {
		t.Errorf("a client reaching shared resources = %q, %v; want it registered at once", out, err)
	}
}

// shredRecorder shreds any patient and records which.
type shredRecorder struct{ shredded []string }

func (s *shredRecorder) Shred(_ context.Context, id string) (time.Time, error) {
	s.shredded = append(s.shredded, id)
	return time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC), nil
}

// TestKeys_approveShred drives "keys shred" on a server that makes
// shreds wait for a second admin: the bootstrap token is refused with a
// message that says why, an admin's shred prints how to approve it,
// "users changes" lists it, and "users approve" by a second admin shreds
// and prints the outcome.
func TestKeys_approveShred(t *testing.T) {
	rec := &shredRecorder{}
	_, _, cli := adminCLI(t, admin.Options{Records: rec, ApproveKeyActions: true})

	if out, err := cli("token-boot", "keys", "shred", "--patient", "p1"); err == nil || !strings.Contains(err.Error(), "need two security admins") {
		t.Errorf("the bootstrap token's shred = %q, %v; want a refusal saying two admins are needed", out, err)
	}
	out, err := cli("token-mgr1", "keys", "shred", "--patient", "p1")
	m := regexp.MustCompile(`approve -change ([0-9a-f]{32})`).FindStringSubmatch(out)
	if err != nil || m == nil || !strings.Contains(out, "cannot be undone") {
		t.Fatalf("keys shred = %q, %v; want the approve command", out, err)
	}
	if len(rec.shredded) != 0 {
		t.Fatalf("shredded %v before approval", rec.shredded)
	}
	if out, err := cli("token-mgr2", "users", "changes"); err != nil || !strings.Contains(out, m[1]+"  p1  shred  destructive") {
		t.Errorf("users changes = %q, %v; want the shred of p1 listed", out, err)
	}
	if out, err := cli("token-mgr1", "users", "approve", "-change", m[1]); err == nil {
		t.Errorf("self-approval = %q, want an error", out)
	}
	out, err = cli("token-mgr2", "users", "approve", "-change", m[1])
	if err != nil || !strings.Contains(out, "Patient/p1 was crypto-shredded at 2026-12-06T09:00:00Z") || !slices.Equal(rec.shredded, []string{"p1"}) {
		t.Errorf("users approve = %q, %v, shredded %v; want p1 shredded and the outcome printed", out, err, rec.shredded)
	}
}

// TestConfig_approveKeyActions: the flag or PHIVAULT_APPROVE_KEY_ACTIONS
// turns the rule on; the environment cannot turn a flag off, and a value
// that is not a boolean stops the start.
func TestConfig_approveKeyActions(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		env     string
		want    bool
		wantErr bool
	}{
		{nil, "", false, false},
		{[]string{"-approve-key-actions"}, "", true, false},
		{nil, "true", true, false},
		{nil, "1", true, false},
		{[]string{"-approve-key-actions"}, "false", true, false},
		{nil, "yes", false, true},
	} {
		t.Setenv("PHIVAULT_APPROVE_KEY_ACTIONS", tt.env)
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		var c Config
		c.register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		err := c.resolve()
		if (err != nil) != tt.wantErr || err == nil && c.ApproveKeyActions != tt.want {
			t.Errorf("%v with PHIVAULT_APPROVE_KEY_ACTIONS=%q: %v, %v; want %v (error %v)", tt.args, tt.env, c.ApproveKeyActions, err, tt.want, tt.wantErr)
		}
	}
}

// TestUsers_statusReason: "users suspend|activate" and "clients
// suspend|activate" send -reason with the status; the reason reaches the
// change's audit entry, and one that is not a code is refused with the
// rule, nothing changed.
func TestUsers_statusReason(t *testing.T) {
	ctx := context.Background()
	db, log, cli := adminCLI(t, admin.Options{})
	if err := db.CreateAccount(ctx, &phivault.Account{ID: "u1", Username: "desk.one", Kind: phivault.PrincipalStaff,
		Roles: []string{"front-desk"}, Status: phivault.AccountActive}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateClient(ctx, &phivault.Client{ID: "c1", Name: "Lab app", Kind: phivault.ClientPublic, RedirectURIs: []string{"https://app.example/cb"}, Scopes: []string{"openid"}, Status: phivault.AccountActive, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if out, err := cli("token-mgr1", "users", "suspend", "-user", "u1", "-reason", "left the organisation"); err == nil || !strings.Contains(err.Error(), "code") {
		t.Errorf("a free-text reason = %q, %v; want the rule", out, err)
	}
	if a, err := db.AccountByID(ctx, "u1"); err != nil || a.Status != phivault.AccountActive {
		t.Fatalf("after a refused suspension: %v, %v", a, err)
	}
	for _, args := range [][]string{
		{"users", "suspend", "-user", "u1", "-reason", "investigation"},
		{"users", "activate", "-user", "u1", "-reason", "investigation-closed"},
		{"clients", "suspend", "-client", "c1", "-reason", "account-compromised"},
		{"clients", "activate", "-client", "c1"},
	} {
		if out, err := cli("token-mgr1", args...); err != nil {
			t.Errorf("%v = %q, %v", args, out, err)
		}
	}
	var got []string
	for _, e := range storetest.AuditEntries(t, log, db) {
		if e.Action == phivault.ActionAccountChange && e.Outcome == "ok" {
			got = append(got, e.TargetID+": "+e.Decision)
		}
	}
	want := []string{"u1: status suspended (reason investigation)", "u1: status active (reason investigation-closed)",
		"c1: status suspended (reason account-compromised)", "c1: "}
	if !slices.Equal(got, want) {
		t.Errorf("account-change entries %q, want %q", got, want)
	}
}
