package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/auditlog"
)

type auditEvent struct {
	ID       string
	Action   string
	Recorded string
	Outcome  string
	Subtype  []struct{ Code string }
	Agent    []struct {
		Who *struct {
			Identifier *struct{ Value string }
		}
		Requestor bool
	}
	Entity []struct {
		What *struct{ Reference string }
		Role *struct{ Code string }
	}
}

type auditBundle struct {
	ResourceType string
	Type         string
	Total        int
	Link         []struct{ Relation, URL string }
	Entry        []struct {
		FullURL  string
		Resource auditEvent
	}
}

// trail decodes every entry of the app's audit log, by index.
func (a *auditApp) trail(t *testing.T) []*phivault.AuditEntry {
	t.Helper()
	ctx := context.Background()
	if err := a.audit.log.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := a.db.AuditSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := a.db.ReadAuditEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*phivault.AuditEntry, n)
	for i, d := range data {
		if out[i], err = auditlog.Decode(d); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	return out
}

// want returns the indexes of entries that keep returns true for.
func want(entries []*phivault.AuditEntry, keep func(*phivault.AuditEntry) bool) []string {
	var out []string
	for i, e := range entries {
		if keep(e) {
			out = append(out, strconv.Itoa(i))
		}
	}
	return out
}

func touches(patient string) func(*phivault.AuditEntry) bool {
	return func(e *phivault.AuditEntry) bool { return slices.Contains(e.Compartments, patient) }
}

// search follows an AuditEvent search through every page and returns the
// ids of the events, in order, and the pages' events.
func (a *auditApp) searchEvents(t *testing.T, query string) ([]string, []auditEvent) {
	t.Helper()
	path := "/fhir/AuditEvent?" + query
	var (
		ids    []string
		events []auditEvent
	)
	for pages := 0; path != ""; pages++ {
		if pages > 100 {
			t.Fatalf("search %s: more than 100 pages", query)
		}
		status, body := a.do(t, "GET", path, "")
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, status, body)
		}
		var b auditBundle
		if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" || b.Type != "searchset" {
			t.Fatalf("GET %s: not a searchset Bundle: %v %.300s", path, err, body)
		}
		for _, e := range b.Entry {
			ids = append(ids, e.Resource.ID)
			events = append(events, e.Resource)
		}
		path = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				u, err := url.Parse(l.URL)
				if err != nil {
					t.Fatal(err)
				}
				path = u.RequestURI()
			}
		}
	}
	return ids, events
}

func (a *auditApp) create(t *testing.T, typ, body string) string {
	t.Helper()
	status, b := a.do(t, "POST", "/fhir/"+typ, body)
	if status != http.StatusCreated {
		t.Fatalf("create %s = %d %s", typ, status, b)
	}
	var r struct{ ID string }
	json.Unmarshal(b, &r)
	return r.ID
}

// TestAuditEvent_view makes reads, searches and creates for two patients
// through the running vault, then reads the trail back as AuditEvents and
// access reports.
func TestAuditEvent_view(t *testing.T) {
	a := mustAuditApp(t)
	pa := a.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Xanthippova","given":["Quillon"]}]}`)
	pb := a.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Ygrittesson","given":["Zorvath"]}]}`)
	obs := a.create(t, "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+pa+`"}}`)
	for _, path := range []string{
		"/fhir/Patient/" + pa, "/fhir/Patient/" + pa, "/fhir/Patient/" + pb,
		"/fhir/Patient?family=Xanthippova", "/fhir/Observation?subject=Patient/" + pa,
		"/fhir/Observation/" + obs, "/fhir/Patient/" + pb + "/_history/1",
	} {
		if status, body := a.do(t, "GET", path, ""); status != http.StatusOK {
			t.Fatalf("GET %s = %d %.200s", path, status, body)
		}
	}
	mid := time.Now().UTC()
	if status, _ := a.do(t, "GET", "/fhir/Patient/"+pa+"/$everything", ""); status != http.StatusOK {
		t.Fatalf("$everything = %d", status)
	}

	entries := a.trail(t)
	wantA := want(entries, touches(pa))
	if len(wantA) < 7 {
		t.Fatalf("the trail has %d entries for patient A, want at least 7: the setup is broken", len(wantA))
	}

	t.Run("patient", func(t *testing.T) {
		ids, events := a.searchEvents(t, "patient="+pa)
		if !slices.Equal(ids, wantA) {
			t.Errorf("AuditEvent?patient=A = %v, want %v", ids, wantA)
		}
		for _, ev := range events {
			var refs []string
			for _, en := range ev.Entity {
				if en.What != nil {
					refs = append(refs, en.What.Reference)
				}
			}
			if !slices.Contains(refs, "Patient/"+pa) || slices.Contains(refs, "Patient/"+pb) {
				t.Errorf("event %s has entities %v, want Patient/A and not Patient/B", ev.ID, refs)
			}
			if len(ev.Agent) == 0 || !ev.Agent[0].Requestor || ev.Agent[0].Who == nil || ev.Agent[0].Who.Identifier.Value != "admin" {
				t.Errorf("event %s: first agent is not the requesting admin", ev.ID)
			}
			if ev.Outcome != "0" || len(ev.Subtype) != 1 {
				t.Errorf("event %s: outcome %q, subtype %v", ev.ID, ev.Outcome, ev.Subtype)
			}
		}
		ids, _ = a.searchEvents(t, "patient=Patient/"+pb)
		if wantB := want(entries, touches(pb)); !slices.Equal(ids, wantB) {
			t.Errorf("AuditEvent?patient=Patient/B = %v, want %v", ids, wantB)
		}
	})

	t.Run("action", func(t *testing.T) {
		for code, actions := range map[string][]string{
			"R": {phivault.ActionRead, phivault.ActionVRead, phivault.ActionHistory},
			"C": {phivault.ActionCreate},
			"E": {phivault.ActionSearch, phivault.ActionEverything, phivault.ActionBundle, phivault.ActionKeyRotate},
		} {
			ids, events := a.searchEvents(t, "patient="+pa+"&action="+code)
			w := want(entries, func(e *phivault.AuditEntry) bool {
				return touches(pa)(e) && slices.Contains(actions, e.Action)
			})
			if len(w) == 0 || !slices.Equal(ids, w) {
				t.Errorf("action=%s: %v, want %v (non-empty)", code, ids, w)
			}
			for _, ev := range events {
				if ev.Action != code {
					t.Errorf("action=%s returned event %s with action %s", code, ev.ID, ev.Action)
				}
			}
		}
		if status, _ := a.do(t, "GET", "/fhir/AuditEvent?action=X", ""); status != http.StatusBadRequest {
			t.Errorf("action=X = %d, want 400", status)
		}
	})

	t.Run("date", func(t *testing.T) {
		after := want(entries, func(e *phivault.AuditEntry) bool { return touches(pa)(e) && !e.Time.Before(mid) })
		before := want(entries, func(e *phivault.AuditEntry) bool { return touches(pa)(e) && e.Time.Before(mid) })
		if len(after) == 0 || len(before) == 0 {
			t.Fatalf("entries after the cut %v, before %v: want both non-empty", after, before)
		}
		m := url.QueryEscape(mid.Format(time.RFC3339Nano))
		if ids, _ := a.searchEvents(t, "patient="+pa+"&date=ge"+m); !slices.Equal(ids, after) {
			t.Errorf("date=ge<cut> = %v, want %v", ids, after)
		}
		if ids, _ := a.searchEvents(t, "patient="+pa+"&date=lt"+m); !slices.Equal(ids, before) {
			t.Errorf("date=lt<cut> = %v, want %v", ids, before)
		}
		today := mid.Format("2006-01-02")
		if ids, _ := a.searchEvents(t, "patient="+pa+"&date="+today); !slices.Equal(ids, wantA) {
			t.Errorf("date=<today> = %v, want %v", ids, wantA)
		}
		if ids, _ := a.searchEvents(t, "patient="+pa+"&date=gt"+today); len(ids) != 0 {
			t.Errorf("date=gt<today> = %v, want none", ids)
		}
		if status, _ := a.do(t, "GET", "/fhir/AuditEvent?date=yesterday", ""); status != http.StatusBadRequest {
			t.Errorf("date=yesterday = %d, want 400", status)
		}
	})

	t.Run("paging", func(t *testing.T) {
		status, body := a.do(t, "GET", "/fhir/AuditEvent?patient="+pa+"&_count=2", "")
		var b auditBundle
		if status != http.StatusOK || json.Unmarshal(body, &b) != nil {
			t.Fatalf("first page = %d %.200s", status, body)
		}
		if b.Total != len(wantA) || len(b.Entry) != 2 {
			t.Errorf("first page: total %d with %d entries, want %d with 2", b.Total, len(b.Entry), len(wantA))
		}
		ids, _ := a.searchEvents(t, "patient="+pa+"&_count=2")
		if !slices.Equal(ids, wantA) {
			t.Errorf("following next links with _count=2 = %v, want %v", ids, wantA)
		}
		ids, _ = a.searchEvents(t, "patient="+pa+"&_count=3&_offset=3")
		if !slices.Equal(ids, wantA[3:]) {
			t.Errorf("_offset=3 = %v, want %v", ids, wantA[3:])
		}
	})

	t.Run("read", func(t *testing.T) {
		status, body := a.do(t, "GET", "/fhir/AuditEvent/"+wantA[0], "")
		var ev auditEvent
		if status != http.StatusOK || json.Unmarshal(body, &ev) != nil || ev.ID != wantA[0] || ev.Action != "C" {
			t.Errorf("GET AuditEvent/%s = %d %.300s, want the create of patient A", wantA[0], status, body)
		}
		if ids, _ := a.searchEvents(t, "_id="+wantA[1]); !slices.Equal(ids, wantA[1:2]) {
			t.Errorf("_id=%s = %v", wantA[1], ids)
		}
		if status, _ := a.do(t, "GET", "/fhir/AuditEvent/99999", ""); status != http.StatusNotFound {
			t.Errorf("GET AuditEvent/99999 = %d, want 404", status)
		}
	})

	t.Run("writes", func(t *testing.T) {
		body := `{"resourceType":"AuditEvent","type":{"code":"rest"},"recorded":"2024-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`
		for _, c := range []struct{ method, path string }{
			{"POST", "/fhir/AuditEvent"}, {"PUT", "/fhir/AuditEvent/" + wantA[0]}, {"DELETE", "/fhir/AuditEvent/" + wantA[0]},
		} {
			status, got := a.do(t, c.method, c.path, body)
			if status != http.StatusForbidden || !bytes.Contains(got, []byte("OperationOutcome")) {
				t.Errorf("%s %s = %d %.200s, want 403 with an OperationOutcome", c.method, c.path, status, got)
			}
		}
		if ids, _ := a.searchEvents(t, "patient="+pa); !slices.Equal(ids, wantA) {
			t.Errorf("after refused writes, patient A's events = %v, want %v", ids, wantA)
		}
	})

	t.Run("unauthenticated", func(t *testing.T) {
		resp, err := http.Get(a.url + "/fhir/AuditEvent?patient=" + pa)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("AuditEvent search without a token = %d, want 401", resp.StatusCode)
		}
	})

	t.Run("report", func(t *testing.T) {
		status, body := a.do(t, "GET", "/fhir/admin/reports/patients/"+pa+"/access?format=csv", "")
		if status != http.StatusOK {
			t.Fatalf("CSV report = %d %s", status, body)
		}
		for _, name := range []string{"Xanthippova", "Quillon", "Ygrittesson", "Zorvath", "pulse"} {
			if bytes.Contains(bytes.ToLower(body), []byte(strings.ToLower(name))) {
				t.Errorf("the CSV report holds PHI: %q", name)
			}
		}
		rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil || len(rows) == 0 || !slices.Equal(rows[0], auditlog.CSVHeader) {
			t.Fatalf("CSV report: %v, header %v", err, rows)
		}
		var got []string
		for _, r := range rows[1:] {
			got = append(got, r[0])
			if r[2] != "admin" || !strings.Contains(r[12], pa) || strings.Contains(r[12], pb) {
				t.Errorf("CSV row %v: want actor admin and patient A only", r)
			}
		}
		if !slices.Equal(got, wantA) {
			t.Errorf("CSV report rows %v, want %v", got, wantA)
		}
		creates := 0
		for _, r := range rows[1:] {
			if r[6] == phivault.ActionCreate {
				creates++
				if r[9] == "" || r[10] == "" || r[11] != "1" {
					t.Errorf("create row %v lacks the resource type, id or version", r)
				}
			}
		}
		if creates != 2 { // the Patient and the Observation
			t.Errorf("CSV report has %d creates, want 2", creates)
		}

		// Reading the report was recorded in the patient's compartment, so
		// the next report shows it.
		entries := a.trail(t)
		last := entries[len(entries)-1]
		if last.Action != phivault.ActionExport || last.TargetType != auditlog.TargetAccessReport || last.TargetID != pa ||
			!slices.Equal(last.Compartments, []string{pa}) || last.Actor != "admin" || !slices.Equal(last.SearchParams, []string{"format"}) {
			t.Errorf("the CSV report was recorded as %+v", last)
		}
		wantNow := want(entries, touches(pa))
		if !slices.Equal(wantNow, append(slices.Clone(wantA), strconv.Itoa(len(entries)-1))) {
			t.Errorf("patient A's entries after the report = %v, want %v and the report's", wantNow, wantA)
		}
		status, body = a.do(t, "GET", "/fhir/admin/reports/patients/"+pa+"/access", "")
		var b auditBundle
		if status != http.StatusOK || json.Unmarshal(body, &b) != nil || b.Total != len(wantNow) || len(b.Entry) != len(wantNow) {
			t.Errorf("JSON report = %d, total %d with %d entries, want %d: %.300s", status, b.Total, len(b.Entry), len(wantNow), body)
		}
		if status, _ := a.do(t, "GET", "/fhir/admin/reports/patients/"+pa+"/access?format=xml", ""); status != http.StatusBadRequest {
			t.Errorf("format=xml = %d, want 400", status)
		}
	})

	t.Run("activity", func(t *testing.T) {
		entries := a.trail(t)
		status, body := a.do(t, "GET", "/fhir/admin/reports/users/admin/activity", "")
		var b auditBundle
		if status != http.StatusOK || json.Unmarshal(body, &b) != nil {
			t.Fatalf("activity report = %d %.200s", status, body)
		}
		// Every earlier read of the trail is in it too, but not the
		// report's own read, recorded after the report was selected.
		w := want(entries, func(e *phivault.AuditEntry) bool { return e.Actor == "admin" })
		if b.Total != len(w) || len(b.Entry) != b.Total {
			t.Fatalf("activity report: total %d with %d entries, want %d", b.Total, len(b.Entry), len(w))
		}
		if last := entries[len(entries)-1]; last.TargetType != auditlog.TargetAccessReport || last.Action != phivault.ActionExport {
			t.Errorf("the last entry before the report is %s %s, want the previous read of an access report", last.Action, last.TargetType)
		}
		for i, id := range w {
			if b.Entry[i].Resource.ID != id {
				t.Errorf("activity report entry %d = %s, want %s", i, b.Entry[i].Resource.ID, id)
			}
		}
		if status, body := a.do(t, "GET", "/fhir/admin/reports/users/nobody/activity?format=csv", ""); status != http.StatusOK || bytes.Count(body, []byte("\n")) != 1 {
			t.Errorf("activity of an unknown user = %d %q, want the header only", status, body)
		}
	})

	t.Run("sealed", func(t *testing.T) {
		if err := a.seal.Seal(context.Background()); err != nil {
			t.Fatal(err)
		}
		if status, _ := a.do(t, "GET", "/fhir/Patient/"+pa, ""); status != http.StatusServiceUnavailable {
			t.Fatalf("read while sealed = %d, want 503", status)
		}
		w := want(a.trail(t), touches(pa)) // with the reads of A's report
		ids, _ := a.searchEvents(t, "patient="+pa)
		if !slices.Equal(ids, w) || len(w) != len(wantA)+2 {
			t.Errorf("AuditEvent?patient=A while sealed = %v, want %v", ids, w)
		}
	})
}
