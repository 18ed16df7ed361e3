package phivault_test

import (
	"slices"
	"testing"

	"github.com/phivault/phivault"
)

func TestKeyVersionsOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		base string
		ids  []string
		want []string
	}{
		{"none", "patient/p1", nil, []string{}},
		{"only others", "patient/p1", []string{"patient/p10", "patient/p0"}, []string{}},
		{"one", "patient/p1", []string{"patient/p1"}, []string{"patient/p1"}},
		// Byte order puts "#10" before "#2"; versions go by number.
		{"numeric order", "patient/p1",
			[]string{"patient/p1#10", "patient/p1#2", "patient/p1", "patient/p1#3"},
			[]string{"patient/p1", "patient/p1#2", "patient/p1#3", "patient/p1#10"}},
		{"newest first in", "patient/p1",
			[]string{"patient/p1#3", "patient/p1#2", "patient/p1"},
			[]string{"patient/p1", "patient/p1#2", "patient/p1#3"}},
		{"first version gone", "patient/p2", []string{"patient/p2#4", "patient/p2#3"}, []string{"patient/p2#3", "patient/p2#4"}},
		{"neighbours and malformed", "patient/p1",
			[]string{"patient/p1!", "patient/p1#2", "patient/p10", "patient/p10#2", "patient/p1#02", "patient/p1#1",
				"patient/p1#x", "patient/p1#2#3", "patient/p1#", "patient/p1$", "patient/p1"},
			[]string{"patient/p1", "patient/p1#2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ks []*phivault.WrappedKey
			for _, id := range tc.ids {
				ks = append(ks, &phivault.WrappedKey{ID: id, Wrapped: []byte(id)})
			}
			got := phivault.KeyVersionsOf(tc.base, ks)
			if got == nil {
				t.Fatalf("KeyVersionsOf(%q, %q) = nil, want an empty slice", tc.base, tc.ids)
			}
			ids := make([]string, len(got))
			for i, k := range got {
				ids[i] = k.ID
				if string(k.Wrapped) != k.ID {
					t.Errorf("KeyVersionsOf(%q, %q)[%d] has another key's bytes", tc.base, tc.ids, i)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("KeyVersionsOf(%q, %q) = %q, want %q", tc.base, tc.ids, ids, tc.want)
			}
		})
	}
}
