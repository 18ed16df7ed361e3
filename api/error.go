package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// httpError is an error raised by the api itself whose status is not the
// one its code would imply, e.g. 405 or 406.
type httpError struct {
	status  int
	issue   string
	message string
}

func (e *httpError) Error() string { return e.message }

var (
	errMethodNotAllowed = &httpError{http.StatusMethodNotAllowed, "not-supported", "This method is not allowed on this path."}
	errNotAcceptable    = &httpError{http.StatusNotAcceptable, "not-supported", "Only JSON is supported: use application/fhir+json."}
	errUnknownType      = &httpError{http.StatusNotFound, "not-supported", "Unknown or unsupported resource type."}
	errNoRoute          = &httpError{http.StatusNotFound, "not-found", "No such path: FHIR requests start with /fhir/."}
	errPanic            = errors.New("panic")
)

// outcome is a FHIR OperationOutcome.
type outcome = fhir.OperationOutcome

// errorOutcome returns the status and OperationOutcome for err, and whether
// err is unexpected (not a *phivault.Error nor an api error), which the
// caller logs.
func errorOutcome(err error) (status int, oo *outcome, unexpected bool) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, fhir.NewOutcome("error", he.issue, he.message), false
	}
	var pe *phivault.Error
	status, oo = fhir.Outcome(err)
	return status, oo, !errors.As(err, &pe)
}

// StatusClientClosedRequest is the status (nginx's 499) that a request is
// logged and counted with when its client went away before the answer: a
// cancelled request is not a server error. The client never sees it.
const StatusClientClosedRequest = 499

// clientGone reports whether r's client has gone away (closed the
// connection or cancelled the HTTP/2 stream).
func clientGone(r *http.Request) bool {
	return errors.Is(r.Context().Err(), context.Canceled)
}

// cancelledByClient reports whether err is the cancellation of r by its
// client that went away. The stores keep a cancellation in the error chain
// (%w). Any other error is not, even if the client has gone away meanwhile:
// a failure that has nothing to do with the cancellation (an audit entry
// that could not be written) must stay a logged 5xx.
func cancelledByClient(r *http.Request, err error) bool {
	return clientGone(r) && errors.Is(err, context.Canceled)
}

// writeError writes err as an OperationOutcome. It logs unexpected errors
// and integrity failures once, by type and code only: their text may hold
// PHI. A server error that is the cancellation of a request whose client
// has gone away is logged at info as "client closed request" and answered
// 499.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, reqID string, err error) {
	status, oo, unexpected := errorOutcome(err)
	switch {
	case phivault.ErrorCode(err) == phivault.EINTEGRITY:
		h.logger.LogAttrs(r.Context(), slog.LevelError, "integrity check failed",
			slog.String("request_id", reqID))
	case status >= 500 && cancelledByClient(r, err):
		h.logger.LogAttrs(r.Context(), slog.LevelInfo, "client closed request",
			slog.String("request_id", reqID),
			slog.String("error_type", errorTypes(err)))
		status = StatusClientClosedRequest
	case unexpected && err != errPanic:
		h.logger.LogAttrs(r.Context(), slog.LevelError, "unexpected error",
			slog.String("request_id", reqID),
			slog.String("error_type", errorTypes(err)))
	}
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	writeJSON(w, status, oo)
}

// errorTypes describes err's chain by Go type, e.g.
// "*fmt.wrapError > *fs.PathError", which helps an operator without
// printing any of the (possibly PHI-bearing) text.
func errorTypes(err error) string {
	var b strings.Builder
	for i := 0; err != nil && i < 8; i++ {
		if i > 0 {
			b.WriteString(" > ")
		}
		fmt.Fprintf(&b, "%T", err)
		err = errors.Unwrap(err)
	}
	return b.String()
}

// writeJSON writes v, an api-built value, as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, mustEncode(v))
}

// mustEncode encodes v, an api-built value that always encodes, as compact
// JSON without HTML escaping.
func mustEncode(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("api: encode %T", v))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// writeBody writes a JSON body that is ready to send.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

const contentType = "application/fhir+json; charset=utf-8"
