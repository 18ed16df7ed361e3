package detect_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	netsmtp "net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/phivault/phivault/detect"
)

// smtpMessage is one message the test's SMTP server received.
type smtpMessage struct {
	from string
	to   []string
	data []byte
	tls  bool
}

// smtpBackend keeps every message it receives.
type smtpBackend struct {
	mu   sync.Mutex
	msgs []smtpMessage
}

func (b *smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{b: b, c: c}, nil
}

func (b *smtpBackend) messages() []smtpMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]smtpMessage(nil), b.msgs...)
}

type smtpSession struct {
	b   *smtpBackend
	c   *smtp.Conn
	msg smtpMessage
}

func (s *smtpSession) Reset()        { s.msg = smtpMessage{} }
func (s *smtpSession) Logout() error { return nil }
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.msg.from = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = b
	_, s.msg.tls = s.c.TLSConnectionState()
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.msg)
	s.b.mu.Unlock()
	return nil
}

// startSMTP starts a real SMTP server on a loopback port, offering
// STARTTLS with a fresh self-signed certificate if withTLS, and returns
// its address, backend and the pool that trusts its certificate.
func startSMTP(t *testing.T, withTLS bool) (string, *smtpBackend, *x509.CertPool) {
	t.Helper()
	be := &smtpBackend{}
	srv := smtp.NewServer(be)
	srv.Domain = "mail.test"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	srv.ErrorLog = nopLogger{}
	pool := x509.NewCertPool()
	if withTLS {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail.test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		pool.AddCert(cert)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), be, pool
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

func TestMailer_Notify(t *testing.T) {
	t.Run("STARTTLS", func(t *testing.T) {
		addr, be, pool := startSMTP(t, true)
		m := &detect.Mailer{
			Addr: addr, From: "phivault@clinic.test", To: []string{"privacy@clinic.test", "soc@clinic.test"},
			TLS: &tls.Config{RootCAs: pool}, RequireTLS: true, Backoff: time.Millisecond,
			Now: func() time.Time { return alertsT0 },
		}
		a := notifyAlert("family", "u1", detect.SeverityHigh, "p1", "p2")
		b := notifyAlert("honeytoken", "u9", detect.SeverityCritical, "p9")
		if err := m.Notify(t.Context(), []*detect.Alert{a, b}); err != nil {
			t.Fatalf("Notify = %v", err)
		}
		msgs := be.messages()
		if len(msgs) != 1 {
			t.Fatalf("%d messages, want 1", len(msgs))
		}
		got := msgs[0]
		if !got.tls || got.from != "phivault@clinic.test" || len(got.to) != 2 {
			t.Errorf("message from %q to %v over TLS %v", got.from, got.to, got.tls)
		}
		msg, err := mail.ReadMessage(strings.NewReader(string(got.data)))
		if err != nil {
			t.Fatal(err)
		}
		subject := msg.Header.Get("Subject")
		if !strings.Contains(subject, "critical") || !strings.Contains(subject, b.ID) {
			t.Errorf("Subject = %q, want the highest severity and its alert id", subject)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{a.ID, b.ID, a.Why, b.Why, "u1", "p1 p2", "trail/41 trail/42", "/security/alerts/" + a.ID} {
			if !strings.Contains(string(body), want) {
				t.Errorf("body lacks %q:\n%s", want, body)
			}
		}
	})
	t.Run("ErrRequireTLS", func(t *testing.T) {
		addr, be, _ := startSMTP(t, false)
		m := &detect.Mailer{Addr: addr, From: "phivault@clinic.test", To: []string{"privacy@clinic.test"}, RequireTLS: true, Backoff: time.Millisecond}
		if err := m.Notify(t.Context(), []*detect.Alert{notifyAlert("family", "u1", detect.SeverityHigh, "p1")}); err == nil {
			t.Error("Notify to a server without STARTTLS, TLS required = nil, want an error")
		}
		if n := len(be.messages()); n != 0 {
			t.Errorf("%d messages sent in the clear", n)
		}
	})
	t.Run("NoCredentialsInTheClear", func(t *testing.T) {
		addr, be, _ := startSMTP(t, false)
		m := &detect.Mailer{Addr: addr, From: "phivault@clinic.test", To: []string{"privacy@clinic.test"},
			Auth: clearAuth{}, Backoff: time.Millisecond}
		// Refused by the mailer itself, before any AUTH command.
		if err := m.Notify(t.Context(), []*detect.Alert{notifyAlert("family", "u1", detect.SeverityHigh, "p1")}); err == nil || !strings.Contains(err.Error(), "only sent over TLS") {
			t.Errorf("Notify with credentials to a server without STARTTLS = %v, want the mailer's refusal", err)
		}
		if n := len(be.messages()); n != 0 {
			t.Errorf("%d messages sent", n)
		}
	})
	t.Run("Plain", func(t *testing.T) {
		addr, be, _ := startSMTP(t, false)
		m := &detect.Mailer{Addr: addr, From: "phivault@clinic.test", To: []string{"privacy@clinic.test"}}
		if err := m.Notify(t.Context(), []*detect.Alert{notifyAlert("family", "u1", detect.SeverityHigh, "p1")}); err != nil {
			t.Fatalf("Notify = %v", err)
		}
		if msgs := be.messages(); len(msgs) != 1 || msgs[0].tls {
			t.Errorf("messages = %d, want 1 without TLS", len(msgs))
		}
	})
}

// clearAuth is an smtp.Auth that would send its credentials whatever the
// connection (unlike smtp.PlainAuth, which checks for TLS itself).
type clearAuth struct{}

func (clearAuth) Start(*netsmtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00user\x00secret"), nil
}
func (clearAuth) Next([]byte, bool) ([]byte, error) { return nil, nil }
