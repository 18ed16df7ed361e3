package auditlog_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
)

// openWitnessed opens a Log with timer checkpoints off and the given
// witnesses, appends n entries and returns the checkpoint made after each.
func openWitnessed(t *testing.T, n int, ws ...auditlog.Witness) [][]byte {
	t.Helper()
	ctx := context.Background()
	signer, verifier := storetest.NewSigner(t)
	l := auditlog.New(storetest.NewMemAudit(), signer.Name(), signer)
	l.CheckpointInterval = -1
	l.CheckpointEvery = 1 << 40
	l.Witnesses = ws
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var cps [][]byte
	for i := range n {
		if err := l.Append(ctx, storetest.Entry(i)); err != nil {
			t.Fatal(err)
		}
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := auditlog.OpenCheckpoint(cp, verifier, signer.Name()); err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	return cps
}

func TestFileWitness(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoints.log")
	cps := openWitnessed(t, 3, &auditlog.FileWitness{Path: path})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := auditlog.SplitCheckpoints(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, cps, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("file holds %q, want %q", got, cps)
	}
}

// TestWebhookWitness posts through a queue to a TLS server that fails the
// first two attempts; every checkpoint still arrives, in order.
func TestWebhookWitness(t *testing.T) {
	var (
		mu    sync.Mutex
		calls int
		got   []string
	)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("got %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		if calls <= 2 {
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
	}))
	defer srv.Close()
	q := auditlog.NewWitnessQueue("webhook", &auditlog.WebhookWitness{URL: srv.URL, Client: srv.Client()},
		auditlog.WitnessQueueOptions{Backoff: time.Millisecond})
	cps := openWitnessed(t, 3, q)
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := make([]string, len(cps))
	for i, cp := range cps {
		want[i] = string(cp)
	}
	if !slices.Equal(got, want) {
		t.Errorf("webhook got %q, want %q", got, want)
	}
	if st := q.Stats(); st.Published != 3 || st.Failures != 2 || st.Dropped != 0 {
		t.Errorf("Stats() = %+v, want 3 published, 2 failures", st)
	}
}

func TestWebhookWitness_refusesHTTP(t *testing.T) {
	w := &auditlog.WebhookWitness{URL: "http://example.org/hook"}
	if err := w.Publish(context.Background(), []byte("x")); err == nil {
		t.Error("Publish to an http:// URL succeeded")
	}
}

// TestWebhookWitness_errorHidesURL checks that a failed delivery's error,
// which the queue logs, names the host but not the URL's secret path and
// query.
func TestWebhookWitness_errorHidesURL(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close() // every attempt fails to connect
	w := &auditlog.WebhookWitness{URL: srv.URL + "/hooks/s3cret-path?token=s3cret-query", Client: srv.Client()}
	err := w.Publish(context.Background(), []byte("x"))
	if err == nil {
		t.Fatal("Publish to a closed server succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "https://")) {
		t.Errorf("Publish error = %q, want the host and no part of the URL's path or query", err)
	}
}

// TestWitnessQueue_neverBlocks shows a witness that never answers does not
// hold up the log: the queue drops the oldest checkpoints and counts them.
func TestWitnessQueue_neverBlocks(t *testing.T) {
	block := make(chan struct{})
	stuck := witnessFunc(func(ctx context.Context, _ []byte) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return ctx.Err()
	})
	q := auditlog.NewWitnessQueue("stuck", stuck, auditlog.WitnessQueueOptions{Size: 2, Attempts: 1})
	openWitnessed(t, 10, q) // would hang if Publish waited
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.Close(ctx)
	close(block)
	if st := q.Stats(); st.Dropped < 7 || st.Published != 0 {
		t.Errorf("Stats() = %+v, want ≥ 7 dropped, 0 published", st)
	}
	if err := q.Publish(context.Background(), []byte("x")); err == nil {
		t.Error("Publish after Close succeeded")
	}
}

type witnessFunc func(ctx context.Context, cp []byte) error

func (f witnessFunc) Publish(ctx context.Context, cp []byte) error { return f(ctx, cp) }

// syslogServer is a TLS listener that parses RFC 5425 frames and sends each
// RFC 5424 message on msgs.
func syslogServer(t testing.TB) (addr string, pool *x509.CertPool, msgs <-chan []string) {
	t.Helper()
	// Borrow httptest's certificate for 127.0.0.1.
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	cert, pool := hs.TLS.Certificates[0], x509.NewCertPool()
	pool.AddCert(hs.Certificate())
	hs.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan []string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					n, err := r.ReadString(' ')
					if err != nil {
						return
					}
					size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
					if err != nil {
						t.Errorf("frame length %q", n)
						return
					}
					msg := make([]byte, size)
					if _, err := io.ReadFull(r, msg); err != nil {
						t.Errorf("frame: %v", err)
						return
					}
					ch <- strings.SplitN(string(msg), " ", 8)
				}
			}(c)
		}
	}()
	return ln.Addr().String(), pool, ch
}

func TestSyslogWitness(t *testing.T) {
	addr, pool, msgs := syslogServer(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	w := &auditlog.SyslogWitness{
		Addr: addr, TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		Hostname: "vault1", Now: func() time.Time { return now },
	}
	q := auditlog.NewWitnessQueue("syslog", w, auditlog.WitnessQueueOptions{})
	cps := openWitnessed(t, 3, q)
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, cp := range cps {
		var f []string
		select {
		case f = <-msgs:
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d never arrived", i)
		}
		if len(f) != 8 {
			t.Fatalf("message %d has %d fields: %q", i, len(f), f)
		}
		header := strings.Join(f[:7], " ")
		if want := "<110>1 2025-03-01T12:00:00.000000Z vault1 phivault - checkpoint -"; header != want {
			t.Errorf("header = %q, want %q", header, want)
		}
		note, err := base64.StdEncoding.DecodeString(f[7])
		if err != nil || string(note) != string(cp) {
			t.Errorf("message %d = %q (%v), want the checkpoint %q", i, note, err, cp)
		}
	}
}

// TestSyslogWitness_untrusted refuses a server whose certificate the
// configured CAs did not sign.
func TestSyslogWitness_untrusted(t *testing.T) {
	addr, _, _ := syslogServer(t)
	w := &auditlog.SyslogWitness{Addr: addr, TLS: &tls.Config{RootCAs: x509.NewCertPool()}}
	defer w.Close()
	err := w.Publish(context.Background(), []byte("x"))
	var certErr *tls.CertificateVerificationError
	if !errors.As(err, &certErr) {
		t.Errorf("Publish = %v, want a certificate verification error", err)
	}
}

func TestFormatSyslog(t *testing.T) {
	got := string(auditlog.FormatSyslog(time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), "", "app name", "id", "hello"))
	if want := "<110>1 2025-01-02T03:04:05.000006Z - app_name - id - hello"; got != want {
		t.Errorf("FormatSyslog = %q, want %q", got, want)
	}
}

// BenchmarkWitness_latency measures checkpoint publication latency, from
// the checkpoint's signing to the acknowledgment of an HTTPS webhook and a
// syslog-over-TLS server, and reports the p99.
func BenchmarkWitness_latency(b *testing.B) {
	for _, kind := range []string{"webhook", "syslog"} {
		b.Run(kind, func(b *testing.B) {
			var w auditlog.Witness
			if kind == "webhook" {
				srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
				defer srv.Close()
				w = &auditlog.WebhookWitness{URL: srv.URL, Client: srv.Client()}
			} else {
				addr, pool, msgs := syslogServer(b)
				go func() {
					for range msgs {
					}
				}()
				w = &auditlog.SyslogWitness{Addr: addr, TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
			}
			var (
				mu  sync.Mutex
				lat []time.Duration
			)
			q := auditlog.NewWitnessQueue(kind, w, auditlog.WitnessQueueOptions{Published: func(d time.Duration) {
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}})
			ctx := context.Background()
			signer, _ := storetest.NewSigner(b)
			l := auditlog.New(storetest.NewMemAudit(), signer.Name(), signer)
			l.CheckpointInterval = -1
			l.Witnesses = []auditlog.Witness{q}
			if err := l.Open(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if err := l.Append(ctx, storetest.Entry(i)); err != nil {
					b.Fatal(err)
				}
				if _, err := l.Checkpoint(ctx); err != nil {
					b.Fatal(err)
				}
				time.Sleep(time.Millisecond) // about 1000 checkpoints/s, far above the 1/s cadence
			}
			l.Close()
			q.Close(ctx)
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) == 0 {
				b.Fatal("no checkpoint was acknowledged")
			}
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(b.N-len(lat)), "lost")
		})
	}
}
