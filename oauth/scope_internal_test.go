package oauth

import (
	"slices"
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/smart"
)

func TestGrant(t *testing.T) {
	tests := []struct {
		name       string
		requested  string
		registered []string
		kind       string
		want       []string
	}{
		{"narrowed to registered type", "user/*.cruds", []string{"user/Observation.rs"}, phivault.PrincipalStaff, []string{"user/Observation.rs"}},
		{"narrowed to requested type", "user/Observation.read", []string{"user/*.cruds"}, phivault.PrincipalStaff, []string{"user/Observation.rs"}},
		{"common letters", "user/Patient.cru", []string{"user/Patient.rs"}, phivault.PrincipalStaff, []string{"user/Patient.r"}},
		{"no common letters", "user/Patient.cu", []string{"user/Patient.rs"}, phivault.PrincipalStaff, nil},
		{"granular from request", "patient/Observation.rs?category=laboratory", []string{"patient/*.rs"}, phivault.PrincipalPatient, []string{"patient/Observation.rs?category=laboratory"}},
		{"granular from registration", "patient/Observation.rs", []string{"patient/Observation.rs?category=vital-signs"}, phivault.PrincipalPatient, []string{"patient/Observation.rs?category=vital-signs"}},
		{"granular mismatch", "patient/Observation.rs?category=laboratory", []string{"patient/Observation.rs?category=vital-signs"}, phivault.PrincipalPatient, nil},
		{"patient kind drops user", "user/*.rs patient/*.rs", []string{"user/*.rs", "patient/*.rs"}, phivault.PrincipalPatient, []string{"patient/*.rs"}},
		{"staff drops system", "system/*.rs user/*.rs", []string{"system/*.rs", "user/*.rs"}, phivault.PrincipalStaff, []string{"user/*.rs"}},
		{"system only system", "system/*.rs patient/*.rs", []string{"system/*.rs", "patient/*.rs"}, phivault.PrincipalSystem, []string{"system/*.rs"}},
		{"openid never", "openid fhirUser user/*.rs", []string{"openid", "fhirUser", "user/*.rs"}, phivault.PrincipalStaff, []string{"user/*.rs"}},
		{"launch/patient for patients", "launch/patient patient/*.rs", []string{"launch/patient", "patient/*.rs"}, phivault.PrincipalPatient, []string{"launch/patient", "patient/*.rs"}},
		{"launch/patient not for staff", "launch/patient patient/*.rs", []string{"launch/patient", "patient/*.rs"}, phivault.PrincipalStaff, []string{"patient/*.rs"}},
		{"offline must be registered", "offline_access user/*.rs", []string{"user/*.rs"}, phivault.PrincipalStaff, []string{"user/*.rs"}},
		{"bad registration ignored", "user/*.rs", []string{"nonsense", "user/*.rs"}, phivault.PrincipalStaff, []string{"user/*.rs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := grant(smart.MustParse(tt.requested), tt.registered, tt.kind)
			if !slices.Equal(got, tt.want) {
				t.Errorf("grant(%q, %q, %s) = %q, want %q", tt.requested, tt.registered, tt.kind, got, tt.want)
			}
		})
	}
}
