package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/phivault/phivault/sqlite"
)

// TestAuditVerify_index deletes the audit index rows that make a patient's
// read show in their access report, as someone with the database file can,
// and checks that "phivault audit verify" fails and names the entry,
// although every entry and hash is intact.
func TestAuditVerify_index(t *testing.T) {
	ctx := context.Background()
	a := mustAuditApp(t)
	status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"Quendolyn"}]}`)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %s", status, body)
	}
	var p struct{ ID string }
	json.Unmarshal(body, &p)
	if status, body := a.do(t, "GET", "/fhir/Patient/"+p.ID, ""); status != http.StatusOK {
		t.Fatalf("read = %d %s", status, body)
	}
	report := func() string {
		t.Helper()
		status, body := a.do(t, "GET", "/fhir/admin/reports/patients/"+p.ID+"/access?format=csv", "")
		if status != http.StatusOK {
			t.Fatalf("access report = %d %s", status, body)
		}
		return string(body)
	}
	// The second report indexes the first report's own entry, so the
	// read's rows are not the index's last (whose loss the next catch-up
	// would repair).
	report()
	if r := report(); !strings.Contains(r, ",read,") {
		t.Fatalf("the access report does not show the read:\n%s", r)
	}
	if _, err := a.audit.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "verify", "-data", string(a.cfg.Data)}, &out, io.Discard); err != nil {
		t.Fatalf("audit verify of an untouched trail = %v", err)
	}

	raw, err := sql.Open("sqlite", "file:"+sqlite.DefaultAuditPath(a.cfg.Data.database())+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	res, err := raw.Exec(`DELETE FROM audit_index WHERE patient = ? AND action = 'read'`, p.ID)
	if n, _ := res.RowsAffected(); err != nil || n == 0 {
		t.Fatalf("delete index rows: %d rows, %v", n, err)
	}
	if strings.Contains(report(), ",read,") {
		t.Fatalf("the access report still shows the read; the tampering did not take")
	}
	err = run(ctx, []string{"audit", "verify", "-data", string(a.cfg.Data)}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "audit index does not match the entries") || !strings.Contains(err.Error(), p.ID) {
		t.Errorf("audit verify with index rows deleted = %v, want it to fail naming the patient's missing row", err)
	}
}
