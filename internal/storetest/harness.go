package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
)

// Helpers for handler tests that run on a real store and audit log.

// Revoker is a phivault.SessionRevoker that records the subjects it is
// asked to revoke. It is safe for concurrent use.
type Revoker struct {
	mu       sync.Mutex
	subjects []string
}

// RevokeSubject records subject and returns nil.
func (r *Revoker) RevokeSubject(_ context.Context, subject string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subjects = append(r.subjects, subject)
	return nil
}

// Count returns how many times subject was revoked.
func (r *Revoker) Count(subject string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.subjects {
		if s == subject {
			n++
		}
	}
	return n
}

// OpenAuditLog opens an audit log on store, signed by a new key
// (NewSigner), and closes it when tb ends.
func OpenAuditLog(tb testing.TB, store auditlog.Storage) *auditlog.Log {
	tb.Helper()
	signer, _ := NewSigner(tb)
	l := auditlog.New(store, signer.Name(), signer)
	if err := l.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// AuditEntries flushes l and returns every entry in its store, decoded.
func AuditEntries(tb testing.TB, l *auditlog.Log, store auditlog.Storage) []*phivault.AuditEntry {
	tb.Helper()
	ctx := context.Background()
	if err := l.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	n, err := store.AuditSize(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if n == 0 {
		return nil
	}
	raw, err := store.ReadAuditEntries(ctx, 0, n)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]*phivault.AuditEntry, 0, len(raw))
	for _, b := range raw {
		e, err := auditlog.Decode(b)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}
