package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/sqlitestore"
	"github.com/phivault/phivault/envelope"
)

// DetectConfig configures the detectors (docs/detection.md).
type DetectConfig struct {
	// Off stops the detectors from running in this server (on another
	// node of a PostgreSQL deployment, say: one node runs them).
	Off bool
}

func (c *DetectConfig) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.Off, "detect-off", os.Getenv("PHIVAULT_DETECT_OFF") == "1",
		"do not run the detectors in this server; run them on one node only (env PHIVAULT_DETECT_OFF=1)")
}

// detectFile is the detectors' own database in the data folder: cursors,
// alerts, the ingest stream. It holds ids and tokens only.
func (d dataDir) detectFile() string { return d.path("detect.db") }

// detector runs the detectors inside serve: from the unsealed vault's
// trail and the ingest stream into the detect store.
type detector struct {
	store    detect.Store
	engine   *detect.Engine
	pipeline *detect.Pipeline
	handler  http.Handler

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// trailReader is the audit trail as the detectors read it: committed
// entries, decoded.
type trailReader struct {
	log   *auditlog.Log // the running log, or nil offline
	store auditlog.Storage
}

// Size returns the entries committed: those the running log made visible
// to readers, or offline those stored.
func (t trailReader) Size(ctx context.Context) (int64, error) {
	if t.log == nil {
		return t.store.AuditSize(ctx)
	}
	return t.log.Tree().N, nil
}

func (t trailReader) Entries(ctx context.Context, start, end int64) ([]*phivault.AuditEntry, error) {
	data, err := t.store.ReadAuditEntries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	out := make([]*phivault.AuditEntry, len(data))
	for i, d := range data {
		if d == nil {
			continue
		}
		if out[i], err = auditlog.Decode(d); err != nil {
			return nil, fmt.Errorf("audit entry %d: %w", start+int64(i), err)
		}
	}
	return out, nil
}

// vaultTokens computes comparison tokens with the vault's index key.
type vaultTokens struct {
	store  phivault.Store
	sealer *envelope.Sealer
}

func (v vaultTokens) Tokens(ctx context.Context, values []phivault.IndexValue) (tokens []phivault.Token, err error) {
	err = v.store.View(ctx, func(tx phivault.StoreTx) error {
		tokens, err = v.sealer.Tokens(ctx, tx, values)
		return err
	})
	return tokens, err
}

// openDetect opens the detectors' store and security API, and starts
// the pipeline once the vault is unsealed (now, or on unseal): loading
// the directory needs the keys. records is the vault below the access
// layer.
func (a *app) openDetect(ctx context.Context, records phivault.RecordService, auth detect.Authenticator) error {
	if a.cfg.Detect.Off {
		return nil
	}
	store, err := openDetectStore(ctx, a.cfg.Data)
	if err != nil {
		return err
	}
	tokens := vaultTokens{store: a.db, sealer: a.seal.sealer}
	engine := detect.NewEngine(detect.NewDirectory(), detect.DefaultRules(), storedAlert(store))
	p := detect.NewPipeline(store, engine)
	p.Trail = trailReader{log: a.audit.log, store: a.db}
	p.Loader = &detectContext{records: records, accounts: a.accounts, tokens: tokens}
	p.Logger = a.logger
	a.audit.log.OnPublish(p.Wake) // an access becomes an alert without waiting for a poll
	d := &detector{store: store, engine: engine, pipeline: p}
	d.handler = detect.NewHandler(detect.HandlerOptions{
		Store: store, Pipeline: p, Auth: auth, Log: a.audit.log, Tokenizer: tokens,
	})
	a.routes["/security/"] = withClient(d.handler)
	a.detect = d
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	start := func() {
		d.wg.Go(func() {
			if err := p.Open(runCtx); err != nil {
				if runCtx.Err() == nil {
					a.logger.Error("detectors did not start", "error", err.Error())
				}
				return
			}
			p.Run(runCtx)
		})
	}
	if a.seal.Sealed() {
		prev := a.seal.onUnseal
		var once sync.Once
		a.seal.onUnseal = func() {
			if prev != nil {
				prev()
			}
			once.Do(start)
		}
	} else {
		start()
	}
	return nil
}

// openDetectStore opens the detectors' database in the data folder.
func openDetectStore(ctx context.Context, data dataDir) (detect.Store, error) {
	s, err := sqlitestore.Open(ctx, data.detectFile())
	if err != nil {
		return nil, fmt.Errorf("open the detectors' database: %w", err)
	}
	return s, nil
}

// close stops the pipeline and closes the store.
func (d *detector) close() error {
	if d == nil {
		return nil
	}
	d.cancel()
	d.wg.Wait()
	return d.store.Close()
}

// storedAlert returns the Engine's lookup of committed alerts in store.
// A read that fails for another reason than "no such alert" is retried
// until it succeeds or the server stops: answering "none" would replace
// the stored alert with a fresh one and lose its count.
func storedAlert(store detect.Store) func(id string) *detect.Alert {
	return func(id string) *detect.Alert {
		for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
			al, err := store.Alert(context.Background(), id)
			if err == nil {
				return al
			}
			if errors.Is(err, phivault.ErrNotFound) {
				return nil
			}
			time.Sleep(wait)
		}
	}
}
