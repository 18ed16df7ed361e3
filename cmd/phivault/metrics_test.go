package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServe_metricsToken checks that the running server serves /metrics
// only to the scrape token.
func TestServe_metricsToken(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	if err := run(ctx, []string{"init", "-data", dir, "-audit-witness-file", testWitness(dataDir(dir))}, &bytes.Buffer{}, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	const token = "0123456789abcdef0123456789abcdef-metrics"
	a, err := openApp(ctx, Config{Data: dataDir(dir), Passphrase: "correct horse battery staple", Addr: "127.0.0.1:0", Insecure: true, MetricsToken: token,
		Audit: AuditConfig{WitnessFile: testWitness(dataDir(dir))}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.listen(ctx); err != nil {
		t.Fatal(err)
	}
	get := func(auth string) (int, string) {
		return getMetrics(t, http.DefaultClient, a.server.URL()+"/metrics", auth)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token = %d, want 401", code)
	}
	if code, _ := get("Bearer " + strings.Repeat("x", len(token))); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong token = %d, want 401", code)
	}
	if code, body := get("Bearer " + token); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics with the token = %d, want 200 with Go metrics", code)
	}
}

// getMetrics sends GET url with the Authorization header auth (none if "")
// and returns the answer's status and body.
func getMetrics(t *testing.T, client *http.Client, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestMetricsToken_env(t *testing.T) {
	t.Setenv("PHIVAULT_METRICS_TOKEN", "short")
	if _, err := metricsToken(); err == nil {
		t.Error("a 5-character metrics token was accepted")
	}
	t.Setenv("PHIVAULT_METRICS_TOKEN", strings.Repeat("k", minMetricsToken))
	if tok, err := metricsToken(); err != nil || tok != strings.Repeat("k", minMetricsToken) {
		t.Errorf("metricsToken() = %q, %v", tok, err)
	}
}

// TestDemo_metrics starts "phivault demo" and reads /metrics as its
// output says: with the printed scrape token it answers 200, without it
// or with another token 401.
func TestDemo_metrics(t *testing.T) {
	for _, name := range []string{"PHIVAULT_METRICS_TOKEN", "PHIVAULT_METRICS_TOKEN_FILE", "PHIVAULT_STORE", "PHIVAULT_STORE_FILE"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dir := filepath.Join(t.TempDir(), "demo")
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "-data", dir, "-addr", "127.0.0.1:0", "-patients", "1"}, &stdout, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(stdout.String(), "Stop with Ctrl-C") {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("demo stopped before serving: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not start:\n%s", stdout.String())
		}
	}
	m := regexp.MustCompile(`(?m)^Metrics .*\n.*\n\s+curl --cacert (\S+) -H "Authorization: Bearer (\S+)" '(\S+)'$`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("demo printed no way to read /metrics:\n%s", stdout.String())
	}
	cacert, token, url := m[1], m[2], m[3]
	pem, err := os.ReadFile(cacert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	get := func(auth string) (int, string) { return getMetrics(t, client, url, auth) }
	if code, body := get("Bearer " + token); code != http.StatusOK || !strings.Contains(body, "phivault_audit_verify_ok") {
		t.Errorf("GET %s with the printed token = %d, want 200 with phivault's metrics", url, code)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("GET %s without a token = %d, want 401", url, code)
	}
	if code, _ := get("Bearer " + strings.Repeat("x", len(token))); code != http.StatusUnauthorized {
		t.Errorf("GET %s with a wrong token = %d, want 401", url, code)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
