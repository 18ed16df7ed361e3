package e2e_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowser_console drives the console in chromium (browser/console.mjs):
// sign-in with TOTP, the overview, the alerts and a triage by keyboard, a
// nurse's anonymous report followed by its receipt, the officers' pages
// refused to her, a form without its CSRF token refused, and a stale
// session sent back to sign in; axe on every page. The alert to triage is
// raised here: the operator reads a decoy patient.
func TestBrowser_console(t *testing.T) {
	requireE2E(t)
	v, people, _ := startDemo(t, filepath.Join(t.TempDir(), "demo"), 4)
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
	runBrowserScenario(t, v, map[string]person{"privacy.demo": people["privacy.demo"], "nurse.demo": people["nurse.demo"]},
		"console.mjs", "PHIVAULT_ALERT="+alert)
}
