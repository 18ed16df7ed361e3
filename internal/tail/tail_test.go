package tail_test

import (
	"slices"
	"testing"

	"github.com/phivault/phivault/internal/tail"
)

func TestTail(t *testing.T) {
	r := tail.New[int](4)
	if _, ok := r.Get(0, 1); ok {
		t.Fatal("Get from an empty tail")
	}
	r.Add(10, []int{10, 11, 12})
	if got, ok := r.Get(10, 13); !ok || !slices.Equal(got, []int{10, 11, 12}) {
		t.Fatalf("Get(10, 13) = %v, %v", got, ok)
	}
	r.Add(13, []int{13, 14}) // 10 falls out
	if _, ok := r.Get(10, 12); ok {
		t.Fatal("Get of an item that fell out")
	}
	if got, ok := r.Get(11, 15); !ok || !slices.Equal(got, []int{11, 12, 13, 14}) {
		t.Fatalf("Get(11, 15) = %v, %v", got, ok)
	}
	if _, ok := r.Get(14, 16); ok {
		t.Fatal("Get past the end")
	}
	r.Add(20, []int{20}) // a gap: someone else appended 15..19
	if _, ok := r.Get(14, 15); ok {
		t.Fatal("Get of an item from before a gap")
	}
	if got, ok := r.Get(20, 21); !ok || got[0] != 20 {
		t.Fatalf("Get(20, 21) = %v, %v", got, ok)
	}
	if got, ok := r.Get(21, 21); !ok || len(got) != 0 {
		t.Fatalf("empty Get = %v, %v", got, ok)
	}
}
