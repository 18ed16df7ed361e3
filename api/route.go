package api

import (
	"context"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// routeFunc serves one FHIR interaction. It either writes a response and
// returns nil, or writes nothing and returns an error.
type routeFunc func(w http.ResponseWriter, r *http.Request) error

// route wraps a routeFunc with what every request gets: a request id,
// authentication, content negotiation, panic recovery, error responses,
// metrics and one log line.
type route struct {
	h           *Handler
	pattern     string
	interaction string
	auth        bool
	fn          routeFunc
}

func (h *Handler) route(pattern, interaction string, auth bool, fn routeFunc) *route {
	return &route{h: h, pattern: pattern, interaction: interaction, auth: auth, fn: fn}
}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := rt.h
	start := h.now()
	reqID := h.requestID(r)
	w.Header().Set("X-Request-Id", reqID)
	sw := &statusWriter{ResponseWriter: w}
	var actor string

	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			// The panic value may hold PHI: log its type and where it
			// happened, never the value.
			h.logger.LogAttrs(r.Context(), slog.LevelError, "panic",
				slog.String("request_id", reqID),
				slog.String("route", rt.pattern),
				slog.String("panic_type", typeName(v)),
				slog.String("at", callers()))
			if sw.status == 0 {
				h.writeError(sw, r, reqID, errPanic)
			}
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := h.now().Sub(start)
		h.metrics.observe(rt.interaction, rt.typeLabel(r), status, elapsed)
		h.logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("request_id", reqID),
			slog.String("method", r.Method),
			slog.String("route", rt.pattern),
			slog.Int("status", status),
			slog.Duration("duration", elapsed),
			slog.String("actor", actor))
	}()

	if rt.auth {
		ctx, err := h.authenticate(sw, r)
		if err != nil {
			h.writeError(sw, r, reqID, err)
			return
		}
		r = r.WithContext(ctx)
		actor = ActorFromContext(ctx)
	}
	r = r.WithContext(withRequestInfo(r, reqID, actor))
	if !acceptsJSON(r) {
		h.writeError(sw, r, reqID, errNotAcceptable)
		return
	}
	if err := rt.fn(sw, r); err != nil {
		if sw.status != 0 {
			// Too late for an OperationOutcome; the client sees a
			// truncated response, or has gone away.
			level := slog.LevelError
			if clientGone(r) {
				level = slog.LevelInfo
			}
			h.logger.LogAttrs(r.Context(), level, "error after response started",
				slog.String("request_id", reqID),
				slog.String("error_type", errorTypes(err)))
			return
		}
		h.writeError(sw, r, reqID, err)
	}
}

// typeLabel returns the resource type for metrics: only known types, so the
// label's values are bounded and never hold an id.
func (rt *route) typeLabel(r *http.Request) string {
	if rt.interaction == "everything" {
		return "Patient"
	}
	if t := r.PathValue("type"); t != "" && fhir.IsResourceType(t) {
		return t
	}
	return ""
}

// withRequestInfo returns r's context carrying the request's id, actor and
// source address for the audit trail, keeping any client id that the server
// layer put there.
func withRequestInfo(r *http.Request, reqID, actor string) context.Context {
	info, _ := phivault.RequestInfoFromContext(r.Context())
	info.ID, info.Actor = reqID, actor
	if p := phivault.PrincipalFromContext(r.Context()); p != nil {
		info.Roles = p.Roles
		if p.Client != "" {
			info.Client = p.Client
		}
	}
	if v := r.Header.Get("X-Purpose-Of-Use"); v != "" && len(v) <= 32 && isCode(v) {
		info.Purpose = v
	}
	info.Note = new(phivault.AuditNote)
	info.Source = phivault.RequestSource(r.Context(), r.RemoteAddr)
	return phivault.WithRequestInfo(r.Context(), info)
}

// isCode reports whether s looks like a purpose-of-use code (letters,
// digits and hyphens), so that nothing else reaches the audit trail.
func isCode(s string) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// requestID returns the id the server gave r, or a new one when the
// handler runs without the server package in front of it.
func (h *Handler) requestID(r *http.Request) string {
	if info, ok := phivault.RequestInfoFromContext(r.Context()); ok && info.ID != "" {
		return info.ID
	}
	return phivault.NewRequestID(h.rand)
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func typeName(v any) string {
	if err, ok := v.(error); ok {
		return errorTypes(err)
	}
	return fmt.Sprintf("%T", v)
}

// callers lists the functions above the panic, names and lines only.
func callers() string {
	var pcs [16]uintptr
	n := runtime.Callers(4, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	var b strings.Builder
	for i := 0; i < 5; i++ {
		f, more := frames.Next()
		if i > 0 {
			b.WriteString(" < ")
		}
		b.WriteString(f.Function)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(f.Line))
		if !more {
			break
		}
	}
	return b.String()
}

// acceptsJSON reports whether the request allows a JSON response, through
// _format and Accept. XML and every other format get 406.
func acceptsJSON(r *http.Request) bool {
	if strings.Contains(r.URL.RawQuery, "_format") {
		v, _ := url.ParseQuery(r.URL.RawQuery)
		for _, f := range v["_format"] {
			switch strings.ToLower(strings.TrimSpace(f)) {
			case "json", "application/json", "application/fhir+json":
			default:
				return false
			}
		}
	}
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return true
	}
	for _, a := range accept {
		for part := range strings.SplitSeq(a, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
					continue
				}
			}
			switch mt {
			case "application/fhir+json", "application/json", "application/*", "*/*":
				return true
			}
		}
	}
	return false
}

// checkContentType allows JSON request bodies, UTF-8 only.
func checkContentType(r *http.Request, want ...string) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			for _, w := range want {
				if mt == w {
					return nil
				}
			}
		}
	}
	return &phivault.Error{Code: phivault.EUNSUPPORTED, Message: "Unsupported Content-Type: send " + strings.Join(want, " or ") + "."}
}
