package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/identity"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/sqlite"
)

// twoAdmins authenticates two security admins by token: mgr1 and mgr2.
type twoAdmins struct{}

func (twoAdmins) Authenticate(ctx context.Context, token string) (context.Context, error) {
	switch token {
	case "token-mgr1", "token-mgr2":
		id := strings.TrimPrefix(token, "token-")
		return phivault.WithPrincipal(ctx, &phivault.Principal{ID: id, Kind: phivault.PrincipalStaff, Roles: []string{admin.AdminRole}}), nil
	}
	return nil, &phivault.Error{Code: phivault.EUNAUTHORIZED, Message: "no"}
}

// TestUsers_approve drives "users update", "users changes" and "users
// approve" against the admin API: an admin's change to their own roles
// waits, the same admin cannot approve it, and a second admin can.
func TestUsers_approve(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateAccount(ctx, &phivault.Account{ID: "mgr1", Username: "mgr.one", Kind: phivault.PrincipalStaff,
		Roles: []string{admin.AdminRole}, Status: phivault.AccountActive}); err != nil {
		t.Fatal(err)
	}
	h := admin.NewHandler(admin.Options{Authenticator: twoAdmins{}, Accounts: db, Clients: db, Audit: storetest.OpenAuditLog(t, db),
		Hasher: &identity.Hasher{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}})
	srv := httptest.NewServer(http.StripPrefix("/fhir", h))
	t.Cleanup(srv.Close)

	cli := func(token string, args ...string) (string, error) {
		t.Setenv("PHIVAULT_TOKEN", token)
		var out bytes.Buffer
		err := run(ctx, append(args, "-url", srv.URL+"/fhir"), &out, io.Discard)
		return out.String(), err
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
