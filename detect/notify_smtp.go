package detect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// DefaultSMTPTimeout bounds one delivery to the mail server: dialing and
// the whole conversation.
const DefaultSMTPTimeout = 30 * time.Second

// Mailer sends alerts by e-mail through an SMTP server: one message per
// batch, listing each alert's id, rule, severity, score, user and patient
// ids, times, explanation and evidence, and how to open it in the API.
// Like the alerts, the message holds ids only, never PHI, so that it is
// safe in a mailbox; the API has the rest.
//
// It uses STARTTLS whenever the server offers it (verifying the server's
// certificate with TLS), and refuses to send without it if RequireTLS is
// set. Auth is used only over TLS (net/smtp's PLAIN refuses otherwise,
// except to localhost). A failed delivery is retried with exponential
// backoff.
type Mailer struct {
	Addr string   // the server, host:port
	From string   // envelope and header sender
	To   []string // recipients
	// Auth, if set, authenticates to the server, e.g. smtp.PlainAuth.
	Auth smtp.Auth
	// TLS configures STARTTLS; ServerName defaults to Addr's host.
	TLS *tls.Config
	// RequireTLS refuses a server that does not offer STARTTLS.
	RequireTLS bool
	// Hostname is sent in HELO/EHLO. Default "localhost".
	Hostname string
	// Timeout bounds one delivery. Default DefaultSMTPTimeout.
	Timeout time.Duration
	// Attempts, Backoff and MaxBackoff bound the retries. Defaults
	// DefaultNotifyAttempts, DefaultNotifyBackoff, DefaultNotifyMaxBackoff.
	Attempts            int
	Backoff, MaxBackoff time.Duration
	// Now stamps the Date header. Default time.Now.
	Now func() time.Time
}

var _ Notifier = (*Mailer)(nil)

// Notify implements Notifier.
func (m *Mailer) Notify(ctx context.Context, alerts []*Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	if m.From == "" || len(m.To) == 0 {
		return errors.New("detect: mail: From and To are required")
	}
	msg := m.message(alerts)
	err := retry(ctx, m.Attempts, m.Backoff, m.MaxBackoff, func() error { return m.send(ctx, msg) })
	if err != nil {
		return fmt.Errorf("detect: mail: %w", err)
	}
	return nil
}

func (m *Mailer) send(ctx context.Context, msg []byte) error {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultSMTPTimeout
	}
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return errPermanent{fmt.Errorf("address: %w", err)}
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	hostname := m.Hostname
	if hostname == "" {
		hostname = "localhost"
	}
	if err := c.Hello(hostname); err != nil {
		return err
	}
	tlsOn := false
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := m.TLS.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
		tlsOn = true
	} else if m.RequireTLS {
		return errPermanent{errors.New("the server does not offer STARTTLS, and TLS is required")}
	}
	if m.Auth != nil {
		if !tlsOn { // whatever the mechanism, no credential crosses the network in clear
			return errPermanent{errors.New("the server does not offer STARTTLS, and the credentials are only sent over TLS")}
		}
		if err := c.Auth(m.Auth); err != nil {
			return errPermanent{fmt.Errorf("auth: %w", err)}
		}
	}
	if err := c.Mail(m.From); err != nil {
		return err
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// message returns the RFC 5322 message of alerts: plain text, UTF-8,
// quoted-printable.
func (m *Mailer) message(alerts []*Alert) []byte {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	top := alerts[0]
	for _, a := range alerts[1:] {
		if a.Severity > top.Severity {
			top = a
		}
	}
	subject := fmt.Sprintf("[phivault] %s alert: %s (%s)", top.Severity, top.Rule, top.ID)
	if len(alerts) > 1 {
		subject = fmt.Sprintf("[phivault] %d alerts, highest %s: %s (%s)", len(alerts), top.Severity, top.Rule, top.ID)
	}
	h := sha256.New()
	for _, a := range alerts {
		h.Write([]byte(a.ID + a.Severity.String() + "\x00"))
	}
	domain := "phivault.invalid"
	if i := strings.LastIndexByte(m.From, '@'); i >= 0 {
		domain = m.From[i+1:]
	}
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + headerSafe(v) + "\r\n") }
	header("From", m.From)
	header("To", strings.Join(m.To, ", "))
	header("Subject", subject)
	header("Date", now().Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(h.Sum(nil)[:12])+"."+strconv.FormatInt(now().UnixNano(), 36)+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	var t strings.Builder
	fmt.Fprintf(&t, "phivault raised %d alert(s). They hold ids only; open each in the security API (GET /security/alerts/{id}) to triage it.\n", len(alerts))
	for _, a := range alerts {
		fmt.Fprintf(&t, "\nAlert %s\n", a.ID)
		fmt.Fprintf(&t, "  rule:        %s\n", a.Rule)
		fmt.Fprintf(&t, "  severity:    %s (score %d)\n", a.Severity, a.Score)
		fmt.Fprintf(&t, "  user:        %s\n", a.User)
		fmt.Fprintf(&t, "  patients:    %s\n", strings.Join(a.Patients, " "))
		fmt.Fprintf(&t, "  first, last: %s, %s\n", a.First.UTC().Format(time.RFC3339), a.Last.UTC().Format(time.RFC3339))
		fmt.Fprintf(&t, "  detected:    %s\n", a.Detected.UTC().Format(time.RFC3339))
		fmt.Fprintf(&t, "  why:         %s\n", a.Why)
		if len(a.Factors) > 0 {
			fmt.Fprintf(&t, "  factors:     %s\n", strings.Join(a.Factors, "; "))
		}
		fmt.Fprintf(&t, "  evidence:    %s (%d events)\n", strings.Join(a.Evidence, " "), a.Events)
		fmt.Fprintf(&t, "  link:        /security/alerts/%s\n", a.ID)
	}
	qp.Write([]byte(strings.ReplaceAll(t.String(), "\n", "\r\n")))
	qp.Close()
	return b.Bytes()
}

// headerSafe turns line breaks and other control characters into spaces,
// so a value cannot add a header.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
