package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/phivault/phivault/admin"
)

// clientsCommand registers OAuth clients through the running server's
// admin API.
type clientsCommand struct {
	stdout, stderr io.Writer
}

const clientsUsage = `Usage: phivault clients SUBCOMMAND [flags]

Subcommands:
  add-public   register an app acting for a person (authorization code +
               PKCE): -name, -redirect-uri (repeatable), -scope
  add-backend  register a system (SMART Backend Services, private_key_jwt):
               -name, -jwks FILE (public keys only), -scope system/...
  list         list registered clients
  suspend      suspend a client; its tokens are revoked at once
  activate     make a suspended client active again

Scopes are SMART v1 or v2 scopes, repeatable or separated by spaces or
commas: patient/*.rs, user/Observation.cruds, system/*.rs, openid, fhirUser,
launch/patient, offline_access. Every subcommand calls the running server's
admin API (-url, -cacert) with the admin token from PHIVAULT_TOKEN or
PHIVAULT_TOKEN_FILE.

No one person gives a client access to patients' records alone: a client
with a patient/, user/ or system/ scope on * or on a type of the Patient
compartment (Patient, Observation, Encounter, ...) is registered only when
another security admin runs "phivault users approve -change ID"; until
then it does not exist. A client that reaches only shared resources
(Practitioner, Organization, Location, ...) is registered at once, and
suspending one applies at once. Ask and approve with your own sign-in
token: the bootstrap admin token registers clients only until two
security admins exist (docs/identity.md).

Example: a backend client
  phivault clients add-backend -name "lab system" -jwks lab.jwks.json -scope "system/*.rs"
  phivault users approve -change ID       # another admin, with their token
`

func (c *clientsCommand) Run(ctx context.Context, args []string) error {
	return runSubcommand(ctx, c.stdout, c.stderr, "clients", clientsUsage, "phivault clients list", args, subcommands{
		"add-public":  func(ctx context.Context, args []string) error { return c.add(ctx, args, "public") },
		"add-backend": func(ctx context.Context, args []string) error { return c.add(ctx, args, "backend") },
		"list":        c.list,
		"suspend":     func(ctx context.Context, args []string) error { return c.setStatus(ctx, args, "suspend", "suspended") },
		"activate":    func(ctx context.Context, args []string) error { return c.setStatus(ctx, args, "activate", "active") },
	})
}

// scopeFlag collects scopes given repeated or separated by spaces or commas.
type scopeFlag []string

func (s *scopeFlag) String() string { return strings.Join(*s, " ") }

func (s *scopeFlag) Set(v string) error {
	*s = append(*s, strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })...)
	return nil
}

func (c *clientsCommand) add(ctx context.Context, args []string, kind string) error {
	usage := "-name NAME -redirect-uri URI -scope SCOPE"
	if kind == "backend" {
		usage = "-name NAME -jwks FILE -scope system/..."
	}
	fs, cf := newFlags(c.stderr, "clients", "add-"+kind, usage)
	req := admin.ClientCreate{Kind: kind}
	var scopes scopeFlag
	var redirects listFlag
	fs.StringVar(&req.Name, "name", "", "name shown on the login and consent pages (required)")
	fs.Var(&scopes, "scope", "scope the client may ask for, repeatable (required)")
	var jwksFile *string
	if kind == "public" {
		fs.Var(&redirects, "redirect-uri", "exact redirect URI, repeatable (required)")
	} else {
		jwksFile = fs.String("jwks", "", "file holding the client's JSON Web Key Set, public keys only (required)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if req.Name == "" {
		return errorWithHint("no -name", "phivault clients add-"+kind+" "+usage)
	}
	req.Scopes, req.RedirectURIs = scopes, redirects
	if jwksFile != nil {
		if *jwksFile == "" {
			return errorWithHint("no -jwks file", "phivault clients add-backend "+usage)
		}
		b, err := os.ReadFile(*jwksFile)
		if err != nil {
			return fmt.Errorf("read -jwks: %w", err)
		}
		req.JWKS = b
	}
	var v struct {
		admin.ClientView
		Change *admin.PendingChange `json:"change"` // a registration that waits
	}
	if err := adminJSON(ctx, cf, http.MethodPost, "/clients", req, &v); err != nil {
		return err
	}
	if awaitsApproval(c.stdout, v.Change) {
		fmt.Fprintf(c.stdout, "Once it is approved, its client_id is %s.\n", v.Change.ClientID)
		return nil
	}
	fmt.Fprintf(c.stdout, "Registered %s client %q.\nclient_id: %s\nscopes: %s\n", v.Kind, v.Name, v.ID, strings.Join(v.Scopes, " "))
	return nil
}

func (c *clientsCommand) list(ctx context.Context, args []string) error {
	var list struct {
		Clients []admin.ClientView `json:"clients"`
	}
	return adminList(ctx, c.stdout, c.stderr, "clients", "/clients", args, &list, "CLIENT_ID\tKIND\tSTATUS\tNAME\tSCOPES", func(tw io.Writer) {
		for _, v := range list.Clients {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID, v.Kind, v.Status, v.Name, strings.Join(v.Scopes, " "))
		}
	})
}

func (c *clientsCommand) setStatus(ctx context.Context, args []string, name, status string) error {
	fs, cf := newFlags(c.stderr, "clients", name, "-client CLIENT_ID [-reason CODE]")
	id := fs.String("client", "", "client_id (required)")
	reason := fs.String("reason", "", reasonUsage)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errorWithHint("no -client", "phivault clients list")
	}
	var v admin.ClientView
	if err := adminJSON(ctx, cf, http.MethodPatch, "/clients/"+url.PathEscape(*id), statusChange(status, *reason), &v); err != nil {
		return err
	}
	msg := "is active again"
	if status == "suspended" {
		msg = "is suspended; its tokens were revoked"
	}
	fmt.Fprintf(c.stdout, "Client %s %s.\n", v.ID, msg)
	return nil
}
