package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/incident/report"
)

// TestReports drives the reports CLI against a real server (TLS, OAuth
// session tokens, the sealed stores): a nurse reports anonymously and
// follows her report by receipt; an officer lists and reads it; nothing
// investigators read (the answers, the audit trail) names her, and the
// description is on disk only sealed.
func TestReports(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	if err := run(ctx, []string{"init", "-data", dir, "-audit-witness-file", testWitness(dataDir(dir))}, io.Discard, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	a, err := openApp(ctx, Config{Data: dataDir(dir), Passphrase: "correct horse battery staple", Addr: "127.0.0.1:0",
		Audit: AuditConfig{WitnessFile: testWitness(dataDir(dir))}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.listen(ctx); err != nil {
		t.Fatal(err)
	}
	url, cacert := a.server.URL()+"/fhir", dataDir(dir).certFile()
	const nurseID, nurseName = "u-7f3a9c", "nurse.quint"
	if err := a.accounts.CreateAccount(ctx, &phivault.Account{ID: nurseID, Username: nurseName, Kind: phivault.PrincipalStaff,
		Roles: []string{"nurse"}, Status: phivault.AccountActive}); err != nil {
		t.Fatal(err)
	}
	session := func(p phivault.Principal) string {
		is, err := a.signIn.Sessions().Start(p, false)
		if err != nil {
			t.Fatal(err)
		}
		return is.AccessToken
	}
	nurse := session(phivault.Principal{ID: nurseID, Kind: phivault.PrincipalStaff, Roles: []string{"nurse"}})
	officer := session(phivault.Principal{ID: "u-po", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RolePrivacyOfficer}})
	patient := session(phivault.Principal{ID: "u-pt", Kind: phivault.PrincipalPatient, PatientID: "p-1"})
	os.Unsetenv("PHIVAULT_TOKEN_FILE")
	phivault := func(token string, args ...string) (string, error) {
		t.Setenv("PHIVAULT_TOKEN", token)
		var out, errb bytes.Buffer
		err := run(ctx, append(append([]string{args[0], args[1]}, "-url", url, "-cacert", cacert), args[2:]...), &out, &errb)
		return out.String(), err
	}
	const description = "Zebediah Quint's lab results were e-mailed to his neighbour"
	descFile := filepath.Join(t.TempDir(), "what.txt")
	if err := os.WriteFile(descFile, []byte(description), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := phivault(nurse, "reports", "submit", "-kind", "misdirected-record", "-description-file", descFile, "-patient", "p-9", "-anonymous")
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	id := regexp.MustCompile(`rep-[0-9a-f]{32}`).FindString(out)
	receipt := regexp.MustCompile(`receipt: (\S+)`).FindStringSubmatch(out)
	if id == "" || receipt == nil || !strings.Contains(out, "anonymously") {
		t.Fatalf("submit printed %q", out)
	}
	receiptFile := filepath.Join(t.TempDir(), "receipt")
	if err := os.WriteFile(receiptFile, []byte(receipt[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := phivault(nurse, "reports", "show", id, "-receipt-file", receiptFile); err != nil || !strings.Contains(out, "received") || strings.Contains(out, "Quint") {
		t.Fatalf("show by receipt = %q, %v", out, err)
	}
	// A patient reports nothing here; a nurse reads no report without its receipt.
	if _, err := phivault(patient, "reports", "submit", "-kind", "other", "-description-file", descFile); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("patient submit = %v, want a 403", err)
	}
	if _, err := phivault(nurse, "reports", "show", id); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("nurse show without receipt = %v, want a 403", err)
	}
	if _, err := phivault(nurse, "reports", "submit", "-kind", "other"); err == nil || !strings.Contains(err.Error(), "-description-file") {
		t.Fatalf("submit without a description = %v", err)
	}

	var seen bytes.Buffer
	out, err = phivault(officer, "reports", "list")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "anonymous") {
		t.Fatalf("officer list = %q, %v", out, err)
	}
	seen.WriteString(out)
	out, err = phivault(officer, "reports", "show", id, "-json")
	if err != nil {
		t.Fatalf("officer show: %v", err)
	}
	seen.WriteString(out)
	var v report.View
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Description != description || v.Reporter != "anonymous" {
		t.Fatalf("officer show = %+v, %v", v, err)
	}

	// The trail, as investigators read it, names neither her id nor her
	// username; the reporter's entries carry no source address either.
	for _, e := range (&auditApp{app: a}).trail(t) {
		b, _ := json.Marshal(e)
		seen.Write(b)
		if e.Actor == report.AnonymousActor && (e.Source != "" || e.Client != "" || len(e.Roles) > 0) {
			t.Errorf("anonymous entry %s", b)
		}
	}
	for _, tell := range []string{nurseID, nurseName} {
		if strings.Contains(seen.String(), tell) {
			t.Errorf("investigators can read %q", tell)
		}
	}
	// On disk, the description is sealed, and so is her id in the reports' file.
	reports, err := os.ReadFile(dataDir(dir).reportsFile())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(reports, []byte(nurseID)) {
		t.Error("reports.db holds the reporter's id in the clear")
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("Zebediah")) {
			t.Errorf("%s holds the description in the clear", path)
		}
		return nil
	})
}

// TestReportsHelp checks the reports commands answer -h with their usage.
func TestReportsHelp(t *testing.T) {
	for _, args := range [][]string{{"reports", "-h"}, {"reports", "submit", "-h"}, {"reports", "list", "-h"}, {"reports", "show", "-h"}} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "Usage") || stderr.Len() > 0 {
			t.Errorf("phivault %s = %v; stdout %q, stderr %q", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
	}
}
