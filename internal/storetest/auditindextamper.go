package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/phivault/phivault/auditlog"
)

// Exec runs one SQL statement directly on a store's database, bypassing
// the store, as an attacker with write access to the database can. The
// statements name the table audit_index unqualified and hold their values
// inline (test values only).
type Exec func(sql string) error

// RunAuditIndexTamper appends 40 entries to s, indexes them, then changes
// the audit index directly: a row deleted (which hides an access from the
// access report and the AuditEvent search), a row's actor altered, a row
// added for a patient the entry never touched, and a row far past the log's
// end (which would stop the index from catching up). auditlog.VerifyIndex
// must pass on the untouched index and report each change as missing or
// extra rows, naming the entry.
func RunAuditIndexTamper(t *testing.T, s auditlog.IndexStorage, exec Exec) {
	ctx := context.Background()
	l := auditlog.New(s, "phivault-test/audit", nil)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	const size = 40
	for i := range size {
		if err := l.Append(ctx, Entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.CatchUpIndex(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := auditlog.VerifyIndex(ctx, s); err != nil {
		t.Fatalf("VerifyIndex(untouched index) = %v", err)
	}
	// Entry 8 touches pat-1 (see Entry).
	found := func() bool {
		idxs, _, err := s.SearchAudit(ctx, auditlog.Query{Patient: "pat-1", Limit: size})
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(idxs, 8)
	}
	tests := []struct {
		name           string
		tamper, repair string // repair "" puts entry 8's rows back
		missing, extra bool
		index          int64 // the entry the report must name
	}{
		{"delete", `DELETE FROM audit_index WHERE idx = 8`, "", true, false, 8},
		{"alter actor", `UPDATE audit_index SET actor = 'someone-else' WHERE idx = 8`,
			`UPDATE audit_index SET actor = 'admin' WHERE idx = 8`, true, true, 8},
		{"add patient", `INSERT INTO audit_index (idx, patient, actor, action, time) SELECT idx, 'pat-99', actor, action, time FROM audit_index WHERE idx = 8`,
			`DELETE FROM audit_index WHERE patient = 'pat-99'`, false, true, 8},
		{"row past the end", `INSERT INTO audit_index (idx, patient, actor, action, time) VALUES (1000000000000, '', 'admin', 'read', 0)`,
			`DELETE FROM audit_index WHERE idx = 1000000000000`, false, true, 1000000000000},
	}
	for _, tt := range tests {
		if err := exec(tt.tamper); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if tt.name == "delete" && found() {
			t.Fatalf("%s: the search still finds entry 8; the tampering did not take", tt.name)
		}
		err := auditlog.VerifyIndex(ctx, s)
		var ie *auditlog.IndexError
		switch {
		case !errors.As(err, &ie):
			t.Errorf("%s: VerifyIndex() = %v, want an *IndexError", tt.name, err)
		case (len(ie.Missing) > 0) != tt.missing || (len(ie.Extra) > 0) != tt.extra:
			t.Errorf("%s: VerifyIndex() = %v, want missing rows %v, extra rows %v", tt.name, err, tt.missing, tt.extra)
		case !slices.ContainsFunc(append(ie.Missing, ie.Extra...), func(r auditlog.IndexRow) bool { return r.Index == tt.index }):
			t.Errorf("%s: VerifyIndex() = %v, want it to name entry %d", tt.name, err, tt.index)
		}
		if tt.repair == "" {
			err = s.IndexAudit(ctx, auditlog.IndexRows(8, Entry(8)))
		} else {
			err = exec(tt.repair)
		}
		if err != nil {
			t.Fatalf("%s: repair: %v", tt.name, err)
		}
		if err := auditlog.VerifyIndex(ctx, s); err != nil {
			t.Fatalf("%s: VerifyIndex(repaired index) = %v", tt.name, err)
		}
	}
	if !found() {
		t.Errorf("the repaired index does not find entry 8")
	}
}
