package server_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/phivault/phivault/server"
)

// ticketServer starts a TLS server on clk with the given ticket key
// rotation and returns a function that makes one request on a new
// connection and reports whether the TLS session was resumed.
func ticketServer(t *testing.T, clk *clock, rotation time.Duration) func() bool {
	t.Helper()
	certPEM, keyPEM, err := server.SelfSigned(nil, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	s := server.New(server.Config{Addr: "127.0.0.1:0", Certificate: &cert, Now: clk.Now, TicketKeyRotation: rotation})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	sessions := tls.NewLRUClientSessionCache(8)
	return func() bool {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ClientSessionCache: sessions}, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr}).Get(s.URL() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.TLS.DidResume
	}
}

// TestServer_TicketKeyRotation checks on the injected clock that session
// tickets resume within a rotation period and the next, and no later.
func TestServer_TicketKeyRotation(t *testing.T) {
	clk := &clock{t: time.Now()}
	get := ticketServer(t, clk, 0) // the default
	get()                          // gets a ticket
	if !get() {
		t.Fatal("second connection did not resume")
	}
	// After one rotation, the previous key still opens the ticket (and the
	// resumed connection gets a fresh ticket under the new key).
	clk.Add(server.DefaultTicketKeyRotation + time.Minute)
	if !get() {
		t.Error("no resumption just after a rotation: the previous key is gone")
	}
	// A ticket whose key is two rotations old no longer resumes.
	get() // a ticket under the current key
	clk.Add(2*server.DefaultTicketKeyRotation + time.Minute)
	if get() {
		t.Error("a session resumed with a ticket key more than a day old")
	}
	if !get() {
		t.Error("no resumption with a fresh ticket after the rotations")
	}
}

func TestServer_TicketsDisabled(t *testing.T) {
	get := ticketServer(t, &clock{t: time.Now()}, -1)
	get()
	if get() {
		t.Error("a session resumed with tickets disabled")
	}
}

func TestServer_MetricsToken(t *testing.T) {
	s, pool := mustServer(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	for _, tt := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Basic " + testMetricsToken, http.StatusUnauthorized},
		{"Bearer " + testMetricsToken, http.StatusOK},
	} {
		req, _ := http.NewRequest("GET", s.URL()+"/metrics", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.want {
			t.Errorf("GET /metrics with Authorization %.12q... = %d, want %d", tt.auth, res.StatusCode, tt.want)
		}
	}

	// Without a token, /metrics is not served.
	certPEM, keyPEM, _ := server.SelfSigned(nil, time.Now(), rand.Reader)
	cert, _ := tls.X509KeyPair(certPEM, keyPEM)
	open := server.New(server.Config{Addr: "127.0.0.1:0", Certificate: &cert,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metrics")) })})
	if err := open.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	pool2 := x509.NewCertPool()
	pool2.AppendCertsFromPEM(certPEM)
	c2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool2}}}
	defer c2.CloseIdleConnections()
	res, err := c2.Get(open.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics without a configured token = %d, want 404", res.StatusCode)
	}
}
