package e2e_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// admins are two security admins signed in to a vault, for the changes
// that wait for a second admin (docs/identity.md): the first asks, the
// second approves. The bootstrap token makes them, as an operator does at
// setup: it may create two security-admin accounts, and nothing that
// gives access to patients' records.
type admins struct {
	t          *testing.T
	v          *vault
	one, two   string // session tokens
	passwordFn string // file holding the password of the accounts they make
	people     []person
}

// adminApp is the public client the admins sign in through.
const (
	adminAppRedirect = "https://admin.example.org/cb"
	adminAppScope    = "user/*.rs"
)

// newAdmins makes two security admins on the running vault v with the
// bootstrap token, enrolls their TOTP, signs them in through a public
// client, and returns them. password is what the accounts they create
// get (PHIVAULT_USER_PASSWORD_FILE).
func newAdmins(t *testing.T, v *vault, password string) *admins {
	t.Helper()
	a := &admins{t: t, v: v, passwordFn: filepath.Join(t.TempDir(), "pw.txt")}
	if err := os.WriteFile(a.passwordFn, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := v.cli(false, nil, "clients", "add-public", "-name", "admin console", "-redirect-uri", adminAppRedirect, "-scope", adminAppScope)
	clientID := regexp.MustCompile(`client_id: (\S+)`).FindStringSubmatch(out)
	if clientID == nil {
		t.Fatalf("clients add-public printed %q", out)
	}
	for i, name := range []string{"sec.one", "sec.two"} {
		p := person{username: name, password: "Admin-Granite-Harbor-" + randomHex(4)}
		pw := filepath.Join(t.TempDir(), "admin-pw.txt")
		if err := os.WriteFile(pw, []byte(p.password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out := v.cli(false, []string{"PHIVAULT_USER_PASSWORD_FILE=" + pw}, "users", "add", "-username", name, "-role", "security-admin", "-totp")
		key, err := otp.NewKeyFromURL(regexp.MustCompile(`otpauth://\S+`).FindString(out))
		if err != nil {
			t.Fatalf("users add %s printed %q: %v", name, out, err)
		}
		code, _ := totp.GenerateCode(key.Secret(), time.Now())
		v.cli(false, nil, "users", "enroll-totp", "-user", name, "-code", code)
		p.totpSecret = key.Secret()
		a.people = append(a.people, p)
		tok := signIn(t, v, clientID[1], adminAppRedirect, adminAppScope, p).AccessToken
		if i == 0 {
			a.one = tok
		} else {
			a.two = tok
		}
	}
	// Setup is over: the bootstrap token makes no third admin.
	v.cli(true, nil, "users", "add", "-username", "sec.three", "-role", "security-admin")
	return a
}

// ask runs a phivault subcommand as the first admin, with
// PHIVAULT_USER_PASSWORD_FILE set, and returns its output.
func (a *admins) ask(wantErr bool, args ...string) string {
	a.t.Helper()
	return a.v.cli(wantErr, []string{"PHIVAULT_TOKEN=" + a.one, "PHIVAULT_USER_PASSWORD_FILE=" + a.passwordFn}, args...)
}

var approveCommand = regexp.MustCompile(`phivault users approve -change ([0-9a-f]{32})`)

// granted runs a subcommand as the first admin that must wait for a
// second admin, checks that the first cannot approve it, has the second
// approve it, and returns what the approval printed.
func (a *admins) granted(args ...string) string {
	a.t.Helper()
	return a.approve(a.ask(false, args...))
}

// approve takes what a subcommand the first admin ran printed, which
// must be a change that waits for a second admin, checks that neither
// the first admin nor the bootstrap token can approve it, has the second
// approve it, and returns what the approval printed.
func (a *admins) approve(out string) string {
	a.t.Helper()
	m := approveCommand.FindStringSubmatch(out)
	if m == nil {
		a.t.Fatalf("phivault printed %q; want a change that waits for a second admin", out)
	}
	a.ask(true, "users", "approve", "-change", m[1])
	a.v.cli(true, nil, "users", "approve", "-change", m[1]) // the bootstrap token
	return a.v.cli(false, []string{"PHIVAULT_TOKEN=" + a.two}, "users", "approve", "-change", m[1])
}
