package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/server"
)

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

const testMetricsToken = "metrics-token-0123456789abcdef0123456789"

// mustServer starts a TLS server on 127.0.0.1:0 with a self-signed
// certificate and returns it with a pool that trusts it.
func mustServer(tb testing.TB) (*server.Server, *x509.CertPool) {
	tb.Helper()
	certPEM, keyPEM, err := server.SelfSigned(nil, time.Now(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	s := server.New(server.Config{
		Addr:        "127.0.0.1:0",
		Certificate: &cert,
		FHIR: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("fhir " + r.URL.Path))
		}),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("metrics"))
		}),
		MetricsToken: testMetricsToken,
	})
	if err := s.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s, pool
}

func dial(s *server.Server, cfg *tls.Config) error {
	conn, err := tls.Dial("tcp", s.Addr().String(), cfg)
	if err != nil {
		return err
	}
	return conn.Close()
}

func TestServer_TLS(t *testing.T) {
	s, pool := mustServer(t)
	t.Run("TLS11Refused", func(t *testing.T) {
		err := dial(s, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
	t.Run("CBCRefused", func(t *testing.T) {
		err := dial(s, &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}})
		if err == nil {
			t.Fatal("TLS 1.2 handshake with CBC suites succeeded")
		}
	})
	t.Run("TLS12GCM", func(t *testing.T) {
		conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st := conn.ConnectionState()
		if st.Version != tls.VersionTLS12 || !strings.Contains(tls.CipherSuiteName(st.CipherSuite), "ECDHE") {
			t.Errorf("negotiated %s with %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
		}
	})
	t.Run("TLS13Preferred", func(t *testing.T) {
		// A client offering both versions gets TLS 1.3.
		conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("version = %s, want TLS 1.3", tls.VersionName(v))
		}
	})
	t.Run("TLS12WithoutECDHERefused", func(t *testing.T) {
		err := dial(s, &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}})
		if err == nil {
			t.Fatal("TLS 1.2 handshake with RSA key exchange succeeded")
		}
	})
	t.Run("TLS13", func(t *testing.T) {
		conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("version = %s, want TLS 1.3", tls.VersionName(v))
		}
	})
}

func TestServer_HTTP2AndHeaders(t *testing.T) {
	s, pool := mustServer(t)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	for _, path := range []string{"/fhir/Patient", "/healthz", "/metrics", "/nothing"} {
		resp, err := client.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Proto != "HTTP/2.0" {
			t.Errorf("GET %s: proto %s, want HTTP/2.0", path, resp.Proto)
		}
		for name, want := range map[string]string{
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
			"X-Content-Type-Options":    "nosniff",
			"Cache-Control":             "no-store",
			"Referrer-Policy":           "no-referrer",
			"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("GET %s: %s = %q, want %q", path, name, got, want)
			}
		}
		switch path {
		case "/fhir/Patient":
			if string(body) != "fhir /fhir/Patient" {
				t.Errorf("GET %s: body %q", path, body)
			}
		case "/healthz":
			if resp.StatusCode != 200 || string(body) != "ok\n" {
				t.Errorf("GET %s: %d %q", path, resp.StatusCode, body)
			}
		case "/metrics":
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s without a token: %d, want 401", path, resp.StatusCode)
			}
		case "/nothing":
			if resp.StatusCode != 404 {
				t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
			}
		}
	}
}

func TestServer_Insecure(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "example.com:0"} {
		s := server.New(server.Config{Addr: addr, Insecure: true})
		if err := s.Open(context.Background()); err == nil {
			s.Close()
			t.Errorf("Open(%q) with Insecure succeeded, want refusal", addr)
		} else if !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Open(%q) = %v, want an error naming loopback", addr, err)
		}
	}

	s := server.New(server.Config{Addr: "127.0.0.1:0", Insecure: true})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get(s.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("plain HTTP: status %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
}

func TestServer_NoCertificate(t *testing.T) {
	s := server.New(server.Config{Addr: "127.0.0.1:0"})
	if err := s.Open(context.Background()); err == nil {
		s.Close()
		t.Fatal("Open without a certificate succeeded")
	}
}

func TestSelfSigned(t *testing.T) {
	certPEM, keyPEM, err := server.SelfSigned([]string{"vault.example", "10.1.2.3", "localhost"}, testNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm = %v, want ECDSA", cert.PublicKeyAlgorithm)
	}
	if got, want := cert.NotAfter, testNow.Add(server.DefaultCertValidity); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "vault.example", "10.1.2.3"} {
		if err := cert.VerifyHostname(h); err != nil {
			t.Errorf("VerifyHostname(%q): %v", h, err)
		}
	}
	if len(cert.DNSNames) != 2 {
		t.Errorf("DNSNames = %v, want localhost and vault.example once each", cert.DNSNames)
	}
	if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
		t.Error("key is not a PKCS#8 PEM block")
	}
}

// TestServer_RequestID shows that every request gets an id from
// Config.Rand, in its X-Request-Id header and in the phivault.RequestInfo
// its handler sees, with the source address, whatever id the client sent.
func TestServer_RequestID(t *testing.T) {
	seen := make(chan phivault.RequestInfo, 2)
	s := server.New(server.Config{
		Addr:     "127.0.0.1:0",
		Insecure: true,
		Rand:     bytes.NewReader([]byte{0, 1, 2, 3, 4, 5, 6, 7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff}),
		Routes: map[string]http.Handler{"/oauth/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info, _ := phivault.RequestInfoFromContext(r.Context())
			seen <- info
		})},
	})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, want := range []string{"0001020304050607", "f8f9fafbfcfdfeff"} {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/oauth/token", nil)
		req.Header.Set("X-Request-Id", "chosen-by-the-client")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		info := <-seen
		if got := resp.Header.Get("X-Request-Id"); got != want || info.ID != want {
			t.Errorf("request id: header %q, context %q; want %q", got, info.ID, want)
		}
		if info.Source != "127.0.0.1" {
			t.Errorf("source %q, want 127.0.0.1", info.Source)
		}
	}
}

// TestServer_TrustedProxies checks the source address a request is
// recorded with: behind a trusted proxy, the right-most address of
// X-Forwarded-For that is not a trusted proxy; otherwise, and without
// trusted proxies, the peer's address whatever the header says.
func TestServer_TrustedProxies(t *testing.T) {
	open := func(proxies string) (*server.Server, chan phivault.RequestInfo) {
		t.Helper()
		prefixes, err := server.ParsePrefixes(proxies)
		if err != nil {
			t.Fatal(err)
		}
		seen := make(chan phivault.RequestInfo, 1)
		s := server.New(server.Config{
			Addr:           "127.0.0.1:0",
			Insecure:       true,
			TrustedProxies: prefixes,
			Routes: map[string]http.Handler{"/oauth/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				info, _ := phivault.RequestInfoFromContext(r.Context())
				seen <- info
			})},
		})
		if err := s.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, seen
	}
	source := func(s *server.Server, seen chan phivault.RequestInfo, xff ...string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/oauth/token", nil)
		for _, v := range xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return (<-seen).Source
	}

	behind, seen := open("127.0.0.1, 10.0.0.0/8")
	tests := []struct {
		give []string
		want string
	}{
		{nil, "127.0.0.1"},
		{[]string{"198.51.100.7"}, "198.51.100.7"},
		{[]string{"203.0.113.9, 198.51.100.7"}, "198.51.100.7"},           // the left one is the client's own
		{[]string{"198.51.100.7, 10.1.2.3"}, "198.51.100.7"},              // through a second trusted proxy
		{[]string{"203.0.113.9", "198.51.100.7"}, "198.51.100.7"},         // two header lines
		{[]string{"10.9.9.9, 10.1.2.3"}, "10.9.9.9"},                      // all trusted: the left-most
		{[]string{"2001:db8::7"}, "2001:db8::7"},                          // IPv6
		{[]string{"[2001:db8::7]:443"}, "2001:db8::7"},                    // with a port
		{[]string{"::ffff:198.51.100.7"}, "198.51.100.7"},                 // IPv4-mapped
		{[]string{"198.51.100.7, garbage"}, "127.0.0.1"},                  // unreadable: stop at the proxy
		{[]string{"unknown, 10.1.2.3"}, "10.1.2.3"},                       // stop at the last trusted hop
		{[]string{"203.0.113.9, 198.51.100.7, 10.1.2.3"}, "198.51.100.7"}, // client-written entries ignored
	}
	for _, tt := range tests {
		if got := source(behind, seen, tt.give...); got != tt.want {
			t.Errorf("source with X-Forwarded-For %q = %q, want %q", tt.give, got, tt.want)
		}
	}

	direct, seen := open("")
	if got := source(direct, seen, "198.51.100.7"); got != "127.0.0.1" {
		t.Errorf("source without trusted proxies = %q, want the peer 127.0.0.1", got)
	}
	other, seen := open("192.0.2.0/24")
	if got := source(other, seen, "198.51.100.7"); got != "127.0.0.1" {
		t.Errorf("source from an untrusted peer = %q, want the peer 127.0.0.1", got)
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := server.ParsePrefixes(" 10.0.0.1/8, 192.0.2.7 ,2001:db8::/48,,::1")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/48"), netip.MustParsePrefix("::1/128")}
	if !slices.Equal(got, want) {
		t.Errorf("ParsePrefixes = %v, want %v", got, want)
	}
	for _, bad := range []string{"0.0.0.0/0", "::/0", "10.0.0.0/33", "proxy.example", "fe80::1%eth0"} {
		if _, err := server.ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q) succeeded, want an error", bad)
		}
	}
}
