package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/phivault/phivault"
)

// TestSessionTokens_reachEveryAPI shows that OAuth session tokens work on
// the admin API and the audit trail's readers as well as on the FHIR API,
// and that each route then decides by the principal's role.
func TestSessionTokens_reachEveryAPI(t *testing.T) {
	a := mustAuditApp(t)
	token := func(roles ...string) string {
		t.Helper()
		is, err := a.signIn.Sessions().Start(phivault.Principal{ID: "u-" + roles[0], Kind: phivault.PrincipalStaff, Roles: roles}, false)
		if err != nil {
			t.Fatal(err)
		}
		return is.AccessToken
	}
	secAdmin, nurse, privacy := token("security-admin"), token("nurse"), token("privacy-officer")
	for _, c := range []struct {
		token, method, path string
		want                int
	}{
		{secAdmin, "GET", "/fhir/admin/users", http.StatusOK},
		{secAdmin, "GET", "/fhir/admin/keys/status", http.StatusOK},
		{nurse, "GET", "/fhir/admin/users", http.StatusForbidden},
		{nurse, "GET", "/fhir/admin/keys/status", http.StatusForbidden},
		{nurse, "POST", "/fhir/admin/patients/p1/$shred", http.StatusForbidden},
		{privacy, "GET", "/fhir/AuditEvent?action=R", http.StatusOK},
		{privacy, "GET", "/fhir/admin/reports/patients/p1/access", http.StatusOK},
		{nurse, "GET", "/fhir/AuditEvent?action=R", http.StatusForbidden},
		{"not-a-token", "GET", "/fhir/admin/users", http.StatusUnauthorized},
		{"not-a-token", "GET", "/fhir/AuditEvent", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(c.method, a.url+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%s %s = %d; want %d", c.method, c.path, res.StatusCode, c.want)
		}
	}
}

// TestKeyOperations_audited shows that key, seal and patient-key operations
// are recorded in the audit trail, with the operator as actor.
func TestKeyOperations_audited(t *testing.T) {
	a := mustAuditApp(t)
	status, body := a.do(t, "POST", "/fhir/Patient", `{"resourceType":"Patient","active":true}`)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %s", status, body)
	}
	var pat struct{ ID string }
	json.Unmarshal(body, &pat)
	for _, op := range []struct {
		path   string
		status int
	}{
		{"/fhir/admin/keys/$rotate", http.StatusAccepted},
		{"/fhir/admin/patients/" + pat.ID + "/$rotate-key", http.StatusOK},
		{"/fhir/admin/keys/no-such-kek/$compromised", http.StatusNotFound},
		{"/fhir/admin/$seal", http.StatusOK},
	} {
		status, body := a.do(t, "POST", op.path, "")
		if status != op.status {
			t.Fatalf("POST %s = %d %s", op.path, status, body)
		}
	}
	got := map[string]string{}
	for _, e := range a.trail(t) {
		if e.Actor == "admin" {
			got[e.Action+" "+e.TargetType+"/"+e.TargetID] = e.Outcome
		}
	}
	for entry, outcome := range map[string]string{
		"key-rotate Key/":                 "ok",
		"key-rotate Patient/" + pat.ID:    "ok",
		"key-compromised Key/no-such-kek": phivault.ENOTFOUND,
		"seal Vault/":                     "ok",
	} {
		if o, ok := got[entry]; !ok || o != outcome {
			t.Errorf("audit entry %q: outcome %q, present %v; want %q (entries: %v)", entry, o, ok, outcome, got)
		}
	}
}
