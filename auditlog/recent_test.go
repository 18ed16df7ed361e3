package auditlog_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
)

// TestRecent checks that a tailing reader gets from Recent exactly what
// the storage holds, only for committed entries, and only while the
// entries are among the latest.
func TestRecent(t *testing.T) {
	ctx := context.Background()
	l, db, _ := openSQLiteLog(t)
	if _, ok := l.Recent(0, 1); ok {
		t.Fatal("Recent answered for an entry not appended yet")
	}
	const n = 300
	for i := range n {
		e := &phivault.AuditEntry{Actor: fmt.Sprint("u", i), Action: phivault.ActionRead, TargetType: "Patient",
			TargetID: fmt.Sprint(i), Compartments: []string{fmt.Sprint(i)}, Outcome: "ok"}
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		e.Actor = "changed after Append" // the log keeps its own copy
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, ok := l.Recent(10, n)
	if !ok || len(got) != n-10 {
		t.Fatalf("Recent(10, %d) = %d entries, %v", n, len(got), ok)
	}
	data, err := db.ReadAuditEntries(ctx, 10, n)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range data {
		want, err := auditlog.Decode(d)
		if err != nil {
			t.Fatal(err)
		}
		g := *got[i]
		g.Time = g.Time.UTC()
		if !reflect.DeepEqual(&g, want) {
			t.Fatalf("entry %d: Recent %+v, storage %+v", 10+i, g, *want)
		}
	}
	if _, ok := l.Recent(n-1, n+1); ok {
		t.Fatal("Recent answered past the committed tree")
	}
	// Older than the ring: the reader must go to the storage.
	for i := 0; i < auditlog.RecentEntries; i += 1024 {
		batch := make([]*phivault.AuditEntry, 1024)
		for j := range batch {
			batch[j] = &phivault.AuditEntry{Action: phivault.ActionRead, Outcome: "ok", TargetID: fmt.Sprint(i + j)}
		}
		if err := l.Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	l.Flush(ctx)
	if _, ok := l.Recent(0, 1); ok {
		t.Fatal("Recent answered for an entry that left the ring")
	}
	if _, ok := l.Recent(n+auditlog.RecentEntries-1, n+auditlog.RecentEntries); !ok {
		t.Fatal("Recent did not answer for the latest entry")
	}
}
