package e2e_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBrowser_console drives the console in chromium, against one demo,
// through browser/console_all.mjs, which runs two scenarios in one
// process (so that they share lib.mjs's record of the TOTP steps used):
//
//   - browser/console.mjs: sign-in with TOTP, the overview, the alerts and
//     a triage by keyboard, a nurse's anonymous report followed by its
//     receipt, the officers' pages refused to her, a form without its CSRF
//     token refused, and a stale session sent back to sign in;
//   - browser/console_officers.mjs: every officers' page as the privacy
//     officer and as the security admin (incidents, an incident and its
//     breach page, the access report and its exports, the audit trail with
//     an entry verified in the browser and a tampered one failing, people
//     with a suspension undone, keys and vault), and each role refused the
//     other's pages.
//
// axe on every page. The alert to triage and the incident to follow are
// raised here: the operator reads a decoy patient; and a patient of the
// physician, whose access report the privacy officer then opens.
func TestBrowser_console(t *testing.T) {
	requireE2E(t)
	requireBrowser(t)
	// Shreds wait for a second admin here, so the Keys page shows one waiting.
	v, people, notes := startDemo(t, filepath.Join(t.TempDir(), "demo"), 4, "PHIVAULT_APPROVE_KEY_ACTIONS=true")
	var decoy string
	for _, line := range strings.Split(v.cli(false, nil, "honeytoken", "create", "-n", "1"), "\n") {
		if uuidLine.MatchString(line) {
			decoy = line
		}
	}
	if decoy == "" {
		t.Fatal("honeytoken create printed no id")
	}
	if r := v.do(http.MethodGet, "/Patient/"+decoy, nil); r.status != http.StatusOK {
		t.Fatalf("the operator's read of the decoy = %d", r.status)
	}
	// The patient whose access report the privacy officer reads: the
	// physician's, read by the operator too. Not the decoy: the officer's
	// report of the decoy would touch it, and the honeytoken playbook
	// would suspend her.
	patientID, ok := strings.CutPrefix(notes["dr.demo"], "treats Patient/")
	if !ok {
		t.Fatalf("the demo names no patient of dr.demo: %q", notes["dr.demo"])
	}
	r := v.do(http.MethodGet, "/Patient/"+patientID, nil)
	var patient struct {
		Name []struct{ Family string }
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &patient) != nil || len(patient.Name) == 0 || patient.Name[0].Family == "" {
		t.Fatalf("the operator's read of the physician's patient = %d (no family name?)", r.status)
	}
	var alert string
	for deadline := time.Now().Add(30 * time.Second); alert == ""; {
		status, body := securityDo(t, v, v.token, http.MethodGet, "alerts?state=open", nil)
		var page struct{ Alerts []struct{ ID string } }
		if status != http.StatusOK || json.Unmarshal(body, &page) != nil {
			t.Fatalf("GET alerts = %d %s", status, body)
		}
		if len(page.Alerts) > 0 {
			alert = page.Alerts[0].ID
		} else if time.Now().After(deadline) {
			t.Fatal("no alert 30 s after the decoy was read")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The honeytoken playbook opens an incident for the read; wait until
	// its actions have run, so that the pages show it as it stays.
	var incident string
	for deadline := time.Now().Add(30 * time.Second); incident == ""; {
		status, body := securityDo(t, v, v.token, http.MethodGet, "incidents?open=true", nil)
		var list struct{ Incidents []incidentJSON }
		if status != http.StatusOK || json.Unmarshal(body, &list) != nil {
			t.Fatalf("GET incidents = %d %s", status, body)
		}
		if len(list.Incidents) == 1 && !slices.ContainsFunc(list.Incidents[0].Actions, func(a actionJSON) bool { return a.State == "running" }) {
			incident = list.Incidents[0].ID
		} else if time.Now().After(deadline) {
			t.Fatalf("no settled incident 30 s after the decoy was read: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	verifierKey, err := os.ReadFile(filepath.Join(v.dir, "audit-verifier.pub"))
	if err != nil {
		t.Fatal(err)
	}
	runBrowserScenario(t, v,
		map[string]person{"privacy.demo": people["privacy.demo"], "nurse.demo": people["nurse.demo"], "admin.demo": people["admin.demo"]},
		"console_all.mjs",
		"PHIVAULT_ALERT="+alert,
		"PHIVAULT_INCIDENT="+incident,
		"PHIVAULT_PATIENT="+patientID,
		"PHIVAULT_PATIENT_NAME="+patient.Name[0].Family,
		"PHIVAULT_AUDIT_VERIFIER_KEY="+strings.TrimSpace(string(verifierKey)),
	)
}
