package smart_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/smart"
)

func TestParse(t *testing.T) {
	tests := []struct {
		give string
		want []smart.Scope
	}{
		{"", nil},
		{"openid fhirUser launch launch/patient offline_access online_access",
			[]smart.Scope{{Name: "openid"}, {Name: "fhirUser"}, {Name: "launch"}, {Name: "launch/patient"}, {Name: "offline_access"}, {Name: "online_access"}}},
		{"patient/*.rs", []smart.Scope{{Context: "patient", Type: "*", Interactions: smart.Read | smart.Search}}},
		{"user/Observation.cruds", []smart.Scope{{Context: "user", Type: "Observation", Interactions: smart.All}}},
		{"system/Encounter.cud", []smart.Scope{{Context: "system", Type: "Encounter", Interactions: smart.Create | smart.Update | smart.Delete}}},
		{"patient/Patient.read", []smart.Scope{{Context: "patient", Type: "Patient", Interactions: smart.Read | smart.Search, V1: true}}},
		{"user/*.write", []smart.Scope{{Context: "user", Type: "*", Interactions: smart.Create | smart.Update | smart.Delete, V1: true}}},
		{"system/*.*", []smart.Scope{{Context: "system", Type: "*", Interactions: smart.All, V1: true}}},
		{"  patient/Condition.s   user/Patient.r ", []smart.Scope{
			{Context: "patient", Type: "Condition", Interactions: smart.Search},
			{Context: "user", Type: "Patient", Interactions: smart.Read}}},
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			[]smart.Scope{{Context: "patient", Type: "Observation", Interactions: smart.Read | smart.Search,
				Query: []phivault.QueryParam{{Name: "category", Values: []string{"http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}}}}}},
		{"patient/Observation.rs?category=laboratory,vital-signs&status=final",
			[]smart.Scope{{Context: "patient", Type: "Observation", Interactions: smart.Read | smart.Search,
				Query: []phivault.QueryParam{{Name: "category", Values: []string{"laboratory", "vital-signs"}}, {Name: "status", Values: []string{"final"}}}}}},
		{"patient/Observation.rs?category=a%7Cb", []smart.Scope{{Context: "patient", Type: "Observation", Interactions: smart.Read | smart.Search,
			Query: []phivault.QueryParam{{Name: "category", Values: []string{"a|b"}}}}}},
	}
	for _, tt := range tests {
		got, err := smart.Parse(tt.give)
		if err != nil {
			t.Errorf("Parse(%q) error: %v", tt.give, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.give, got, tt.want)
		}
	}
}

func TestParse_ErrInvalid(t *testing.T) {
	for _, give := range []string{
		"email",                                    // unknown non-resource scope
		"patient",                                  // no slash
		"group/*.rs",                               // unknown context
		"patient/Observation",                      // no permissions
		"patient/Observation.",                     // empty permissions
		"patient/Observation.sr",                   // wrong order
		"patient/Observation.rr",                   // repeated letter
		"patient/Observation.x",                    // unknown letter
		"patient/Observation.reads",                // not v1, not v2
		"patient/Nonsense.rs",                      // unknown type
		"patient/observation.rs",                   // type is case sensitive
		"patient/*.rs?category=lab",                // granular needs a type
		"patient/Observation.read?category=lab",    // granular needs v2
		"patient/Observation.rs?",                  // empty query
		"patient/Observation.rs?category",          // no value
		"patient/Observation.rs?category=",         // empty value
		"patient/Observation.rs?code:text=x",       // modifier
		"patient/Observation.rs?date=2020",         // not a token parameter
		"patient/Observation.rs?subject=Patient/1", // reference parameter
		"patient/Observation.rs?nosuch=1",          // unknown parameter
		"patient/Observation.rs?category=a,,b",     // empty OR value
		"patient/Observation.rs?category=%zz",      // bad escape
		"patient/Observation.rs\"",                 // not NQCHAR
		"openid émail",                             // not ASCII
	} {
		got, err := smart.Parse(give)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want error", give, got)
			continue
		}
		if phivault.ErrorCode(err) != phivault.EINVALID {
			t.Errorf("Parse(%q) error code %q, want %q", give, phivault.ErrorCode(err), phivault.EINVALID)
		}
	}
}

func TestScope_String(t *testing.T) {
	for _, give := range []string{
		"openid", "launch/patient", "patient/*.rs", "user/Observation.cruds", "system/*.*",
		"patient/Patient.read", "user/*.write", "system/Encounter.c",
		"patient/Observation.rs?category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category|laboratory",
		"patient/Observation.rs?category=laboratory,vital-signs&status=final",
	} {
		s, err := smart.Parse(give)
		if err != nil || len(s) != 1 {
			t.Fatalf("Parse(%q) = %v, %v", give, s, err)
		}
		if got := s[0].String(); got != give {
			t.Errorf("Parse(%q).String() = %q, want %q", give, got, give)
		}
	}
	// An unescaped form comes back escaped, and parses to the same scope.
	s := smart.MustParse("patient/Observation.rs?category=http://x|y")
	if got, want := s[0].String(), "patient/Observation.rs?category=http%3A%2F%2Fx|y"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func obs(t *testing.T, category string) map[string]any {
	t.Helper()
	var m map[string]any
	body := `{"resourceType":"Observation","id":"o1","status":"final",
	  "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"` + category + `"}]}],
	  "code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGrants(t *testing.T) {
	lab, vital := obs(t, "laboratory"), obs(t, "vital-signs")
	tests := []struct {
		scopes string
		ctx    string
		in     smart.Interactions
		typ    string
		obj    map[string]any
		want   bool
	}{
		{"patient/*.rs", "patient", smart.Read, "Observation", nil, true},
		{"patient/*.rs", "patient", smart.Search, "Condition", nil, true},
		{"patient/*.rs", "patient", smart.Create, "Observation", nil, false},
		{"patient/*.rs", "user", smart.Read, "Observation", nil, false},
		{"patient/Observation.r", "patient", smart.Read, "Condition", nil, false},
		{"patient/Observation.r", "patient", smart.Search, "Observation", nil, false},
		{"user/*.read", "user", smart.Search, "Patient", nil, true},
		{"user/*.read", "user", smart.Update, "Patient", nil, false},
		{"user/*.write", "user", smart.Delete, "Patient", nil, true},
		{"user/*.write", "user", smart.Read, "Patient", nil, false},
		{"system/*.*", "system", smart.Delete, "Claim", nil, true},
		{"system/Observation.cruds", "system", smart.Create | smart.Read, "Observation", nil, true},
		{"system/Observation.c", "system", smart.Create | smart.Read, "Observation", nil, false},
		{"openid fhirUser", "user", smart.Read, "Patient", nil, false},
		{"user/Observation.r", "user", 0, "Observation", nil, false},
		// Granular scopes grant only on a matching body.
		{"patient/Observation.rs?category=laboratory", "patient", smart.Read, "Observation", lab, true},
		{"patient/Observation.rs?category=laboratory", "patient", smart.Read, "Observation", vital, false},
		{"patient/Observation.rs?category=laboratory", "patient", smart.Read, "Observation", nil, false},
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "patient", smart.Read, "Observation", lab, true},
		{"patient/Observation.rs?category=http://other|laboratory", "patient", smart.Read, "Observation", lab, false},
		{"patient/Observation.rs?category=laboratory,vital-signs", "patient", smart.Read, "Observation", vital, true},
		{"patient/Observation.rs?category=laboratory&status=final", "patient", smart.Read, "Observation", lab, true},
		{"patient/Observation.rs?category=laboratory&status=amended", "patient", smart.Read, "Observation", lab, false},
		{"patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs", "patient", smart.Read, "Observation", vital, true},
		{"patient/Observation.rs?category=laboratory patient/Observation.r", "patient", smart.Read, "Observation", vital, true},
		{"patient/Observation.c?category=laboratory", "patient", smart.Create, "Observation", lab, true},
	}
	for _, tt := range tests {
		s := smart.MustParse(tt.scopes)
		if got := smart.Grants(s, tt.ctx, tt.in, tt.typ, tt.obj); got != tt.want {
			t.Errorf("Grants(%q, %s, %s, %s, body=%v) = %v, want %v", tt.scopes, tt.ctx, tt.in, tt.typ, tt.obj != nil, got, tt.want)
		}
	}
}

func TestMayGrant(t *testing.T) {
	s := smart.MustParse("patient/Observation.rs?category=laboratory openid")
	if !smart.MayGrant(s, "patient", smart.Search, "Observation") {
		t.Error("MayGrant with a granular scope = false, want true")
	}
	if smart.Unconditional(s, "patient", smart.Search, "Observation") {
		t.Error("Unconditional with only a granular scope = true, want false")
	}
	if smart.MayGrant(s, "patient", smart.Search, "Condition") {
		t.Error("MayGrant on another type = true, want false")
	}
	if smart.MayGrant(s, "user", smart.Search, "Observation") {
		t.Error("MayGrant in another context = true, want false")
	}
}

func TestContextOf(t *testing.T) {
	for kind, want := range map[string]string{
		phivault.PrincipalStaff: "user", phivault.PrincipalPatient: "patient", phivault.PrincipalSystem: "system", "": "user",
	} {
		if got := smart.ContextOf(kind); got != want {
			t.Errorf("ContextOf(%q) = %q, want %q", kind, got, want)
		}
	}
}

func TestInteractions_String(t *testing.T) {
	if got := (smart.Read | smart.Search | smart.Create).String(); got != "crs" {
		t.Errorf("String() = %q, want crs", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"openid patient/*.rs", "user/Observation.cruds?category=a|b&status=final", "system/*.*", "patient/Patient.read"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		scopes, err := smart.Parse(in)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		for _, s := range scopes {
			again, err := smart.Parse(s.String())
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], s) {
				t.Fatalf("Parse(%q.String()=%q) = %+v, %v", in, s.String(), again, err)
			}
			if s.IsResource() && s.Interactions == 0 {
				t.Fatalf("resource scope without interactions from %q", in)
			}
		}
	})
}
