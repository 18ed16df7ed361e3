package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/api"
)

// usersCommand manages accounts through the running server's admin API.
type usersCommand struct {
	stdout, stderr io.Writer
}

const usersUsage = `Usage: phivault users SUBCOMMAND [flags]

Subcommands:
  add           create an account (password from -password-file or
                PHIVAULT_USER_PASSWORD[_FILE]; -totp starts TOTP enrollment)
  list          list accounts (never their credentials)
  update        change roles, department, organization, clearances
  suspend       suspend an account (-deprovision to deprovision it); its
                sessions and tokens are revoked at once
  activate      make a suspended account active again
  set-password  set a new password; revokes the account's sessions
  set-training  set the security-training valid-until date (YYYY-MM-DD)
  enroll-totp   start TOTP enrollment (prints an otpauth:// URI), then
                confirm it with -code from the authenticator app
  remove-totp   remove an account's TOTP second factor
  changes       list the changes that wait for a second admin, clients'
                included
  approve       apply such a change (-change ID); not by the admin who
                asked, nor by the account it changes
  reject        drop such a change (-change ID)
  scim-token    make the bearer token of the identity provider's SCIM
                client (/scim/v2/); works on the data folder (-data)

No one person gives an account access to patients' records alone. These
changes are not applied when asked for: they wait until another security
admin runs "phivault users approve -change ID" (docs/identity.md):
  - creating an account with a role that reaches records (physician, nurse,
    front-desk, billing) or security-admin, a clearance, a practitioner
    link, or a patient account: it is created on approval;
  - granting such a role, clearance or link to an existing account;
  - setting another person's password, removing anyone's TOTP;
  - any change of your own roles, clearances, practitioner, department,
    organization, status or training;
  - registering an OAuth client that reaches patients' records, raising a
    client's scopes, or a new key or redirect URI of such a client
    ("phivault clients -h").
Ask and approve with your own sign-in token as PHIVAULT_TOKEN: the
bootstrap admin token can neither, and only creates the first two
security-admin accounts (while fewer than two are active), and clients
until then.

-user takes a username or an account id. Every subcommand but scim-token
calls the running server's admin API (-url, -cacert) with the token from
PHIVAULT_TOKEN or PHIVAULT_TOKEN_FILE.

Example: a physician with a password and TOTP
  PHIVAULT_USER_PASSWORD_FILE=pw.txt phivault users add -username dr.grey \
      -role physician -department cardiology -training 2026-12-31
  phivault users approve -change ID       # another admin, with their token
  phivault users enroll-totp -user dr.grey
  phivault users enroll-totp -user dr.grey -code 123456
`

func (c *usersCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "users", usersUsage, "phivault users list", args, subcommands{
		"add": c.add, "list": c.list, "update": c.update, "suspend": c.suspend, "activate": c.activate,
		"set-password": c.setPassword, "set-training": c.setTraining, "enroll-totp": c.enrollTOTP,
		"remove-totp": c.removeTOTP, "scim-token": c.scimToken, "changes": c.changes, "approve": c.approve, "reject": c.reject,
	})
}

// listFlag is a flag that may be repeated or given comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// adminJSON sends body (JSON-encoded unless it is []byte) to the admin API
// and decodes a 2xx answer into out, if out is not nil.
func adminJSON(ctx context.Context, cf *clientFlags, method, path string, body, out any) error {
	c, err := cf.client(1)
	if err != nil {
		return err
	}
	var b []byte
	switch v := body.(type) {
	case nil:
		b = []byte{}
	case []byte:
		b = v
	default:
		if b, err = json.Marshal(v); err != nil {
			return err
		}
	}
	status, resp, err := c.do(ctx, method, adminPrefix+path, b)
	clear(b) // it may hold a password
	if err != nil {
		return errorWithHint(fmt.Sprintf("cannot reach %s: %v", cf.url, err), "start the server, check -url and -cacert")
	}
	if status < 200 || status > 299 {
		return fmt.Errorf("server answered %d: %s", status, outcomeMessage(resp))
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return fmt.Errorf("unexpected answer from the server: %v", err)
		}
	}
	return nil
}

// newFlags returns a flag set for "phivault GROUP NAME" with the client
// flags registered.
func newFlags(stderr io.Writer, group, name, usage string) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet(group+" "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: phivault %s %s %s\n\nFlags:\n", group, name, usage)
		fs.PrintDefaults()
	}
	return fs, &cf
}

// resolveUser returns the account id of a username or id.
func resolveUser(ctx context.Context, cf *clientFlags, user string) (string, error) {
	if user == "" {
		return "", errorWithHint("no -user", "phivault users list")
	}
	var list struct{ Users []admin.User }
	if err := adminJSON(ctx, cf, http.MethodGet, "/users?username="+url.QueryEscape(user), nil, &list); err != nil {
		return "", err
	}
	if len(list.Users) == 1 {
		return list.Users[0].ID, nil
	}
	var u admin.User
	if err := adminJSON(ctx, cf, http.MethodGet, "/users/"+url.PathEscape(user), nil, &u); err != nil {
		return "", errorWithHint("no account with username or id "+user, "phivault users list")
	}
	return u.ID, nil
}

// newPassword reads a password from -password-file or from
// PHIVAULT_USER_PASSWORD[_FILE]; never from a flag value, which would show
// in the process list.
func newPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read -password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return secretFromEnv("PHIVAULT_USER_PASSWORD")
}

func (c *usersCommand) add(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "users", "add", "-username NAME [-role ROLE,...] [flags]")
	var req admin.UserCreate
	var roles, clearances listFlag
	fs.StringVar(&req.Username, "username", "", "username to log in with (required)")
	fs.StringVar(&req.Kind, "kind", "staff", "staff or patient")
	fs.Var(&roles, "role", "role, repeatable or comma-separated: "+strings.Join(admin.DefaultRoles, ", "))
	fs.StringVar(&req.Department, "department", "", "department")
	fs.StringVar(&req.Organization, "organization", "", "organization")
	fs.StringVar(&req.PractitionerID, "practitioner", "", "id of the linked Practitioner")
	fs.StringVar(&req.PatientID, "patient", "", "own Patient id (patient accounts)")
	fs.Var(&clearances, "clearance", "sensitivity label the account may see, repeatable: "+strings.Join(admin.Clearances, ", "))
	fs.StringVar(&req.TrainingValidUntil, "training", "", "security training valid until, YYYY-MM-DD")
	fs.StringVar(&req.ExternalID, "external-id", "", "id in the provisioning system")
	passFile := fs.String("password-file", "", "file holding the initial password (or PHIVAULT_USER_PASSWORD[_FILE])")
	totp := fs.Bool("totp", false, "start TOTP enrollment and print the otpauth:// URI")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if req.Username == "" {
		return errorWithHint("no -username", "phivault users add -username NAME -role physician")
	}
	req.Roles, req.Clearances = roles, clearances
	var err error
	if req.Password, err = newPassword(*passFile); err != nil {
		return err
	}
	var u userResult
	if err := adminJSON(ctx, cf, http.MethodPost, "/users", req, &u); err != nil {
		return err
	}
	if awaitsApproval(c.stdout, u.Change) {
		if *totp {
			fmt.Fprintf(c.stdout, "Once it is approved, start TOTP enrollment with: phivault users enroll-totp -user %s\n", req.Username)
		}
		return nil
	}
	c.created(u.User)
	if *totp {
		return c.startTOTP(ctx, cf, u.ID, u.Username)
	}
	return nil
}

// created prints the account u that was just created.
func (c *usersCommand) created(u admin.User) {
	fmt.Fprintf(c.stdout, "Created user %s (id %s, %s, roles %s).\n", u.Username, u.ID, u.Kind, strings.Join(u.Roles, ",")+orNone(len(u.Roles)))
	if !u.Password {
		fmt.Fprintln(c.stdout, "It has no password: set one with phivault users set-password -user "+u.Username+" (another admin approves it).")
	}
}

func orNone(n int) string {
	if n == 0 {
		return "none"
	}
	return ""
}

func (c *usersCommand) startTOTP(ctx context.Context, cf *clientFlags, id, name string) error {
	var enr admin.TOTPEnrollment
	if err := adminJSON(ctx, cf, http.MethodPost, "/users/"+url.PathEscape(id)+"/totp", nil, &enr); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Scan this URI into an authenticator app (it holds the secret and is shown once):\n%s\n", enr.URI)
	fmt.Fprintf(c.stdout, "Then confirm before %s with: phivault users enroll-totp -user %s -code CODE\n", enr.Expires, name)
	return nil
}

func (c *usersCommand) list(ctx context.Context, args []string) error {
	var list struct {
		Users []admin.User `json:"users"`
	}
	return adminList(ctx, c.stdout, c.stderr, "users", "/users", args, &list, "ID\tUSERNAME\tKIND\tSTATUS\tROLES\tDEPARTMENT\tTRAINING\tMFA", func(tw io.Writer) {
		for _, u := range list.Users {
			mfa := "none"
			switch {
			case u.TOTP && u.WebAuthn:
				mfa = "totp,webauthn"
			case u.TOTP:
				mfa = "totp"
			case u.WebAuthn:
				mfa = "webauthn"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Username, u.Kind, u.Status,
				dash(strings.Join(u.Roles, ",")), dash(u.Department), dash(u.TrainingValidUntil), mfa)
		}
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// patchUser sends a PATCH to the account -user names and prints a line.
func (c *usersCommand) patchUser(ctx context.Context, cf *clientFlags, user string, body map[string]any, done string) error {
	id, err := resolveUser(ctx, cf, user)
	if err != nil {
		return err
	}
	var u userResult
	if err := adminJSON(ctx, cf, http.MethodPatch, "/users/"+url.PathEscape(id), body, &u); err != nil {
		return err
	}
	if awaitsApproval(c.stdout, u.Change) {
		return nil
	}
	fmt.Fprintf(c.stdout, "User %s (id %s) %s; status %s, roles %s.\n", u.Username, u.ID, done, u.Status, strings.Join(u.Roles, ",")+orNone(len(u.Roles)))
	return nil
}

func (c *usersCommand) update(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "users", "update", "-user NAME [-role R,...] [-department D] [-organization O] [-clearance L,...] [-practitioner ID] [-external-id X]")
	user := fs.String("user", "", "username or account id (required)")
	var roles, clearances listFlag
	fs.Var(&roles, "role", "the new set of roles, replacing the old")
	noRoles := fs.Bool("no-roles", false, "remove every role")
	fs.Var(&clearances, "clearance", "the new set of clearances (replaces the old)")
	noClear := fs.Bool("no-clearances", false, "remove every clearance")
	body := map[string]any{}
	fields := map[string]string{"department": "department", "organization": "organization", "practitioner": "practitioner_id", "external-id": "external_id"}
	for name, field := range fields {
		fs.String(name, "", "new "+field)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		if field, ok := fields[f.Name]; ok {
			body[field] = f.Value.String()
		}
	})
	switch {
	case *noRoles:
		body["roles"] = []string{}
	case roles != nil:
		body["roles"] = []string(roles)
	}
	switch {
	case *noClear:
		body["clearances"] = []string{}
	case clearances != nil:
		body["clearances"] = []string(clearances)
	}
	if len(body) == 0 {
		return errorWithHint("nothing to change", "phivault users update -user NAME -role physician,nurse")
	}
	return c.patchUser(ctx, cf, *user, body, "updated")
}

// userResult is the answer to a change of an account: the account, or,
// for a change that waits for a second admin, that change.
type userResult struct {
	admin.User
	Change *admin.PendingChange `json:"change"`
}

// pendingWhy says why ch waits.
func pendingWhy(ch *admin.PendingChange) string {
	switch {
	case ch.Kind == admin.ChangeShred:
		return "Crypto-shredding a patient cannot be undone, and this server makes it wait for a second admin"
	case ch.Kind == admin.ChangeKeyCompromised:
		return "Marking a key compromised cannot be undone, and this server makes it wait for a second admin"
	case ch.ClientID != "" && ch.Reason == admin.ReasonCredentials:
		return "This client reaches patients' records, and this trusts a new key or redirect URI of it"
	case ch.ClientID != "":
		return "This client would reach patients' records, or more of them than before"
	case ch.Reason == admin.ReasonSelf:
		return "This changes your own account"
	case ch.Reason == admin.ReasonGrant:
		return "This gives access to patients' records or the security-admin role"
	case ch.Reason == admin.ReasonCredentials:
		return "This resets another person's credentials"
	}
	return "This change needs a second admin"
}

// awaitsApproval prints to w how to approve ch, a change that waits for a
// second admin, and reports whether there is one (ch not nil).
func awaitsApproval(w io.Writer, ch *admin.PendingChange) bool {
	if ch == nil {
		return false
	}
	fmt.Fprintf(w, "%s, so it was not applied: another security admin must run\n  phivault users approve -change %s\nbefore %s.\n", pendingWhy(ch), ch.ID, ch.Expires)
	return true
}

func (c *usersCommand) changes(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "users", "changes", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var list struct{ Changes []admin.PendingChange }
	if err := adminJSON(ctx, cf, http.MethodGet, "/changes", nil, &list); err != nil {
		return err
	}
	if len(list.Changes) == 0 {
		fmt.Fprintln(c.stdout, "No changes await approval.")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANGE	OF	KIND	REASON	REQUESTED_BY	EXPIRES	DETAIL")
	for _, ch := range list.Changes {
		detail := "-"
		switch {
		case ch.Update != nil:
			b, _ := json.Marshal(ch.Update)
			detail = string(b)
		case ch.Create != nil:
			detail = fmt.Sprintf("%s (%s, roles %s, clearances %s)", ch.Create.Username, ch.Create.Kind,
				dash(strings.Join(ch.Create.Roles, ",")), dash(strings.Join(ch.Create.Clearances, ",")))
		case ch.ClientUpdate != nil:
			u := *ch.ClientUpdate
			u.JWKS = nil // shown by its kids
			b, _ := json.Marshal(u)
			detail = string(b) + jwksDetail(ch.ClientUpdate.JWKS)
		case ch.Client != nil:
			detail = fmt.Sprintf("%q (%s, scopes %s, redirect URIs %s)%s", ch.Client.Name, ch.Client.Kind, strings.Join(ch.Client.Scopes, " "),
				dash(strings.Join(ch.Client.RedirectURIs, " ")), jwksDetail(ch.Client.JWKS))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ch.ID, ch.AccountID+ch.ClientID+ch.PatientID+ch.KeyID, ch.Kind, ch.Reason, ch.RequestedBy, ch.Expires, detail)
	}
	return tw.Flush()
}

// jwksDetail names the keys of a client's JWKS by kid, for the one who
// approves to check with the client's owner, or "" for none.
func jwksDetail(set json.RawMessage) string {
	var ks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if len(set) == 0 || json.Unmarshal(set, &ks) != nil {
		return ""
	}
	var kids []string
	for _, k := range ks.Keys {
		kids = append(kids, k.Kid)
	}
	return " jwks kids " + strings.Join(kids, ",")
}

func (c *usersCommand) approve(ctx context.Context, args []string) error {
	return c.decide(ctx, "approve", args)
}

func (c *usersCommand) reject(ctx context.Context, args []string) error {
	return c.decide(ctx, "reject", args)
}

// decide approves or rejects the pending change -change.
func (c *usersCommand) decide(ctx context.Context, verb string, args []string) error {
	fs, cf := newFlags(c.stderr, "users", verb, "-change ID")
	id := fs.String("change", "", "the change's id, from \"phivault users changes\" (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errorWithHint("no -change", "phivault users changes")
	}
	// An approval answers the account (admin.User) or the client
	// (admin.ClientView, which alone has scopes) as the change left it.
	var u struct {
		admin.User
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
		// Issue is the OperationOutcome's that a shred or compromise
		// mark answers.
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if err := adminJSON(ctx, cf, http.MethodPost, "/changes/"+url.PathEscape(*id)+"/"+verb, nil, &u); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Change %s %sd.\n", *id, verb)
	switch {
	case verb == "approve" && len(u.Issue) > 0:
		fmt.Fprintln(c.stdout, u.Issue[0].Diagnostics)
	case verb != "approve" || u.ID == "":
	case u.Scopes != nil:
		fmt.Fprintf(c.stdout, "Client %q (%s): status %s.\nclient_id: %s\nscopes: %s\n", u.Name, u.Kind, u.Status, u.ID, strings.Join(u.Scopes, " "))
	default:
		fmt.Fprintf(c.stdout, "User %s (id %s): status %s, roles %s, clearances %s.\n", u.Username, u.ID, u.Status,
			strings.Join(u.Roles, ",")+orNone(len(u.Roles)), strings.Join(u.Clearances, ",")+orNone(len(u.Clearances)))
	}
	return nil
}

func (c *usersCommand) suspend(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "users", "suspend", "-user NAME [-deprovision] [-reason CODE]")
	user := fs.String("user", "", "username or account id (required)")
	deprov := fs.Bool("deprovision", false, "deprovision (the person left) rather than suspend")
	reason := fs.String("reason", "", reasonUsage+" (e.g. left-organisation, investigation)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	status, done := "suspended", "suspended; every session and token was revoked"
	if *deprov {
		status, done = "deprovisioned", "deprovisioned; every session and token was revoked"
	}
	return c.patchUser(ctx, cf, *user, statusChange(status, *reason), done)
}

// reasonUsage describes a status change's -reason flag.
const reasonUsage = "why, as a code kept in the audit trail: lowercase letters, digits and hyphens, never free text"

// statusChange is the PATCH body that sets status, with reason if given
// (the admin API checks it is a code).
func statusChange(status, reason string) map[string]any {
	body := map[string]any{"status": status}
	if reason != "" {
		body["reason"] = reason
	}
	return body
}

func (c *usersCommand) activate(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "users", "activate", "-user NAME [-reason CODE]")
	user := fs.String("user", "", "username or account id (required)")
	reason := fs.String("reason", "", reasonUsage+" (e.g. returned, investigation-closed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return c.patchUser(ctx, cf, *user, statusChange("active", *reason), "activated")
}

func (c *usersCommand) setPassword(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "users", "set-password", "-user NAME [-password-file FILE]")
	user := fs.String("user", "", "username or account id (required)")
	passFile := fs.String("password-file", "", "file holding the new password (or PHIVAULT_USER_PASSWORD[_FILE])")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pw, err := newPassword(*passFile)
	if err != nil {
		return err
	}
	if pw == "" {
		return errorWithHint("no password", "put it in a file and pass -password-file FILE, or set PHIVAULT_USER_PASSWORD_FILE")
	}
	id, err := resolveUser(ctx, cf, *user)
	if err != nil {
		return err
	}
	return c.outcomeOrPending(ctx, cf, http.MethodPost, "/users/"+url.PathEscape(id)+"/password", map[string]string{"password": pw})
}

// outcomeOrPending sends a change whose answer is an OperationOutcome if
// it applied, or a pending change if it waits for a second admin, and
// prints which.
func (c *usersCommand) outcomeOrPending(ctx context.Context, cf *clientFlags, method, path string, body any) error {
	var raw json.RawMessage
	if err := adminJSON(ctx, cf, method, path, body, &raw); err != nil {
		return err
	}
	var u userResult
	if json.Unmarshal(raw, &u) == nil && awaitsApproval(c.stdout, u.Change) {
		return nil
	}
	fmt.Fprintln(c.stdout, outcomeMessage(raw))
	return nil
}

func (c *usersCommand) removeTOTP(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "users", "remove-totp", "-user NAME")
	user := fs.String("user", "", "username or account id (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	id, err := resolveUser(ctx, cf, *user)
	if err != nil {
		return err
	}
	return c.outcomeOrPending(ctx, cf, http.MethodDelete, "/users/"+url.PathEscape(id)+"/totp", nil)
}

func (c *usersCommand) setTraining(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "users", "set-training", "-user NAME -until YYYY-MM-DD")
	user := fs.String("user", "", "username or account id (required)")
	until := fs.String("until", "", "security training valid until, YYYY-MM-DD (required; \"none\" clears it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *until == "" {
		return errorWithHint("no -until date", "phivault users set-training -user NAME -until 2026-12-31")
	}
	if *until == "none" {
		*until = ""
	}
	id, err := resolveUser(ctx, cf, *user)
	if err != nil {
		return err
	}
	var u userResult
	if err := adminJSON(ctx, cf, http.MethodPut, "/users/"+url.PathEscape(id)+"/training", map[string]string{"valid_until": *until}, &u); err != nil {
		return err
	}
	if awaitsApproval(c.stdout, u.Change) {
		return nil
	}
	fmt.Fprintf(c.stdout, "User %s (id %s): security training valid until %s.\n", u.Username, u.ID, dash(u.TrainingValidUntil))
	return nil
}

func (c *usersCommand) enrollTOTP(ctx context.Context, args []string) error {
	fs, cf := newFlags(c.stderr, "users", "enroll-totp", "-user NAME [-code CODE]")
	user := fs.String("user", "", "username or account id (required)")
	code := fs.String("code", "", "confirm the enrollment with this code from the authenticator app")
	if err := fs.Parse(args); err != nil {
		return err
	}
	id, err := resolveUser(ctx, cf, *user)
	if err != nil {
		return err
	}
	if *code == "" {
		return c.startTOTP(ctx, cf, id, *user)
	}
	var oo json.RawMessage
	if err := adminJSON(ctx, cf, http.MethodPost, "/users/"+url.PathEscape(id)+"/totp/confirm", map[string]string{"code": *code}, &oo); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, outcomeMessage(oo))
	return nil
}

// trainingCommand imports security-training dates from a CSV file.
type trainingCommand struct {
	stdout, stderr io.Writer
}

const trainingUsage = `Usage: phivault training import [-url URL] FILE.csv

Sets the security-training valid-until date of many accounts from a CSV file
of "username,valid_until" lines (YYYY-MM-DD; an optional header line names
the two columns). Every row is checked first: if any row is bad, the server
lists the bad lines and changes nothing.
`

func (c *trainingCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprint(c.stderr, trainingUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "help" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errorWithHint("want: phivault training import FILE.csv", "phivault training import training.csv")
	}
	fs, cf := newFlags(c.stderr, "training", "import", "FILE.csv")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errorWithHint("want one CSV file", "phivault training import training.csv")
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("read %s: %w", fs.Arg(0), err)
	}
	var res admin.TrainingImport
	if err := adminJSON(ctx, cf, http.MethodPost, "/training", b, &res); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Imported %d rows; %d accounts changed.\n", res.Rows, res.Updated)
	return nil
}

// scimTokenFile is where the SHA-256 of the SCIM provisioning token lives
// in the data folder, hex, like the admin token's.
func scimTokenFile(d dataDir) string { return d.path("scim-token.sha256") }

// scimAuthenticator accepts the SCIM token whose hash is in the data
// folder. It reads the file on every request, so "phivault users
// scim-token" takes effect without a restart; without the file SCIM is
// off and every request is refused.
type scimAuthenticator struct{ d dataDir }

func (s scimAuthenticator) Authenticate(ctx context.Context, token string) (context.Context, error) {
	b, err := os.ReadFile(scimTokenFile(s.d))
	if err != nil {
		return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "SCIM provisioning is not enabled on this server: run phivault users scim-token.")
	}
	hash, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(hash) != sha256.Size {
		return nil, phivault.Errorf(phivault.EUNAUTHORIZED, "The SCIM token file is corrupt: run phivault users scim-token again.")
	}
	return (&api.TokenAuthenticator{Hash: hash, Actor: "scim"}).Authenticate(ctx, token)
}

// scimToken makes a new SCIM provisioning token for the data folder and
// prints it once; any earlier SCIM token stops working at once.
func (c *usersCommand) scimToken(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("users scim-token", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	data := fs.String("data", envOr("PHIVAULT_DATA", "phivault-data"), "data folder (env PHIVAULT_DATA)")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, "Usage: phivault users scim-token [-data DIR]\n\nMakes a new bearer token for the identity provider's SCIM client\n(/scim/v2/) and prints it once. The server need not restart; the old\nSCIM token stops working.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	d := dataDir(*data)
	if !d.initialized() {
		return errorWithHint(fmt.Sprintf("%s is not a phivault data folder", d), "phivault users scim-token -data DIR")
	}
	token, hash, err := api.NewToken(rand.Reader)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(scimTokenFile(d), []byte(hex.EncodeToString(hash)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write SCIM token hash: %w", err)
	}
	fmt.Fprintf(c.stdout, "SCIM token (give it to the identity provider's SCIM client; shown once):\n%s\n", token)
	return nil
}

// scimBase returns the SCIM base URL next to the FHIR base URL
// (https://host/fhir -> https://host/scim/v2), or "" if there is none.
func scimBase(fhirBase string) string {
	base, ok := strings.CutSuffix(strings.TrimSuffix(fhirBase, "/"), "/fhir")
	if !ok || base == "" {
		return ""
	}
	return base + "/scim/v2"
}
