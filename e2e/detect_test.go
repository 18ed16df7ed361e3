package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alertJSON is an alert as GET /security/alerts answers it.
type alertJSON struct {
	ID          string
	Rule        string
	Severity    string
	User        string
	Patients    []string
	Detected    time.Time
	Explanation string
	Evidence    []string
	Events      int
}

// securityGet sends GET /security/path with token and returns the status
// and body.
func securityGet(t *testing.T, v *vault, token, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", strings.TrimSuffix(v.url, "/fhir")+"/security/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := v.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, body
}

var uuidLine = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// waitAlerts polls GET /security/alerts?query with the admin token until
// done accepts the alerts, and returns them.
func waitAlerts(t *testing.T, v *vault, query string, done func([]alertJSON) bool) []alertJSON {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := securityGet(t, v, v.token, "alerts?"+query)
		var res struct{ Alerts []alertJSON }
		if status != http.StatusOK || json.Unmarshal(body, &res) != nil {
			t.Fatalf("GET /security/alerts?%s = %d %s", query, status, body)
		}
		if done(res.Alerts) {
			return res.Alerts
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts for %s after 30 s: %+v", query, res.Alerts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDetect runs the detectors inside the real binary: decoy patients
// made with "phivault honeytoken create", a touch of one becomes a
// critical alert within seconds (the time is logged, not asserted), a
// nurse may not read alerts, and after kill -9 and a restart the
// detectors resume: a second touch merges into the same alert, counted
// once.
func TestDetect(t *testing.T) {
	requireE2E(t)
	dir := filepath.Join(t.TempDir(), "demo")
	ocsf := filepath.Join(t.TempDir(), "alerts.ocsf.ndjson")
	v, people, _ := startDemo(t, dir, 4, "PHIVAULT_DETECT_OCSF_FILE="+ocsf)
	out := v.cli(false, nil, "honeytoken", "create", "-n", "2")
	var decoys []string
	for _, line := range strings.Split(out, "\n") {
		if uuidLine.MatchString(line) {
			decoys = append(decoys, line)
		}
	}
	if len(decoys) != 2 {
		t.Fatalf("honeytoken create printed:\n%s", out)
	}
	// The decoy reads like any patient.
	r := v.do(http.MethodGet, "/Patient/"+decoys[0], nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"name"`) {
		t.Fatalf("GET decoy = %d %s", r.status, r.body)
	}
	touched := time.Now()
	alerts := waitAlerts(t, v, "rule=honeytoken", func(a []alertJSON) bool { return len(a) > 0 })
	t.Logf("honeytoken touch → alert listed in %s (detected %s after the request started)",
		time.Since(touched).Round(time.Millisecond), alerts[0].Detected.Sub(touched).Round(time.Millisecond))
	a := alerts[0]
	if a.Severity != "critical" || a.User != "admin" || len(a.Patients) != 1 || a.Patients[0] != decoys[0] ||
		a.Events != 1 || len(a.Evidence) != 1 || !strings.HasPrefix(a.Evidence[0], "trail/") {
		t.Fatalf("honeytoken alert = %+v", a)
	}

	// It is delivered as an OCSF Detection Finding, with ids only.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(ocsf)
		if strings.Contains(string(b), a.ID) {
			var f struct {
				ClassUID int `json:"class_uid"`
			}
			line := string(b)[:strings.IndexByte(string(b), '\n')]
			if json.Unmarshal([]byte(line), &f) != nil || f.ClassUID != 2004 {
				t.Fatalf("OCSF line %s", line)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert %s not in the OCSF file after 30 s:\n%s", a.ID, b)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A nurse may not read alerts, nor the detector's status.
	const app, redirect = "demo-app", "http://127.0.0.1:8400/callback"
	nurse := signIn(t, v, app, redirect, "user/*.rs", people["nurse.demo"]).AccessToken
	for _, path := range []string{"alerts", "alerts/" + a.ID, "detector", "honeytokens"} {
		if status, body := securityGet(t, v, nurse, path); status != http.StatusForbidden || strings.Contains(string(body), decoys[0]) {
			t.Errorf("nurse GET /security/%s = %d %s; want 403 without data", path, status, body)
		}
	}

	// Another system's log, sent with "phivault detect ingest": a nurse
	// of that EHR opens the record of a patient who shares her address.
	files := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		path := filepath.Join(files, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	v.cli(false, nil, "detect", "ingest", "-kind", "staff",
		write("staff.csv", "system,id,family,address,postal_code,role,department\nehr,n1,Quennell,12 Elmwood Street,AB1 2CD,nurse,ward-3\n"))
	v.cli(false, nil, "detect", "ingest", "-kind", "patients",
		write("patients.csv", "system,id,family,address,postal_code\nehr,p1,Quennell,12 Elmwood Street,AB1 2CD\n"))
	out = v.cli(false, nil, "detect", "ingest", "-kind", "access",
		write("access.ndjson", `{"time":"`+time.Now().UTC().Format(time.RFC3339)+`","system":"ehr","user":"n1","role":"nurse","patient":"p1","action":"read","resource_type":"Patient","outcome":"ok"}`+"\n"))
	if !strings.Contains(out, `"accepted":1`) {
		t.Fatalf("detect ingest printed %s", out)
	}
	fam := waitAlerts(t, v, "rule=family-access", func(a []alertJSON) bool { return len(a) > 0 })
	if fam[0].User != "ehr:n1" || len(fam[0].Patients) != 1 || fam[0].Patients[0] != "ehr:p1" || !strings.HasPrefix(fam[0].Evidence[0], "ingest/") {
		t.Fatalf("family-access alert = %+v", fam[0])
	}
	// The names and addresses sent are nowhere in the data folder.
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range []string{"Quennell", "quennell", "Elmwood", "elmwood"} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %q in the clear", path, s)
			}
		}
		return nil
	})

	// kill -9, restart: the detectors resume from their cursor; the next
	// touch merges into the same alert.
	if err := v.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-v.done
	v, _, _ = startDemo(t, dir, 4)
	r = v.do(http.MethodGet, "/Patient/"+decoys[0], nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET decoy after restart = %d", r.status)
	}
	alerts = waitAlerts(t, v, "rule=honeytoken", func(a []alertJSON) bool { return len(a) == 1 && a[0].Events == 2 })
	if alerts[0].ID != a.ID || len(alerts[0].Evidence) != 2 {
		t.Fatalf("after restart: %+v, want alert %s with two pieces of evidence", alerts, a.ID)
	}
	status, body := securityGet(t, v, v.token, "detector")
	var st struct {
		Lag    int64
		Cursor struct{ Trail int64 }
	}
	if status != http.StatusOK || json.Unmarshal(body, &st) != nil || st.Cursor.Trail == 0 {
		t.Fatalf("GET /security/detector = %d %s", status, body)
	}
}
