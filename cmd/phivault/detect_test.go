package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/detect"
)

// TestDetectConfig_refused checks that settings a server cannot honour
// stop it at start with a hint, instead of running without them.
func TestDetectConfig_refused(t *testing.T) {
	t.Setenv("PHIVAULT_DETECT_WEBHOOK_SECRET", "")
	for _, tt := range []struct {
		name string
		cfg  DetectConfig
		want string
	}{
		{"unknown rule", DetectConfig{Disabled: "new-source,no-such-rule"}, "no rule named no-such-rule"},
		{"bad change window", DetectConfig{ChangeWindows: "Someday 25:00-26:00"}, "change window"},
		{"plain http webhook", DetectConfig{Webhook: "http://soc.example/hook"}, "https URL"},
		{"webhook without a secret", DetectConfig{Webhook: "https://soc.example/hook"}, "signing secret"},
		{"mail without recipients", DetectConfig{SMTP: "mail.example:587", MailFrom: "a@example"}, "-detect-mail-to"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.settings()
			if err == nil {
				_, err = tt.cfg.notifiers()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
	ok := DetectConfig{Disabled: "new-source", ChangeWindows: "Sat 22:00-Sun 04:00,Tue 18:00-22:00"}
	s, err := ok.settings()
	if err != nil || len(s.Disabled) != 1 || !s.ChangeWindows.Declared() {
		t.Fatalf("settings = %+v, %v", s, err)
	}
	for _, r := range s.Rules() {
		if r.Name() == "new-source" {
			t.Fatal("a disabled rule runs")
		}
	}
}

// TestDetectContext reads the directory from a real vault: a staff
// account linked to a Practitioner who shares an address with a VIP
// patient, an employee-patient, an Encounter naming the practitioner;
// then an update ending the encounter is read again on Refresh.
func TestDetectContext(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	if err := run(ctx, []string{"init", "-data", dir, "-audit-witness-file", testWitness(dataDir(dir))}, &bytes.Buffer{}, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	a, err := openTestApp(dataDir(dir), AuditConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	sys := phivault.WithPrincipal(ctx, access.BootstrapPrincipal("test"))
	create := func(typ, body string) string {
		t.Helper()
		r, _, err := a.records.Create(sys, typ, []byte(body), phivault.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v", typ, err)
		}
		return r.ID
	}
	const addr = `"address":[{"line":["12 Elmwood Street"],"postalCode":"AB1 2CD"}]`
	pract := create("Practitioner", `{"resourceType":"Practitioner","name":[{"family":"Quennell"}],`+addr+`}`)
	vip := create("Patient", `{"resourceType":"Patient","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"VIP"}]},"name":[{"family":"Quennell"}],`+addr+`}`)
	emp := create("Patient", `{"resourceType":"Patient","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"EMP"}]},"deceasedBoolean":true}`)
	enc := create("Encounter", `{"resourceType":"Encounter","status":"in-progress","class":{"code":"IMP"},"subject":{"reference":"Patient/`+vip+`"},"period":{"start":"2026-12-01T08:00:00Z"},"participant":[{"individual":{"reference":"Practitioner/`+pract+`"}}]}`)
	nurse := &phivault.Account{ID: "nurse1", Username: "nurse1", Roles: []string{"nurse"}, Department: "ward-3", PractitionerID: pract, PatientID: emp, Status: phivault.AccountActive}
	if err := a.accounts.CreateAccount(ctx, nurse); err != nil {
		t.Fatal(err)
	}

	dctx := &detectContext{records: a.reindex.records, accounts: a.accounts, tokens: vaultTokens{store: a.db, sealer: a.seal.sealer}}
	d := detect.NewDirectory()
	if err := dctx.Load(ctx, d); err != nil {
		t.Fatal(err)
	}
	u, p, e := d.User("nurse1"), d.Patient(vip), d.Patient(emp)
	if u == nil || p == nil || e == nil {
		t.Fatalf("directory: user %v, VIP %v, employee %v", u, p, e)
	}
	if !detect.Shares(u.Person.Address, p.Person.Address) || !detect.Shares(u.Person.Family, p.Person.Family) || len(p.Person.Address) != 1 {
		t.Errorf("the practitioner's and the patient's address and family tokens do not match: %+v / %+v", u.Person, p.Person)
	}
	if !p.HasLabel(detect.LabelVIP) || !e.HasLabel(detect.LabelEmployee) || !e.Deceased || e.Employee != "nurse1" {
		t.Errorf("labels: VIP %v, employee %v deceased %v of %q", p.Labels, e.Labels, e.Deceased, e.Employee)
	}
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	if d.Related("nurse1", vip, at, 0) == nil {
		t.Error("the encounter naming the nurse's practitioner is not a relationship")
	}
	if d.Related("nurse1", emp, at, 0) != nil {
		t.Error("a relationship to a patient no record relates her to")
	}

	// An episode of care whose team is a CareTeam of the same patient
	// relates the team's members (through the team itself, as the access
	// layer reads it); an episode that names another patient's team
	// relates no one to its own patient.
	doc := create("Practitioner", `{"resourceType":"Practitioner","name":[{"family":"Aldous"}]}`)
	team := create("CareTeam", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/`+emp+`"},"participant":[{"member":{"reference":"Practitioner/`+doc+`"}}]}`)
	create("EpisodeOfCare", `{"resourceType":"EpisodeOfCare","status":"active","patient":{"reference":"Patient/`+emp+`"},"period":{"start":"2026-12-01"},"team":[{"reference":"CareTeam/`+team+`"}]}`)
	create("EpisodeOfCare", `{"resourceType":"EpisodeOfCare","status":"active","patient":{"reference":"Patient/`+vip+`"},"period":{"start":"2026-12-01"},"team":[{"reference":"CareTeam/`+team+`"}]}`)
	doctor := &phivault.Account{ID: "doc1", Username: "doc1", Roles: []string{"physician"}, PractitionerID: doc, Status: phivault.AccountActive}
	if err := a.accounts.CreateAccount(ctx, doctor); err != nil {
		t.Fatal(err)
	}
	if err := dctx.Load(ctx, d); err != nil {
		t.Fatal(err)
	}
	if d.Related("doc1", emp, at, 0) == nil {
		t.Error("the member of the episode's care team is not related to its patient")
	}
	if d.Related("doc1", vip, at, 0) != nil {
		t.Error("an episode naming another patient's care team relates that team's members to its own patient")
	}

	// The encounter ends on the 2nd; the update's trail event refreshes it.
	up := `{"resourceType":"Encounter","id":"` + enc + `","status":"finished","class":{"code":"IMP"},"subject":{"reference":"Patient/` + vip + `"},"period":{"start":"2026-12-01T08:00:00Z","end":"2026-12-02T08:00:00Z"},"participant":[{"individual":{"reference":"Practitioner/` + pract + `"}}]}`
	if _, _, err := a.records.Update(sys, "Encounter", enc, []byte(up), phivault.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := &detect.Event{Action: phivault.ActionUpdate, ResourceType: "Encounter", ResourceID: enc, OK: true}
	if err := dctx.Refresh(ctx, d, ev); err != nil {
		t.Fatal(err)
	}
	if d.Related("nurse1", vip, at, 0) != nil {
		t.Error("the ended encounter still relates the nurse on the 3rd")
	}
	if d.Related("nurse1", vip, at, 48*time.Hour) == nil {
		t.Error("the ended encounter does not relate the nurse within two days of its end")
	}
}
