package auditlog

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"golang.org/x/mod/sumdb/tlog"
)

// An Authenticator checks a bearer token; api.TokenAuthenticator is one.
type Authenticator interface {
	Authenticate(ctx context.Context, bearerToken string) (context.Context, error)
}

// NewHandler returns the HTTP endpoints for verifiers of l, for paths
// starting /audit/. Every request needs a bearer token that auth accepts.
//
//	GET /audit/checkpoint                          the latest signed checkpoint (text/plain)
//	GET /audit/proof/inclusion?index=I&size=N      {"index","size","leaf_hash","proof"}
//	GET /audit/proof/consistency?old=M&size=N      {"old","size","proof"}
//
// Hashes are standard base64. Check them with tlog.CheckRecord and
// tlog.CheckTree against a checkpoint verified with the log's note key.
func NewHandler(l *Log, auth Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /audit/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		cp, err := l.Checkpoint(r.Context())
		if cp == nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(cp)
	})
	mux.HandleFunc("GET /audit/proof/inclusion", func(w http.ResponseWriter, r *http.Request) {
		index, err1 := queryInt(r, "index")
		size, err2 := queryInt(r, "size")
		if err1 != nil || err2 != nil {
			writeError(w, phivault.Errorf(phivault.EINVALID, "Give index and size as numbers."))
			return
		}
		p, err := l.ProveInclusion(r.Context(), index, size)
		if err != nil {
			writeError(w, err)
			return
		}
		leaf, err := l.store.ReadAuditHashes(r.Context(), []int64{tlog.StoredHashIndex(0, index)})
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, map[string]any{"index": index, "size": size, "leaf_hash": leaf[0], "proof": []tlog.Hash(p)})
	})
	mux.HandleFunc("GET /audit/proof/consistency", func(w http.ResponseWriter, r *http.Request) {
		old, err1 := queryInt(r, "old")
		size, err2 := queryInt(r, "size")
		if err1 != nil || err2 != nil {
			writeError(w, phivault.Errorf(phivault.EINVALID, "Give old and size as numbers."))
			return
		}
		p, err := l.ProveConsistency(r.Context(), old, size)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, map[string]any{"old": old, "size": size, "proof": []tlog.Hash(p)})
	})
	return requireBearer(auth, mux)
}

func queryInt(r *http.Request, name string) (int64, error) {
	return strconv.ParseInt(r.URL.Query().Get(name), 10, 64)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// writeError writes err as an OperationOutcome through the one error table
// in package fhir: only a *phivault.Error's safe message is shown.
func writeError(w http.ResponseWriter, err error) {
	status, body := fhir.OutcomeJSON(err)
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(body)
}
