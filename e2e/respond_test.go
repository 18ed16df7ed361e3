package e2e_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// incidentJSON is an incident as GET /security/incidents shows it.
type incidentJSON struct {
	ID       string
	Title    string
	Phase    string
	Source   string
	Alerts   []string
	Version  int64
	Scope    struct{ Users, Patients []string }
	Actions  []actionJSON
	Timeline []struct{ Kind, Detail, Request string }
}

type actionJSON struct {
	ID, Kind, State, Playbook, Reason string
}

// securityDo sends a request to the security API with token and extra
// headers.
func securityDo(t *testing.T, v *vault, token, method, path string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, strings.TrimSuffix(v.url, "/fhir")+"/security/"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := v.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// TestRespond runs the chain through the real binary: a nurse
// who opens a decoy patient is suspended and her tokens revoked by the
// honeytoken-touch playbook before anyone looks, her next request is
// refused, the incident says what was done (each step in the audit
// trail); the breach report names exactly the patients whose records
// left; the incident's evidence archive verifies offline with the
// verifier key alone; the notice letters render for the privacy officer
// only; and an officer can undo the suspension.
func TestRespond(t *testing.T) {
	requireE2E(t)
	v, people, _ := startDemo(t, filepath.Join(t.TempDir(), "demo"), 4)
	out := v.cli(false, nil, "honeytoken", "create", "-n", "1")
	var decoy string
	for _, line := range strings.Split(out, "\n") {
		if uuidLine.MatchString(line) {
			decoy = line
		}
	}
	if decoy == "" {
		t.Fatalf("honeytoken create printed:\n%s", out)
	}
	const app, redirect = "demo-app", "http://127.0.0.1:8400/callback"
	nurse := signIn(t, v, app, redirect, "user/*.rs", people["nurse.demo"]).AccessToken
	asNurse := []string{"Authorization", "Bearer " + nurse}
	if r := v.do(http.MethodGet, "/Patient?_count=1", nil, asNurse...); r.status != http.StatusOK {
		t.Fatalf("the nurse's search before = %d", r.status)
	}

	// The insider opens the decoy; the server answers as it would for
	// any patient she may not see, and contains her by itself.
	start := time.Now()
	v.do(http.MethodGet, "/Patient/"+decoy, nil, asNurse...)
	for {
		r := v.do(http.MethodGet, "/Patient?_count=1", nil, asNurse...)
		if r.status == http.StatusUnauthorized {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the nurse's token still works 30 s after the decoy touch (%d)", r.status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("decoy touch → the nurse's next request refused in %s", time.Since(start).Round(time.Millisecond))

	// The incident: opened by the playbook, contained, each step carried
	// out (the responder may still be finishing the last ones).
	var in incidentJSON
	for {
		status, body := securityDo(t, v, v.token, http.MethodGet, "incidents?open=true", nil)
		var list struct{ Incidents []incidentJSON }
		if status != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Incidents) != 1 {
			t.Fatalf("GET /security/incidents = %d %s", status, body)
		}
		in = list.Incidents[0]
		if !slices.ContainsFunc(in.Actions, func(a actionJSON) bool { return a.State == "running" }) {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("actions still running 30 s after the touch: %+v", in.Actions)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if in.Source != "alert" || in.Phase != "contain" || len(in.Alerts) != 1 || !slices.Contains(in.Scope.Patients, decoy) ||
		!strings.HasPrefix(in.Title, "Decoy patient touched by ") {
		t.Fatalf("incident %+v", in)
	}
	states := map[string]string{}
	var suspend string
	for _, a := range in.Actions {
		states[a.Kind] = a.State
		if a.Kind == "suspend-account" {
			suspend = a.ID
		}
	}
	if states["suspend-account"] != "done" || states["revoke-sessions"] != "done" {
		t.Fatalf("actions %+v", in.Actions)
	}
	status, body := securityDo(t, v, v.token, http.MethodGet, "incidents/"+in.ID, nil)
	var full incidentJSON
	if status != http.StatusOK || json.Unmarshal(body, &full) != nil || len(full.Timeline) < 4 {
		t.Fatalf("GET incident = %d %s", status, body)
	}
	for _, ev := range full.Timeline {
		if ev.Request == "" {
			t.Fatalf("timeline event without its audit entry: %+v", ev)
		}
	}
	// Her read of the decoy was refused: the breach report finds that
	// nothing left, so nobody is to be notified.
	status, body = securityDo(t, v, v.token, http.MethodGet, "incidents/"+in.ID+"/breach", nil)
	var rep struct {
		Secured   bool
		Impact    struct{ Patients, Resources []string }
		Deadlines []struct{ Notice string }
		Worksheet []struct{ Factor string }
	}
	if status != http.StatusOK || json.Unmarshal(body, &rep) != nil || !rep.Secured || len(rep.Impact.Resources) != 0 ||
		len(rep.Deadlines) != 0 || len(rep.Worksheet) != 4 {
		t.Fatalf("breach report = %d %s", status, body)
	}
	// The CLI shows it too.
	if out := v.cli(false, nil, "incidents", "list", "-open"); !strings.Contains(out, in.ID) {
		t.Fatalf("incidents list:\n%s", out)
	}

	// The operator reads the decoy, successfully: its incident's breach
	// report names exactly that patient. (The operator is no account:
	// suspending it fails, and the incident says why.)
	if r := v.do(http.MethodGet, "/Patient/"+decoy, nil); r.status != http.StatusOK {
		t.Fatalf("the operator's read of the decoy = %d", r.status)
	}
	var op incidentJSON
	for deadline := time.Now().Add(30 * time.Second); ; {
		status, body := securityDo(t, v, v.token, http.MethodGet, "incidents?open=true&user=admin", nil)
		var list struct{ Incidents []incidentJSON }
		if status != http.StatusOK || json.Unmarshal(body, &list) != nil {
			t.Fatalf("GET incidents of admin = %d %s", status, body)
		}
		if len(list.Incidents) == 1 && !slices.ContainsFunc(list.Incidents[0].Actions, func(a actionJSON) bool { return a.State == "running" }) {
			op = list.Incidents[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no incident for the operator's touch: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, a := range op.Actions {
		if a.Kind == "suspend-account" && (a.State != "failed" || !strings.Contains(a.Reason, "not an account")) {
			t.Fatalf("suspending the operator: %+v", a)
		}
	}
	status, body = securityDo(t, v, v.token, http.MethodGet, "incidents/"+op.ID+"/breach", nil)
	rep.Impact.Patients = nil
	if status != http.StatusOK || json.Unmarshal(body, &rep) != nil || rep.Secured || !slices.Equal(rep.Impact.Patients, []string{decoy}) ||
		len(rep.Deadlines) == 0 || rep.Deadlines[0].Notice != "individuals" {
		t.Fatalf("the operator's breach report = %d %s", status, body)
	}

	// The evidence archive of the operator's incident verifies offline,
	// with the vault's audit verifier key alone; a truncated copy does not.
	archive := filepath.Join(t.TempDir(), "op.phivault-evidence")
	v.cli(false, nil, "incidents", "evidence", op.ID, "-out", archive)
	verifierKey := filepath.Join(v.dir, "audit-verifier.pub")
	verify := func(file string) (string, error) { // offline: no server, no token
		out, err := exec.Command(binary, "audit", "verify-evidence", "-key", verifierKey, file).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(archive); err != nil || !strings.Contains(out, "evidence archive OK") {
		t.Fatalf("verify-evidence: %v\n%s", err, out)
	}
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	altered := filepath.Join(t.TempDir(), "altered.phivault-evidence")
	if err := os.WriteFile(altered, b[:len(b)-2048], 0o600); err != nil { // its end cut off
		t.Fatal(err)
	}
	if out, err := verify(altered); err == nil {
		t.Fatalf("verify-evidence passed a truncated archive:\n%s", out)
	}

	// The investigation finds the operator went on to read a real
	// patient: the privacy officer widens the window, the breach report
	// names that patient too, and the notice letters render (one: a
	// decoy gets none).
	r := v.do(http.MethodGet, "/Patient?_count=2", nil)
	var page struct {
		Entry []struct{ Resource struct{ ID string } }
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &page) != nil {
		t.Fatalf("the operator's search = %d %s", r.status, r.body)
	}
	var real string
	for _, e := range page.Entry {
		if e.Resource.ID != decoy {
			real = e.Resource.ID
			break
		}
	}
	if real == "" {
		t.Fatal("no patient but the decoy")
	}
	if r := v.do(http.MethodGet, "/Patient/"+real, nil); r.status != http.StatusOK {
		t.Fatalf("the operator's read of patient %s = %d", real, r.status)
	}
	privacy := signIn(t, v, app, redirect, "user/*.rs", people["privacy.demo"]).AccessToken
	status, body = securityDo(t, v, privacy, http.MethodGet, "incidents/"+op.ID, nil)
	var cur incidentJSON
	if status != http.StatusOK || json.Unmarshal(body, &cur) != nil {
		t.Fatalf("GET incident = %d %s", status, body)
	}
	widen, _ := json.Marshal(map[string]any{"scope": map[string]any{"to": time.Now().UTC()}, "note": "the operator went on reading"})
	if status, body = securityDo(t, v, privacy, http.MethodPatch, "incidents/"+op.ID, widen, "If-Match", `W/"`+jsonInt(cur.Version)+`"`); status != http.StatusOK {
		t.Fatalf("widen the window = %d %s", status, body)
	}
	status, body = securityDo(t, v, privacy, http.MethodGet, "incidents/"+op.ID+"/breach", nil)
	rep.Impact.Patients = nil
	if status != http.StatusOK || json.Unmarshal(body, &rep) != nil || !slices.Contains(rep.Impact.Patients, real) || !slices.Contains(rep.Impact.Patients, decoy) {
		t.Fatalf("the widened breach report = %d %s", status, body)
	}
	notice, _ := json.Marshal(map[string]any{
		"format":        "pdf",
		"organisation":  map[string]any{"name": "Demo Clinic", "phone": "1-800-555-0100", "email": "privacy@clinic.test"},
		"what_happened": "An administrator account read records it had no reason to read.",
		"steps":         "Review the statements you receive from your health insurer.",
		"mitigation":    "We contained the account the same minute and are reviewing every access.",
	})
	req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(v.url, "/fhir")+"/security/incidents/"+op.ID+"/notices", bytes.NewReader(notice))
	req.Header.Set("Authorization", "Bearer "+privacy)
	res, err := v.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.HasPrefix(pdf, []byte("%PDF-")) || res.Header.Get("Phivault-Notice-Letters") != "1" ||
		res.Header.Get("Phivault-Notice-Decoys") != "1" {
		t.Fatalf("notices = %d %v %.200q", res.StatusCode, res.Header, pdf)
	}
	if status, _ = securityDo(t, v, v.token, http.MethodPost, "incidents/"+op.ID+"/notices", notice); status != http.StatusForbidden {
		t.Fatalf("notices as the operator = %d, want 403", status)
	}

	// An officer undoes the suspension: the account is active again (her
	// old token stays revoked: she signs in anew).
	// The incident may have moved on since it was read (a later alert of
	// the same touch, the responder's last steps): like any client, the
	// officer reads the current version and tries again on 412.
	for try := 0; ; try++ {
		status, body = securityDo(t, v, v.token, http.MethodGet, "incidents/"+in.ID, nil)
		if status != http.StatusOK || json.Unmarshal(body, &cur) != nil {
			t.Fatalf("GET incident = %d %s", status, body)
		}
		status, body = securityDo(t, v, v.token, http.MethodPost, "incidents/"+in.ID+"/actions/"+suspend+"/undo", nil,
			"If-Match", `W/"`+jsonInt(cur.Version)+`"`)
		if status != http.StatusPreconditionFailed || try == 4 {
			break
		}
	}
	if status != http.StatusOK || !strings.Contains(string(body), `"state":"undone"`) {
		t.Fatalf("undo = %d %s", status, body)
	}
	if r := v.do(http.MethodGet, "/Patient?_count=1", nil, asNurse...); r.status != http.StatusUnauthorized {
		t.Fatalf("the revoked token after the undo = %d", r.status)
	}
	r = v.do(http.MethodGet, "/admin/users?username=nurse.demo", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"active"`) {
		t.Fatalf("the nurse's account after the undo: %d %s", r.status, r.body)
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
