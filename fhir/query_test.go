package fhir_test

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name  string
		typ   string
		query string
		want  phivault.Query
	}{
		{"empty", "Patient", "", phivault.Query{Type: "Patient"}},
		{"family", "Patient", "family=Smith", phivault.Query{Type: "Patient",
			Params: []phivault.QueryParam{{Name: "family", Values: []string{"Smith"}}}}},
		{"or values", "Patient", "given=ann,bob", phivault.Query{Type: "Patient",
			Params: []phivault.QueryParam{{Name: "given", Values: []string{"ann", "bob"}}}}},
		{"escaped comma", "Patient", `name=a\,b`, phivault.Query{Type: "Patient",
			Params: []phivault.QueryParam{{Name: "name", Values: []string{"a,b"}}}}},
		{"escaped backslash", "Patient", `name=a\\,b`, phivault.Query{Type: "Patient",
			Params: []phivault.QueryParam{{Name: "name", Values: []string{`a\`, "b"}}}}},
		{"repeated is AND", "Patient", "birthdate=ge1980&birthdate=lt1990-06", phivault.Query{Type: "Patient",
			Params: []phivault.QueryParam{
				{Name: "birthdate", Values: []string{"ge1980"}},
				{Name: "birthdate", Values: []string{"lt1990-06"}}}}},
		{"sorted by name", "Patient", "gender=female&birthdate=1980", phivault.Query{Type: "Patient",
			Params: []phivault.QueryParam{
				{Name: "birthdate", Values: []string{"1980"}},
				{Name: "gender", Values: []string{"female"}}}}},
		{"empty values ignored", "Patient", "family=&given=,x,", phivault.Query{Type: "Patient",
			Params: []phivault.QueryParam{{Name: "given", Values: []string{"x"}}}}},
		{"modifiers", "Patient", "name:exact=Ann&family:contains=mi&identifier:not=x|1&gender:missing=true", phivault.Query{Type: "Patient",
			Params: []phivault.QueryParam{
				{Name: "family", Modifier: "contains", Values: []string{"mi"}},
				{Name: "gender", Modifier: "missing", Values: []string{"true"}},
				{Name: "identifier", Modifier: "not", Values: []string{"x|1"}},
				{Name: "name", Modifier: "exact", Values: []string{"Ann"}}}}},
		{"reference type modifier", "Observation", "subject:Patient=123", phivault.Query{Type: "Observation",
			Params: []phivault.QueryParam{{Name: "subject", Modifier: "Patient", Values: []string{"123"}}}}},
		{"reference identifier modifier", "CareTeam", "participant:identifier=urn:phivault:principal|acct-1,|x,y", phivault.Query{Type: "CareTeam",
			Params: []phivault.QueryParam{{Name: "participant", Modifier: "identifier", Values: []string{"urn:phivault:principal|acct-1", "|x", "y"}}}}},
		{"token system", "Observation", "code=http://loinc.org|8302-2,|x,sys|", phivault.Query{Type: "Observation",
			Params: []phivault.QueryParam{{Name: "code", Values: []string{"http://loinc.org|8302-2", "|x", "sys|"}}}}},
		{"id and lastUpdated", "Encounter", "_id=a-1,b.2&_lastUpdated=gt2020-01-01T10:00:00Z", phivault.Query{Type: "Encounter",
			Params: []phivault.QueryParam{
				{Name: "_id", Values: []string{"a-1", "b.2"}},
				{Name: "_lastUpdated", Values: []string{"gt2020-01-01T10:00:00Z"}}}}},
		{"control", "Observation", "_count=50&_offset=100&_sort=_lastUpdated&_summary=count&_total=accurate&_format=application/fhir+json",
			phivault.Query{Type: "Observation", Count: 50, Offset: 100, SortAsc: true, Sorted: true, Summary: "count"}},
		{"sort desc", "Observation", "_sort=-_lastUpdated", phivault.Query{Type: "Observation", Sorted: true}},
		{"format json", "Patient", "_format=json", phivault.Query{Type: "Patient"}},
		{"include", "Observation", "_include=Observation:patient&_include=Observation:subject:Patient", phivault.Query{Type: "Observation",
			Include: []phivault.Include{{Source: "Observation", Param: "patient"}, {Source: "Observation", Param: "subject", Target: "Patient"}}}},
		{"practitioner", "Practitioner", "name=hil&identifier=http://hl7.org/fhir/sid/us-npi|160", phivault.Query{Type: "Practitioner",
			Params: []phivault.QueryParam{
				{Name: "identifier", Values: []string{"http://hl7.org/fhir/sid/us-npi|160"}},
				{Name: "name", Values: []string{"hil"}}}}},
		{"encounter", "Encounter", "patient=p1&class=AMB&status=finished&date=ge2019", phivault.Query{Type: "Encounter",
			Params: []phivault.QueryParam{
				{Name: "class", Values: []string{"AMB"}},
				{Name: "date", Values: []string{"ge2019"}},
				{Name: "patient", Values: []string{"p1"}},
				{Name: "status", Values: []string{"finished"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fhir.ParseQuery(tt.typ, v, false)
			if err != nil {
				t.Fatalf("ParseQuery(%q): %v", tt.query, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ParseQuery(%q)\n got %+v\nwant %+v", tt.query, *got, tt.want)
			}
		})
	}
}

func TestParseQuery_Errors(t *testing.T) {
	tests := []struct {
		typ, query string
		param      string // the parameter the message must name
	}{
		{"Patient", "foo=secretvalue", `"foo"`},
		{"Patient", "family:sounds=secretvalue", `"family:sounds"`},
		{"Patient", "birthdate=xx1980", `"birthdate"`},
		{"Patient", "birthdate=1980-13-01", `"birthdate"`},
		{"Patient", "birthdate=secretvalue", `"birthdate"`},
		{"Patient", "birthdate=1980-01-01T10", `"birthdate"`},
		{"Patient", "gender:missing=secretvalue", `"gender:missing"`},
		{"Patient", "_id=secret/value", `"_id"`},
		{"Patient", "_id:missing=true", `"_id:missing"`},
		{"Patient", "_lastUpdated=secretvalue", `"_lastUpdated"`},
		{"Patient", "subject.name=secretvalue", `"subject.name"`},
		{"Patient", "_count=0", `"_count"`},
		{"Patient", "_count=1001", `"_count"`},
		{"Patient", "_count=secretvalue", `"_count"`},
		{"Patient", "_count=10&_count=20", `"_count"`},
		{"Patient", "_offset=-1", `"_offset"`},
		{"Patient", "_sort=family", `"_sort"`},
		{"Patient", "_summary=true", `"_summary"`},
		{"Patient", "_total=estimate", `"_total"`},
		{"Patient", "_format=xml", `"_format"`},
		{"Patient", "_revinclude=Observation:patient", `"_revinclude"`},
		{"Patient", "_elements=id", `"_elements"`},
		{"Observation", "_include=Patient:organization", `"_include"`},
		{"Observation", "_include=Observation:code", `"_include"`},
		{"Observation", "_include=Observation:patient:Group", `"_include"`},
		{"Observation", "_include=secretvalue", `"_include"`},
		{"Observation", "subject=secret value", `"subject"`},
		{"Observation", "subject:Organization=1", `"subject:Organization"`},
		{"Observation", "code=|", `"code"`},
		{"CareTeam", "participant:identifier=|", `"participant:identifier"`},
		{"CareTeam", "participant:text=secretvalue", `"participant:text"`},
		{"CareTeam", "status:identifier=secretvalue", `"status:identifier"`},
		{"CareTeam", "_id:identifier=secretvalue", `"_id:identifier"`},
		{"Observation", "name=x", `"name"`},
		{"Patient", "fam%00ily=x", "(unnamed)"},
		{"Patient", "family=" + strings.Repeat("a", 2000), `"family"`},
	}
	for _, tt := range tests {
		t.Run(tt.query[:min(len(tt.query), 40)], func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = fhir.ParseQuery(tt.typ, v, false)
			var e *phivault.Error
			if !errors.As(err, &e) || e.Code != phivault.EINVALID {
				t.Fatalf("ParseQuery(%q) = %v, want EINVALID", tt.query, err)
			}
			if !strings.Contains(e.Message, tt.param) {
				t.Errorf("message %q does not name %s", e.Message, tt.param)
			}
			if strings.Contains(e.Error(), "secret") || (len(e.Issues) > 0 && strings.Contains(e.Issues[0].Diagnostics, "secret")) {
				t.Errorf("message %q echoes the value", e.Message)
			}
		})
	}
}

func TestParseQuery_UnknownType(t *testing.T) {
	_, err := fhir.ParseQuery("Nonsense", url.Values{"_id": {"1"}}, false)
	if phivault.ErrorCode(err) != phivault.EINVALID {
		t.Fatalf("err = %v, want EINVALID", err)
	}
}

func TestParseQuery_Lenient(t *testing.T) {
	v := url.Values{"foo": {"1"}, "family:sounds": {"x"}, "family": {"smith"}}
	q, err := fhir.ParseQuery("Patient", v, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"family:sounds", "foo"}; !reflect.DeepEqual(q.Ignored, want) {
		t.Errorf("Ignored = %v, want %v", q.Ignored, want)
	}
	if len(q.Params) != 1 || q.Params[0].Name != "family" {
		t.Errorf("Params = %+v, want family only", q.Params)
	}
	// Bad values of known params are errors even when lenient.
	if _, err := fhir.ParseQuery("Patient", url.Values{"birthdate": {"bad"}}, true); err == nil {
		t.Error("lenient ParseQuery accepted a bad date")
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"family=smith", "birthdate=ge1980-01-02T10:00:00+05:00", `name=a\,b\\`, "_include=Observation:subject:Patient",
		"subject:Patient=1,Patient/2/_history/3", "code=http://x|y,|z,s|", "_count=10&_offset=5", "gender:missing=true",
		"date=ap2020", "_lastUpdated=lt2020-01-01T00:00:00.123Z", "%ff=%00",
	} {
		f.Add("Observation", s)
		f.Add("Patient", s)
	}
	f.Fuzz(func(t *testing.T, typ, query string) {
		v, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for _, lenient := range []bool{false, true} {
			q, err := fhir.ParseQuery(typ, v, lenient)
			if err != nil {
				var e *phivault.Error
				if !errors.As(err, &e) || e.Code != phivault.EINVALID {
					t.Fatalf("error %v is not an EINVALID *phivault.Error", err)
				}
				continue
			}
			obj := map[string]any{"resourceType": typ, "id": "x"}
			for _, p := range q.Params {
				fhir.Match(typ, p, obj)
				fhir.EqualityValues(typ, p)
			}
		}
	})
}
