package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/vault"
)

// reindexer recomputes the blind-index tokens that an upgrade asks for
// (vault.Service.Reindex; docs/operations.md) once the vault is unsealed:
// at start, before the server listens, and after every "phivault unseal",
// in the background (with nothing pending that costs one read). It logs
// counts only. A reindex that fails or is cut short starts over the next
// time.
type reindexer struct {
	records *vault.Service
	logger  *slog.Logger
	ctx     context.Context // the server's lifetime
	wg      sync.WaitGroup
}

// run reindexes and logs the outcome.
func (r *reindexer) run(ctx context.Context) {
	start := time.Now()
	n, err := r.records.Reindex(ctx)
	if err != nil {
		r.logger.Error("reindex stopped; it starts over at the next start or unseal", "resources", n,
			"code", phivault.ErrorCode(err), "reason", phivault.ErrorMessage(err), "error_type", errorType(err))
		return
	}
	if n > 0 {
		r.logger.Info("reindex done", "resources", n, "duration", time.Since(start).Round(time.Millisecond))
	}
}

// background runs a reindex in its own goroutine, for an unseal, which
// must not wait for it.
func (r *reindexer) background() {
	r.wg.Go(func() { r.run(r.ctx) })
}

// wait waits for a background reindex; sealing first makes it stop soon.
func (r *reindexer) wait() {
	if r != nil {
		r.wg.Wait()
	}
}
