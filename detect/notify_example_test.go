package detect_test

import (
	"context"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// How phivault serve wires triage feedback and delivery around a
// pipeline (see docs/detection.md).
func ExampleDispatcher() {
	ctx := context.Background()
	store := detect.NewMemStore()

	// Suppression learns from every triage made so far, then from each new one.
	triages, _ := store.Triages(ctx, "")
	sup := detect.NewTriageSuppressor(triages)
	engine := detect.NewEngine(detect.NewDirectory(), nil, nil)
	engine.Suppressor = sup
	p := detect.NewPipeline(store, engine)

	metrics, _ := detect.NewMetrics(prometheus.NewRegistry(), func() int64 { return p.Status().Lag })
	d := detect.NewDispatcher()
	d.Store, d.Metrics = store, metrics
	d.Notifiers["ocsf"] = &detect.OCSFStream{W: os.Stdout}
	d.Notifiers["webhook"] = &detect.Webhook{URL: "https://soc.example/hooks/phivault", Secret: []byte("from PHIVAULT_DETECT_WEBHOOK_SECRET_FILE")}
	d.Notifiers["mail"] = &detect.Mailer{Addr: "mail.example:587", From: "phivault@example", To: []string{"privacy@example"}, RequireTLS: true}
	_ = d.Open(ctx)
	defer d.Close(ctx)
	p.OnCommit = d.OnCommit

	_ = detect.NewHandler(detect.HandlerOptions{
		Store: store, Pipeline: p, Log: discardLog{},
		OnTriage: sup.Observe,
	})
}

type discardLog struct{}

func (discardLog) Append(context.Context, ...*phivault.AuditEntry) error { return nil }
