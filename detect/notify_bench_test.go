package detect_test

import (
	"io"
	"strconv"
	"testing"

	"github.com/phivault/phivault/detect"
)

// BenchmarkDispatcher_OnCommit measures what a pipeline commit pays for
// delivery: one new alert, queued for three notifiers.
func BenchmarkDispatcher_OnCommit(b *testing.B) {
	d := detect.NewDispatcher()
	d.Queue = 1 << 20
	for _, name := range []string{"a", "b", "c"} {
		d.Notifiers[name] = &detect.OCSFStream{W: io.Discard}
	}
	d.Open(b.Context())
	defer d.Close(b.Context())
	alerts := make([]*detect.Alert, 1024)
	for i := range alerts {
		alerts[i] = notifyAlert("family", "u"+strconv.Itoa(i), detect.SeverityHigh, "p"+strconv.Itoa(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := *alerts[i%len(alerts)]
		a.ID = strconv.Itoa(i)
		d.OnCommit([]*detect.Alert{&a})
	}
}

func BenchmarkOCSF(b *testing.B) {
	s := &detect.OCSFStream{W: io.Discard}
	a := []*detect.Alert{notifyAlert("family", "u1", detect.SeverityHigh, "p1", "p2")}
	for i := 0; i < b.N; i++ {
		s.Notify(b.Context(), a)
	}
}

func BenchmarkCEF(b *testing.B) {
	a := notifyAlert("family", "u1", detect.SeverityHigh, "p1", "p2")
	for i := 0; i < b.N; i++ {
		detect.CEF(a, "1")
	}
}
