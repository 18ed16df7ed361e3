package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestServe_metricsToken checks that the running server serves /metrics
// only to the scrape token.
func TestServe_metricsToken(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	t.Setenv("PHIVAULT_PASSPHRASE", "correct horse battery staple")
	if err := run(ctx, []string{"init", "-data", dir, "-audit-witness-file", filepath.Join(filepath.Dir(dir), "witness", "audit-checkpoints.log")}, &bytes.Buffer{}, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	const token = "0123456789abcdef0123456789abcdef-metrics"
	a, err := openApp(ctx, Config{Data: dataDir(dir), Passphrase: "correct horse battery staple", Addr: "127.0.0.1:0", Insecure: true, MetricsToken: token}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openApp: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.listen(ctx); err != nil {
		t.Fatal(err)
	}
	get := func(auth string) (int, string) {
		req, _ := http.NewRequest("GET", a.server.URL()+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
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
