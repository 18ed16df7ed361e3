package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/admin"
	"github.com/phivault/phivault/identity"
)

// demoApp is the public OAuth client the demo registers, with a loopback
// redirect URI, for trying the SMART authorization code flow.
const (
	demoAppID       = "demo-app"
	demoAppRedirect = "http://127.0.0.1:8400/callback"
	demoAppScopes   = "launch/patient patient/*.rs user/*.cruds offline_access"
)

// demoPerson is one of the demo's sign-in accounts.
type demoPerson struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	Password string `json:"password"`
	TOTP     string `json:"totp_secret"` // base32, as authenticator apps take it
	Note     string `json:"note"`
}

// demoAccounts makes, on the first demo start, sign-in accounts for the
// synthetic hospital: a physician with a care relationship to the first
// patient, a nurse of the patient's department without one, a privacy
// officer, a security admin and the patient, each with a random password
// and TOTP secret, plus the demo-app client. Their credentials are kept in
// the data folder (like the demo passphrase: a demo convenience only) and
// returned, so that each start can print them.
func (a *app) demoAccounts(ctx context.Context, path string) ([]demoPerson, error) {
	if b, err := os.ReadFile(path); err == nil {
		var people []demoPerson
		if err := json.Unmarshal(b, &people); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return people, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ctx = phivault.WithPrincipal(ctx, access.BootstrapPrincipal("demo"))
	patient, practitioner, dept, err := demoPatient(ctx, a.records)
	if err != nil {
		return nil, err
	}
	training := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
	plan := []struct {
		req  admin.UserCreate
		note string
	}{
		{admin.UserCreate{Username: "dr.demo", Roles: []string{"physician"}, Department: dept, PractitionerID: practitioner},
			"treats Patient/" + patient},
		{admin.UserCreate{Username: "nurse.demo", Roles: []string{"nurse"}, Department: dept},
			"same department, no care relationship: break-the-glass only"},
		{admin.UserCreate{Username: "privacy.demo", Roles: []string{"privacy-officer"}}, "audit trail and access reports"},
		{admin.UserCreate{Username: "admin.demo", Roles: []string{"security-admin"}}, "users, clients, keys"},
		{admin.UserCreate{Username: "patient.demo", Kind: phivault.PrincipalPatient, PatientID: patient},
			"is Patient/" + patient},
	}
	var people []demoPerson
	for _, p := range plan {
		p.req.TrainingValidUntil = training
		person, err := a.newSignInAccount(ctx, p.req, "demo")
		if err != nil {
			return nil, err
		}
		person.Note = p.note
		people = append(people, person)
	}
	err = a.db.CreateClient(ctx, &phivault.Client{ID: demoAppID, Name: "phivault demo app", Kind: phivault.ClientPublic,
		RedirectURIs: []string{demoAppRedirect}, Scopes: strings.Fields(demoAppScopes), Status: phivault.AccountActive,
		Created: time.Now().UTC()})
	if err != nil && phivault.ErrorCode(err) != phivault.ECONFLICT {
		return nil, fmt.Errorf("demo client: %w", err)
	}
	b, err := json.MarshalIndent(people, "", "  ")
	if err != nil {
		return nil, err
	}
	return people, writeFileAtomic(path, b, 0o600)
}

// newSignInAccount makes an account that signs in with a random password
// and a TOTP secret, records it in the audit trail as made by actor, and
// returns its credentials.
func (a *app) newSignInAccount(ctx context.Context, req admin.UserCreate, actor string) (demoPerson, error) {
	var err error
	if req.Password, err = demoSecret(); err != nil {
		return demoPerson{}, err
	}
	acc, err := a.admin.NewAccount(ctx, &req)
	if err != nil {
		return demoPerson{}, fmt.Errorf("account %s: %w", req.Username, err)
	}
	secret, err := identity.NewTOTPSecret(rand.Reader)
	if err != nil {
		return demoPerson{}, err
	}
	if _, err := a.admin.ModifyAccount(ctx, acc.ID, func(acc *phivault.Account) error {
		acc.TOTPSecret = secret
		return nil
	}); err != nil {
		return demoPerson{}, fmt.Errorf("account %s: %w", req.Username, err)
	}
	role := strings.Join(req.Roles, ",")
	if role == "" {
		role = req.Kind
	}
	if err := a.audit.log.Append(ctx, &phivault.AuditEntry{Time: time.Now().UTC(), Actor: actor,
		Action: phivault.ActionAccountChange, TargetType: "Account", TargetID: acc.ID, Outcome: "ok"}); err != nil {
		return demoPerson{}, err
	}
	return demoPerson{Username: req.Username, Role: role, Password: req.Password,
		TOTP: base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)}, nil
}

// demoPatient picks the synthetic hospital's first patient with an
// Encounter, and returns its id, the id of a Practitioner who took part in
// that Encounter, and its managing Organization (the department).
func demoPatient(ctx context.Context, records phivault.RecordService) (patient, practitioner, dept string, err error) {
	encounters, err := records.Search(ctx, &phivault.Query{Type: "Encounter", Count: 50, SortAsc: true, Sorted: true})
	if err != nil {
		return "", "", "", fmt.Errorf("demo: find an encounter: %w", err)
	}
	for _, e := range encounters.Matches {
		var enc struct {
			Subject     struct{ Reference string }
			Participant []struct{ Individual struct{ Reference string } }
		}
		if json.Unmarshal(e.Body, &enc) != nil || len(enc.Participant) == 0 {
			continue
		}
		pid, ok1 := strings.CutPrefix(enc.Subject.Reference, "Patient/")
		prid, ok2 := strings.CutPrefix(enc.Participant[0].Individual.Reference, "Practitioner/")
		if !ok1 || !ok2 {
			continue
		}
		pat, err := records.Read(ctx, "Patient", pid)
		if err != nil {
			return "", "", "", fmt.Errorf("demo: read patient: %w", err)
		}
		var p struct{ ManagingOrganization struct{ Reference string } }
		json.Unmarshal(pat.Body, &p)
		return pid, prid, strings.TrimPrefix(p.ManagingOrganization.Reference, "Organization/"), nil
	}
	return "", "", "", errors.New("demo: the synthetic hospital has no encounter with a practitioner")
}

// demoSecret returns a random password that passes the password policy.
func demoSecret() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// printDemoPeople writes the demo accounts as a table.
func printDemoPeople(w io.Writer, people []demoPerson) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  USERNAME\tROLE\tPASSWORD\tTOTP SECRET\t")
	for _, p := range people {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", p.Username, p.Role, p.Password, p.TOTP, p.Note)
	}
	tw.Flush()
}
