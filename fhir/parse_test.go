package fhir_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/fhir"
)

func TestParse_Invalid(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{"empty", ``},
		{"not json", `{"resourceType":`},
		{"array", `[{"resourceType":"Patient"}]`},
		{"null", `null`},
		{"string", `"Patient"`},
		{"trailing object", `{"resourceType":"Patient"}{}`},
		{"trailing garbage", `{"resourceType":"Patient"} x`},
		{"no resourceType", `{"id":"1"}`},
		{"numeric resourceType", `{"resourceType":5}`},
		{"unknown resourceType", `{"resourceType":"Foo"}`},
		{"abstract resourceType", `{"resourceType":"DomainResource"}`},
		{"datatype as resourceType", `{"resourceType":"HumanName"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := fhir.Parse([]byte(tt.give))
			if got := phivault.ErrorCode(err); got != phivault.EINVALID {
				t.Errorf("Parse(%q) code = %q (%v), want %q", tt.give, got, err, phivault.EINVALID)
			}
		})
	}
}

// TestParse_NoValueEcho checks that errors and issues never quote the
// offending value, which may be PHI.
func TestParse_NoValueEcho(t *testing.T) {
	const secret = "Zebediah-1970"
	bodies := []string{
		`{"resourceType":"Patient","birthDate":"` + secret + `"}`,
		`{"resourceType":"Patient","gender":" ` + secret + `"}`,
		`{"resourceType":"Patient","id":"` + secret + ` x"}`,
		`{"resourceType":"Patient","managingOrganization":{"reference":"` + secret + ` "}}`,
		`{"resourceType":"Patient","name":[{"given":[` + `"` + secret + `",5]}],"active":"` + secret + `"}`,
		`{"resourceType":"` + secret + `"}`,
		`{"resourceType":"Patient","birthDate":"` + secret + ``,
		`{"resourceType":"Patient"} "` + secret + `"`,
	}
	for _, body := range bodies {
		_, _, err := fhir.Parse([]byte(body))
		if err == nil {
			t.Errorf("Parse(%q) = nil error, want one", body)
			continue
		}
		dump, _ := json.Marshal(err)
		if strings.Contains(err.Error(), secret) || strings.Contains(string(dump), secret) {
			t.Errorf("Parse(%q) error %s quotes the value", body, dump)
		}
	}
}

func TestMarshal(t *testing.T) {
	obj, err := fhir.Decode([]byte(`{"z":1.50,"a":"<div>&</div>","m":{"b":[1e3,true,null]}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := fhir.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":"<div>&</div>","m":{"b":[1e3,true,null]},"z":1.50}`; string(got) != want {
		t.Errorf("Marshal() = %s, want %s", got, want)
	}
}
