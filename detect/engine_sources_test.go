package detect_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault/detect"
)

// oneAlertRule reports every event as one alert.
type oneAlertRule struct{}

func (oneAlertRule) Name() string { return "test-one" }

func (oneAlertRule) Observe(x *detect.Context, ev *detect.Event) {
	x.Report(detect.Finding{Rule: "test-one", Key: "k", Severity: detect.SeverityHigh, Score: 50, User: ev.User, Why: "test."})
}

// TestEngine_sourcesAndClients checks that an alert keeps the addresses
// and clients of its events, once each and at most MaxAlertSources:
// what block-source and block-client act on.
func TestEngine_sourcesAndClients(t *testing.T) {
	e := detect.NewEngine(detect.NewDirectory(), []detect.Rule{oneAlertRule{}}, nil)
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	for i := range 40 {
		e.Observe(&detect.Event{Time: t0.Add(time.Duration(i) * time.Second), User: "u1", Action: "read",
			Source: fmt.Sprintf("203.0.113.%d", i%20), Client: []string{"app", "", "app"}[i%3], OK: true})
	}
	alerts := e.Drain()
	if len(alerts) != 1 {
		t.Fatalf("%d alerts, want 1", len(alerts))
	}
	a := alerts[0]
	if len(a.Sources) != detect.MaxAlertSources || a.Sources[0] != "203.0.113.0" || slices.Contains(a.Sources, "203.0.113.19") {
		t.Fatalf("sources %v, want the first %d distinct", a.Sources, detect.MaxAlertSources)
	}
	if !slices.Equal(a.Clients, []string{"app"}) {
		t.Fatalf("clients %v, want [app]", a.Clients)
	}
	if c := a.Clone(); &c.Sources[0] == &a.Sources[0] {
		t.Fatal("Clone shares the sources")
	}
}
