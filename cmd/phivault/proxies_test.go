package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestTrustedProxies_refused checks that serve and demo refuse a
// -trusted-proxies list that does not parse or trusts every client,
// before they open anything.
func TestTrustedProxies_refused(t *testing.T) {
	for _, give := range []string{"0.0.0.0/0", "::/0", "proxy.example", "10.0.0.0/40"} {
		a, err := openApp(context.Background(), Config{Data: dataDir(t.TempDir()), TrustedProxies: give}, slog.New(slog.DiscardHandler))
		if err == nil {
			a.Close()
			t.Fatalf("openApp with -trusted-proxies %s succeeded, want an error", give)
		}
		if !strings.Contains(err.Error(), "trusted proxy") {
			t.Errorf("openApp with -trusted-proxies %s: %v, want an error about the trusted proxy", give, err)
		}
	}
}
