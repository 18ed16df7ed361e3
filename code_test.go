package phivault_test

import (
	"strings"
	"testing"

	"github.com/phivault/phivault"
)

func TestIsCode(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"left-organisation", true},
		{"a", true},
		{"9", true},
		{"leave-of-absence-2", true},
		{"a-", true},
		{strings.Repeat("a", phivault.MaxCodeLen), true},

		{"", false},
		{strings.Repeat("a", phivault.MaxCodeLen+1), false},
		{"-left", false},
		{"Left-organisation", false},
		{"left organisation", false},
		{"left_organisation", false},
		{"left.organisation", false},
		{"covering for jane doe", false},
		{"mrn:12345", false},
		{"caf\u00e9", false},
		{"left\n", false},
	}
	for _, tt := range tests {
		if got := phivault.IsCode(tt.give); got != tt.want {
			t.Errorf("IsCode(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}
