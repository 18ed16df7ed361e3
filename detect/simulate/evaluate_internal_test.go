package simulate

import (
	"slices"
	"testing"
	"time"
)

func TestAUC(t *testing.T) {
	tests := []struct {
		pos, neg []int
		want     float64
	}{
		{[]int{3, 2}, []int{1, 2}, 0.875},
		{[]int{5}, []int{1, 2, 3}, 1},
		{[]int{0, 0}, []int{0, 0}, 0.5},
		{[]int{1}, []int{2}, 0},
		{nil, []int{1}, -1},
	}
	for _, tt := range tests {
		if got := auc(tt.pos, tt.neg); got != tt.want {
			t.Errorf("auc(%v, %v) = %v, want %v", tt.pos, tt.neg, got, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		give []time.Duration
		want time.Duration
	}{
		{nil, -1},
		{[]time.Duration{3, 1, 2}, 2},
		{[]time.Duration{4, 1, 2, 3}, 2},
	}
	for _, tt := range tests {
		if got := median(tt.give); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

// TestLeftOut: a label is left out when all its rules are unfed, or its
// scenario's targets all are; a pair when all its labels are, and a pair
// keeps the verdict of its other labels. With no rule unfed, nothing is.
func TestLeftOut(t *testing.T) {
	label := func(user, patient, scenario string, bad bool, rules ...string) *Label {
		return &Label{Pair: Pair{user, patient}, Scenario: scenario, Malicious: bad, Rules: rules}
	}
	tr := &Truth{Injected: []string{"grant", "stuffing", "mixed"}, Labels: []*Label{
		label("u1", "", "grant", true, RuleRoleGrant),
		label("u2", "", "grant", true), // collateral of an unmeasurable scenario
		label("u2", "", "stuffing", false, RuleStuffing),
		label("u3", "p1", "mixed", true, RuleRoleGrant, RuleNoRelationship),
		label("u4", "", "background", false, RulePolicy),
	}}
	x := leftOut(tr, notIngestible)
	got := x.report()
	want := NotMeasurable{Rules: notIngestible, Scenarios: []string{"grant"}, Labels: 3, Targets: 1, Pairs: 2}
	if got == nil || !slices.Equal(got.Rules, want.Rules) || !slices.Equal(got.Scenarios, want.Scenarios) ||
		got.Labels != want.Labels || got.Targets != want.Targets || got.Pairs != want.Pairs {
		t.Fatalf("leftOut = %+v, want %+v", got, want)
	}
	if p := x.pairs(); !p[Pair{"u1", ""}] || !p[Pair{"u4", ""}] || p[Pair{"u2", ""}] {
		t.Errorf("pairs left out %v, want u1 and u4", p)
	}
	v := x.verdicts(tr)
	if bad, ok := v[Pair{"u2", ""}]; !ok || bad || !v[Pair{"u3", "p1"}] || len(v) != 2 {
		t.Errorf("verdicts %v, want u2 benign (its malicious label is left out), u3/p1 malicious, no others", v)
	}
	if !x.covers([]Pair{{"u1", ""}, {"u4", ""}}) || x.covers([]Pair{{"u1", ""}, {"u2", ""}}) || x.covers(nil) {
		t.Errorf("covers: want only alerts all of whose pairs are left out")
	}

	none := leftOut(tr, nil)
	if none != nil || none.report() != nil || none.has(tr.Labels[0]) || none.covers([]Pair{{"u1", ""}}) || len(none.verdicts(tr)) != 4 {
		t.Errorf("leftOut with no rule unfed = %+v, want nothing left out", none)
	}
}
