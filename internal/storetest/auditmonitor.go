package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/phivault/phivault/auditlog"
)

// Edit overwrites the stored entry at idx with data directly in a store's
// database, bypassing its append-only triggers, as an attacker with write
// access to the database can.
type Edit func(idx int64, data []byte) error

// RunAuditMonitor runs an auditlog.Monitor over a log on s as it grows,
// then edits an entry in the database behind the running log, as in
// finding 9, and deletes an index row: one full pass must report each, and
// the status must say so until a pass succeeds again.
func RunAuditMonitor(t *testing.T, s auditlog.IndexStorage, edit Edit, exec Exec) {
	ctx := context.Background()
	l := auditlog.New(s, "phivault-test/audit", nil)
	l.CheckpointInterval = -1
	if err := l.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := auditlog.NewMonitor(s, l)
	m.Interval = -1 // passes run when the test calls Check
	m.Start()
	defer m.Close()
	appendN := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := l.Append(ctx, Entry(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(full bool, wantErr bool, verified int64) error {
		t.Helper()
		err := m.Check(ctx, full)
		st := m.Status()
		if (err != nil) != wantErr || st.OK == wantErr || (!wantErr && st.Verified != verified) {
			t.Fatalf("Check(full %v) = %v, status %+v; want error %v, %d entries verified", full, err, st, wantErr, verified)
		}
		return err
	}
	appendN(0, 20)
	check(true, false, 20)
	appendN(20, 25)
	check(false, false, 25) // the new entries only

	orig, err := s.ReadAuditEntries(ctx, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	forged := Entry(3)
	forged.Actor = "someone-else"
	b, err := auditlog.Encode(forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := edit(3, b); err != nil {
		t.Fatal(err)
	}
	err = check(true, true, 0)
	var ve *auditlog.VerifyError
	if !errors.As(err, &ve) || ve.Index != 3 {
		t.Errorf("full pass over an edited entry 3 = %v, want a *VerifyError naming it", err)
	}
	if st := m.Status(); st.Failures != 1 || !strings.Contains(st.Err, "entry 3") {
		t.Errorf("status after the failed pass = %+v, want 1 failure naming entry 3", st)
	}
	if err := edit(3, orig[0]); err != nil {
		t.Fatal(err)
	}
	appendN(25, 30)
	check(false, false, 30) // after a failure the next pass starts over from 0

	if _, err := auditlog.CatchUpIndex(ctx, s); err != nil {
		t.Fatal(err)
	}
	check(true, false, 30)
	if err := exec(`DELETE FROM audit_index WHERE idx = 2`); err != nil {
		t.Fatal(err)
	}
	err = check(true, true, 0)
	var ie *auditlog.IndexError
	if !errors.As(err, &ie) {
		t.Errorf("full pass with an index row deleted = %v, want an *IndexError", err)
	}
}
