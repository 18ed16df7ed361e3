package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/phivault/phivault/backup/restoredrill"
)

// TestVaultStatus: GET /security/vault tells an officer the seal, the
// trail's integrity, the witnesses, the backups and the last restore
// drill, and records the read; without a token it is refused.
func TestVaultStatus(t *testing.T) {
	a := mustAuditApp(t)
	srv := consoleServer(t, a)
	get := func(token string) (int, vaultStatus) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/security/vault", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var st vaultStatus
		json.NewDecoder(res.Body).Decode(&st)
		return res.StatusCode, st
	}
	status, st := get(a.token)
	if status != http.StatusOK || st.Sealed || !st.Audit.IntegrityOK || st.Backup != nil || st.RestoreDrill != nil || st.Witnesses == nil {
		t.Fatalf("GET /security/vault = %d %+v", status, st)
	}
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	if err := restoredrill.NewHistory(string(a.cfg.Data)).Append(&restoredrill.Report{Started: at, Pass: true, RTOMS: 9400, RPOMS: 60000}); err != nil {
		t.Fatal(err)
	}
	if _, st = get(a.token); st.RestoreDrill == nil || !st.RestoreDrill.At.Equal(at) || !st.RestoreDrill.Pass || st.RestoreDrill.RTO != 9400 {
		t.Fatalf("restore drill = %+v", st.RestoreDrill)
	}
	found := false
	for _, e := range a.trail(t) {
		found = found || e.TargetType == TargetVaultStatus && e.Actor == "admin" && e.Outcome == "ok"
	}
	if !found {
		t.Error("no audit entry of the read")
	}
	if status, _ := get(""); status != http.StatusUnauthorized {
		t.Fatalf("without a token = %d", status)
	}
}
