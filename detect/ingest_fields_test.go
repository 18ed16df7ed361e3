package detect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// parseAccess parses NDJSON access lines of system "ehr".
func parseAccess(tb testing.TB, body string) ([]detect.Record, *detect.IngestReport) {
	tb.Helper()
	recs, rep, err := detect.ParseIngest(context.Background(), nil, detect.IngestAccess, detect.ContentNDJSON,
		strings.NewReader(body), detect.IngestOptions{System: "ehr"})
	if err != nil {
		tb.Fatalf("ParseIngest: %v", err)
	}
	return recs, rep
}

// TestParseIngest_accessFields: purpose, search parameter names (an
// array, or one string separated by ";") and the break-glass action
// reach the event; a line without them is as before.
func TestParseIngest_accessFields(t *testing.T) {
	tests := []struct {
		name, line              string
		wantAction, wantPurpose string
		wantParams              []string
	}{
		{"array", `"action":"search","search_params":["family:exact","given","subject.name","_has:Observation:patient:code"]`,
			phivault.ActionSearch, "", []string{"family:exact", "given", "subject.name", "_has:Observation:patient:code"}},
		{"string", `"action":"search","search_params":" name ; birthdate;;"`, phivault.ActionSearch, "", []string{"name", "birthdate"}},
		{"break-glass", `"action":"Break-Glass","purpose":" ETREAT ","patient":"p1"`, phivault.ActionBreakGlass, "ETREAT", nil},
		{"read under break-glass", `"action":"read","purpose":"ETREAT","patient":"p1"`, phivault.ActionRead, "ETREAT", nil},
		{"none", `"action":"search","search_params":null,"purpose":""`, phivault.ActionSearch, "", nil},
		{"empty array", `"action":"search","search_params":[]`, phivault.ActionSearch, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, rep := parseAccess(t, `{"time":"2026-12-06T07:00:00Z","user":"jdoe",`+tt.line+"}\n")
			if rep.Accepted != 1 || len(recs) != 1 {
				t.Fatalf("report %+v, want the line accepted", rep)
			}
			ev := recs[0].Event
			if ev.Action != tt.wantAction || ev.Purpose != tt.wantPurpose || !slices.Equal(ev.Params, tt.wantParams) {
				t.Errorf("event action %q purpose %q params %q, want %q %q %q", ev.Action, ev.Purpose, ev.Params, tt.wantAction, tt.wantPurpose, tt.wantParams)
			}
		})
	}
}

// TestParseIngest_accessFieldErrors: the near misses of the above are
// rejected line by line, with the field and a reason that never echoes
// the value sent.
func TestParseIngest_accessFieldErrors(t *testing.T) {
	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf("p%d", i)
	}
	tests := []struct {
		name, line, field, reason string
		secret                    string // must not appear in the report
	}{
		{"value in array", `"search_params":["given","family=Zebediah"]`, "search_params", "name 2 holds a value", "Zebediah"},
		{"value in string", `"search_params":"family=Zebediah&given=Quentin"`, "search_params", "name 1 holds a value", "Quentin"},
		{"value without name", `"search_params":["Zebediah Quentin"]`, "search_params", "may hold only letters", "Zebediah"},
		{"too long", `"search_params":["` + strings.Repeat("Zebediah", 9) + `"]`, "search_params", "longer than 64 bytes", "Zebediah"},
		{"too many", `"search_params":` + string(must(json.Marshal(many))), "search_params", "more than 32 names", "p32"},
		{"number", `"search_params":7946`, "search_params", "wrong JSON type", "7946"},
		{"array of numbers", `"search_params":[7946]`, "search_params", "wrong JSON type", "7946"},
		{"object", `"search_params":{"family":"Zebediah"}`, "search_params", "wrong JSON type", "Zebediah"},
		{"purpose control", `"purpose":"Zebediah\u0007"`, "purpose", "control character", "Zebediah"},
		{"purpose long", `"purpose":"` + strings.Repeat("Zebediah", 17) + `"`, "purpose", "longer than 128 bytes", "Zebediah"},
		{"purpose type", `"purpose":["Zebediah"]`, "purpose", "wrong JSON type", "Zebediah"},
		{"break_glass", `"action":"break_glass"`, "action", "not one of", "break_glass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := `{"time":"2026-12-06T07:00:00Z","user":"jdoe","action":"search",` + tt.line + "}"
			if strings.Contains(tt.line, `"action"`) {
				line = `{"time":"2026-12-06T07:00:00Z","user":"jdoe",` + tt.line + "}"
			}
			recs, rep := parseAccess(t, line+"\n")
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

// alertsOf runs body, NDJSON access lines of system "ehr", through
// ParseIngest and an engine of rule alone, and returns the alerts.
func alertsOf(t *testing.T, rule detect.Rule, body string) []*detect.Alert {
	t.Helper()
	recs, rep := parseAccess(t, body)
	if rep.Rejected != 0 {
		t.Fatalf("report %+v, want every line accepted", rep)
	}
	return alertsOfRecords(t, rule, recs)
}

// alertsOfRecords runs recs through an engine of rule alone, and returns
// the alerts.
func alertsOfRecords(t *testing.T, rule detect.Rule, recs []detect.Record) []*detect.Alert {
	t.Helper()
	ctx := context.Background()
	store := detect.NewMemStore()
	t.Cleanup(func() { store.Close() })
	p := detect.NewPipeline(store, detect.NewEngine(detect.NewDirectory(), []detect.Rule{rule}, nil))
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Ingest(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Step(ctx); err != nil {
		t.Fatal(err)
	}
	alerts, err := store.Alerts(ctx, detect.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return alerts
}

// accessLog returns one access line of user jdoe per entry of lines
// (the members after time and user), a minute apart.
func accessLog(lines ...string) string {
	var b strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&b, `{"time":"2026-12-06T10:%02d:00Z","user":"jdoe","role":"nurse",%s}`+"\n", i, l)
	}
	return b.String()
}

// TestIngest_nameSearchBrowsing: a search by name sent with its parameter
// names, then three unrelated patients opened, is name-search-browsing;
// the same with a search by identifier is not.
func TestIngest_nameSearchBrowsing(t *testing.T) {
	reads := []string{`"action":"read","resource_type":"Patient","patient":"p1"`,
		`"action":"read","resource_type":"Patient","patient":"p2"`,
		`"action":"read","resource_type":"Patient","patient":"p3"`}
	search := func(params string) string {
		return `"action":"search","resource_type":"Patient","result_count":4,"search_params":` + params
	}
	tests := []struct {
		name   string
		search string
		want   int
	}{
		{"by name", search(`["family:contains","birthdate"]`), 1},
		{"by name, one string", search(`"given;_count"`), 1},
		{"by identifier", search(`["identifier"]`), 0},
		{"no parameters", `"action":"search","resource_type":"Patient","result_count":4`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alerts := alertsOf(t, detect.NewNameSearchBrowsing(), accessLog(append([]string{tt.search}, reads...)...))
			if len(alerts) != tt.want {
				t.Fatalf("%d alerts, want %d", len(alerts), tt.want)
			}
			if tt.want > 0 && (alerts[0].Rule != detect.RuleNameSearchBrowsing || alerts[0].User != "ehr:jdoe" || len(alerts[0].Patients) != 3) {
				t.Errorf("alert %+v, want name-search-browsing of ehr:jdoe over 3 patients", alerts[0])
			}
		})
	}
}

// TestIngest_breakGlassOveruse: three break-the-glass openings in a day
// by a user with no history is break-glass-overuse; three reads with the
// emergency purpose, or two openings, are not.
func TestIngest_breakGlassOveruse(t *testing.T) {
	glass := func(p string) string { return `"action":"break-glass","purpose":"ETREAT","patient":"` + p + `"` }
	read := func(p string) string { return `"action":"read","purpose":"ETREAT","patient":"` + p + `"` }
	tests := []struct {
		name  string
		lines []string
		want  int
	}{
		{"three openings", []string{glass("p1"), glass("p2"), glass("p3")}, 1},
		{"two openings", []string{glass("p1"), glass("p2"), read("p3")}, 0},
		{"reads with the purpose", []string{read("p1"), read("p2"), read("p3")}, 0},
		{"refused openings", []string{glass("p1"), glass("p2"), glass("p3") + `,"outcome":"denied"`}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alerts := alertsOf(t, detect.NewBreakGlassOveruse(), accessLog(tt.lines...))
			if len(alerts) != tt.want {
				t.Fatalf("%d alerts, want %d", len(alerts), tt.want)
			}
			if tt.want > 0 && (alerts[0].Rule != detect.RuleBreakGlassOveruse || alerts[0].User != "ehr:jdoe") {
				t.Errorf("alert %+v, want break-glass-overuse of ehr:jdoe", alerts[0])
			}
		})
	}
}

// TestIngest_honeytokenPlantPurpose: an ingested create on a decoy is a
// touch even when the line states the planting purpose and a bootstrap
// role, which exempt phivault's own planting; a read without them is a
// touch too.
func TestIngest_honeytokenPlantPurpose(t *testing.T) {
	tests := []struct {
		name, line string
	}{
		{"planting purpose", `"action":"create","purpose":"` + detect.DefaultPlantPurpose + `","role":"bootstrap-admin","user":"admin","patient":"p1"`},
		{"read", `"action":"read","user":"jdoe","patient":"p1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			store := detect.NewMemStore()
			t.Cleanup(func() { store.Close() })
			p := detect.NewPipeline(store, detect.NewEngine(detect.NewDirectory(), []detect.Rule{detect.NewHoneytoken()}, nil))
			if err := p.Open(ctx); err != nil {
				t.Fatal(err)
			}
			recs, rep := parseAccess(t, `{"time":"2026-12-06T07:00:00Z",`+tt.line+"}\n")
			if rep.Accepted != 1 {
				t.Fatalf("report %+v", rep)
			}
			recs = append([]detect.Record{{Kind: detect.RecordHoneytoken, Honeytoken: "ehr:p1"}}, recs...)
			if _, err := store.Ingest(ctx, recs); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Step(ctx); err != nil {
				t.Fatal(err)
			}
			alerts, err := store.Alerts(ctx, detect.AlertFilter{})
			if err != nil || len(alerts) != 1 || alerts[0].Rule != detect.RuleHoneytoken {
				t.Fatalf("alerts %v, %v; want one honeytoken alert", alerts, err)
			}
		})
	}
}
