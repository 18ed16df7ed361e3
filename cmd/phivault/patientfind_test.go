package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
)

// findAs asks the patient lookup with token ("" for none) and returns the
// status and body.
func (a *auditApp) findAs(t *testing.T, token, query string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.url+"/fhir/admin/reports/patients?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// sessionToken starts an OAuth session of a staff member with roles and
// returns its access token.
func (a *auditApp) sessionToken(t *testing.T, id string, roles ...string) string {
	t.Helper()
	is, err := a.signIn.Sessions().Start(phivault.Principal{ID: id, Kind: phivault.PrincipalStaff, Roles: roles}, false)
	if err != nil {
		t.Fatal(err)
	}
	return is.AccessToken
}

// lookups returns the trail's entries of the patient lookup by actor.
func lookups(trail []*phivault.AuditEntry, actor string) []*phivault.AuditEntry {
	var out []*phivault.AuditEntry
	for _, e := range trail {
		if e.Actor == actor && e.Action == phivault.ActionSearch && e.TargetType == auditlog.TargetPatientLookup {
			out = append(out, e)
		}
	}
	return out
}

// TestPatientFind finds patients as a privacy officer and the operator,
// and checks the answer, the audit entries, the patient's own access
// report and the refusals.
func TestPatientFind(t *testing.T) {
	a := mustAuditApp(t)
	const stored = `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"MRN-4711"}],` +
		`"name":[{"family":"Quendolyn","given":["Ada","Maria"]},{"family":"Alias","given":["Other"]}],"birthDate":"1970-03-04",` +
		`"gender":"female","telecom":[{"system":"phone","value":"555-0199"}],"address":[{"line":["12 Elmstreet"],"city":"Springfield"}]}`
	patient := a.create(t, "Patient", stored)
	other := a.create(t, "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"MRN-0815"}],"name":[{"family":"Zebulon","given":["Ike"]}]}`)
	privacy := a.sessionToken(t, "u-privacy", phivault.RolePrivacyOfficer)

	t.Run("OK", func(t *testing.T) {
		for _, q := range []string{"identifier=urn:mrn|MRN-4711", "identifier=MRN-4711", "name=quendolyn", "name=Ada&_count=1"} {
			status, body := a.findAs(t, privacy, q)
			var got struct {
				Patients []map[string]string
				Total    int
			}
			if err := json.Unmarshal(body, &got); status != http.StatusOK || err != nil {
				t.Fatalf("find %s = %d %s", q, status, body)
			}
			want := []map[string]string{{"id": patient, "name": "Ada Maria Quendolyn", "birthDate": "1970-03-04"}}
			if !reflect.DeepEqual(got.Patients, want) || got.Total != 1 {
				t.Fatalf("find %s = %s, want %v", q, body, want)
			}
			// Nothing else of the Patient leaves: not its identifier, other
			// names, gender, telecom or address.
			for _, leak := range []string{"MRN", "Alias", "Other", "female", "555-0199", "Elmstreet", "Springfield", "identifier", "telecom", "address", other, "Zebulon"} {
				if strings.Contains(string(body), leak) {
					t.Fatalf("find %s answers %q: %s", q, leak, body)
				}
			}
		}
		if status, body := a.findAs(t, privacy, "identifier=urn:mrn|MRN-0000"); status != http.StatusOK || string(body) != `{"patients":[],"total":0}`+"\n" {
			t.Fatalf("find of no one = %d %s", status, body)
		}
		if status, body := a.findAs(t, a.token, "name=Zebulon"); status != http.StatusOK || !strings.Contains(string(body), `"id":"`+other+`"`) || strings.Contains(string(body), patient) {
			t.Fatalf("the operator's find = %d %s", status, body)
		}
	})

	t.Run("audited", func(t *testing.T) {
		entries := lookups(a.trail(t), "u-privacy")
		if len(entries) != 5 {
			t.Fatalf("%d entries of the officer's lookups, want 5 (one a request)", len(entries))
		}
		for i, e := range entries[:4] {
			wantParams := []string{"identifier"}
			if i >= 2 {
				wantParams = []string{"name"}
			}
			if e.Outcome != "ok" || !slices.Equal(e.Compartments, []string{patient}) || !slices.Equal(e.Returned, []string{"Patient/" + patient + "/_history/1"}) ||
				!slices.Equal(e.SearchParams, wantParams) || !slices.Equal(e.Roles, []string{phivault.RolePrivacyOfficer}) {
				t.Errorf("entry %d = %+v", i, e)
			}
			b, _ := json.Marshal(e)
			for _, value := range []string{"MRN-4711", "urn:mrn", "quendolyn", "Ada"} {
				if strings.Contains(string(b), value) {
					t.Errorf("entry %d holds the value %q: %s", i, value, b)
				}
			}
		}
		if e := entries[4]; e.Outcome != "ok" || len(e.Returned) != 0 || len(e.Compartments) != 0 {
			t.Errorf("entry of the empty find = %+v", e)
		}
		// The patient's own access report lists the lookups, the other
		// patient's does not.
		status, body := a.do(t, "GET", "/fhir/admin/reports/patients/"+patient+"/access?format=json", "")
		var b auditBundle
		if err := json.Unmarshal(body, &b); status != http.StatusOK || err != nil {
			t.Fatalf("access report = %d %s", status, body)
		}
		var seen int
		for _, en := range b.Entry {
			ev := en.Resource
			if ev.Action == "E" && len(ev.Agent) > 0 && ev.Agent[0].Who != nil && ev.Agent[0].Who.Identifier.Value == "u-privacy" {
				seen++
			}
		}
		if seen != 4 {
			t.Fatalf("the access report shows %d lookups by the officer, want 4:\n%s", seen, body)
		}
		_, body = a.do(t, "GET", "/fhir/admin/reports/patients/"+other+"/access?format=json", "")
		if strings.Contains(string(body), "u-privacy") {
			t.Fatalf("the other patient's report shows the officer:\n%s", body)
		}
	})

	t.Run("ErrForbidden", func(t *testing.T) {
		for _, who := range []struct{ id, role string }{{"u-nurse", "nurse"}, {"u-secadmin", phivault.RoleSecurityAdmin}} {
			status, body := a.findAs(t, a.sessionToken(t, who.id, who.role), "identifier=MRN-4711")
			if status != http.StatusForbidden || strings.Contains(string(body), patient) || strings.Contains(string(body), "Quendolyn") ||
				!strings.Contains(string(body), "OperationOutcome") {
				t.Fatalf("%s's find = %d %s", who.role, status, body)
			}
			entries := lookups(a.trail(t), who.id)
			if len(entries) != 1 || entries[0].Outcome != phivault.EFORBIDDEN || len(entries[0].Returned)+len(entries[0].Compartments) != 0 {
				t.Fatalf("%s's refused find is recorded as %+v", who.role, entries)
			}
		}
		// A patient whose account claims the role is still a patient.
		is, err := a.signIn.Sessions().Start(phivault.Principal{ID: "u-pat", Kind: phivault.PrincipalPatient, PatientID: patient, Roles: []string{phivault.RolePrivacyOfficer}}, false)
		if err != nil {
			t.Fatal(err)
		}
		if status, body := a.findAs(t, is.AccessToken, "identifier=MRN-4711"); status != http.StatusForbidden {
			t.Fatalf("a patient's find = %d %s", status, body)
		}
		// A privacy officer's SMART token needs a scope that searches Patient.
		for scope, want := range map[string]int{"user/AuditEvent.rs": http.StatusForbidden, "user/Patient.rs": http.StatusOK, "user/Patient.rs?gender=female": http.StatusForbidden} {
			is, err := a.signIn.Sessions().Start(phivault.Principal{ID: "u-app", Kind: phivault.PrincipalStaff, Roles: []string{phivault.RolePrivacyOfficer}, SMART: true, Scopes: []string{scope}}, false)
			if err != nil {
				t.Fatal(err)
			}
			if status, body := a.findAs(t, is.AccessToken, "identifier=MRN-4711"); status != want {
				t.Fatalf("find with scope %s = %d %s, want %d", scope, status, body, want)
			}
		}
		if status, _ := a.findAs(t, "", "identifier=MRN-4711"); status != http.StatusUnauthorized {
			t.Fatalf("find without a token = %d", status)
		}
		if status, _ := a.findAs(t, "not-a-token", "identifier=MRN-4711"); status != http.StatusUnauthorized {
			t.Fatalf("find with a bad token = %d", status)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for _, q := range []string{
			"", "identifier=MRN-4711&name=Ada", "identifier=MRN-4711&identifier=MRN-0815", "name=", "name=%2C", "identifier=%7C",
			"identifier=MRN-4711&_count=0", "identifier=MRN-4711&_count=51", "identifier=MRN-4711&_count=x",
			"identifier=MRN-4711&gender=female", "identifier=MRN-4711&_offset=1", "name:exact=Ada", "birthdate=1970-03-04",
		} {
			before := len(lookups(a.trail(t), "u-privacy"))
			status, body := a.findAs(t, privacy, q)
			if status != http.StatusBadRequest || !strings.Contains(string(body), `"resourceType":"OperationOutcome"`) || strings.Contains(string(body), patient) {
				t.Fatalf("find %q = %d %s", q, status, body)
			}
			entries := lookups(a.trail(t), "u-privacy")
			if len(entries) != before+1 || entries[before].Outcome != phivault.EINVALID || len(entries[before].Returned) != 0 {
				t.Fatalf("find %q is recorded as %+v", q, entries[before:])
			}
		}
		if status, body := a.findAs(t, privacy, "identifier=MRN-4711&_count=51"); !strings.Contains(string(body), "_count must be a number from 1 to 50.") {
			t.Fatalf("find with _count=51 = %d %s", status, body)
		}
	})

	t.Run("ErrSealed", func(t *testing.T) {
		if status, body := a.do(t, "POST", "/fhir/admin/$seal", ""); status != http.StatusOK {
			t.Fatalf("seal = %d %s", status, body)
		}
		status, body := a.findAs(t, privacy, "identifier=MRN-4711")
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "The vault is sealed: patient names and identifiers are encrypted") {
			t.Fatalf("find while sealed = %d %s", status, body)
		}
		entries := lookups(a.trail(t), "u-privacy")
		if e := entries[len(entries)-1]; e.Outcome != phivault.EUNAVAILABLE {
			t.Fatalf("find while sealed is recorded as %+v", e)
		}
	})
}

// TestPatientFind_route checks that the lookup's pattern takes only GET of
// its own path: the access reports beside it are still the audit view's.
func TestPatientFind_route(t *testing.T) {
	a := mustAuditApp(t)
	patient := a.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Quendolyn"}]}`)
	if status, body := a.do(t, "GET", "/fhir/admin/reports/patients/"+patient+"/access?format=json", ""); status != http.StatusOK || !strings.Contains(string(body), `"searchset"`) {
		t.Fatalf("access report = %d %s", status, body)
	}
	if status, _ := a.do(t, "POST", "/fhir/admin/reports/patients?"+url.Values{"name": {"Quendolyn"}}.Encode(), ""); status == http.StatusOK {
		t.Fatalf("POST of the lookup = %d", status)
	}
}
