package auditlog

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// Syslog priority of checkpoint messages: facility 13 ("log audit"),
// severity 6 (informational), as RFC 5424 §6.2.1 computes it.
const syslogPriority = 13*8 + 6

// DefaultSyslogTimeout bounds dialing and one write to a syslog server.
const DefaultSyslogTimeout = 5 * time.Second

// SyslogWitness sends each signed checkpoint to a syslog server as one RFC
// 5424 message over TLS, framed by octet counting (RFC 5425 §4.3):
//
//	LEN SP <110>1 TIMESTAMP HOSTNAME APP-NAME PROCID checkpoint - BASE64
//
// The message carries no structured data; its MSG is the whole signed note
// (text, empty line, signature lines) in standard base64, so that the note's
// newlines survive receivers that split on them. Decode it and check it with
// the log's verifier key as any other checkpoint.
//
// One connection is kept open and redialed after an error. Publish makes
// one attempt: put it behind a WitnessQueue for retries. It is safe for
// concurrent use by multiple goroutines.
type SyslogWitness struct {
	// Addr is the server's host:port (6514 is the registered port).
	Addr string
	// TLS configures the connection; its ServerName defaults to Addr's host.
	TLS *tls.Config
	// Hostname and AppName fill the header. Defaults os.Hostname() and
	// "phivault".
	Hostname, AppName string
	// Timeout bounds dialing and each write. Default DefaultSyslogTimeout.
	Timeout time.Duration
	// Now stamps messages. Default time.Now.
	Now func() time.Time

	mu   sync.Mutex
	conn *tls.Conn
}

// Publish sends signedCheckpoint as one syslog message.
func (w *SyslogWitness) Publish(ctx context.Context, signedCheckpoint []byte) error {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	host, app := w.Hostname, w.AppName
	if host == "" {
		host, _ = os.Hostname()
	}
	if app == "" {
		app = "phivault"
	}
	msg := FormatSyslog(now(), host, app, "checkpoint", base64.StdEncoding.EncodeToString(signedCheckpoint))
	return w.send(ctx, msg)
}

// SendCEF sends each of lines (CEF lines, such as the detector's alerts)
// as one syslog message with MSGID "cef", stamped now, in one write. Like
// Publish it makes one attempt; the caller retries.
func (w *SyslogWitness) SendCEF(ctx context.Context, lines ...string) error {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	host, app := w.Hostname, w.AppName
	if host == "" {
		host, _ = os.Hostname()
	}
	if app == "" {
		app = "phivault"
	}
	t := now()
	msgs := make([][]byte, len(lines))
	for i, l := range lines {
		msgs[i] = FormatSyslog(t, host, app, "cef", l)
	}
	return w.send(ctx, msgs...)
}

// send writes msgs, each framed by octet counting, in one write on the
// connection, dialing it first if needed. The CEF forwarder shares it.
func (w *SyslogWitness) send(ctx context.Context, msgs ...[]byte) error {
	var frame []byte
	for _, msg := range msgs {
		frame = strconv.AppendInt(frame, int64(len(msg)), 10)
		frame = append(frame, ' ')
		frame = append(frame, msg...)
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = DefaultSyslogTimeout
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		cfg := w.TLS.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			h, _, err := net.SplitHostPort(w.Addr)
			if err != nil {
				return fmt.Errorf("audit syslog: address: %w", err)
			}
			cfg.ServerName = h
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
		c, err := d.DialContext(ctx, "tcp", w.Addr)
		if err != nil {
			return fmt.Errorf("audit syslog: %w", err)
		}
		w.conn = c.(*tls.Conn)
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	w.conn.SetWriteDeadline(deadline)
	if _, err := w.conn.Write(frame); err != nil {
		w.conn.Close()
		w.conn = nil
		return fmt.Errorf("audit syslog: %w", err)
	}
	return nil
}

// Close closes the connection, if any.
func (w *SyslogWitness) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// FormatSyslog returns an RFC 5424 message with priority 110 (log audit,
// informational), no PROCID and no structured data. msg must be printable
// ASCII; header fields that are empty or too long are replaced as §6 asks.
func FormatSyslog(t time.Time, hostname, appName, msgID, msg string) []byte {
	field := func(s string, max int) string {
		if s == "" {
			return "-"
		}
		b := []byte(s)
		for i, c := range b {
			if c < 33 || c > 126 { // PRINTUSASCII only
				b[i] = '_'
			}
		}
		if len(b) > max {
			b = b[:max]
		}
		return string(b)
	}
	return fmt.Appendf(nil, "<%d>1 %s %s %s - %s - %s",
		syslogPriority, t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		field(hostname, 255), field(appName, 48), field(msgID, 32), msg)
}
