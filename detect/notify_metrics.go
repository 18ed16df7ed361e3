package detect

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the detector's Prometheus metrics. Their labels are rule,
// severity, notifier and outcome names only: never a user or a patient,
// whose ids would make every series a record of who did what.
//
//	phivault_detect_alerts_total{rule,severity}       alerts raised, and raised again at a higher severity
//	phivault_detect_findings_total{rule}              findings merged into alerts (suppressed ones too)
//	phivault_detect_lag                               trail entries and ingest records not yet processed
//	phivault_detect_deliveries_total{notifier,outcome} alerts sent, failed or dropped, per notifier
//
// The methods of a nil *Metrics do nothing.
type Metrics struct {
	alerts     *prometheus.CounterVec
	findings   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
}

// NewMetrics registers the detector's metrics with reg. lag, if not nil,
// reports the pipeline's lag (e.g. func() int64 { return p.Status().Lag }).
func NewMetrics(reg prometheus.Registerer, lag func() int64) (*Metrics, error) {
	m := &Metrics{
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phivault_detect_alerts_total",
			Help: "Alerts raised by the detector, by rule and severity; an alert whose severity rises counts again at the new severity. Suppressed alerts count too.",
		}, []string{"rule", "severity"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phivault_detect_findings_total",
			Help: "Findings reported by the detector's rules and merged into alerts, by rule.",
		}, []string{"rule"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phivault_detect_deliveries_total",
			Help: "Alerts handed to a notifier, by notifier and outcome (sent, failed, dropped).",
		}, []string{"notifier", "outcome"}),
	}
	var err error
	for _, c := range []**prometheus.CounterVec{&m.alerts, &m.findings, &m.deliveries} {
		if *c, err = register(reg, *c); err != nil {
			return nil, err
		}
	}
	if lag != nil {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "phivault_detect_lag",
			Help: "Trail entries and ingested records the detector has not processed yet.",
		}, func() float64 { return float64(lag()) })
		if _, err := register[prometheus.Collector](reg, g); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name, so that a pipeline reopened on one registry keeps counting.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("detect: register metrics: %w", err)
	}
	return c, nil
}

// observe counts a, committed, given what was known of it before.
func (m *Metrics) observe(a *Alert, prev seen, known, raised bool) {
	if m == nil {
		return
	}
	if raised {
		m.alerts.WithLabelValues(a.Rule, a.Severity.String()).Inc()
	}
	if n := a.Events - prev.events; n > 0 || !known {
		m.findings.WithLabelValues(a.Rule).Add(float64(max(n, 0)))
	}
}

func (m *Metrics) delivered(notifier, outcome string, n int) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(notifier, outcome).Add(float64(n))
}
