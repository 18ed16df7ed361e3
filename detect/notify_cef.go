package detect

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/cef"
)

// CEF severities (0 to 10) of alerts.
var cefSeverity = map[Severity]int{SeverityLow: 3, SeverityMedium: 5, SeverityHigh: 8, SeverityCritical: 10}

// CEF returns a as one ArcSight Common Event Format (revision 25) line,
// without a trailing newline:
//
//	CEF:0|phivault|phivault-detect|VERSION|RULE|Alert: RULE|SEVERITY|EXTENSIONS
//
// The severity is 3 for low, 5 for medium, 8 for high and 10 for critical.
// Escaping is internal/cef's, the same as the audit trail's CEF lines.
// Extensions, in this order, each left out when empty:
//
//	rt, start, end                       Detected, First, Last (ms since the epoch)
//	externalId                           the alert id
//	suid                                 User
//	msg                                  Why
//	cs1Label=rule cs1                    Rule
//	cn1Label=score cn1                   Score
//	cs2Label=patients cs2                Patients (space-separated, ≤ 4,000 chars)
//	cn2Label=patientCount cn2            how many patients
//	cs3Label=evidence cs3                Evidence refs (space-separated, ≤ 4,000 chars)
//	cn3Label=events cn3                  events merged into the alert
//	cs4Label=state cs4                   State, "suppressed" appended if Suppressed
//	cs5Label=factors cs5                 Factors, "; "-separated
//
// Like the alert, the line holds ids only, never PHI.
func CEF(a *Alert, version string) string {
	l := cef.NewLine("phivault", "phivault-detect", version, a.Rule, "Alert: "+a.Rule, cefSeverity[a.Severity])
	ext, labelled := l.Ext, l.Labelled
	ms := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return strconv.FormatInt(t.UnixMilli(), 10)
	}
	ext("rt", ms(a.Detected))
	ext("start", ms(a.First))
	ext("end", ms(a.Last))
	ext("externalId", a.ID)
	ext("suid", a.User)
	ext("msg", a.Why)
	labelled("cs1", "rule", a.Rule)
	labelled("cn1", "score", strconv.Itoa(a.Score))
	if len(a.Patients) > 0 {
		labelled("cs2", "patients", cef.List(a.Patients))
		labelled("cn2", "patientCount", strconv.Itoa(len(a.Patients)))
	}
	if len(a.Evidence) > 0 {
		labelled("cs3", "evidence", cef.List(a.Evidence))
	}
	labelled("cn3", "events", strconv.FormatInt(a.Events, 10))
	state := a.State
	if a.Suppressed {
		state += " suppressed"
	}
	labelled("cs4", "state", strings.TrimSpace(state))
	labelled("cs5", "factors", strings.Join(a.Factors, "; "))
	return l.String()
}

// CEFSender sends CEF lines to a collector, one message each, in one
// attempt. auditlog.SyslogWitness implements it (RFC 5424 over TLS, the
// audit trail's syslog connection handling).
type CEFSender interface {
	SendCEF(ctx context.Context, lines ...string) error
}

// CEFStream sends each alert as a CEF line (see CEF) through Sender,
// retrying a failed send with exponential backoff. A SIEM may see a line
// twice after a retry: deduplicate on externalId and cs4/severity.
type CEFStream struct {
	Sender  CEFSender
	Version string // Device Version of the header, or ""
	// Attempts, Backoff and MaxBackoff bound the retries. Defaults
	// DefaultNotifyAttempts, DefaultNotifyBackoff, DefaultNotifyMaxBackoff.
	Attempts            int
	Backoff, MaxBackoff time.Duration
}

var _ Notifier = (*CEFStream)(nil)

// Notify implements Notifier.
func (s *CEFStream) Notify(ctx context.Context, alerts []*Alert) error {
	lines := make([]string, len(alerts))
	for i, a := range alerts {
		lines[i] = CEF(a, s.Version)
	}
	err := retry(ctx, s.Attempts, s.Backoff, s.MaxBackoff, func() error { return s.Sender.SendCEF(ctx, lines...) })
	if err != nil {
		return fmt.Errorf("detect: cef: %w", err)
	}
	return nil
}
