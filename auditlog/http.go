package auditlog

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
	"github.com/phivault/phivault/smart"
	"golang.org/x/mod/sumdb/tlog"
)

// An Authenticator checks a bearer token; api.TokenAuthenticator is one.
type Authenticator interface {
	Authenticate(ctx context.Context, bearerToken string) (context.Context, error)
}

// NewHandler returns the HTTP endpoints for verifiers of l, for paths
// starting /audit/. Every request needs a bearer token that auth accepts,
// of an operator, a privacy officer, a security admin or a system client
// (see authorizeVerifier). They answer hashes, never entries, and are not
// recorded in the trail: verifiers poll them.
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
			fhir.WriteOutcome(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(cp)
	})
	mux.HandleFunc("GET /audit/proof/inclusion", func(w http.ResponseWriter, r *http.Request) {
		index, err1 := queryInt(r, "index")
		size, err2 := queryInt(r, "size")
		if err1 != nil || err2 != nil {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "Give index and size as numbers."))
			return
		}
		p, err := l.ProveInclusion(r.Context(), index, size)
		if err != nil {
			fhir.WriteOutcome(w, err)
			return
		}
		leaf, err := l.store.ReadAuditHashes(r.Context(), []int64{tlog.StoredHashIndex(0, index)})
		if err != nil {
			fhir.WriteOutcome(w, err)
			return
		}
		writeJSON(w, map[string]any{"index": index, "size": size, "leaf_hash": leaf[0], "proof": []tlog.Hash(p)})
	})
	mux.HandleFunc("GET /audit/proof/consistency", func(w http.ResponseWriter, r *http.Request) {
		old, err1 := queryInt(r, "old")
		size, err2 := queryInt(r, "size")
		if err1 != nil || err2 != nil {
			fhir.WriteOutcome(w, phivault.Errorf(phivault.EINVALID, "Give old and size as numbers."))
			return
		}
		p, err := l.ProveConsistency(r.Context(), old, size)
		if err != nil {
			fhir.WriteOutcome(w, err)
			return
		}
		writeJSON(w, map[string]any{"old": old, "size": size, "proof": []tlog.Hash(p)})
	})
	return requireBearer(auth, authorized(authorizeVerifier, mux))
}

func queryInt(r *http.Request, name string) (int64, error) {
	return strconv.ParseInt(r.URL.Query().Get(name), 10, 64)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Roles that may read the whole audit trail.
const (
	RolePrivacyOfficer = phivault.RolePrivacyOfficer
	RoleSecurityAdmin  = phivault.RoleSecurityAdmin
)

// isOperator reports whether p is the bootstrap admin token. Operators
// read everything. A request with no principal at all is nobody: the
// trail is closed to it.
func isOperator(p *phivault.Principal) bool { return p.Operator() }

// isAuditor reports whether p may read the whole trail (see
// phivault.Principal.Auditor).
func isAuditor(p *phivault.Principal) bool { return p.Auditor() }

// scopesAllow reports whether p's SMART scopes, if its token has any,
// let it read and search AuditEvent. Without SMART scopes the roles decide.
func scopesAllow(p *phivault.Principal) bool { return smart.ReadsAuditTrail(p) }

var (
	errNotAuditor   = phivault.Errorf(phivault.EFORBIDDEN, "Reading the audit trail needs the privacy-officer or security-admin role.")
	errNoAuditScope = phivault.Errorf(phivault.EFORBIDDEN, "The token's scopes do not include reading AuditEvent.")
)

// authorizeAuditor lets through operators, privacy officers and security
// admins whose scopes, if any, cover AuditEvent.
func authorizeAuditor(ctx context.Context) error {
	p := phivault.PrincipalFromContext(ctx)
	if !isAuditor(p) {
		return errNotAuditor
	}
	if !scopesAllow(p) {
		return errNoAuditScope
	}
	return nil
}

// authorizeVerifier lets through auditors and system clients (external
// verifiers): the checkpoint and proofs hold hashes only, but the tree
// size tells how busy the vault is.
func authorizeVerifier(ctx context.Context) error {
	if p := phivault.PrincipalFromContext(ctx); p != nil && p.Kind == phivault.PrincipalSystem {
		return nil
	}
	return authorizeAuditor(ctx)
}

// authorized answers with the error of authorize, if any, before next.
func authorized(authorize func(context.Context) error, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := authorize(r.Context()); err != nil {
			fhir.WriteOutcome(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readEntry returns the entry recording a read of the trail (action
// export) by r's caller: request id, actor, roles, client, source and
// purpose from the request's RequestInfo, else from its Principal.
func readEntry(r *http.Request, now time.Time, targetType, targetID string) *phivault.AuditEntry {
	return phivault.NewRequestEntry(r.Context(), r.RemoteAddr, now, phivault.ActionExport, targetType, targetID)
}

// recordRead appends e, made by readEntry, before any of the trail leaves:
// if it cannot, the answer is ErrUnavailable (503) and no data.
func recordRead(r *http.Request, log phivault.AuditLog, e *phivault.AuditEntry) error {
	if err := log.Append(context.WithoutCancel(r.Context()), e); err != nil {
		return ErrUnavailable
	}
	return nil
}

// A Flusher is an AuditLog whose appended entries reach its storage after
// Append returns; Flush waits for those appended before the call.
type Flusher interface {
	Flush(ctx context.Context) error
}

// flushFirst serves next once every entry appended to log before the
// request can be read from the storage, if log is a Flusher, so that a
// view of the trail shows every access made before it was asked for. If
// the storage fails, the answer is ErrUnavailable.
func flushFirst(log phivault.AuditLog, next http.Handler) http.Handler {
	f, ok := log.(Flusher)
	if !ok {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f.Flush(r.Context()); err != nil {
			fhir.WriteOutcome(w, ErrUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recordDenied appends e as a refused attempt with err's code. The refusal
// stands even if the entry cannot be written: no data leaves either way.
func recordDenied(r *http.Request, log phivault.AuditLog, e *phivault.AuditEntry, err error) {
	e.Outcome = phivault.ErrorCode(err)
	log.Append(context.WithoutCancel(r.Context()), e)
}

// paramNames returns the sorted names of the query parameters of r, never
// their values.
func paramNames(r *http.Request) []string {
	var names []string
	for name := range r.URL.Query() {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
