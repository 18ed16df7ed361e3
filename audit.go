package phivault

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"time"
)

// Audit actions: what a request did or tried to do.
const (
	ActionRead       = "read"
	ActionVRead      = "vread"
	ActionSearch     = "search"
	ActionHistory    = "history"
	ActionCreate     = "create"
	ActionUpdate     = "update"
	ActionDelete     = "delete"
	ActionEverything = "everything"
	ActionBundle     = "bundle"
	ActionShred      = "shred"
	ActionKeyRotate  = "key-rotate"

	ActionKeyCompromised = "key-compromised" // a key-encryption key version was marked compromised
	ActionSeal           = "seal"            // the vault dropped its keys
	ActionUnseal         = "unseal"          // the vault was unsealed, or an attempt refused

	ActionLogin         = "login"          // a person logged in, or failed to
	ActionTokenIssue    = "token-issue"    // an access token was issued
	ActionTokenRevoke   = "token-revoke"   // a token or session was revoked
	ActionBreakGlass    = "break-glass"    // emergency access was opened
	ActionReview        = "review"         // a break-the-glass access was reviewed
	ActionAccountChange = "account-change" // an account or client was created or changed
	ActionPolicyChange  = "policy-change"  // the policy set was reloaded
	ActionExport        = "export"         // audit entries or reports were read out
	ActionIncident      = "incident"       // an incident was opened or changed, or a response action taken
	ActionAuditRecover  = "audit-recover"  // the server started with no checkpoint of a non-empty audit log
	ActionAuditGap      = "audit-gap"      // the server started on a trail restored from a backup, shorter than the witnesses saw
	ActionBackup        = "backup"         // a backup was written, or a restore drill run
)

// AuditEntry is one entry of the audit trail: who did what to which records,
// when, and with what outcome. It holds ids only, never PHI: no resource
// bodies, no search values (only parameter names, and keyed tokens of the
// values under raised detail), no names or identifiers of patients beyond
// their random resource ids.
type AuditEntry struct {
	Time      time.Time // when the entry was made, UTC
	RequestID string    // the API's request id (X-Request-Id), or ""
	Actor     string    // id of the authenticated actor, or "" if none
	Roles     []string  // the actor's roles, if known
	Client    string    // id of the client application (e.g. from mutual TLS), or ""
	Source    string    // network address the request came from, or ""
	Action    string    // one of the Action constants

	TargetType    string // resource type acted on, e.g. "Patient"; "" for a Bundle
	TargetID      string // logical id, or "" for a search
	TargetVersion int64  // version read or written, 0 if none

	// Compartments lists the patient compartments touched: the target's and
	// those of every returned resource, without duplicates.
	Compartments []string
	// SearchParams lists the names (with modifiers, e.g. "name:exact") of
	// the search parameters used; never their values.
	SearchParams []string
	// SearchValues, set only while an incident raised the detail recorded
	// of the actor (raise-detail), lists each search value as
	// "name=TOKEN": TOKEN is the hex of a keyed token of the value
	// (HMAC-SHA256 under a vault key, see envelope.DetailTokens), never
	// the value, which may be PHI. An investigator computes the token of
	// a value to test whether it was searched for.
	SearchValues []string
	// Returned lists every resource version returned, as "Type/id/_history/n",
	// so that a breach can be scoped to exactly what left the server.
	Returned []string

	Outcome  string // "ok", or the phivault error code of a failed attempt
	Decision string // the policy decision and reason; "" until policy lands
	Purpose  string // purpose of use, if the caller stated one
}

// LogValue logs the entry's action, target and outcome.
func (e *AuditEntry) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("action", e.Action),
		slog.String("type", e.TargetType),
		slog.String("id", e.TargetID),
		slog.String("outcome", e.Outcome),
	)
}

// AuditLog is the append-only, tamper-evident audit trail.
type AuditLog interface {
	// Append adds entries to the log, in order. Implementations MUST NOT
	// return nil until the entries are durably committed; they may commit
	// several callers' entries together (group commit). On error, callers
	// MUST NOT release any data the entries describe. Append is safe for
	// concurrent use by multiple goroutines.
	Append(ctx context.Context, entries ...*AuditEntry) error
}

// RequestInfo describes the request being served, for the audit trail.
// The server package puts one with the id and source address in the
// context of every request it serves; the api package adds the caller.
type RequestInfo struct {
	ID      string   // request id
	Actor   string   // authenticated actor id, or ""
	Roles   []string // the actor's roles, if known
	Client  string   // client application id, or ""
	Source  string   // remote address (host only, no port)
	Purpose string   // purpose of use, if stated
	// Note collects the policy decision made while serving the request.
	Note *AuditNote
}

type requestInfoKey struct{}

// NewRequestID returns a request id of 16 hex digits read from rand, or
// sixteen zeros if rand fails.
func NewRequestID(rand io.Reader) string {
	var b [8]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "0000000000000000"
	}
	return hex.EncodeToString(b[:])
}

// RequestSource returns the address the request in ctx came from: the
// Source of its RequestInfo if set, else the host of remoteAddr (an
// http.Request's RemoteAddr, host:port), or remoteAddr as is if it has no
// port.
func RequestSource(ctx context.Context, remoteAddr string) string {
	if info, ok := RequestInfoFromContext(ctx); ok && info.Source != "" {
		return info.Source
	}
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// NewRequestEntry returns the audit entry of action on targetType/targetID
// by the caller of the request in ctx, at now, with outcome "ok": request
// id, actor, roles, client, source and purpose from its RequestInfo, else
// from its Principal, and the source from remoteAddr (an http.Request's
// RemoteAddr) if neither gives one. Every handler that records its own
// entries (trail views, the security API) builds them here.
func NewRequestEntry(ctx context.Context, remoteAddr string, now time.Time, action, targetType, targetID string) *AuditEntry {
	e := &AuditEntry{Time: now.UTC(), Action: action, TargetType: targetType, TargetID: targetID, Outcome: "ok"}
	if info, ok := RequestInfoFromContext(ctx); ok {
		e.RequestID, e.Actor, e.Roles, e.Client, e.Source, e.Purpose =
			info.ID, info.Actor, info.Roles, info.Client, info.Source, info.Purpose
	}
	if p := PrincipalFromContext(ctx); p != nil {
		if e.Actor == "" {
			e.Actor = p.ID
		}
		if len(e.Roles) == 0 {
			e.Roles = p.Roles
		}
		if e.Client == "" {
			e.Client = p.Client
		}
	}
	if e.Source == "" {
		e.Source = RequestSource(ctx, remoteAddr)
	}
	return e
}

// WithRequestInfo returns ctx carrying info.
func WithRequestInfo(ctx context.Context, info RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// RequestInfoFromContext returns the RequestInfo in ctx, and whether there
// was one.
func RequestInfoFromContext(ctx context.Context) (RequestInfo, bool) {
	info, ok := ctx.Value(requestInfoKey{}).(RequestInfo)
	return info, ok
}
