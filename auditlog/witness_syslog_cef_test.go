package auditlog_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/auditlog"
)

// TestSyslogWitness_SendCEF sends each line as one message with MSGID cef
// (the detector's alerts use it).
func TestSyslogWitness_SendCEF(t *testing.T) {
	addr, pool, msgs := syslogServer(t)
	now := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	w := &auditlog.SyslogWitness{
		Addr: addr, TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		Hostname: "vault1", Now: func() time.Time { return now },
	}
	defer w.Close()
	lines := []string{"CEF:0|phivault|phivault-detect||family|Alert: family|8|externalId=1", "CEF:0|phivault|phivault-detect||self|Alert: self|3|externalId=2"}
	if err := w.SendCEF(context.Background(), lines...); err != nil {
		t.Fatalf("SendCEF = %v", err)
	}
	for i, want := range lines {
		var f []string
		select {
		case f = <-msgs:
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d never arrived", i)
		}
		if len(f) != 8 {
			t.Fatalf("message %d has %d fields: %q", i, len(f), f)
		}
		if header := strings.Join(f[:7], " "); header != "<110>1 2026-12-06T05:00:00.000000Z vault1 phivault - cef -" {
			t.Errorf("header = %q", header)
		}
		if f[7] != want {
			t.Errorf("message %d = %q, want %q", i, f[7], want)
		}
	}
}
