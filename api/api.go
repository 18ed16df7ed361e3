// Package api implements the FHIR R4 REST interface of phivault over
// net/http: read, vread, create, update, delete, history, search,
// $everything, batch and transaction Bundles, and the CapabilityStatement.
//
// The handler speaks JSON only and authenticates every request except
// /fhir/metadata with a bearer token. It maps each phivault error code to one
// HTTP status and OperationOutcome issue code (see [Handler]), and it never
// writes the text of an unexpected error, a panic value, a request body or a
// query string to a response, a log line or a metric label.
package api

import (
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/phivault/phivault"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxBodyBytes is the default limit on a request body. It is sized
// for transaction Bundles; a single resource is far smaller.
const DefaultMaxBodyBytes = 16 << 20

// Options configures a Handler. The zero value is usable but refuses every
// request except /fhir/metadata, because it has no Authenticator.
type Options struct {
	// BaseURL is the FHIR base URL used in Location, fullUrl and Bundle
	// links, e.g. "https://vault.example.org/fhir". If empty, it is built
	// from the request: https (or http without TLS), the Host header, /fhir.
	// Set it in production so that links do not echo the Host header.
	BaseURL string

	// Authenticator checks bearer tokens. If nil, every authenticated route
	// answers 401 (a safe default).
	Authenticator Authenticator

	// MaxBodyBytes limits request bodies; larger ones get 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// Registerer receives the handler's Prometheus metrics. If nil, metrics
	// are kept but not registered anywhere.
	Registerer prometheus.Registerer

	// Logger receives one line per request and one per unexpected error.
	// If nil, nothing is logged.
	Logger *slog.Logger

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Rand is the source of request ids. If nil, crypto/rand.Reader.
	Rand io.Reader

	// Version is the software version shown in the CapabilityStatement.
	Version string

	// InstallID identifies this vault's data: random, made once by "phivault
	// init", shown in the CapabilityStatement (InstallIDExtension). Default
	// "" shows none.
	InstallID string
}

// Handler serves the FHIR REST API under /fhir. It is an http.Handler and is
// safe for concurrent use by multiple goroutines.
//
// # Errors
//
// Errors returned by the RecordService become OperationOutcomes. A
// *phivault.Error's Message and Issues are shown; any other error is shown as
// "Internal error." and logged once by type only, since its text may hold
// PHI. The code table:
//
//	invalid        400 invalid          unauthorized  401 login
//	unprocessable  422 processing       forbidden     403 forbidden
//	not-found      404 not-found        too-large     413 too-long
//	gone           410 deleted          unsupported   415 (or 405) not-supported
//	conflict       409 conflict         unavailable   503 transient
//	precondition   412 conflict         integrity     500 exception
//	internal       500 exception
type Handler struct {
	records    phivault.RecordService
	baseURL    string
	auth       Authenticator
	maxBody    int64
	logger     *slog.Logger
	now        func() time.Time
	rand       io.Reader
	metrics    *metrics
	mux        *http.ServeMux
	allow      *http.ServeMux // method-less patterns answering 405
	capability []byte
}

// NewHandler returns a Handler serving records. It panics if the metrics
// cannot be registered on opts.Registerer for a reason other than their
// being registered already.
func NewHandler(records phivault.RecordService, opts Options) *Handler {
	h := &Handler{
		records: records,
		baseURL: opts.BaseURL,
		auth:    opts.Authenticator,
		maxBody: opts.MaxBodyBytes,
		logger:  opts.Logger,
		now:     opts.Now,
		rand:    opts.Rand,
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.rand == nil {
		h.rand = rand.Reader
	}
	h.metrics = newMetrics(opts.Registerer)
	h.capability = capabilityStatement(opts.Version, opts.BaseURL, opts.InstallID, h.now())
	h.routes()
	return h
}

// ServeHTTP dispatches r to its route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}
