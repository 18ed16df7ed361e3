package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/access"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/evidence"
	"github.com/phivault/phivault/incident/playbook"
	"golang.org/x/mod/sumdb/note"
)

// startEvidenceServer is startSecurityServer, returning the app too.
func startEvidenceServer(t *testing.T) (a *app, url, token string) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	var out bytes.Buffer
	if err := run(ctx, []string{"init", "-data", dir, "-audit-witness-file", testWitness(dataDir(dir))}, &out, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	_, after, _ := strings.Cut(out.String(), "only its hash is kept):\n")
	token = strings.TrimSpace(strings.SplitN(after, "\n", 2)[0])
	a, err := openApp(ctx, Config{Data: dataDir(dir), Passphrase: "correct horse battery staple", Addr: "127.0.0.1:0",
		Audit: AuditConfig{WitnessFile: testWitness(dataDir(dir))}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.listen(ctx); err != nil {
		t.Fatal(err)
	}
	return a, a.server.URL() + "/fhir", token
}

// TestIncidentsEvidence saves an incident's archive through the running
// server (phivault incidents evidence) and checks it offline (phivault
// audit verify-evidence): it verifies, holds the patient's entries, and
// not her name, which is in the record, the incident's title and a note;
// an edited copy and a wrong key fail, naming what is wrong.
func TestIncidentsEvidence(t *testing.T) {
	a, url, token := startEvidenceServer(t)
	t.Setenv("PHIVAULT_TOKEN", token)
	os.Unsetenv("PHIVAULT_TOKEN_FILE")
	ctx := context.Background()
	d := a.cfg.Data
	cli := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, args, &out, &errb)
		return out.String(), err
	}
	client := func(args ...string) (string, error) {
		return cli(append(append([]string{args[0], args[1]}, "-url", url, "-cacert", d.certFile()), args[2:]...)...)
	}
	const name = "Zebediah Quint"
	sys := phivault.WithPrincipal(ctx, access.BootstrapPrincipal("test"))
	p, _, err := a.records.Create(sys, "Patient", []byte(`{"resourceType":"Patient","name":[{"family":"Quint","given":["Zebediah"]}]}`), phivault.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.records.Read(sys, "Patient", p.ID); err != nil {
		t.Fatal(err)
	}
	noteFile := filepath.Join(t.TempDir(), "note.txt")
	os.WriteFile(noteFile, []byte("phoned "+name), 0o600)
	out, err := client("incidents", "open", "-title", name+"'s chart opened", "-severity", "high", "-patient", p.ID, "-note-file", noteFile)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	id := regexp.MustCompile(`inc-[0-9a-f]{32}`).FindString(out)
	if _, err := client("incidents", "update", id, "-version", "1", "-phase", "contain"); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "inc.phivault-evidence")
	if out, err = client("incidents", "evidence", id, "-out", file); err != nil || !strings.Contains(out, "verify-evidence") {
		t.Fatalf("incidents evidence = %q, %v", out, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive file: %v, %v", fi, err)
	}
	out, err = cli("audit", "verify-evidence", file, "-key", d.auditVerifierKey())
	if err != nil || !strings.Contains(out, "evidence archive OK: incident "+id) || !strings.Contains(out, "2 timeline events") {
		t.Fatalf("verify-evidence = %q, %v", out, err)
	}
	// The create and the read of the patient, and the two changes.
	if m := regexp.MustCompile(`(\d+) audit entries, (\d+) inclusion proofs verified`).FindStringSubmatch(out); m == nil || m[1] != "4" || m[2] != "4" {
		t.Fatalf("verify-evidence = %q, want 4 entries proved", out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{name, "Zebediah", "Quint", "phoned"} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("the archive holds %q", s)
		}
	}

	// An edited copy fails, naming the member; so does another key.
	bad := bytes.Replace(b, []byte(`"phase": "contain"`), []byte(`"phase": "closed!"`), 1)
	if bytes.Equal(bad, b) {
		t.Fatal("the edit changed nothing")
	}
	badFile := filepath.Join(t.TempDir(), "bad.phivault-evidence")
	os.WriteFile(badFile, bad, 0o600)
	if _, err := cli("audit", "verify-evidence", "-key", d.auditVerifierKey(), badFile); err == nil ||
		!strings.Contains(err.Error(), "FAILED") || !strings.Contains(err.Error(), evidence.MemberIncident) {
		t.Fatalf("verify-evidence of an edited archive = %v", err)
	}
	other := filepath.Join(t.TempDir(), "other.pub")
	if _, v, err := note.GenerateKey(rand.Reader, "other"); err != nil {
		t.Fatal(err)
	} else {
		os.WriteFile(other, []byte(v), 0o644)
	}
	if _, err := cli("audit", "verify-evidence", "-key", other, file); err == nil || !strings.Contains(err.Error(), evidence.MemberManifest) {
		t.Fatalf("verify-evidence with another key = %v", err)
	}
	if _, err := cli("audit", "verify-evidence", file); err == nil || !strings.Contains(err.Error(), "-key") {
		t.Fatalf("verify-evidence without a key = %v", err)
	}
	if _, err := client("incidents", "evidence", "inc-00000000000000000000000000000000", "-out", file+"2"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("evidence of no incident = %v", err)
	}
	if _, err := os.Stat(file + "2"); err == nil {
		t.Fatal("a refused archive left a file")
	}
}

// TestCollectEvidence carries out collect-evidence through the vault's
// controls, as the responder does: the archive lands in the data folder,
// 0600, and verifies with the folder's key.
func TestCollectEvidence(t *testing.T) {
	a, _, _ := startEvidenceServer(t)
	ctx := context.Background()
	svc := incident.NewService(incident.Options{
		Store: a.detect.incidents, Audit: a.audit.log, Sealer: envelope.NewNoteSealer(a.db, a.seal.sealer, "incident"),
	})
	w, err := a.evidenceWriter(a.detect.store)
	if err != nil {
		t.Fatal(err)
	}
	c := &vaultControls{accounts: a.accounts, log: a.audit.log,
		evidence: &evidenceCollector{data: a.cfg.Data, service: svc, writer: w, log: a.audit.log, logger: slog.New(slog.DiscardHandler)}}
	octx := phivault.WithRequestInfo(ctx, phivault.RequestInfo{Actor: incident.Actor})
	in, err := svc.Open(octx, incident.Draft{Title: "t", Severity: detect.SeverityHigh, Source: incident.SourceManual, Scope: incident.Scope{Users: []string{"u-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	act := incident.Action{ID: "act-1", Kind: playbook.ActionCollectEvidence, State: incident.ActionRunning}
	// Without the incident, it refuses.
	if err := c.Do(octx, act); phivault.ErrorCode(err) != phivault.EINVALID {
		t.Fatalf("Do without an incident = %v", err)
	}
	if err := c.Do(incident.WithIncident(octx, in.ID), act); err != nil {
		t.Fatalf("Do = %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(a.cfg.Data.evidenceDir(), in.ID+"-*"+evidence.FileExt))
	if len(files) != 1 {
		t.Fatalf("archives %v", files)
	}
	fi, err := os.Stat(files[0])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive %v, %v", fi, err)
	}
	f, _ := os.Open(files[0])
	defer f.Close()
	v, err := readVerifier(a.cfg.Data.auditVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if s, err := evidence.Verify(f, v); err != nil || s.Incident != in.ID || s.Timeline != 1 {
		t.Fatalf("Verify = %+v, %v", s, err)
	}
}
