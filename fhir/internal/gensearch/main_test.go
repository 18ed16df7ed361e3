package main

import (
	"slices"
	"testing"
)

func TestSimplify(t *testing.T) {
	tests := []struct {
		term, path, target string
		ok                 bool
	}{
		{"Patient.birthDate", "Patient.birthDate", "", true},
		{"(RiskAssessment.occurrence as dateTime)", "RiskAssessment.occurrence", "", true},
		{"Observation.value.as(Quantity)", "Observation.value", "", true},
		{"Observation.subject.where(resolve() is Patient)", "Observation.subject", "Patient", true},
		{"Patient.telecom.where(system='email')", "Patient.telecom.where(system='email')", "", true},
		{"Bundle.entry[0].resource", "", "", false},
		{"Patient.deceased.exists() and Patient.deceased != false", "", "", false},
		{"QuestionnaireResponse.extension('http://x').value", "", "", false},
	}
	for _, tt := range tests {
		path, target, ok := simplify(tt.term)
		if path != tt.path || target != tt.target || ok != tt.ok {
			t.Errorf("simplify(%q) = %q, %q, %v; want %q, %q, %v", tt.term, path, target, ok, tt.path, tt.target, tt.ok)
		}
	}
}

func TestBuild(t *testing.T) {
	sp := searchParameter{Code: "patient", Type: "reference", Base: []string{"Observation", "Condition"},
		Expression: "Condition.subject.where(resolve() is Patient) | Observation.subject.where(resolve() is Patient)",
		Target:     []string{"Patient", "Group"}}
	p, why, ok := build("Observation", sp)
	if !ok || !slices.Equal(p.Paths, []string{"Observation.subject"}) || !slices.Equal(p.Targets, []string{"Patient"}) {
		t.Errorf("build = %+v, %q, %v", p, why, ok)
	}
	sp.Expression = "Observation.subject"
	if p, _, _ := build("Observation", sp); !slices.Equal(p.Targets, []string{"Group", "Patient"}) {
		t.Errorf("unrestricted targets = %v", p.Targets)
	}
	if _, _, ok := build("Encounter", sp); ok {
		t.Error("build accepted a type without a term")
	}
}
