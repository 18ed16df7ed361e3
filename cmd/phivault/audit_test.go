package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/testenv"
)

// auditApp is a vault opened by openApp on a fresh data folder, serving its
// FHIR API on an httptest server.
type auditApp struct {
	*app
	url, token string
}

func mustAuditApp(t *testing.T) *auditApp {
	t.Helper()
	return mustAuditAppWith(t, AuditConfig{})
}

// mustAuditAppWith is mustAuditApp with the audit trail configured as cfg
// (and its witness file, if cfg names none, at testWitness).
func mustAuditAppWith(t *testing.T, cfg AuditConfig) *auditApp {
	t.Helper()
	return mustAuditAppOf(t, Config{Audit: cfg})
}

// mustAuditAppOf is mustAuditApp with the server configured as c, in a
// new data folder.
func mustAuditAppOf(t *testing.T, c Config) *auditApp {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := c.Audit
	if cfg.WitnessFile == "" {
		cfg.WitnessFile = testWitness(dataDir(dir))
	}
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	var out bytes.Buffer
	if err := run(ctx, []string{"init", "-data", dir, "-audit-witness-file", cfg.WitnessFile}, &out, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	_, after, _ := strings.Cut(out.String(), "only its hash is kept):\n")
	token := strings.TrimSpace(strings.SplitN(after, "\n", 2)[0])
	c.Data, c.Passphrase, c.Audit = dataDir(dir), "correct horse battery staple", cfg
	a, err := openApp(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	srv := httptest.NewServer(a.fhirAndAdmin())
	t.Cleanup(func() { srv.Close(); a.Close() })
	return &auditApp{app: a, url: srv.URL, token: token}
}

func (a *auditApp) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAudit_failClosed breaks the audit log of a running vault and checks
// that a read then answers 503 with no patient data.
// TestAuditConfig_webhookHidden checks that the webhook URL, from the
// environment or the flag, is used but never printed in the usage message.
func TestAuditConfig_webhookHidden(t *testing.T) {
	const fromEnv = "https://siem.example.org/hooks/s3cret-env"
	t.Setenv("PHIVAULT_AUDIT_WEBHOOK", fromEnv)
	var c AuditConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	c.register(fs)
	if c.Webhook != fromEnv {
		t.Errorf("Webhook = %q, want %q from the environment", c.Webhook, fromEnv)
	}
	if err := fs.Parse([]string{"-audit-webhook", "https://siem.example.org/hooks/s3cret-flag"}); err != nil {
		t.Fatal(err)
	}
	if c.Webhook != "https://siem.example.org/hooks/s3cret-flag" {
		t.Errorf("Webhook = %q, want the flag's value", c.Webhook)
	}
	fs.PrintDefaults()
	if !strings.Contains(usage.String(), "-audit-webhook") || strings.Contains(usage.String(), "s3cret") {
		t.Errorf("usage message shows the webhook URL:\n%s", usage.String())
	}
}

func TestAudit_failClosed(t *testing.T) {
	a := mustAuditApp(t)
	status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"Quendolyn"}]}`)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %s", status, body)
	}
	var p struct{ ID string }
	json.Unmarshal(body, &p)
	if status, body := a.do(t, "GET", "/fhir/Patient/"+p.ID, ""); status != http.StatusOK {
		t.Fatalf("read = %d %s", status, body)
	}

	a.audit.log.Close() // every later Append fails

	for _, path := range []string{"/fhir/Patient/" + p.ID, "/fhir/Patient?family=Quendolyn", "/fhir/Patient/" + p.ID + "/$everything"} {
		status, body := a.do(t, "GET", path, "")
		if status != http.StatusServiceUnavailable || bytes.Contains(body, []byte("Quendolyn")) ||
			!bytes.Contains(body, []byte("The audit log cannot be written")) {
			t.Errorf("GET %s with a broken audit log = %d %s, want 503 and no data", path, status, body)
		}
	}
}

// TestAudit_noPHI imports Synthea patients through the layered service,
// reads and searches them by name and identifier, and checks that the
// audit entries and checkpoints hold none of their names or identifiers,
// and that the trail verifies offline.
func TestAudit_noPHI(t *testing.T) {
	files, err := testenv.ReadSynthea("patients-100.tar.gz")
	if err != nil {
		testenv.SyntheaArchive(t, "patients-100.tar.gz") // skips if absent
		t.Fatal(err)
	}
	a := mustAuditApp(t)
	var phi []string
	for _, f := range files[:3] {
		if status, body := a.do(t, "POST", "/fhir", string(f.Data)); status != http.StatusOK {
			t.Fatalf("%s: transaction = %d %.200s", f.Name, status, body)
		}
		phi = append(phi, patientPHI(t, f.Data)...)
	}
	if len(phi) < 9 {
		t.Fatalf("found only %d PHI strings in 3 patients; the extraction is broken", len(phi))
	}
	for _, s := range phi {
		for _, param := range []string{"family", "given", "identifier", "name"} {
			status, body := a.do(t, "GET", "/fhir/Patient?"+param+"="+url.QueryEscape(s), "")
			if status != http.StatusOK {
				t.Fatalf("search = %d %.200s", status, body)
			}
		}
	}
	ctx := context.Background()
	if err := a.audit.log.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := a.db.AuditSize(ctx)
	if err != nil || n < int64(4*len(phi)) {
		t.Fatalf("audit log has %d entries (%v), want at least %d", n, err, 4*len(phi))
	}
	entries, err := a.db.ReadAuditEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.audit.Close(); err != nil { // writes the last checkpoint
		t.Fatal(err)
	}
	cps, err := os.ReadFile(a.cfg.Data.auditCheckpoints())
	if err != nil {
		t.Fatal(err)
	}
	var export bytes.Buffer // the SIEM/archive export, with proofs
	if _, err := auditlog.Export(ctx, a.db, &export, auditlog.ExportOptions{ProofSize: n}); err != nil {
		t.Fatal(err)
	}
	if export.Len() == 0 {
		t.Fatal("the audit export is empty")
	}
	all := append(append(bytes.Join(entries, []byte("\n")), cps...), export.Bytes()...)
	for _, s := range phi {
		if holdsText(all, s) {
			t.Errorf("the audit trail holds PHI (%d-byte string from a Patient)", len(s))
		}
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "verify", "-data", string(a.cfg.Data), "-audit-witness-file", a.cfg.Audit.WitnessFile}, &out, io.Discard); err != nil {
		t.Fatalf("audit verify = %v", err)
	}
	if !strings.Contains(out.String(), "audit log OK") {
		t.Errorf("audit verify printed %q", out.String())
	}
}

// patientPHI returns the names, identifier values, birth date, address lines
// and phone numbers of the Patients in a bundle (strings of 4+ bytes).
func patientPHI(t *testing.T, bundle []byte) []string {
	var b struct {
		Entry []struct{ Resource json.RawMessage }
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	type patient struct {
		ResourceType string
		Name         []struct {
			Family string
			Given  []string
		}
		Identifier []struct{ Value string }
		BirthDate  string
		Address    []struct{ Line []string }
		Telecom    []struct{ Value string }
	}
	var patients []patient
	for _, e := range b.Entry {
		if !bytes.Contains(e.Resource, []byte(`"resourceType":"Patient"`)) && !bytes.Contains(e.Resource, []byte(`"resourceType": "Patient"`)) {
			continue
		}
		var p patient
		if err := json.Unmarshal(e.Resource, &p); err != nil {
			t.Fatal(err)
		}
		patients = append(patients, p)
	}
	var out []string
	add := func(s string) {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	for _, r := range patients {
		for _, n := range r.Name {
			add(n.Family)
			for _, g := range n.Given {
				add(g)
			}
		}
		for _, id := range r.Identifier {
			add(id.Value)
		}
		add(r.BirthDate)
		for _, ad := range r.Address {
			for _, l := range ad.Line {
				add(l)
			}
		}
		for _, tc := range r.Telecom {
			add(tc.Value)
		}
	}
	return out
}

// TestAudit_archiveCommand archives a running vault's early entries by
// time with "phivault audit archive", verifies the file with the verifier
// key alone, and fails it after an edit; the live log still verifies.
func TestAudit_archiveCommand(t *testing.T) {
	ctx := context.Background()
	a := mustAuditApp(t)
	for range 4 {
		if code, _ := a.do(t, "GET", "/fhir/Patient?name=x", ""); code != 200 {
			t.Fatalf("search: status %d", code)
		}
	}
	cut := time.Now().UTC()
	for range 3 {
		a.do(t, "GET", "/fhir/Patient?name=y", "")
	}
	if _, err := a.audit.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	arch := filepath.Join(dir, "early.archive")
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "archive", "-data", string(a.cfg.Data), "-before", cut.Format(time.RFC3339Nano), "-out", arch}, &out, io.Discard); err != nil {
		t.Fatalf("audit archive: %v", err)
	}
	if !strings.Contains(out.String(), "archived 4 audit entries [0, 4)") {
		t.Errorf("audit archive said %q", out.String())
	}
	vk := a.cfg.Data.auditVerifierKey()
	out.Reset()
	if err := run(ctx, []string{"audit", "verify-archive", arch, "-verifier", vk}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit archive OK: entries [0, 4)") {
		t.Fatalf("audit verify-archive: %v %q", err, out.String())
	}
	b, _ := os.ReadFile(arch)
	os.WriteFile(arch, bytes.Replace(b, []byte(`"action":"search"`), []byte(`"action":"read"`), 1), 0o600)
	if err := run(ctx, []string{"audit", "verify-archive", "-verifier", vk, arch}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "FAILED") {
		t.Errorf("verify-archive of an edited archive = %v, want FAILED", err)
	}
	// The log keeps its entries: the whole trail still verifies.
	out.Reset()
	if err := run(ctx, []string{"audit", "verify", "-data", string(a.cfg.Data), "-audit-witness-file", a.cfg.Audit.WitnessFile}, &out, io.Discard); err != nil {
		t.Errorf("audit verify after archiving: %v", err)
	}
	if err := run(ctx, []string{"audit", "archive", "-data", string(a.cfg.Data), "-out", arch}, io.Discard, io.Discard); err == nil {
		t.Error("archive without -before or -to-index succeeded")
	}
}

// TestAudit_cefSyslog starts a vault with -audit-cef-syslog pointing at a
// TLS syslog listener trusted through -audit-cef-syslog-ca: the stream's
// own start is recorded and sent first, then every request's entry.
func TestAudit_cefSyslog(t *testing.T) {
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	cert := hs.TLS.Certificates[0]
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600)
	hs.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // after the app's cleanup: it closes first
	msgs := make(chan string, 100)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			n, err := r.ReadString(' ')
			if err != nil {
				return
			}
			size, _ := strconv.Atoi(strings.TrimSpace(n))
			msg := make([]byte, size)
			if _, err := io.ReadFull(r, msg); err != nil {
				return
			}
			msgs <- string(msg)
		}
	}()

	app := mustAuditAppWith(t, AuditConfig{CEFSyslog: ln.Addr().String(), CEFSyslogCA: caFile})
	app.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Wolkenstein"}]}`)

	next := func() string {
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no CEF message arrived")
			return ""
		}
	}
	for _, want := range []string{
		"|export|export AuditEvent|3|",
		"|create|create Patient|3|",
	} {
		m := next()
		if !strings.Contains(m, " phivault - cef - CEF:0|phivault|phivault|") || !strings.Contains(m, want) {
			t.Errorf("message %q, want CEF with %q", m, want)
		}
		if strings.Contains(m, "Wolkenstein") {
			t.Errorf("CEF message holds PHI: %q", m)
		}
	}
}

// holdsText reports whether s occurs in b, ignoring case, other than
// inside a run of base64 characters: the trail's hashes, signatures and
// proofs are base64, in which a short name turns up by chance (a 5-letter
// one about once in 30 million positions, which made this test fail once
// in a few dozen runs). Text written into the trail stands between
// quotes, spaces or punctuation, and is found.
func holdsText(b []byte, s string) bool {
	b, needle := bytes.ToLower(b), []byte(strings.ToLower(s))
	inBase64 := func(i int) bool {
		if i < 0 || i >= len(b) {
			return false
		}
		c := b[i]
		return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
	}
	for off := 0; ; {
		i := bytes.Index(b[off:], needle)
		if i < 0 {
			return false
		}
		i += off
		if !inBase64(i-1) || !inBase64(i+len(needle)) {
			return true
		}
		off = i + 1
	}
}

func TestHoldsText(t *testing.T) {
	for _, tt := range []struct {
		b, s string
		want bool
	}{
		{`{"family":"Koepp"}`, "koepp", true},
		{`Willy Koepp, 1977`, "Koepp", true},
		{`x9KoEpPq/Z+`, "koepp", false},  // inside a base64 run
		{`root: abKoepp`, "koepp", true}, // at a run's end
		{`Koepp`, "koepp", true},
		{`nothing here`, "koepp", false},
	} {
		if got := holdsText([]byte(tt.b), tt.s); got != tt.want {
			t.Errorf("holdsText(%q, %q) = %v, want %v", tt.b, tt.s, got, tt.want)
		}
	}
}
