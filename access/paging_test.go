package access

import (
	"errors"
	"fmt"
	"testing"

	"github.com/phivault/phivault"
)

// TestPages reads lists of several sizes page by page and checks that
// pages stops at a short page, at the total, and past MaxScan.
func TestPages(t *testing.T) {
	list := func(n int) []*phivault.Resource {
		rs := make([]*phivault.Resource, n)
		for i := range rs {
			rs[i] = &phivault.Resource{ID: fmt.Sprint(i)}
		}
		return rs
	}
	for _, tc := range []struct {
		n, maxScan, fetches int
		tooMany             bool
	}{
		{n: 0, maxScan: 4 * MaxCount, fetches: 1},
		{n: MaxCount - 1, maxScan: 4 * MaxCount, fetches: 1},
		{n: MaxCount, maxScan: 4 * MaxCount, fetches: 1}, // the total ends it
		{n: 2*MaxCount + 3, maxScan: 4 * MaxCount, fetches: 3},
		{n: 3 * MaxCount, maxScan: 2 * MaxCount, fetches: 2, tooMany: true},
	} {
		src := list(tc.n)
		s := &RecordService{MaxScan: tc.maxScan}
		var all []*phivault.Resource
		fetches := 0
		err := s.pages("Observation", func(offset int) ([]*phivault.Resource, int, error) {
			fetches++
			lo := min(offset, len(src))
			return src[lo:min(lo+MaxCount, len(src))], len(src), nil
		}, collect(&all))
		name := fmt.Sprintf("n=%d maxScan=%d", tc.n, tc.maxScan)
		if tc.tooMany {
			if phivault.ErrorCode(err) != phivault.EINVALID {
				t.Errorf("%s: err %v, want EINVALID", name, err)
			}
		} else if err != nil || len(all) != tc.n {
			t.Errorf("%s: got %d resources, err %v", name, len(all), err)
		}
		if fetches != tc.fetches {
			t.Errorf("%s: %d fetches, want %d", name, fetches, tc.fetches)
		}
	}

	stop := errors.New("stop")
	s := &RecordService{MaxScan: 10 * MaxCount}
	fetches := 0
	err := s.pages("Observation", func(offset int) ([]*phivault.Resource, int, error) {
		fetches++
		return list(MaxCount), 5 * MaxCount, nil
	}, func([]*phivault.Resource) error { return stop })
	if err != stop || fetches != 1 {
		t.Errorf("fn's error: err %v after %d fetches", err, fetches)
	}
}

func TestWindow(t *testing.T) {
	all := []int{0, 1, 2, 3, 4}
	for _, tc := range []struct {
		offset, count int
		want          string
	}{
		{0, 2, "[0 1]"},
		{3, 10, "[3 4]"},
		{5, 2, "[]"},
		{9, 2, "[]"},
		{1, 0, "[1 2 3 4]"}, // count 0 means DefaultCount
	} {
		if got := fmt.Sprint(window(all, tc.offset, tc.count)); got != tc.want {
			t.Errorf("window(offset %d, count %d) = %s, want %s", tc.offset, tc.count, got, tc.want)
		}
	}
}
