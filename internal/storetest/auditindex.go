package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
)

// RunAuditIndex tests an auditlog.IndexStorage made by open: catching the
// index up with the log, and searching it by patient, actor, action, time
// and page.
func RunAuditIndex(t *testing.T, open func(t *testing.T) auditlog.IndexStorage) {
	ctx := context.Background()
	s := open(t)
	l := auditlog.New(s, "test", nil)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	// Entry i touches patient p<i%3> (and p9 as well when i%5 == 0), is
	// made by actor a<i%2>, is a read when i is even and a create when
	// odd, and is made i minutes after t0.
	const n = 40
	for i := range n {
		e := &phivault.AuditEntry{
			Time: t0.Add(time.Duration(i) * time.Minute), Actor: fmt.Sprintf("a%d", i%2),
			Action: phivault.ActionRead, Outcome: "ok", Compartments: []string{fmt.Sprintf("p%d", i%3)},
		}
		if i%2 == 1 {
			e.Action = phivault.ActionCreate
		}
		if i%5 == 0 {
			e.Compartments = append(e.Compartments, "p9")
		}
		if i%4 == 0 {
			e.Purpose = "TREAT"
		}
		if i%6 == 0 {
			e.Decision = "break-glass permit: emergency"
		}
		if i == n-1 {
			e.Compartments = nil
		}
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AuditIndexSize(ctx); err != nil || got != 0 {
		t.Fatalf("AuditIndexSize() before catching up = %d, %v; want 0", got, err)
	}
	for range 2 { // a second catch-up finds nothing to do
		if size, err := auditlog.CatchUpIndex(ctx, s); err != nil || size != n {
			t.Fatalf("CatchUpIndex() = %d, %v; want %d", size, err, n)
		}
	}
	if got, err := s.AuditIndexSize(ctx); err != nil || got != n {
		t.Fatalf("AuditIndexSize() = %d, %v; want %d", got, err, n)
	}
	// ReadAuditIndex returns the rows as IndexAudit stored them, times
	// and purposes included.
	if err := auditlog.VerifyIndex(ctx, s); err != nil {
		t.Errorf("VerifyIndex() after catching up = %v", err)
	}
	// Indexing rows again is harmless.
	if err := s.IndexAudit(ctx, auditlog.IndexRows(0, &phivault.AuditEntry{Time: t0, Action: phivault.ActionRead, Actor: "a0", Compartments: []string{"p0", "p9"}})); err != nil {
		t.Fatalf("IndexAudit of stored rows: %v", err)
	}

	check := func(name string, q auditlog.Query, keep func(i int) bool) {
		t.Helper()
		var want []int64
		for i := range n {
			if keep(i) {
				want = append(want, int64(i))
			}
		}
		q.Limit = n
		got, total, err := s.SearchAudit(ctx, q)
		if err != nil || total != int64(len(want)) || !slices.Equal(got, want) {
			t.Errorf("%s: SearchAudit = %v (total %d), %v; want %v", name, got, total, err, want)
		}
	}
	check("all", auditlog.Query{}, func(int) bool { return true })
	check("patient", auditlog.Query{Patient: "p1"}, func(i int) bool { return i%3 == 1 && i != n-1 })
	check("second patient", auditlog.Query{Patient: "p9"}, func(i int) bool { return i%5 == 0 })
	check("actor", auditlog.Query{Actor: "a1"}, func(i int) bool { return i%2 == 1 })
	check("actions", auditlog.Query{Actions: []string{phivault.ActionCreate, phivault.ActionUpdate}}, func(i int) bool { return i%2 == 1 })
	check("time", auditlog.Query{Since: t0.Add(10 * time.Minute), Before: t0.Add(20 * time.Minute)}, func(i int) bool { return i >= 10 && i < 20 })
	check("all filters", auditlog.Query{Patient: "p0", Actor: "a0", Actions: []string{phivault.ActionRead}, Since: t0.Add(5 * time.Minute)},
		func(i int) bool { return i%3 == 0 && i%2 == 0 && i >= 5 })
	check("none", auditlog.Query{Patient: "nobody"}, func(int) bool { return false })
	check("purpose", auditlog.Query{Purposes: []string{"BTG"}}, func(i int) bool { return i%6 == 0 })
	check("purposes", auditlog.Query{Purposes: []string{"TREAT", "BTG"}}, func(i int) bool { return i%4 == 0 || i%6 == 0 })
	check("purpose and patient", auditlog.Query{Purposes: []string{"TREAT"}, Patient: "p9"}, func(i int) bool { return i%4 == 0 && i%5 == 0 })
	check("purpose prefix", auditlog.Query{Purposes: []string{"TRE"}}, func(int) bool { return false })

	got, total, err := s.SearchAudit(ctx, auditlog.Query{Patient: "p9", Offset: 3, Limit: 2})
	if err != nil || total != 8 || !slices.Equal(got, []int64{15, 20}) {
		t.Errorf("paged search = %v (total %d), %v; want [15 20] of 8", got, total, err)
	}
	// Unfiltered, the page is a range of indexes, and the last page ends
	// at the last entry.
	got, total, err = s.SearchAudit(ctx, auditlog.Query{Offset: n - 3, Limit: 5})
	if err != nil || total != int64(n) || !slices.Equal(got, []int64{n - 3, n - 2, n - 1}) {
		t.Errorf("unfiltered last page = %v (total %d), %v; want [%d %d %d] of %d", got, total, err, n-3, n-2, n-1, n)
	}
	got, total, err = s.SearchAudit(ctx, auditlog.Query{Patient: "p9"})
	if err != nil || total != 8 || len(got) != 0 {
		t.Errorf("search with no limit = %v (total %d), %v; want the total only", got, total, err)
	}

	// A read stopped by its context keeps the context's error in the chain.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.SearchAudit(cctx, auditlog.Query{Patient: "p9", Limit: 2}); !errors.Is(err, context.Canceled) {
		t.Errorf("SearchAudit(canceled) = %v, want context.Canceled in the chain", err)
	}
	if _, err := s.ReadAuditIndex(cctx, 0, n); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAuditIndex(canceled) = %v, want context.Canceled in the chain", err)
	}
}
