package auditlog

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

// DefaultStreamPoll is how often a live stream looks for new entries.
const DefaultStreamPoll = 250 * time.Millisecond

// SIEMOptions configures NewSIEMHandler.
type SIEMOptions struct {
	// Poll is how often a stream looks for new entries. Default
	// DefaultStreamPoll.
	Poll time.Duration
	// Now stamps the entries that record reads. Default time.Now.
	Now func() time.Time
}

// NewSIEMHandler returns the endpoints that feed a SIEM from l, for paths
// starting /audit/. Every request needs a bearer token that auth accepts,
// of an operator, a privacy officer or a security admin (others get 403),
// and is recorded in l before any entry leaves, as an action export of
// target AuditEvent with the names of its query parameters; a stream is
// recorded once, when it starts, and its own entry is the first it sends
// unless since is given. If the entry cannot be written, the answer is 503
// and no data.
//
//	GET /audit/export?from=T&to=T[&size=N]    NDJSON of ExportLine, entries with from ≤ time < to
//	GET /audit/export?start=I&end=J[&size=N]  the same, entries with start ≤ index < end (both selections apply)
//	GET /audit/stream[?format=ocsf][&since=I]  live NDJSON of OCSFEvent, one line per new entry
//
// Times are RFC 3339. With size (the size of a signed checkpoint, see
// /audit/checkpoint), each exported entry carries its inclusion proof, and
// VerifyExport checks the export with that checkpoint alone. The stream
// starts at entry since (default: the next new entry), flushes after every
// entry, and runs until the client goes away.
func NewSIEMHandler(l *Log, auth Authenticator, opts SIEMOptions) http.Handler {
	if opts.Poll <= 0 {
		opts.Poll = DefaultStreamPoll
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// authorize refuses, records and answers a caller who may not read
	// the trail.
	authorize := func(w http.ResponseWriter, r *http.Request) bool {
		if err := authorizeAuditor(r.Context()); err != nil {
			recordDenied(r, l, readEntry(r, opts.Now(), TargetAuditEvent, ""), err)
			fhir.WriteOutcome(w, err)
			return false
		}
		return true
	}
	record := func(r *http.Request) error {
		e := readEntry(r, opts.Now(), TargetAuditEvent, "")
		e.SearchParams = paramNames(r)
		return recordRead(r, l, e)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /audit/export", func(w http.ResponseWriter, r *http.Request) {
		if !authorize(w, r) {
			return
		}
		var eo ExportOptions
		var err error
		q := r.URL.Query()
		if eo.From, err = queryTime(q.Get("from")); err != nil {
			fhir.WriteOutcome(w, err)
			return
		}
		if eo.To, err = queryTime(q.Get("to")); err != nil {
			fhir.WriteOutcome(w, err)
			return
		}
		for name, p := range map[string]*int64{"start": &eo.Start, "end": &eo.End} {
			if v := q.Get(name); v != "" {
				if *p, err = strconv.ParseInt(v, 10, 64); err != nil || *p < 0 {
					fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "Give start and end as entry indexes."))
					return
				}
			}
		}
		if eo.End > 0 && eo.End <= eo.Start {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "end must be after start."))
			return
		}
		if s := q.Get("size"); s != "" {
			if eo.ProofSize, err = strconv.ParseInt(s, 10, 64); err != nil || l.checkSize(eo.ProofSize) != nil {
				fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "The size must be a tree size between 1 and the current size."))
				return
			}
		}
		if err := record(r); err != nil {
			fhir.WriteOutcome(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		// Errors after the first line cannot change the status; the
		// export then ends early, which a verifier notices by count.
		Export(r.Context(), l.store, w, eo)
	})
	mux.HandleFunc("GET /audit/stream", func(w http.ResponseWriter, r *http.Request) {
		if !authorize(w, r) {
			return
		}
		if f := r.URL.Query().Get("format"); f != "" && f != "ocsf" {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "The only stream format is ocsf."))
			return
		}
		next := l.Tree().N
		if s := r.URL.Query().Get("since"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "Give since as an entry index."))
				return
			}
			next = n
		}
		if err := record(r); err != nil {
			fhir.WriteOutcome(w, err)
			return
		}
		rc := http.NewResponseController(w)
		rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		enc := json.NewEncoder(w)
		tick := time.NewTicker(opts.Poll)
		defer tick.Stop()
		ctx := r.Context()
		for {
			for size := l.Tree().N; next < size; {
				end := min(next+verifyChunk, size)
				data, err := l.store.ReadAuditEntries(ctx, next, end)
				if err != nil {
					return
				}
				for _, d := range data {
					e, err := Decode(d)
					if err != nil {
						return // the log verifier, not the stream, reports damage
					}
					if enc.Encode(OCSF(next, l.Origin, e)) != nil || rc.Flush() != nil {
						return
					}
					next++
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return requireBearer(auth, flushFirst(l, mux))
}

func queryTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, phivault.Errorf(phivault.EINVALID, "Give from and to as RFC 3339 times, e.g. 2025-01-31T00:00:00Z.")
	}
	return t, nil
}

// requireBearer lets through only requests with a bearer token auth
// accepts, as NewHandler does.
func requireBearer(auth Authenticator, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := phivault.BearerToken(r.Header.Get("Authorization"))
		if !ok || auth == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="phivault"`)
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EUNAUTHORIZED, "Authentication required: send Authorization: Bearer <token>."))
			return
		}
		ctx, err := auth.Authenticate(r.Context(), token)
		if err != nil {
			if phivault.ErrorCode(err) == phivault.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="phivault", error="invalid_token"`) // RFC 6750 §3
			}
			fhir.WriteOutcome(w, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
