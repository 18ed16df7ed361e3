package e2e_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	demoLine   = regexp.MustCompile(`(?m)^phivault demo is running at (https://\S+) `)
	demoToken  = regexp.MustCompile(`(?m)^Admin token.*\n\s+(\S+)$`)
	demoPerson = regexp.MustCompile(`(?m)^\s+(\S+\.demo)\s+\S+\s+(\S+)\s+([A-Z2-7]+)\s+(.*)$`)
	patientRef = regexp.MustCompile(`Patient/([0-9a-f-]+)`)
)

// TestDemo starts "phivault demo", the README's first command, on a small
// synthetic hospital, and signs in as the demo's people through the demo
// app: the physician reads the records of the patient he treats; the nurse
// without a care relationship finds none of them and is offered
// break-the-glass; the patient reads her own record and no one else's; the
// privacy officer reads the patient's access report.
func TestDemo(t *testing.T) {
	requireE2E(t)
	v, people, notes := startDemo(t, filepath.Join(t.TempDir(), "demo"), 4)
	treated := patientRef.FindStringSubmatch(notes["dr.demo"])
	if treated == nil || !strings.Contains(notes["patient.demo"], treated[0]) {
		t.Fatalf("demo notes %q do not name the treated patient", notes)
	}
	pid := treated[1]

	// The admin token still works, and finds another patient.
	r := v.do("GET", "/Patient?_count=10", nil)
	var all struct {
		Total int
		Entry []struct{ Resource struct{ ID string } }
	}
	json.Unmarshal(r.body, &all)
	if r.status != 200 || all.Total != 4 {
		t.Fatalf("Patient search with the admin token = %d, total %d; want 4", r.status, all.Total)
	}
	other := all.Entry[0].Resource.ID
	if other == pid {
		other = all.Entry[1].Resource.ID
	}
	total := func(token, query string) int {
		t.Helper()
		status, body := readWith(t, v, token, query)
		var b struct{ Total int }
		json.Unmarshal(body, &b)
		if status != 200 {
			t.Fatalf("GET %s = %d %s", query, status, body)
		}
		return b.Total
	}

	const app, redirect = "demo-app", "http://127.0.0.1:8400/callback"
	dr := signIn(t, v, app, redirect, "user/*.rs", people["dr.demo"]).AccessToken
	if status, _ := readWith(t, v, dr, "/Patient/"+pid); status != 200 {
		t.Errorf("physician reads his patient = %d, want 200", status)
	}
	if n := total(dr, "/Encounter?patient="+pid); n == 0 {
		t.Error("physician sees none of his patient's encounters")
	}

	nurse := signIn(t, v, app, redirect, "user/*.rs", people["nurse.demo"]).AccessToken
	if status, body := readWith(t, v, nurse, "/Patient/"+pid); status != http.StatusForbidden || !strings.Contains(string(body), "break") {
		t.Errorf("nurse without a care relationship reads the patient = %d %s; want 403 offering break-the-glass", status, body)
	}
	if n := total(nurse, "/Encounter?patient="+pid); n != 0 {
		t.Errorf("nurse without a care relationship sees %d encounters, want 0", n)
	}

	// She breaks the glass (she has just signed in, so her authentication
	// is fresh): the read goes through and waits for review.
	req, _ := http.NewRequest("POST", v.url+"/admin/break-glass",
		strings.NewReader(`{"patient":"`+pid+`","purpose":"ETREAT","reason":"patient collapsed in the corridor"}`))
	req.Header.Set("Authorization", "Bearer "+nurse)
	req.Header.Set("Content-Type", "application/json")
	res, err := v.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 && res.StatusCode != 201 {
		t.Fatalf("break-the-glass = %d", res.StatusCode)
	}
	if status, _ := readWith(t, v, nurse, "/Patient/"+pid); status != 200 {
		t.Errorf("nurse reads the patient after breaking the glass = %d, want 200", status)
	}

	tok := signIn(t, v, app, redirect, "launch/patient patient/*.rs", people["patient.demo"])
	if got, _ := tok.Extra("patient").(string); got != pid {
		t.Errorf("patient launch context = %q, want %s", got, pid)
	}
	if status, _ := readWith(t, v, tok.AccessToken, "/Patient/"+pid); status != 200 {
		t.Errorf("patient reads her own record = %d, want 200", status)
	}
	if n := total(tok.AccessToken, "/Encounter?patient="+pid); n == 0 {
		t.Error("patient sees none of her own encounters")
	}
	if status, _ := readWith(t, v, tok.AccessToken, "/Patient/"+other); status != http.StatusNotFound {
		t.Errorf("patient reads another patient = %d, want 404", status)
	}

	privacy := signIn(t, v, app, redirect, "user/*.rs", people["privacy.demo"]).AccessToken
	if status, body := readWith(t, v, privacy, "/admin/reports/patients/"+pid+"/access?format=json"); status != 200 || !strings.Contains(string(body), "Bundle") {
		t.Errorf("privacy officer's access report = %d %s", status, body)
	}
	if status, body := readWith(t, v, privacy, "/admin/break-glass/queue"); status != 200 || !strings.Contains(string(body), pid) {
		t.Errorf("privacy officer's review queue = %d %s; want the nurse's access to %s", status, body, pid)
	}
	if status, body := readWith(t, v, privacy, "/AuditEvent?patient="+pid); status != 200 || !strings.Contains(string(body), "break-glass") {
		t.Errorf("AuditEvent?patient= for the privacy officer = %d; want the break-the-glass access flagged", status)
	} else if strings.Contains(string(body), "collapsed") {
		t.Error("the break-the-glass reason is in the audit trail in the clear")
	}

	// The secrets the demo prints (documented as demo-only) and those of
	// the sessions reach neither its log file nor its stderr.
	logFile, err := os.ReadFile(filepath.Join(v.dir, "phivault.log"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{v.token, dr, nurse, tok.AccessToken, privacy}
	for _, p := range people {
		secrets = append(secrets, p.password, p.totpSecret)
	}
	for _, secret := range secrets {
		if strings.Contains(string(logFile), secret) || strings.Contains(string(v.stderr.Bytes()), secret) {
			t.Errorf("the demo's log holds a secret (%.4s...)", secret)
		}
	}
}

// startDemo runs "phivault demo -patients n" on the data folder dir (made
// on the first run, restarted on later ones), with extraEnv set, and returns the vault with
// its admin token, and the demo's people and their notes by username.
func startDemo(t *testing.T, dir string, patients int, extraEnv ...string) (*vault, map[string]person, map[string]string) {
	t.Helper()
	v := &vault{t: t, dir: dir, tmp: filepath.Join(filepath.Dir(dir), "tmp"), extraEnv: extraEnv}
	v.cacert = filepath.Join(v.dir, "tls", "cert.pem")
	if err := os.MkdirAll(v.tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "demo", "-data", v.dir, "-addr", "127.0.0.1:0", "-patients", strconv.Itoa(patients))
	cmd.Env = v.env()
	cmd.Stdout, cmd.Stderr = &v.stdout, &v.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v.cmd, v.done = cmd, make(chan struct{})
	go func() { v.err = cmd.Wait(); close(v.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-v.done
		if t.Failed() {
			t.Logf("demo stdout:\n%s\nstderr (last lines):\n%s", v.stdout.Bytes(), tail(v.stderr.Bytes(), 30))
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(string(v.stdout.Bytes()), "Stop with Ctrl-C") {
		if time.Now().After(deadline) || !v.running() {
			t.Fatalf("demo did not start: %v", v.err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := v.stdout.Bytes()
	urlLine, tokenLine := demoLine.FindSubmatch(out), demoToken.FindSubmatch(out)
	if urlLine == nil || tokenLine == nil {
		t.Fatalf("demo printed no URL or no admin token:\n%s", out)
	}
	v.url, v.token = string(urlLine[1]), string(tokenLine[1])
	v.client = v.httpClient()
	people := map[string]person{}
	notes := map[string]string{}
	for _, m := range demoPerson.FindAllSubmatch(out, -1) {
		people[string(m[1])] = person{string(m[1]), string(m[2]), string(m[3])}
		notes[string(m[1])] = string(m[4])
	}
	if len(people) != 5 {
		t.Fatalf("demo printed %d people, want 5:\n%s", len(people), out)
	}
	return v, people, notes
}
