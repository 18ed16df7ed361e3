package fhir_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

func TestDateRange(t *testing.T) {
	d := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		value, prefix, from, to string
	}{
		{"1980", "eq", "1980-01-01T00:00:00Z", "1981-01-01T00:00:00Z"},
		{"eq1980-02", "eq", "1980-02-01T00:00:00Z", "1980-03-01T00:00:00Z"},
		{"ge1980-12-31", "ge", "1980-12-31T00:00:00Z", "1981-01-01T00:00:00Z"},
		{"lt2020-01-01T10:00", "lt", "2020-01-01T10:00:00Z", "2020-01-01T10:01:00Z"},
		{"gt2020-01-01T10:00:05Z", "gt", "2020-01-01T10:00:05Z", "2020-01-01T10:00:06Z"},
		{"sa2020-01-01T10:00:05.25+05:00", "sa", "2020-01-01T05:00:05.25Z", "2020-01-01T05:00:05.26Z"},
		{"eb2020-01-01T10:00:05 05:00", "eb", "2020-01-01T05:00:05Z", "2020-01-01T05:00:06Z"},
		{"ne2020-01-01T00:00:00-03:00", "ne", "2020-01-01T03:00:00Z", "2020-01-01T03:00:01Z"},
		{"ap2000", "ap", "2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z"},
		{"le2024-02-29", "le", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
	}
	for _, tt := range tests {
		prefix, from, to, err := fhir.DateRange(tt.value)
		if err != nil {
			t.Errorf("DateRange(%q): %v", tt.value, err)
			continue
		}
		if prefix != tt.prefix || !from.Equal(d(tt.from)) || !to.Equal(d(tt.to)) || from.Location() != time.UTC {
			t.Errorf("DateRange(%q) = %s [%v, %v), want %s [%s, %s)", tt.value, prefix, from, to, tt.prefix, tt.from, tt.to)
		}
	}
	for _, bad := range []string{"", "19", "198", "1980-1", "1980-13", "2023-02-29", "1980-01-02T", "1980-01-02T25:00",
		"1980-01-02T10:00:00.1234567890Z", "xx1980", "gt", "1980-01-02 10:00", "1980-01-02T10:00:00+5", "0000"} {
		if _, _, _, err := fhir.DateRange(bad); err == nil {
			t.Errorf("DateRange(%q) accepted", bad)
		}
	}
}

func TestMatch(t *testing.T) {
	patient := mustDecode(t, `{
		"resourceType": "Patient", "id": "p1",
		"identifier": [{"system": "http://hospital/mrn", "value": "MRN-42"}],
		"name": [{"family": "Müller", "given": ["José", "Ana"], "text": "José Müller"}],
		"telecom": [{"system": "phone", "value": "555-0102"}, {"system": "email", "value": "Jose@Example.org"}],
		"gender": "male",
		"birthDate": "1980-01-02",
		"address": [{"postalCode": "sw1a 1aa"}]
	}`)
	enc := mustDecode(t, `{
		"resourceType": "Encounter", "id": "e1", "status": "finished",
		"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
		"subject": {"reference": "Patient/p1"},
		"period": {"start": "2020-03-04T22:00:00-05:00", "end": "2020-03-04T23:00:00-05:00"},
		"meta": {"lastUpdated": "2024-05-06T07:08:09.123Z"}
	}`)
	team := mustDecode(t, `{
		"resourceType": "CareTeam", "id": "t1",
		"participant": [
			{"member": {"identifier": {"system": "urn:phivault:principal", "value": "acct-1"}}},
			{"member": {"identifier": {"value": "local-7"}}},
			{"member": {"reference": "Practitioner/d1"}}
		]
	}`)
	tests := []struct {
		typ      string
		obj      map[string]any
		name     string
		modifier string
		values   []string
		want     bool
	}{
		{"Patient", patient, "family", "", []string{"mul"}, true},
		{"Patient", patient, "family", "", []string{"MÜLLER"}, true},
		{"Patient", patient, "family", "", []string{"ller"}, false},
		{"Patient", patient, "family", "exact", []string{"Müller"}, true},
		{"Patient", patient, "family", "exact", []string{"muller"}, false},
		{"Patient", patient, "family", "contains", []string{"LLE"}, true},
		{"Patient", patient, "name", "", []string{"an"}, true},
		{"Patient", patient, "name", "", []string{"x", "jo"}, true},
		{"Patient", patient, "given", "", []string{"muller"}, false},
		{"Patient", patient, "name", "missing", []string{"false"}, true},
		{"Patient", patient, "name", "missing", []string{"true"}, false},
		{"Patient", patient, "address-postalcode", "", []string{"SW1A"}, true},
		{"Patient", patient, "identifier", "", []string{"MRN-42"}, true},
		{"Patient", patient, "identifier", "", []string{"mrn-42"}, false},
		{"Patient", patient, "identifier", "", []string{"http://hospital/mrn|MRN-42"}, true},
		{"Patient", patient, "identifier", "", []string{"http://hospital/mrn|"}, true},
		{"Patient", patient, "identifier", "", []string{"|MRN-42"}, false},
		{"Patient", patient, "identifier", "not", []string{"http://other|MRN-42"}, true},
		{"Patient", patient, "identifier", "not", []string{"MRN-42"}, false},
		{"Patient", patient, "gender", "", []string{"male"}, true},
		{"Patient", patient, "gender", "", []string{"female"}, false},
		{"Patient", patient, "phone", "", []string{"(555) 0102"}, true},
		{"Patient", patient, "email", "", []string{"JOSE@example.ORG"}, true},
		{"Patient", patient, "birthdate", "", []string{"1980"}, true},
		{"Patient", patient, "birthdate", "", []string{"1980-01-02"}, true},
		{"Patient", patient, "birthdate", "", []string{"1980-01-03"}, false},
		{"Patient", patient, "birthdate", "", []string{"ge1980-01-02"}, true},
		{"Patient", patient, "birthdate", "", []string{"gt1980-01-02"}, false},
		{"Patient", patient, "birthdate", "", []string{"gt1979"}, true},
		{"Patient", patient, "birthdate", "", []string{"lt1980-01-03"}, true},
		{"Patient", patient, "birthdate", "", []string{"le1980-01-01"}, false},
		{"Patient", patient, "birthdate", "", []string{"ne1980-01-02"}, false},
		{"Patient", patient, "birthdate", "", []string{"ne1980-01"}, false},
		{"Patient", patient, "birthdate", "", []string{"sa1979-12-31"}, true},
		{"Patient", patient, "birthdate", "", []string{"eb1980-01-03"}, true},
		{"Patient", patient, "birthdate", "", []string{"eb1980-01-02"}, false},
		{"Patient", patient, "birthdate", "", []string{"ap1980-01-05"}, false},
		{"Patient", patient, "birthdate", "", []string{"ap1980-01"}, true},
		{"Patient", patient, "birthdate", "", []string{"1980-01-02T12:00:00Z"}, false},
		{"Patient", patient, "birthdate", "", []string{"le1980-01-02T12:00:00Z"}, true},
		{"Patient", patient, "_id", "", []string{"p2", "p1"}, true},
		{"Patient", patient, "_id", "", []string{"p2"}, false},
		{"Encounter", enc, "patient", "", []string{"p1"}, true},
		{"Encounter", enc, "patient", "", []string{"Patient/p1"}, true},
		{"Encounter", enc, "patient", "", []string{"p2"}, false},
		{"Encounter", enc, "subject", "Patient", []string{"p1"}, true},
		{"Encounter", enc, "subject", "Group", []string{"p1"}, false},
		// An absolute URL is another server's resource, never Patient/p1.
		{"Encounter", enc, "subject", "", []string{"https://example.org/fhir/Patient/p1"}, false},
		{"Encounter", enc, "class", "", []string{"AMB"}, true},
		{"Encounter", enc, "class", "", []string{"http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"}, true},
		{"Encounter", enc, "status", "", []string{"finished"}, true},
		// The period lies on 2020-03-04 in its own offset, 2020-03-05 in UTC.
		{"Encounter", enc, "date", "", []string{"2020-03-04"}, true},
		{"Encounter", enc, "date", "", []string{"2020-03-05"}, false},
		{"Encounter", enc, "date", "", []string{"ge2020-03-05T03:00:00Z"}, true},
		{"Encounter", enc, "date", "", []string{"lt2020-03-05T03:00:00Z"}, false},
		{"Encounter", enc, "date", "missing", []string{"true"}, false},
		{"Encounter", enc, "_lastUpdated", "", []string{"gt2024-05-06T07:08:08Z"}, true},
		{"Encounter", enc, "_lastUpdated", "", []string{"gt2024-05-06T07:08:09Z"}, false},
		{"Encounter", enc, "_lastUpdated", "", []string{"lt2024-05-06"}, false},
		{"Encounter", enc, "nonsense", "", []string{"x"}, false},
		{"CareTeam", team, "participant", "identifier", []string{"urn:phivault:principal|acct-1"}, true},
		{"CareTeam", team, "participant", "identifier", []string{"acct-1"}, true},
		{"CareTeam", team, "participant", "identifier", []string{"urn:phivault:principal|"}, true},
		{"CareTeam", team, "participant", "identifier", []string{"urn:phivault:principal|acct-2"}, false},
		{"CareTeam", team, "participant", "identifier", []string{"|acct-1"}, false},
		{"CareTeam", team, "participant", "identifier", []string{"|local-7"}, true},
		{"CareTeam", team, "participant", "identifier", []string{"other|local-7"}, false},
		{"CareTeam", team, "participant", "identifier", []string{"Practitioner/d1"}, false},
		{"CareTeam", team, "participant", "", []string{"Practitioner/d1"}, true},
		// A literal reference search never matches an identifier.
		{"CareTeam", team, "participant", "", []string{"acct-1"}, false},
	}
	for _, tt := range tests {
		p := phivault.QueryParam{Name: tt.name, Modifier: tt.modifier, Values: tt.values}
		if got := fhir.Match(tt.typ, p, tt.obj); got != tt.want {
			t.Errorf("Match(%s %+v) = %v, want %v", tt.typ, p, got, tt.want)
		}
	}
}

func TestEqualityValues(t *testing.T) {
	tests := []struct {
		typ      string
		name     string
		modifier string
		values   []string
		want     []string // nil with ok=false
	}{
		{"Patient", "family", "", []string{"Müller", " Smith "}, []string{"muller", "smith"}},
		{"Patient", "name", "", []string{"Ana  María"}, []string{"ana maria"}},
		{"Patient", "family", "exact", []string{"x"}, nil},
		{"Patient", "family", "contains", []string{"x"}, nil},
		{"Patient", "identifier", "", []string{"s|v", "v", "|v", "s|"}, []string{"s|", "s|v", "v", "|v"}},
		{"Patient", "identifier", "not", []string{"v"}, nil},
		{"Patient", "phone", "", []string{"+1 555 0102"}, []string{"+15550102"}},
		{"Patient", "email", "", []string{"A@B.org"}, []string{"a@b.org"}},
		{"Patient", "address-postalcode", "", []string{"sw1a 1aa"}, []string{"SW1A1AA"}},
		{"Patient", "birthdate", "", []string{"1980-01-02", "eq1981", "1982-03"}, []string{"1980-01-02", "1981", "1982-03"}},
		{"Patient", "birthdate", "", []string{"1980-01-02", "ge1981"}, nil},
		{"Patient", "birthdate", "", []string{"1980-01-02T10:00:00Z"}, nil},
		{"Patient", "birthdate", "missing", []string{"true"}, nil},
		{"Patient", "_id", "", []string{"p1"}, nil},
		{"Patient", "_lastUpdated", "", []string{"2020"}, nil},
		{"Observation", "patient", "", []string{"p1"}, []string{"Patient/p1"}},
		{"Observation", "subject", "", []string{"p1"}, []string{"Device/p1", "Group/p1", "Location/p1", "Patient/p1"}},
		{"Observation", "subject", "Patient", []string{"p1"}, []string{"Patient/p1"}},
		{"Observation", "subject", "", []string{"Patient/p1/_history/2"}, []string{"Patient/p1"}},
		{"Observation", "patient", "", []string{"Group/g1"}, []string{}},
		{"Observation", "code", "", []string{"http://loinc.org|8302-2"}, []string{"http://loinc.org|8302-2"}},
		{"Observation", "nonsense", "", []string{"x"}, nil},
	}
	for _, tt := range tests {
		p := phivault.QueryParam{Name: tt.name, Modifier: tt.modifier, Values: tt.values}
		vals, ok := fhir.EqualityValues(tt.typ, p)
		if ok != (tt.want != nil) {
			t.Errorf("EqualityValues(%s %+v) ok = %v, want %v", tt.typ, p, ok, tt.want != nil)
			continue
		}
		var got []string
		for _, v := range vals {
			if v.Param != tt.typ+"."+tt.name {
				t.Errorf("EqualityValues(%s %+v): param %q", tt.typ, p, v.Param)
			}
			got = append(got, v.Value)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tt.want))
		if ok && !slices.Equal(got, want) {
			t.Errorf("EqualityValues(%s %+v) = %q, want %q", tt.typ, p, got, want)
		}
	}
}

func TestEqualityValues_Identifier(t *testing.T) {
	tests := []struct {
		values []string
		want   []string // nil with ok=false
	}{
		{[]string{"urn:phivault:principal|acct-1"}, []string{"urn:phivault:principal|acct-1"}},
		{[]string{"acct-1", "|acct-1", "acct-1"}, []string{"acct-1", "|acct-1"}},
		{[]string{"s|a|b"}, []string{"s|a|b"}},
		{[]string{"acct-1", "urn:phivault:principal|"}, nil},
	}
	for _, tt := range tests {
		p := phivault.QueryParam{Name: "participant", Modifier: "identifier", Values: tt.values}
		vals, ok := fhir.EqualityValues("CareTeam", p)
		if ok != (tt.want != nil) {
			t.Errorf("EqualityValues(%+v) ok = %v, want %v", p, ok, tt.want != nil)
			continue
		}
		var got []string
		for _, v := range vals {
			if v.Param != "CareTeam.participant:identifier" {
				t.Errorf("EqualityValues(%+v): param %q, want CareTeam.participant:identifier", p, v.Param)
			}
			got = append(got, v.Value)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("EqualityValues(%+v) = %q, want %q", p, got, tt.want)
		}
	}
	// The literal reference and its identifier never share a Param.
	vals, ok := fhir.EqualityValues("CareTeam", phivault.QueryParam{Name: "participant", Values: []string{"Practitioner/d1"}})
	if !ok || len(vals) != 1 || vals[0].Param != "CareTeam.participant" {
		t.Errorf("EqualityValues(participant=Practitioner/d1) = %v, %v", vals, ok)
	}
}

// TestMatch_AgreesWithEqualityValues checks, over the Synthea resources, that
// a query built from one of a resource's own index values (a) yields that
// value from EqualityValues and (b) matches the resource and every other
// resource of its type whose index holds a value EqualityValues returns.
func TestMatch_AgreesWithEqualityValues(t *testing.T) {
	bundles := mustSearchBundles(t)
	if testing.Short() {
		bundles = bundles[:10]
	}
	rng := rand.New(rand.NewPCG(1, 2))
	byType := map[string][]map[string]any{}
	for _, b := range bundles {
		for _, e := range b.Entries {
			byType[e.Type] = append(byType[e.Type], e.Resource)
		}
	}
	checked := map[string]int{}
	for typ, objs := range byType {
		for i, obj := range objs {
			vals := fhir.IndexValues(typ, obj)
			if len(vals) == 0 {
				continue
			}
			other := objs[rng.IntN(len(objs))]
			otherVals := fhir.IndexValues(typ, other)
			for range 3 {
				iv := vals[rng.IntN(len(vals))]
				name, modifier, _ := strings.Cut(strings.TrimPrefix(iv.Param, typ+"."), ":")
				p := phivault.QueryParam{Name: name, Modifier: modifier, Values: []string{iv.Value}}
				eq, ok := fhir.EqualityValues(typ, p)
				if !ok || !slices.Contains(eq, iv) {
					t.Fatalf("%s[%d]: EqualityValues(%+v) = %v, %v; want it to hold %v", typ, i, p, eq, ok, iv)
				}
				if !fhir.Match(typ, p, obj) {
					t.Fatalf("%s[%d]: Match(%+v) = false for its own index value", typ, i, p)
				}
				if slices.ContainsFunc(eq, func(v phivault.IndexValue) bool { return slices.Contains(otherVals, v) }) &&
					!fhir.Match(typ, p, other) {
					t.Fatalf("%s: Match(%+v) = false for a resource whose index holds it", typ, p)
				}
				checked[name]++
			}
		}
	}
	if testing.Short() {
		return // a 10-bundle sample need not reach every parameter
	}
	for _, name := range []string{"patient", "subject", "encounter", "code", "date", "status", "category",
		"identifier", "family", "given", "name", "birthdate", "gender", "phone", "address-postalcode", "class"} {
		if checked[name] == 0 {
			t.Errorf("param %s never sampled", name)
		}
	}
}
