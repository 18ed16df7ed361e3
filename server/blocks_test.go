package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/phivault/phivault/block"
	"github.com/phivault/phivault/server"
)

// TestServer_Blocks checks that a blocked source is refused on every
// route with 403 and an OperationOutcome before any handler runs, read
// the way the audit trail reads it (behind a trusted proxy), and that
// other sources are served.
func TestServer_Blocks(t *testing.T) {
	ctx := context.Background()
	blocks, err := block.Open(ctx, filepath.Join(t.TempDir(), "blocks.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer blocks.Close()
	if _, err := blocks.Add(ctx, []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("2001:db8:7::/48")}, time.Time{}, "act-1"); err != nil {
		t.Fatal(err)
	}
	proxies, _ := server.ParsePrefixes("127.0.0.1")
	reached := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++; w.Write([]byte("ok")) })
	s := server.New(server.Config{
		Addr: "127.0.0.1:0", Insecure: true, TrustedProxies: proxies, Blocks: blocks,
		FHIR:   h,
		Routes: map[string]http.Handler{"/oauth/": h, "/security/": h},
	})
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := func(method, path, xff string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL()+path, nil)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	tests := []struct {
		method, path, xff string
		want              int
	}{
		{"GET", "/fhir/Patient/p1", "198.51.100.7", 403},
		{"POST", "/oauth/token", "198.51.100.7", 403},
		{"GET", "/oauth/authorize", "198.51.100.7", 403},
		{"GET", "/security/alerts", "198.51.100.7", 403},
		{"GET", "/healthz", "198.51.100.7", 403},
		{"GET", "/fhir/Patient/p1", "2001:db8:7::5", 403},
		{"GET", "/fhir/Patient/p1", "::ffff:198.51.100.7", 403},
		{"GET", "/fhir/Patient/p1", "203.0.113.9, 198.51.100.7", 403}, // what our proxy saw
		{"GET", "/fhir/Patient/p1", "198.51.100.8", 200},
		{"POST", "/oauth/token", "198.51.100.8", 200},
		{"GET", "/fhir/Patient/p1", "2001:db8:8::5", 200},
		{"GET", "/fhir/Patient/p1", "198.51.100.7, 203.0.113.9", 200}, // client-written: not its source
		{"GET", "/fhir/Patient/p1", "", 200},                          // the proxy itself
	}
	for _, tt := range tests {
		before := reached
		status, body := get(tt.method, tt.path, tt.xff)
		if status != tt.want {
			t.Errorf("%s %s from %q = %d, want %d", tt.method, tt.path, tt.xff, status, tt.want)
			continue
		}
		if tt.want == 403 {
			var oo struct {
				ResourceType string `json:"resourceType"`
				Issue        []struct{ Code string }
			}
			if err := json.Unmarshal([]byte(body), &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 || oo.Issue[0].Code != "forbidden" {
				t.Errorf("%s %s from %q: body %q, want a forbidden OperationOutcome", tt.method, tt.path, tt.xff, body)
			}
			if reached != before {
				t.Errorf("%s %s from %q reached the handler", tt.method, tt.path, tt.xff)
			}
		}
	}
	if got := blocks.Refused(); got != 8 {
		t.Errorf("Refused() = %d, want 8", got)
	}
	// Undone: served again at once.
	if _, err := blocks.Remove(ctx, "act-1"); err != nil {
		t.Fatal(err)
	}
	if status, _ := get("GET", "/fhir/Patient/p1", "198.51.100.7"); status != 200 {
		t.Errorf("after removal: %d, want 200", status)
	}
}
