package simulate

import (
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
