package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/server"
)

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log output written from handshake goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// certFiles is a certificate and key file pair that tests replace.
type certFiles struct {
	dir, cert, key string
	pool           *x509.CertPool // trusts every pair written
}

func newCertFiles(t *testing.T) *certFiles {
	dir := t.TempDir()
	return &certFiles{dir: dir, cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
}

// writePair writes a new self-signed pair valid from now for validity,
// renaming each file into place, and returns its serial number.
func (f *certFiles) writePair(t *testing.T, now time.Time, validity time.Duration) *big.Int {
	t.Helper()
	certPEM, keyPEM, err := server.SelfSignedFor(nil, now, validity, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.pool.AppendCertsFromPEM(certPEM)
	f.write(t, certPEM, keyPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Leaf.SerialNumber
}

func (f *certFiles) write(t *testing.T, certPEM, keyPEM []byte) {
	t.Helper()
	for name, data := range map[string][]byte{f.cert: certPEM, f.key: keyPEM} {
		tmp := name + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, name); err != nil {
			t.Fatal(err)
		}
	}
}

// fileServer starts a server that reads its certificate from f.
func fileServer(t *testing.T, f *certFiles, clk *clock, interval time.Duration, logs *logBuffer) *server.Server {
	t.Helper()
	s := server.New(server.Config{
		Addr:               "127.0.0.1:0",
		CertFile:           f.cert,
		KeyFile:            f.key,
		CertReloadInterval: interval,
		Now:                clk.Now,
		Logger:             slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// servedSerial makes a new TLS connection and returns the serial number of
// the certificate the server presented.
func servedSerial(t *testing.T, s *server.Server, pool *x509.CertPool) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func TestReload_Poll(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := newCertFiles(t)
	serialA := f.writePair(t, clk.Now(), time.Hour)
	s := fileServer(t, f, clk, time.Minute, &logBuffer{})

	// An open HTTP/2 connection made with the first certificate.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.pool}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	get := func() *big.Int {
		t.Helper()
		resp, err := client.Get(s.URL() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /healthz: status %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber
	}
	if got := get(); got.Cmp(serialA) != 0 {
		t.Fatalf("first certificate: serial %x, want %x", got, serialA)
	}

	serialB := f.writePair(t, clk.Now(), time.Hour)
	clk.Add(time.Minute - time.Second)
	if got := servedSerial(t, s, f.pool); got.Cmp(serialA) != 0 {
		t.Errorf("before the interval passed: serial %x, want the old %x", got, serialA)
	}
	clk.Add(time.Second)
	if got := servedSerial(t, s, f.pool); got.Cmp(serialB) != 0 {
		t.Errorf("after the interval: serial %x, want the new %x", got, serialB)
	}
	if got := get(); got.Cmp(serialA) != 0 {
		t.Errorf("open connection: serial %x, want the old %x (the connection should have been kept)", got, serialA)
	}
}

func TestReload_Explicit(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := newCertFiles(t)
	serialA := f.writePair(t, clk.Now(), time.Hour)
	s := fileServer(t, f, clk, -1, &logBuffer{}) // no polling

	serialB := f.writePair(t, clk.Now(), time.Hour)
	clk.Add(time.Hour / 2)
	if got := servedSerial(t, s, f.pool); got.Cmp(serialA) != 0 {
		t.Errorf("polling disabled: serial %x, want the old %x", got, serialA)
	}
	if err := s.ReloadCertificate(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, s, f.pool); got.Cmp(serialB) != 0 {
		t.Errorf("after ReloadCertificate: serial %x, want the new %x", got, serialB)
	}
}

func TestReload_BadPairKeepsCertificate(t *testing.T) {
	now := time.Now()
	otherCert, otherKey, err := server.SelfSigned(nil, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	expiredCert, expiredKey, err := server.SelfSignedFor(nil, now.Add(-48*time.Hour), 24*time.Hour, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      string // in the error
	}{
		{"Unparsable", []byte("not a certificate"), otherKey, "certificate"},
		{"KeyMismatch", otherCert, expiredKey, "private key does not match"},
		{"Expired", expiredCert, expiredKey, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: now}
			f := newCertFiles(t)
			serialA := f.writePair(t, now, time.Hour)
			logs := &logBuffer{}
			s := fileServer(t, f, clk, time.Minute, logs)

			f.write(t, tc.cert, tc.key)
			// Twice: a reload the operator asks for again is checked again.
			for range 2 {
				err := s.ReloadCertificate()
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("ReloadCertificate() = %v, want an error containing %q", err, tc.want)
				}
			}
			if got := servedSerial(t, s, f.pool); got.Cmp(serialA) != 0 {
				t.Errorf("after a rejected reload: serial %x, want the old %x", got, serialA)
			}
			// The poll rejects it too, without logging it on every poll.
			for range 3 {
				clk.Add(time.Minute)
				if got := servedSerial(t, s, f.pool); got.Cmp(serialA) != 0 {
					t.Errorf("after a rejected poll: serial %x, want the old %x", got, serialA)
				}
			}
			if n := strings.Count(logs.String(), "reload rejected"); n != 2 {
				t.Errorf("logged %d rejections, want 2 (ReloadCertificate's); log:\n%s", n, logs)
			}

			// A good pair after the bad one is taken.
			serialC := f.writePair(t, now, time.Hour)
			clk.Add(time.Minute)
			if got := servedSerial(t, s, f.pool); got.Cmp(serialC) != 0 {
				t.Errorf("after a good pair: serial %x, want %x", got, serialC)
			}
		})
	}
}

func TestReload_ExpiredAtStart(t *testing.T) {
	now := time.Now()
	f := newCertFiles(t)
	f.writePair(t, now.Add(-48*time.Hour), 24*time.Hour)
	s := server.New(server.Config{Addr: "127.0.0.1:0", CertFile: f.cert, KeyFile: f.key})
	if err := s.Open(context.Background()); err == nil {
		s.Close()
		t.Fatal("Open with an expired certificate succeeded")
	} else if !strings.Contains(err.Error(), "expired") {
		t.Errorf("Open = %v, want an error saying expired", err)
	}
}

func TestReload_InMemoryCertificate(t *testing.T) {
	s, _ := mustServer(t)
	if err := s.ReloadCertificate(); err == nil {
		t.Error("ReloadCertificate with Config.Certificate succeeded, want an error: there are no files")
	}
}
