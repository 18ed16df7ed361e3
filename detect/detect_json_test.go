package detect_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/detect"
)

// storedBeforeOmitzero is an ingest record as sqlitestore stored it
// before Event's JSON omitted zero fields: every field, zero or not.
const storedBeforeOmitzero = `{"seq":7,"kind":"access","event":{"Stream":"ingest","Seq":0,"Time":"2026-12-06T08:00:00Z",` +
	`"System":"ehr","User":"ehr:u1","Roles":["nurse"],"Department":"","Client":"","Source":"10.0.0.7","Action":"read",` +
	`"ResourceType":"","ResourceID":"","Patients":["ehr:p1"],"Count":0,"Returned":null,"Params":null,"OK":true,` +
	`"Outcome":"ok","Purpose":"","Decision":""}}`

// TestEvent_JSON checks that a record stored before Event's JSON omitted
// zero fields decodes to the same record as its new, shorter form, and
// that no field that is set is omitted (an empty list neither: it is not
// nil).
func TestEvent_JSON(t *testing.T) {
	want := detect.Record{Seq: 7, Kind: detect.RecordAccess, Event: &detect.Event{
		Stream: detect.StreamIngest, Time: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC), System: "ehr", User: "ehr:u1",
		Roles: []string{"nurse"}, Source: "10.0.0.7", Action: phivault.ActionRead, Patients: []string{"ehr:p1"}, OK: true, Outcome: "ok",
	}}
	var old detect.Record
	if err := json.Unmarshal([]byte(storedBeforeOmitzero), &old); err != nil || !reflect.DeepEqual(old, want) {
		t.Fatalf("record stored the old way decodes as %+v, %v; want %+v", old.Event, err, want.Event)
	}
	b, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	var again detect.Record
	if err := json.Unmarshal(b, &again); err != nil || !reflect.DeepEqual(again, want) {
		t.Errorf("record decodes from %s as %+v, %v; want %+v", b, again.Event, err, want.Event)
	}
	if len(b) >= len(storedBeforeOmitzero)*3/4 || strings.Contains(string(b), `"Department"`) {
		t.Errorf("record encodes as %s (%d bytes), want its zero fields left out", b, len(b))
	}

	full := detect.Event{
		Stream: detect.StreamTrail, Seq: 3, Time: want.Event.Time, System: "s", User: "u", Roles: []string{}, Department: "d",
		Client: "c", Source: "1.2.3.4", Action: phivault.ActionSearch, ResourceType: "Patient", ResourceID: "p", Patients: []string{"p"},
		Count: 2, Returned: []string{"Patient/p/_history/1"}, Params: []string{"name"}, OK: true, Outcome: "ok", Purpose: "TREAT", Decision: "permit",
	}
	b, err = json.Marshal(&full)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	var got detect.Event
	if err := json.Unmarshal(b, &fields); err != nil || len(fields) != reflect.TypeFor[detect.Event]().NumField() {
		t.Errorf("an event with every field set encodes %d fields (%s), want all %d", len(fields), b, reflect.TypeFor[detect.Event]().NumField())
	}
	if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, full) {
		t.Errorf("an event with every field set decodes as %+v, %v; want %+v", got, err, full)
	}
}
