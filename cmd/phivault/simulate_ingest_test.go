package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault/detect/simulate"
)

// startSecurityServer runs a fresh vault's server over TLS, with its
// detectors, and returns its FHIR base URL, the bootstrap token and the
// certificate to trust.
func startSecurityServer(t *testing.T) (url, token, cacert string) {
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
	return a.server.URL() + "/fhir", token, dataDir(dir).certFile()
}

// TestSimulate_ingest sends a small hospital through a real server's
// ingestion API (TLS, bearer token, the detectors serve runs) and checks
// the report against the same workload run in process: the records as
// the server reads them (Workload.Ingested) give the same alerts, so the
// same precision and recall, within a stated tolerance for the AUC; and
// those are the whole in-process run's alerts (but the control rules')
// and figures, within that tolerance.
func TestSimulate_ingest(t *testing.T) {
	url, token, cacert := startSecurityServer(t)
	t.Setenv("PHIVAULT_TOKEN", token)
	t.Setenv("PHIVAULT_TOKEN_FILE", "")
	os.Unsetenv("PHIVAULT_TOKEN_FILE")
	size := []string{"-seed", "3", "-days", "6", "-staff", "60", "-patients", "300"}
	outDir := t.TempDir()
	var out, errb bytes.Buffer
	args := append([]string{"simulate", "-ingest", url, "-cacert", cacert, "-json", "-out", outDir}, size...)
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("phivault %s = %v; stderr %s", strings.Join(args, " "), err, errb.String())
	}
	if strings.Contains(out.String()+errb.String(), token) {
		t.Errorf("the output shows the token")
	}
	var got simulate.Report
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("-json output: %v\n%s", err, out.String())
	}

	ctx := context.Background()
	w, err := simulate.Generate(ctx, simulate.Config{Seed: 3, Days: 6, Staff: 60, Patients: 300})
	if err != nil {
		t.Fatal(err)
	}
	x, err := w.Export(0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := w.Ingested(ctx, x, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := simulate.Evaluate(ctx, v, simulate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	full, err := simulate.Evaluate(ctx, w, simulate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("through the server: %d alerts, precision %.3f, recall %.3f, AUC %.3f, latency %v; in process, as ingested: %d, %.3f, %.3f, %.3f; in process, whole: %d, %.3f, %.3f, %.3f",
		got.Alerts, got.Precision, got.Recall, got.AUC, got.Latency, want.Alerts, want.Precision, want.Recall, want.AUC,
		full.Alerts, full.Precision, full.Recall, full.AUC)
	if got.Through != "ingest" || got.HoneytokenRecall != 1 || got.Events != want.Events || got.MedianTTD != -1 {
		t.Errorf("through %q, honeytoken recall %v, %d events, TTD %v; want ingest, 1, %d, -1", got.Through, got.HoneytokenRecall, got.Events, got.MedianTTD, want.Events)
	}
	if got.NotMeasurable == nil || want.NotMeasurable == nil || got.NotMeasurable.Targets != want.NotMeasurable.Targets || got.NotMeasurable.Targets == 0 {
		t.Errorf("not measurable %+v, want the control rules' targets left out, as in process as ingested (%+v)", got.NotMeasurable, want.NotMeasurable)
	}
	// Rules key on event time, not on the engine's clock, so the alerts
	// are the same; scores are set per pipeline step, whose boundaries
	// differ (the server's batches are not simulated live mode's).
	const tol = 0.02
	if got.Alerts != want.Alerts || math.Abs(got.Precision-want.Precision) > tol || math.Abs(got.Recall-want.Recall) > tol || math.Abs(got.AUC-want.AUC) > tol {
		t.Errorf("server: %d alerts, precision %v, recall %v, AUC %v; in process: %d, %v, %v, %v (tolerance %v)",
			got.Alerts, got.Precision, got.Recall, got.AUC, want.Alerts, want.Precision, want.Recall, want.AUC, tol)
	}
	// The formats carry what the rules use (an event of several patients
	// is one line), so the server raises the whole in-process run's
	// alerts but the control rules', and scores as it does.
	fullAlerts := full.Alerts
	for _, d := range full.Detectors {
		if got.NotMeasurable != nil && slices.Contains(got.NotMeasurable.Rules, d.Rule) {
			fullAlerts -= d.Alerts
		}
	}
	if got.Alerts != fullAlerts || math.Abs(got.Precision-full.Precision) > tol || math.Abs(got.Recall-full.Recall) > tol || math.Abs(got.AUC-full.AUC) > tol {
		t.Errorf("server: %d alerts, precision %v, recall %v, AUC %v; whole run in process: %d but the control rules', %v, %v, %v (tolerance %v)",
			got.Alerts, got.Precision, got.Recall, got.AUC, fullAlerts, full.Precision, full.Recall, full.AUC, tol)
	}
	files, err := filepath.Glob(filepath.Join(outDir, "*.ndjson"))
	if err != nil || len(files) != len(x.Batches) {
		t.Errorf("-out wrote %d files (%v), want %d", len(files), err, len(x.Batches))
	}

	// The table says the run went through a server, and why TTD is absent.
	out.Reset()
	args = append([]string{"simulate", "-ingest", url, "-cacert", cacert, "-system", "sim2", "-scenarios", "honeytoken"}, size...)
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("phivault %s = %v", strings.Join(args, " "), err)
	}
	for _, want := range []string{"through the server's ingestion API", "time to detect not measured", "not sent: account-change",
		"not measurable through ingestion", "honeytoken recall 1.0:                 met"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSimulate_ingestRefused: a token the server refuses stops the run
// with the server's answer, and nothing is scored; neither the error nor
// the output shows the token.
func TestSimulate_ingestRefused(t *testing.T) {
	url, _, cacert := startSecurityServer(t)
	const token = "not-the-token"
	t.Setenv("PHIVAULT_TOKEN", token)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"simulate", "-ingest", url, "-cacert", cacert, "-days", "3", "-staff", "60", "-patients", "300", "-scenarios", "none"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "simulate: simulate:") || out.Len() != 0 {
		t.Fatalf("simulate with a refused token = %v, output %q; want a 401 error (said once) and no report", err, out.String())
	}
	if strings.Contains(err.Error()+out.String()+errb.String(), token) {
		t.Errorf("the error or output shows the token: %v", err)
	}
}
