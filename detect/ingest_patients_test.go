package detect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault/detect"
)

// numbered returns n ids, prefix1 to prefixN.
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

// patientsMember returns the "patients" member holding list.
func patientsMember(list []string) string {
	return `"patients":` + string(must(json.Marshal(list)))
}

// TestParseIngest_accessPatients: a line's patients become the event's,
// namespaced, trimmed, in order and without duplicates; one in a list is
// the same as patient; an empty list or null is none.
func TestParseIngest_accessPatients(t *testing.T) {
	tests := []struct {
		name, line string
		want       []string
	}{
		{"several", `"patients":["p1"," p2 ","p3"]`, []string{"ehr:p1", "ehr:p2", "ehr:p3"}},
		{"duplicates", `"patients":["p2","p1","p2"," p1"]`, []string{"ehr:p2", "ehr:p1"}},
		{"line's system", `"system":"lab","patients":["p1","p2"]`, []string{"lab:p1", "lab:p2"}},
		{"one", `"patients":["p1"]`, []string{"ehr:p1"}},
		{"patient", `"patient":"p1"`, []string{"ehr:p1"}},
		{"empty list and patient", `"patient":"p1","patients":[]`, []string{"ehr:p1"}},
		{"null", `"patients":null`, nil},
		{"at the bound", patientsMember(numbered("p", 1000)), numbered("ehr:p", 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, rep := parseAccess(t, `{"time":"2026-12-06T07:00:00Z","user":"jdoe","action":"search",`+tt.line+"}\n")
			if rep.Accepted != 1 || len(recs) != 1 {
				t.Fatalf("report %+v, want the line accepted", rep)
			}
			if got := recs[0].Event.Patients; !slices.Equal(got, tt.want) {
				t.Errorf("patients %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseIngest_accessPatientsLines: each line's patients are its own,
// whatever came before it.
func TestParseIngest_accessPatientsLines(t *testing.T) {
	recs, rep := parseAccess(t, accessLog(
		`"action":"export","patients":["p1","p2"]`,
		`"action":"export","patients":["p1","p2","Zebediah\u0007"]`,
		`"action":"read","patient":"p3"`,
		`"action":"login"`,
		`"action":"search","patients":["p4","p5"]`,
	))
	if rep.Accepted != 4 || rep.Rejected != 1 || rep.Errors[0].Line != 2 {
		t.Fatalf("report %+v, want line 2 rejected, the others accepted", rep)
	}
	want := [][]string{{"ehr:p1", "ehr:p2"}, {"ehr:p3"}, nil, {"ehr:p4", "ehr:p5"}}
	for i, r := range recs {
		if !slices.Equal(r.Event.Patients, want[i]) {
			t.Errorf("event %d: patients %q, want %q", i, r.Event.Patients, want[i])
		}
	}
}

// TestParseIngest_accessPatientsErrors: the near misses of the above are
// rejected whole, with the field and a reason that never echoes a value.
func TestParseIngest_accessPatientsErrors(t *testing.T) {
	tests := []struct {
		name, line, field, reason string
		secret                    string // must not appear in the report
	}{
		{"too many", patientsMember(numbered("Zebediah", 1001)), "patients", "more than 1000 patients", "Zebediah"},
		{"control character", `"patients":["p1","Zebediah\u0007"]`, "patients", "patient 2: holds a control character", "Zebediah"},
		{"too long", `"patients":["p1","p2","` + strings.Repeat("Zebediah", 33) + `"]`, "patients", "patient 3: longer than 256 bytes", "Zebediah"},
		{"empty", `"patients":["Zebediah"," "]`, "patients", "patient 2: required", "Zebediah"},
		{"null entry", `"patients":[null,"Zebediah"]`, "patients", "patient 1: required", "Zebediah"},
		{"both", `"patient":"Zebediah","patients":["Quentin"]`, "patients", "given with patient", "Quentin"},
		{"both, same", `"patient":"Zebediah","patients":["Zebediah"]`, "patients", "given with patient", "Zebediah"},
		{"string", `"patients":"Zebediah;Quentin"`, "patients", "wrong JSON type (want an array of strings)", "Zebediah"},
		{"numbers", `"patients":[7946,7947]`, "patients", "wrong JSON type", "7946"},
		{"object", `"patients":{"id":"Zebediah"}`, "patients", "wrong JSON type", "Zebediah"},
		{"bad patient", `"patient":"Zebediah\u0007"`, "patient", "holds a control character", "Zebediah"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, rep := parseAccess(t, `{"time":"2026-12-06T07:00:00Z","user":"jdoe","action":"export",`+tt.line+"}\n")
			if len(recs) != 0 || rep.Rejected != 1 || len(rep.Errors) != 1 {
				t.Fatalf("records %d, report %+v; want the line rejected", len(recs), rep)
			}
			if e := rep.Errors[0]; e.Line != 1 || e.Field != tt.field || !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("error %+v, want line 1, field %q, reason with %q", e, tt.field, tt.reason)
			}
			if b := must(json.Marshal(rep)); strings.Contains(string(b), tt.secret) {
				t.Errorf("report %s echoes %q", b, tt.secret)
			}
		})
	}
}

// TestIngest_bulkAccessPatients: bulk-access sees a line of many patients
// as one event of them all, as in process: a search touching 100
// patients is one large result, an export of 10 reaches the day's
// threshold, and the alerts name every patient; one fewer does not alert.
func TestIngest_bulkAccessPatients(t *testing.T) {
	tests := []struct {
		name, action string
		patients     int
		want         int // alerts
	}{
		{"large search", "search", detect.DefaultBulkLargePatients, 1},
		{"search under the bound", "search", detect.DefaultBulkLargePatients - 1, 0},
		{"export", "export", detect.DefaultBulkExportPatients, 1},
		{"export under the threshold", "export", detect.DefaultBulkExportPatients - 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := detect.NewBulkAccess()
			rule.Learning = 0
			alerts := alertsOf(t, rule, accessLog(`"action":"`+tt.action+`",`+patientsMember(numbered("p", tt.patients))))
			if len(alerts) != tt.want {
				t.Fatalf("%d alerts, want %d", len(alerts), tt.want)
			}
			if tt.want > 0 && (alerts[0].Rule != detect.RuleBulkAccess || len(alerts[0].Patients) != tt.patients) {
				t.Errorf("alert %s over %d patients, want bulk-access over %d", alerts[0].Rule, len(alerts[0].Patients), tt.patients)
			}
		})
	}
}

// TestIngest_noRelationshipPatients: no-relationship sees a search
// returning several patients as one search, not a look at each, as in
// process; a search returning one patient, or a read of several, is a
// look at each.
func TestIngest_noRelationshipPatients(t *testing.T) {
	staff, rep, err := detect.ParseIngest(context.Background(), nil, detect.IngestStaff, detect.ContentNDJSON,
		strings.NewReader(`{"system":"ehr","id":"jdoe","role":"nurse"}`+"\n"), detect.IngestOptions{})
	if err != nil || rep.Accepted != 1 {
		t.Fatalf("staff roster: %+v, %v", rep, err)
	}
	tests := []struct {
		name, line string
		want       int
	}{
		{"search of several", `"action":"search","resource_type":"Patient",` + patientsMember(numbered("p", 5)), 0},
		{"search of one", `"action":"search","resource_type":"Patient","patients":["p1"]`, 1},
		{"read of several", `"action":"read","resource_type":"Observation",` + patientsMember(numbered("p", 3)), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, rep := parseAccess(t, accessLog(tt.line))
			if rep.Accepted != 1 {
				t.Fatalf("report %+v", rep)
			}
			alerts := alertsOfRecords(t, detect.NewNoRelationship(), append(slices.Clone(staff), recs...))
			if len(alerts) != tt.want {
				t.Fatalf("%d alerts, want %d", len(alerts), tt.want)
			}
		})
	}
}
